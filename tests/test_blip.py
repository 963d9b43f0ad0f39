"""BLIP: parity with transformers' `BlipForImageTextRetrieval` (ITM head and ITC path) and
`BlipForConditionalGeneration` (logits, the captioning loss, greedy captions), the common model tests, the decoder's
sharing of all but self-attention, the losses transformers does not provide (ITC, ITM with hard negatives), CapFilt,
caption generation and bad inputs."""
import re

import pytest
import torch
import transformers

from model_testing import BadInput, ModelTesterMixin
from vlnotes.bert import BertConfig, BertForMaskedLM
from vlnotes.papers.blip import (BLIP, BLIPConfig, blip_config_from_hf, blip_from_pretrained, capfilt,
                                 generate_captions, itm_scores, share_all_but_self_attention)
from vlnotes.papers.vit import ViT, ViTConfig

VOCAB, BOS, EOS, PAD, CLS = 60, 2, 3, 0, 5


def tiny_config(**kw) -> BLIPConfig:
    return BLIPConfig(**{**dict(vision=ViTConfig(image_size=32, patch_size=8, dim=16, depth=2, heads=2),
                                text=BertConfig(vocab_size=VOCAB, max_len=16, dim=24, depth=2, heads=2,
                                                cross_attention_from=0, context_dim=16, pooler=False,
                                                type_vocab_size=0), embed_dim=8), **kw})

def token_batch(B: int = 4, L: int = 9, seed: int = 0):
    "Texts <cls> words <eos>, right-padded (text 1 shorter)."
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(6, VOCAB, (B, L), generator=g); ids[:, 0] = CLS; ids[:, -1] = EOS
    mask = torch.ones(B, L, dtype=torch.long)
    if B > 1: ids[1, 5] = EOS; ids[1, 6:] = PAD; mask[1, 6:] = 0
    return ids, mask


# ---- parity with transformers ------------------------------------------------------------------------
HF_CONFIGS = {
    "square": dict(image_size=32, patch_size=8, vision=24, text=32, heads=4, layers=2, act="gelu"),
    "non-default": dict(image_size=24, patch_size=6, vision=16, text=24, heads=2, layers=3, act="gelu_new"),
}

def hf_config(image_size, patch_size, vision, text, heads, layers, act, sep=58):
    return transformers.BlipConfig(
        vision_config=dict(image_size=image_size, patch_size=patch_size, hidden_size=vision, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=2 * vision, hidden_act=act, layer_norm_eps=1e-5),
        text_config=dict(vocab_size=VOCAB, hidden_size=text, num_hidden_layers=layers, num_attention_heads=heads,
                         intermediate_size=3 * text, max_position_embeddings=20, bos_token_id=57, sep_token_id=sep,
                         pad_token_id=0, encoder_hidden_size=vision, hidden_act=act, initializer_range=0.2),
        image_text_hidden_size=12)

