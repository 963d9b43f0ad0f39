"""ALBEF has no installable reference (LAVIS pins versions that conflict with this stack), so its invariants are tested
instead: the EMA rule, the feature queue's FIFO order and wrap-around, the hard-negative sampler, distillation at
alpha = 0, the momentum copies and queues in train and eval mode, loading pretrained parts, and bad inputs."""
import math
import re

import pytest
import torch
import torch.nn.functional as F

from vlnotes.bert import BertConfig, BertForMaskedLM
from vlnotes.papers.albef import (ALBEF, ALBEFConfig, FeatureQueue, albef_from_pretrained, albef_retrieval_scores,
                                  distilled_targets, ema_update, sample_negatives, soft_cross_entropy)
from vlnotes.papers.vit import ViT, ViTConfig


def tiny_config(**kw) -> ALBEFConfig:
    return ALBEFConfig(vision=ViTConfig(image_size=32, patch_size=8, dim=16, depth=2, heads=2),
                       text=BertConfig(vocab_size=60, max_len=12, dim=24, depth=2, heads=2, cross_attention_from=1,
                                       context_dim=16, pooler=False), embed_dim=8, queue_size=10, **kw)

def batch(B: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(6, 60, (B, 9), generator=g)
    mask = torch.ones(B, 9, dtype=torch.long); mask[1, 6:] = 0; ids[1, 6:] = 0
    return torch.rand(B, 3, 32, 32, generator=g), ids, mask

def test_ema_update_rule():
    torch.manual_seed(0)
    src, dst = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.clone() for p in dst.parameters()]
    ema_update(dst, src, 0.9)
    for b, s, d in zip(before, src.parameters(), dst.parameters()):
        assert torch.allclose(d, 0.9 * b + 0.1 * s, atol=1e-7)
    ema_update(dst, src, 0.0)
    assert all(torch.equal(s, d) for s, d in zip(src.parameters(), dst.parameters()))
    kept = [p.clone() for p in dst.parameters()]
    ema_update(dst, torch.nn.Linear(3, 2), 1.0)
    assert all(torch.equal(k, d) for k, d in zip(kept, dst.parameters()))
    with pytest.raises(ValueError, match="same parameter shapes"): ema_update(dst, torch.nn.Linear(3, 4), 0.5)
    with pytest.raises(ValueError, match="momentum"): ema_update(dst, src, 1.5)

def test_queue_is_fifo_and_wraps_around():
    q = FeatureQueue(5, 2)
    rows = lambda a, b: torch.arange(a, b, dtype=torch.float).repeat_interleave(2).view(-1, 2)
    q.enqueue(rows(0, 3))
    assert q.ptr.item() == 3 and torch.equal(q.feats[:3], rows(0, 3))
    q.enqueue(rows(3, 7))            # fills slots 3, 4, then wraps to 0, 1
    assert q.ptr.item() == 2
    assert torch.equal(q.feats, torch.stack([rows(5, 6)[0], rows(6, 7)[0], rows(2, 3)[0], rows(3, 4)[0], rows(4, 5)[0]]))
    q.enqueue(rows(10, 17))          # more rows than slots: the newest 5 are kept, the oldest of them in slot ptr
    assert q.ptr.item() == 4
    assert sorted(q.feats[:, 0].tolist()) == [12., 13., 14., 15., 16.]
    assert q.feats[4, 0].item() == 12.0 and q.feats[3, 0].item() == 16.0
    with pytest.raises(ValueError, match="x"): q.enqueue(torch.zeros(2, 3))

def test_hard_negative_sampler_never_returns_the_positive_and_follows_the_weights():
    g = torch.Generator().manual_seed(0)
    w = torch.tensor([[9., 1., 2., 7.], [1., 9., 0., 3.], [5., 5., 9., 0.], [1., 1., 1., 9.]])
    draws = torch.stack([sample_negatives(w, generator=g) for _ in range(20000)])   # (n, B)
    assert not (draws == torch.arange(4)).any()
    for row in range(4):
        off = w[row].clone(); off[row] = 0
        expected = off / off.sum()
        freq = torch.bincount(draws[:, row], minlength=4).float() / len(draws)
        assert (freq - expected).abs().max() < 0.015, (row, freq, expected)
    # a row whose weight sits on the positive alone falls back to a uniform draw among the others
    w0 = torch.eye(3)
    d = torch.stack([sample_negatives(w0, generator=g) for _ in range(3000)])
    assert not (d == torch.arange(3)).any() and set(d[:, 0].tolist()) == {1, 2}
    with pytest.raises(ValueError, match="at least 2"): sample_negatives(torch.ones(1, 1))
    with pytest.raises(ValueError, match="non-negative"): sample_negatives(-torch.ones(3, 3))