def hf_inputs(cfg, B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(B, 3, cfg["image_size"], cfg["image_size"], generator=g)
    ids = torch.randint(1, 57, (B, 7), generator=g)
    mask = torch.ones_like(ids); ids[1, 5:] = 0; mask[1, 5:] = 0                 # padded text
    return images, ids, mask

@pytest.mark.parametrize("name", HF_CONFIGS)
def test_retrieval_parity(name):
    torch.manual_seed(0)
    hf = transformers.BlipForImageTextRetrieval(hf_config(**HF_CONFIGS[name])).eval()
    ours = BLIP.from_hf(hf).eval()
    assert not ours.config.decoder and ours.config.encoder
    images, ids, mask = hf_inputs(HF_CONFIGS[name])
    with torch.no_grad():
        tokens = ours.encode_image(images)
        ref = hf(input_ids=ids, pixel_values=images, attention_mask=mask, use_itm_head=True)
        torch.testing.assert_close(tokens, ref.last_hidden_state, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.itm_logits(tokens, ids, mask), ref.itm_score, atol=1e-5, rtol=0)
        ref = hf(input_ids=ids, pixel_values=images, attention_mask=mask, use_itm_head=False).itm_score
        torch.testing.assert_close(ours.image_features(tokens) @ ours.text_features(ids, mask).t(), ref,
                                   atol=1e-5, rtol=0)

@pytest.mark.parametrize("name", HF_CONFIGS)
def test_captioning_parity_logits_loss_and_greedy_captions(name):
    torch.manual_seed(0)
    cfg = HF_CONFIGS[name]
    hf = transformers.BlipForConditionalGeneration(hf_config(**cfg)).eval()
    hf.config.text_config.label_smoothing = hf.text_decoder.label_smoothing = 0.1
    ours = BLIP.from_hf(hf).eval()
    assert ours.config.decoder and not ours.config.encoder and ours.config.label_smoothing == 0.1
    images, ids, mask = hf_inputs(cfg)
    with torch.no_grad():
        ref = hf(pixel_values=images, input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100))
        tokens = ours.encode_image(images)
        logits = ours.lm_logits(tokens, ids, mask)
        real = mask.bool()
        torch.testing.assert_close(logits[real], ref.logits[real], atol=1e-4, rtol=0)
        torch.testing.assert_close(ours.lm_loss(tokens, ids, mask), ref.loss, atol=1e-5, rtol=0)
        want = hf.generate(pixel_values=images, max_length=12, do_sample=False, num_beams=1)
        got = generate_captions(ours, images, max_length=12)
    assert torch.equal(got["input_ids"], want)

def test_greedy_captions_end_and_pad_like_transformers():
    "A frequent token as the end token: captions stop at different lengths and are padded the same way."
    torch.manual_seed(1)
    cfg = HF_CONFIGS["square"]
    hf = transformers.BlipForConditionalGeneration(hf_config(**cfg)).eval()
    images = hf_inputs(cfg, B=6)[0]
    first = hf.generate(pixel_values=images, max_length=12, do_sample=False)
    sep = int(first[:, 3].mode().values)                    # a token the model writes early
    torch.manual_seed(1)                                      # the same weights: the end token changes no weight
    hf = transformers.BlipForConditionalGeneration(hf_config(**cfg, sep=sep)).eval()
    want = hf.generate(pixel_values=images, max_length=12, do_sample=False)
    got = generate_captions(BLIP.from_hf(hf).eval(), images, max_length=12)
    assert torch.equal(got["input_ids"], want)
    assert (want[:, 1:] == sep).any(), "no caption ended: the test would not test the end"
    for row, keep in zip(got["input_ids"], got["attention_mask"].bool()):   # real up to the first end token, then padding
        end = (row == sep).nonzero()
        n = int(end[0]) + 1 if len(end) else len(row)
        assert keep[:n].all() and not keep[n:].any() and (row[n:] == 0).all()

def test_from_hf_rejects_other_classes():
    with pytest.raises(TypeError, match="BlipForImageTextRetrieval"): BLIP.from_hf(torch.nn.Linear(2, 2))

def test_config_from_hf_reads_the_ids():
    c = blip_config_from_hf(hf_config(**HF_CONFIGS["square"]))
    assert (c.bos_id, c.eos_id, c.pad_id, c.cls_id, c.share) == (57, 58, 0, None, "none")
    assert c.text.type_vocab_size == 0 and c.text.context_dim == 24 and c.embed_dim == 12


# ---- the common model tests ----------------------------------------------------------------------
def blip_outputs(model, images, input_ids, attention_mask=None):
    "Per-example outputs of every path: ITC features, ITM logits of the pair, decoder logits."
    tokens = model.encode_image(images)
    return {"image_feat": model.image_features(tokens), "text_feat": model.text_features(input_ids, attention_mask),
            "itm": model.itm_logits(tokens, input_ids, attention_mask),
            "lm": model.lm_logits(tokens, input_ids, attention_mask)}

class TestBLIP(ModelTesterMixin):
    image_size = 32
    params_without_grad = ("temp",)            # the temperature only enters the ITC loss, not these outputs
    bf16_rel_tol = 0.05

    def build_model(self): return BLIP(tiny_config())
    def build_inputs(self, batch_size):
        ids, mask = token_batch(batch_size)
        return {"images": torch.rand(batch_size, 3, 32, 32), "input_ids": ids, "attention_mask": mask}
    def outputs(self, model, **inputs): return blip_outputs(model, **inputs)
    def model_config(self, model): return model.config.to_dict()
    def make_variant_model(self): return BLIP(tiny_config(embed_dim=12))
    def expected_output_shapes(self, batch_size):
        return {"image_feat": (batch_size, 8), "text_feat": (batch_size, 8), "itm": (batch_size, 2),
                "lm": (batch_size, 9, VOCAB)}
    def bad_inputs(self):
        ids, mask = token_batch(2)
        cases = self.image_bad_inputs("images", extra={"input_ids": ids, "attention_mask": mask})
        cases = [c for c in cases if c.description not in ("rank 3 (missing batch dim)", "rank 5")]
        img = torch.rand(2, 3, 32, 32)
        return cases + [
            BadInput("mismatched batch sizes", {"images": torch.rand(3, 3, 32, 32), "input_ids": ids}, ValueError,
                     ("image_tokens", "input_ids", "3", "2")),
            BadInput("empty caption", {"images": img, "input_ids": torch.zeros(2, 0, dtype=torch.long)}, ValueError,
                     ("input_ids", "at least one token")),
            BadInput("a text with no real token", {"images": img, "input_ids": ids,
                                                   "attention_mask": torch.tensor([[1] * 9, [0] * 9])},
                     ValueError, ("attention_mask", "at least one real position")),
            BadInput("token id out of vocabulary", {"images": img, "input_ids": ids + VOCAB}, ValueError,
                     ("input_ids", str(VOCAB))),
            BadInput("over-long text", {"images": img, "input_ids": torch.full((2, 17), 7)}, ValueError,
                     ("input_ids", "16", "17")),
        ]


# ---- sharing all but self-attention -------------------------------------------------------------------
def test_decoder_shares_all_but_self_attention():
    shared, separate = BLIP(tiny_config()), BLIP(tiny_config(share="none"))
    enc, dec = shared.text_encoder, shared.text_decoder.bert
    assert dec.word_embed is enc.word_embed and dec.pos_embed is enc.pos_embed and dec.embed_norm is enc.embed_norm
    for d, e in zip(dec.blocks, enc.blocks):
        assert d.cross_attn is e.cross_attn and d.mlp is e.mlp and d.norm2 is e.norm2 and d.cross_norm is e.cross_norm
        assert d.attn is not e.attn and d.norm1 is not e.norm1
    n = lambda m: sum(p.numel() for p in m.parameters())
    D, L, M, Dv, V, T = 24, 2, 96, 16, VOCAB, 16
    cross = 2 * (D * D + D) + 2 * (Dv * D + D) + 2 * D     # q, out from the text; k, v from the image; LayerNorm
    mlp = 2 * D * M + M + D + 2 * D                            # and its LayerNorm
    embeddings = V * D + T * D + 2 * D
    assert n(separate) - n(shared) == L * (cross + mlp) + embeddings      # all but self-attention is stored once
    x, (ids, mask) = torch.rand(2, 3, 32, 32), token_batch(2)
    out = shared(x, ids, mask)                                 # one backward reaches the shared weights from both paths
    out.loss.backward()
    assert enc.blocks[0].mlp.fc1.weight.grad is not None and dec.blocks[0].attn.q_proj.weight.grad is not None

def test_share_rejects_different_configs():
    a = BLIP(tiny_config(share="none"))
    other = BertForMaskedLM(BertConfig(vocab_size=VOCAB, dim=24, depth=3, heads=2, cross_attention_from=0,
                                       context_dim=16, pooler=False, type_vocab_size=0)).bert
    with pytest.raises(ValueError, match="same config"): share_all_but_self_attention(other, a.text_encoder)