def test_distillation_with_alpha_zero_is_the_plain_loss():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 9), torch.randint(0, 9, (6,))
    one_hot = F.one_hot(labels, 9).float()
    assert torch.equal(distilled_targets(one_hot, torch.randn(6, 9), 0.0), one_hot)
    assert torch.allclose(soft_cross_entropy(logits, one_hot), F.cross_entropy(logits, labels), atol=1e-6)
    mixed = distilled_targets(one_hot, torch.randn(6, 9), 0.4)
    assert torch.allclose(mixed.sum(1), torch.ones(6)) and (mixed[one_hot.bool()] >= 0.6).all()
    # the whole model: alpha = 0 gives the losses of a model built without distillation (same weights, same draws)
    images, ids, mask = batch()
    torch.manual_seed(1); a = ALBEF(tiny_config())
    torch.manual_seed(1); b = ALBEF(tiny_config(distill=False))
    torch.manual_seed(2); out_a = a(images, ids, mask, alpha=0.0)
    torch.manual_seed(2); out_b = b(images, ids, mask)
    for k in ("loss_itc", "loss_itm", "loss_mlm"): assert torch.allclose(out_a[k], out_b[k], atol=1e-6), k
    torch.manual_seed(1); c = ALBEF(tiny_config())
    torch.manual_seed(2); out_c = c(images, ids, mask, alpha=0.4)
    assert not torch.allclose(out_c["loss_itc"], out_a["loss_itc"])      # the same model and draws, alpha > 0

def test_momentum_copies_and_queues():
    torch.manual_seed(0)
    m = ALBEF(tiny_config(momentum=0.5))
    assert all(torch.equal(p, q) for p, q in zip(m.visual.parameters(), m.visual_m.parameters()))
    assert not any(p.requires_grad for p in m.visual_m.parameters())
    assert {id(p) for p in m.trainable_parameters()}.isdisjoint({id(p) for p in m.text_m.parameters()})
    images, ids, mask = batch()
    m.eval()
    with torch.no_grad(): m(images, ids, mask)
    assert m.image_queue.ptr.item() == 0                          # eval: no queue update, no EMA
    m.train()
    with torch.no_grad():
        for p in m.visual.parameters(): p.add_(1.0)               # the model moves away from its momentum copy
        before = [p.clone() for p in m.visual_m.parameters()]
        m(images, ids, mask)
    for b, p, q in zip(before, m.visual.parameters(), m.visual_m.parameters()):
        assert torch.allclose(q, 0.5 * b + 0.5 * p, atol=1e-6)
    assert m.image_queue.ptr.item() == 4 and m.text_queue.ptr.item() == 4