# ---- losses, generation, CapFilt --------------------------------------------------------------------
def test_training_losses_decrease_on_a_fixed_batch():
    torch.manual_seed(0)
    m = BLIP(tiny_config())
    x, (ids, mask) = torch.randn(4, 3, 32, 32), token_batch(4)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = None
    for _ in range(40):                  # ITC sits near log(4) for ~20 steps (near-identical [CLS] at init), then falls
        out = m(x, ids, mask)
        opt.zero_grad(); out.loss.backward(); opt.step()
        first = first if first is not None else (out.loss_itc.item(), out.loss_lm.item())
    assert out.loss_itc.item() < 0.7 * first[0] and out.loss_lm.item() < 0.6 * first[1]

def test_lm_loss_uses_the_given_ids_and_ignores_padding():
    torch.manual_seed(0)
    m = BLIP(tiny_config(label_smoothing=0.0)).eval()
    x, (ids, mask) = torch.rand(2, 3, 32, 32), token_batch(2)
    tokens = m.encode_image(x)
    logits = m.lm_logits(tokens, ids, mask)
    logp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
    w = mask[:, 1:].float()
    torch.testing.assert_close(m.lm_loss(tokens, ids, mask), -(logp * w).sum() / w.sum())
    changed = ids.clone(); changed[1, 7] = 9                  # a padding position: no effect
    torch.testing.assert_close(m.lm_loss(tokens, changed, mask), m.lm_loss(tokens, ids, mask))

def test_generate_methods_and_errors():
    torch.manual_seed(0)
    m = BLIP(tiny_config()).eval()
    x = torch.rand(3, 3, 32, 32)
    greedy = generate_captions(m, x, max_length=8)
    assert greedy["input_ids"].shape[0] == 3 and (greedy["input_ids"][:, 0] == BOS).all()
    assert torch.equal(generate_captions(m, x, "beam", 8, num_beams=1)["input_ids"], greedy["input_ids"])
    a = generate_captions(m, x, "nucleus", 8, top_p=0.9, generator=torch.Generator().manual_seed(0))
    b = generate_captions(m, x, "nucleus", 8, top_p=0.9, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a["input_ids"], b["input_ids"])
    tokens = m.encode_image(x)
    assert torch.equal(generate_captions(m, image_tokens=tokens, max_length=8)["input_ids"], greedy["input_ids"])
    for kw, message in ((dict(max_length=0), "max_length"), (dict(max_length=1), "max_length"),
                        (dict(max_length=17), "max_length"), (dict(method="top-k"), "method"),
                        (dict(images=None), "images, image_tokens"), (dict(image_tokens=tokens), "both")):
        with pytest.raises(ValueError, match=re.escape(message)): generate_captions(m, **{"images": x, **kw})
    with pytest.raises(ValueError, match="no text decoder"):
        generate_captions(BLIP(tiny_config(decoder=False, share="none")), x)

def test_capfilt_steps():
    torch.manual_seed(0)
    m = BLIP(tiny_config()).eval()
    x, (ids, mask) = torch.rand(4, 3, 32, 32), token_batch(4)
    both = capfilt(m, x, ids, mask, generator=torch.Generator().manual_seed(0), max_length=8)
    tokens = m.encode_image(x)
    torch.testing.assert_close(both.original_score, itm_scores(m, tokens, ids, mask))
    assert torch.equal(both.keep_original, both.original_score > 0.5)
    assert torch.equal(both.keep_synthetic, both.synthetic_score > 0.5) and both.synthetic_ids.shape[0] == 4
    syn = both.synthetic_ids.clone(); syn[:, 0] = CLS                      # the filter reads captions as the encoder does
    torch.testing.assert_close(both.synthetic_score, itm_scores(m, tokens, syn, both.synthetic_mask))
    alone = capfilt(m, x, ids, mask, filter=False, max_length=8)
    assert alone.keep_original.all() and alone.original_score is None and alone.keep_synthetic.all()
    only_filter = capfilt(m, x, ids, mask, captioner=False)
    assert only_filter.synthetic_ids is None and torch.equal(only_filter.keep_original, both.keep_original)
    assert capfilt(m, x, ids, mask, captioner=False, threshold=0.0).keep_original.all()
    with pytest.raises(ValueError, match="captioner, filter"): capfilt(m, x, ids, mask, captioner=False, filter=False)
    with pytest.raises(ValueError, match="threshold"): capfilt(m, x, ids, mask, threshold=1.5)
    with pytest.raises(ValueError, match="batch"): capfilt(m, x[:3], ids, mask)
    with pytest.raises(ValueError, match="image_tokens"): itm_scores(m, tokens[:3], ids, mask)

def test_itm_hard_negatives_follow_the_similarities():
    "With a similarity matrix that makes one text the only likely negative, ITM draws it."
    torch.manual_seed(0)
    m = BLIP(tiny_config())
    tokens, (ids, mask) = m.encode_image(torch.rand(4, 3, 32, 32)), token_batch(4)
    sim = torch.full((4, 4), -30.0); sim[0, 1] = sim[1, 0] = sim[2, 3] = sim[3, 2] = 30.0
    calls = []
    original = m.itm_logits
    m.itm_logits = lambda images, i, k: calls.append((images, i)) or original(images, i, k)
    m.itm_loss(tokens, ids, mask, sim, hard_negatives=True)
    images, texts = calls[0]
    partner = torch.tensor([1, 0, 3, 2])
    assert torch.equal(images[4:8], tokens[partner]) and torch.equal(texts[8:], ids[partner])

def test_from_pretrained_parts():
    torch.manual_seed(0)
    vit = ViT(ViTConfig(image_size=32, patch_size=8, dim=16, depth=2, heads=2, num_classes=5)).eval()
    bert = BertForMaskedLM(BertConfig(vocab_size=VOCAB, max_len=16, dim=24, depth=2, heads=2, pooler=False)).eval()
    m = blip_from_pretrained(vit, bert, embed_dim=8).eval()
    x, ids = torch.rand(2, 3, 32, 32), token_batch(2)[0]
    with torch.no_grad():
        torch.testing.assert_close(m.visual(x).last_hidden_state, vit(x).last_hidden_state)
        ref = bert.bert(ids).last_hidden_state                  # segment 0 folded into the positions: the same text states
        torch.testing.assert_close(m.text_encoder(ids).last_hidden_state, ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(m.text_decoder.mlm_logits(ref), bert.mlm_logits(ref))
    assert m.config.text.type_vocab_size == 0 and m.config.share == "all_but_sa"
    with pytest.raises(TypeError, match="vit"): blip_from_pretrained(bert, bert)

@pytest.mark.parametrize("kw, field", [
    (dict(text=BertConfig(vocab_size=VOCAB, dim=24, depth=2, heads=2, cross_attention_from=1, context_dim=16,
                          pooler=False)), "cross_attention_from"),
    (dict(text=BertConfig(vocab_size=VOCAB, dim=24, depth=2, heads=2, cross_attention_from=0, context_dim=20,
                          pooler=False)), "context_dim"),
    (dict(encoder=False), "share"), (dict(encoder=False, decoder=False, share="none"), "at least one"),
    (dict(share="all"), "share"), (dict(bos_id=VOCAB), "bos_id"), (dict(enc_id=-1), "enc_id"),
    (dict(label_smoothing=1.0), "label_smoothing"), (dict(temp=0.9), "temp"),
])
def test_bad_configs_are_named(kw, field):
    with pytest.raises((ValueError, TypeError), match=re.escape(field)): tiny_config(**kw)


# ---- a frozen image encoder: precomputed tokens, known false negatives, a separate filter ---------------------
def test_image_tokens_path_equals_images_and_leaves_the_encoder_untouched():
    torch.manual_seed(0)
    m = BLIP(tiny_config()).train()
    x, (ids, mask) = torch.rand(4, 3, 32, 32), token_batch(4)
    with torch.no_grad(): tokens = m.encode_image(x)
    torch.manual_seed(1); a = m(x, ids, mask)
    torch.manual_seed(1); b = m(None, ids, mask, image_tokens=tokens)
    for k in ("loss", "loss_itc", "loss_itm", "loss_lm", "itm_acc"):
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    b.loss.backward()
    assert all(p.grad is None for p in m.visual.parameters())        # the tokens are fixed: no gradient reaches it
    assert all(p.grad is not None for p in m.itm_head.parameters())
    cf_img = capfilt(m, x, ids, mask, generator=torch.Generator().manual_seed(0), max_length=8)
    cf_tok = capfilt(m, None, ids, mask, generator=torch.Generator().manual_seed(0), max_length=8, image_tokens=tokens)
    assert torch.equal(cf_img.synthetic_ids, cf_tok.synthetic_ids)
    torch.testing.assert_close(cf_img.original_score, cf_tok.original_score, rtol=0, atol=1e-6)

def test_negative_mask_keeps_marked_pairs_out_of_itm():
    "Every negative drawn (for texts and for images) is a pair negative_mask leaves free; only (i, i+1 mod B) is."
    torch.manual_seed(0)
    m = BLIP(tiny_config(hard_negatives=False)).train()
    x, (ids, mask) = torch.rand(6, 3, 32, 32), token_batch(6)
    allowed = torch.roll(torch.eye(6, dtype=torch.bool), 1, dims=1)
    calls = []
    original = m.itm_logits
    m.itm_logits = lambda images, i, k: calls.append((images, i)) or original(images, i, k)
    with torch.no_grad(): tokens = m.encode_image(x)
    for _ in range(5): m(None, ids, mask, image_tokens=tokens, negative_mask=~allowed)
    for images, texts in calls:
        partner = torch.roll(torch.arange(6), -1)                    # image i's only negative text is text i+1
        assert torch.equal(texts[12:], ids[partner])
        back = torch.roll(torch.arange(6), 1)                        # text j's only negative image is image j-1
        assert torch.equal(images[6:12], tokens[back])

def test_capfilt_with_a_separate_filter_model():
    torch.manual_seed(0)
    captioner, judge = BLIP(tiny_config()).eval(), BLIP(tiny_config()).eval()
    judge.visual.load_state_dict(captioner.visual.state_dict())        # one image encoder, two text stacks
    x, (ids, mask) = torch.rand(4, 3, 32, 32), token_batch(4)
    out = capfilt(captioner, x, ids, mask, filter_model=judge, generator=torch.Generator().manual_seed(0), max_length=8)
    torch.testing.assert_close(out.original_score, itm_scores(judge, judge.encode_image(x), ids, mask))
    mine = capfilt(captioner, x, ids, mask, generator=torch.Generator().manual_seed(0), max_length=8)
    assert torch.equal(out.synthetic_ids, mine.synthetic_ids)          # the captioner writes, whoever filters
    assert not torch.allclose(out.original_score, mine.original_score)

@pytest.mark.parametrize("call, message", [
    (lambda m, x, i, k, t: m(None, i, k), "images, image_tokens: expected exactly one of them, got neither"),
    (lambda m, x, i, k, t: m(x, i, k, image_tokens=t), "got both"),
    (lambda m, x, i, k, t: m(None, i, k, image_tokens=t[:, :, :5]), "image_tokens"),
    (lambda m, x, i, k, t: m(None, i, k, image_tokens=t[:3]), "image_tokens"),
    (lambda m, x, i, k, t: m(x, i, k, negative_mask=torch.zeros(4, 4)), "negative_mask: expected dtype bool"),
    (lambda m, x, i, k, t: m(x, i, k, negative_mask=torch.zeros(3, 4, dtype=torch.bool)), "negative_mask"),
    (lambda m, x, i, k, t: capfilt(m, x, i, k, image_tokens=t), "got both"),
    (lambda m, x, i, k, t: capfilt(m, None, i, k), "got neither"),
    (lambda m, x, i, k, t: capfilt(m, x, i, k, filter_model="filter"), "filter_model: expected a BLIP"),
])
def test_bad_image_inputs_are_named(call, message):
    torch.manual_seed(0)
    m = BLIP(tiny_config())
    x, (ids, mask) = torch.rand(4, 3, 32, 32), token_batch(4)
    with torch.no_grad(): tokens = m.encode_image(x)
    with pytest.raises((ValueError, TypeError), match=re.escape(message)): call(m, x, ids, mask, tokens)