def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    m = ALBEF(tiny_config()).train()
    images, ids, mask = batch(8)
    opt = torch.optim.AdamW(m.trainable_parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        out = m(images, ids, mask); opt.zero_grad(); out.loss.backward(); opt.step()
        first = first if first is not None else out.loss.item()
    assert out.loss.item() < 0.8 * first

def test_retrieval_scores_rank_reranked_pairs_first():
    torch.manual_seed(0)
    m = ALBEF(tiny_config())
    images, ids, mask = batch(5)
    s = albef_retrieval_scores(m, images, ids, mask, k=2)
    every = albef_retrieval_scores(m, images, ids, mask, k=None)["itm"]       # the ITM log-odds of every pair
    assert s["itc"].shape == s["itm"].shape == every.shape == (5, 5)
    chosen = torch.zeros(5, 5, dtype=torch.bool)                              # each image's and each text's top-2
    chosen.scatter_(1, s["itc"].topk(2, dim=1).indices, True); chosen.scatter_(0, s["itc"].topk(2, dim=0).indices, True)
    torch.testing.assert_close(s["itm"][chosen], every[chosen], atol=1e-5, rtol=1e-5)
    assert s["itm"][~chosen].max() < s["itm"][chosen].min()                 # re-scored pairs rank first

def test_from_pretrained_parts():
    torch.manual_seed(0)
    vit = ViT(ViTConfig(image_size=32, patch_size=8, dim=16, depth=2, heads=2, num_classes=5)).eval()
    bert = BertForMaskedLM(BertConfig(vocab_size=60, max_len=12, dim=24, depth=4, heads=2, pooler=False)).eval()
    m = albef_from_pretrained(vit, bert, embed_dim=8, queue_size=10).eval()
    assert m.config.text.cross_attention_from == 2 and m.config.vision.num_classes == 0
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(m.visual(x).last_hidden_state, vit(x).last_hidden_state, atol=1e-6)
        ids = torch.randint(6, 60, (2, 7))
        ours = m.text.bert(ids, layers=(0, 2)).last_hidden_state
        assert torch.allclose(ours, bert.bert(ids, layers=(0, 2)).last_hidden_state, atol=1e-6)
    assert all(torch.equal(p, q) for p, q in zip(m.text.parameters(), m.text_m.parameters()))
    with pytest.raises(TypeError, match="vit"): albef_from_pretrained(bert, bert)

@pytest.mark.parametrize("call, message", [
    (lambda m, x, i, k: m(x[:3], i, k), "batch"),
    (lambda m, x, i, k: m(x, i, torch.zeros_like(k)), "attention_mask"),
    (lambda m, x, i, k: m(x, i.clamp(max=3), k), "word token"),
    (lambda m, x, i, k: m(x, i + 100, k), "input_ids"),
    (lambda m, x, i, k: m(x[:, :1], i, k), "images"),
    (lambda m, x, i, k: m(x, i, k, alpha=2.0), "alpha"),
])
def test_bad_inputs_are_named(call, message):
    m = ALBEF(tiny_config())
    images, ids, mask = batch()
    with pytest.raises((ValueError, TypeError), match=re.escape(message)): call(m, images, ids, mask)

@pytest.mark.parametrize("kw, field", [
    (dict(vision=ViTConfig(image_size=32, patch_size=8, dim=16, depth=2, heads=2, num_classes=3)), "vision.num_classes"),
    (dict(text=BertConfig(vocab_size=60, dim=24, depth=2, heads=2)), "cross_attention_from"),
    (dict(text=BertConfig(vocab_size=60, dim=24, depth=2, heads=2, cross_attention_from=1, context_dim=20)),
     "context_dim"),
    (dict(queue_size=0), "queue_size"), (dict(momentum=1.5), "momentum"), (dict(temp=0.9), "temp"),
    (dict(hard_negative_share=1.5), "hard_negative_share"), (dict(hard_negative_share=-0.1), "hard_negative_share"),
    (dict(mlm="no"), "mlm"),
])
def test_bad_configs_are_named(kw, field):
    base = dict(vision=ViTConfig(image_size=32, patch_size=8, dim=16, depth=2, heads=2),
                text=BertConfig(vocab_size=60, dim=24, depth=2, heads=2, cross_attention_from=1, context_dim=16))
    with pytest.raises((ValueError, TypeError), match=re.escape(field)): ALBEFConfig(**{**base, **kw})


@pytest.mark.parametrize("itc", [True, False])
def test_frozen_image_encoder_takes_precomputed_tokens(itc):
    "freeze_vision: no gradient and no momentum copy for the ViT; its tokens computed once give the same step."
    torch.manual_seed(0)
    m = ALBEF(tiny_config(freeze_vision=True, itc=itc)).train()
    assert not hasattr(m, "visual_m") and not any(p.requires_grad for p in m.visual.parameters())
    assert {id(p) for p in m.trainable_parameters()}.isdisjoint({id(p) for p in m.visual.parameters()})
    assert not m.visual.training                                      # a fixed encoder stays in eval mode
    twin = ALBEF(tiny_config(freeze_vision=True, itc=itc)); twin.load_state_dict(m.state_dict()); twin.train()
    images, ids, mask = batch()
    with torch.no_grad(): tokens = m.visual(images).last_hidden_state
    torch.manual_seed(1); a = m(images, ids, mask)
    torch.manual_seed(1); b = twin(None, ids, mask, image_tokens=tokens)
    for k in ("loss", "loss_itc", "loss_itm", "loss_mlm"): torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    before = [p.clone() for p in m.visual.parameters()]
    opt = torch.optim.AdamW(m.trainable_parameters(), lr=1e-2)
    opt.zero_grad(); a.loss.backward(); opt.step()
    assert all(torch.equal(x, p) for x, p in zip(before, m.visual.parameters()))
    s_img = albef_retrieval_scores(m, images, ids, mask, k=2)
    s_tok = albef_retrieval_scores(m, None, ids, mask, k=2, image_tokens=tokens)
    for k in ("itc", "itm"): torch.testing.assert_close(s_img[k], s_tok[k], rtol=0, atol=1e-6)

def test_negative_mask_keeps_marked_pairs_out_of_itm():
    "Every negative text of image i is one that negative_mask does not mark (here only text i+1 mod B is allowed)."
    torch.manual_seed(0)
    m = ALBEF(tiny_config(hard_negatives=False)).train()
    images, ids, mask = batch(6)
    allowed = torch.roll(torch.eye(6, dtype=torch.bool), 1, dims=1)   # [i, (i+1) % 6]
    drawn = []
    import vlnotes.papers.albef as albef
    original = albef.sample_negatives
    def spy(w, generator=None, exclude=None):
        out = original(w, generator, exclude); drawn.append((exclude, out)); return out
    albef.sample_negatives = spy
    try:
        for _ in range(5): m(images, ids, mask, negative_mask=~allowed & ~torch.eye(6, dtype=torch.bool))
    finally:
        albef.sample_negatives = original
    assert len(drawn) == 10                                            # two draws (texts, images) per step
    for exclude, out in drawn:
        ok = ~exclude & ~torch.eye(6, dtype=torch.bool)
        assert ok[torch.arange(6), out].all()

@pytest.mark.parametrize("call, message", [
    (lambda m, x, i, k: m(None, i, k), "exactly one"),
    (lambda m, x, i, k: m(x, i, k, image_tokens=torch.zeros(4, 17, 16)), "exactly one"),
    (lambda m, x, i, k: m(None, i, k, image_tokens=torch.zeros(4, 17, 16)), "freeze_vision"),
    (lambda m, x, i, k: m(x, i, k, negative_mask=torch.zeros(4, 4)), "negative_mask"),
    (lambda m, x, i, k: m(x, i, k, negative_mask=torch.zeros(3, 4, dtype=torch.bool)), "negative_mask"),
    (lambda m, x, i, k: albef_retrieval_scores(m, None, i, k, image_tokens=torch.zeros(4, 17, 8)), "image_tokens"),
])
def test_bad_image_inputs_are_named(call, message):
    m = ALBEF(tiny_config())
    images, ids, mask = batch()
    with pytest.raises((ValueError, TypeError), match=re.escape(message)): call(m, images, ids, mask)


def test_mlm_off_leaves_itc_and_itm_unchanged():
    "mlm=False: the loss is ITC + ITM exactly as with MLM on (same weights, same draws), and the MLM head gets no gradient."
    torch.manual_seed(0)
    with_mlm = ALBEF(tiny_config()).train()
    without = ALBEF(tiny_config(mlm=False)); without.load_state_dict(with_mlm.state_dict()); without.train()
    images, ids, mask = batch()
    torch.manual_seed(1); a = with_mlm(images, ids, mask)
    torch.manual_seed(1); b = without(images, ids, mask)
    for k in ("loss_itc", "loss_itm", "itm_acc"): torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert b.loss_mlm.item() == 0 and math.isnan(b.mlm_acc.item())
    torch.testing.assert_close(b.loss, b.loss_itc + b.loss_itm, rtol=0, atol=0)
    b.loss.backward()
    head = [p for n, p in without.text.named_parameters() if not n.startswith("bert.")]
    assert head and all(p.grad is None or not p.grad.any() for p in head)

@pytest.mark.parametrize("share", [1.0, 0.25, 0.0])
def test_hard_negative_share_mixes_the_draw_with_a_uniform_one(share):
    "The sampler gets share * softmax(similarities) + (1 - share) / B per row: the paper's draw at 1, uniform at 0."
    import vlnotes.papers.albef as albef
    torch.manual_seed(0)
    m = ALBEF(tiny_config(hard_negative_share=share)).train()
    images, ids, mask = batch(6)
    seen, original = [], albef.sample_negatives
    def spy(w, generator=None, exclude=None):
        seen.append(w.clone()); return original(w, generator, exclude)
    sims = []
    itc = albef.ALBEF.itc_loss
    def keep_sims(self, *a):
        out = itc(self, *a); sims.append(out[1:]); return out
    albef.sample_negatives, albef.ALBEF.itc_loss = spy, keep_sims
    try: m(images, ids, mask)
    finally: albef.sample_negatives, albef.ALBEF.itc_loss = original, itc
    (sim_i2t, sim_t2i), = sims
    expected = [share * F.softmax(s, dim=1) + (1 - share) / 6 for s in (sim_t2i, sim_i2t)]   # images drawn first
    for w, e in zip(seen, expected):
        torch.testing.assert_close(w, e, rtol=0, atol=1e-7)
        torch.testing.assert_close(w.sum(1), torch.ones(6), rtol=0, atol=1e-6)
    if share == 0: assert all(torch.allclose(w, torch.full((6, 6), 1 / 6)) for w in seen)
