"""ClipCap (Mokady et al. 2021): the common model tests for both mappers, the ClipCap forward pass against
transformers' GPT-2 on `inputs_embeds`, the frozen language model, the mappers' structure, decoding, input
validation; and the caption metrics it is scored with (BLEU-4, CIDEr-D, distinct-n)."""
import copy
import math

import pytest
import torch

from model_testing import BadInput, ModelTesterMixin
from vlnotes.captioning import bleu, caption_loss, caption_words, cider_d, distinct_n
from vlnotes.convert import max_abs_diff
from vlnotes.gpt import GPT, GPTConfig
from vlnotes.papers.clipcap import ClipCap, ClipCapConfig, MLPMapper, TransformerMapper

V, D, E, K = 30, 16, 12, 3
GCFG = GPTConfig(vocab_size=V, context_length=14, dim=D, depth=2, heads=2)


def token_batch(batch_size: int, length: int = 6):
    ids = torch.randint(4, V, (batch_size, length)); ids[:, 0] = 2
    mask = torch.ones(batch_size, length, dtype=torch.long)
    if batch_size > 1: mask[1, length - 2:] = 0
    return ids * mask, mask


class _ClipCapTester(ModelTesterMixin):
    mapper, freeze = "mlp", False
    def config(self, **kw):
        return ClipCapConfig(**{"gpt": GCFG, "embed_dim": E, "prefix_length": K, "mapper": self.mapper,
                                "mapper_depth": 1, "mapper_heads": 2, "freeze_gpt": self.freeze, **kw})
    def build_model(self): return ClipCap(self.config())
    def make_variant_model(self): return ClipCap(self.config(prefix_length=K + 1))
    def build_inputs(self, batch_size):
        ids, mask = token_batch(batch_size)
        return {"image_embeds": torch.randn(batch_size, E), "input_ids": ids, "attention_mask": mask}
    def outputs(self, model, **inputs):
        out = model(**inputs)
        return {"logits": out.logits, "prefix": out.prefix}
    def expected_output_shapes(self, batch_size): return {"logits": (batch_size, 6, V), "prefix": (batch_size, K, D)}
    def bad_inputs(self):
        ids, mask = token_batch(2)
        emb = torch.randn(2, E)
        return [
            BadInput("embedding of the wrong width", {"image_embeds": torch.randn(2, E + 1), "input_ids": ids},
                     ValueError, ("image_embeds", str(E + 1))),
            BadInput("embedding batch differs", {"image_embeds": torch.randn(3, E), "input_ids": ids}, ValueError,
                     ("image_embeds", "input_ids")),
            BadInput("image tokens instead of an embedding", {"image_embeds": torch.randn(2, 4, E), "input_ids": ids},
                     ValueError, ("image_embeds",)),
            BadInput("NaN embedding", {"image_embeds": torch.full((2, E), float("nan")), "input_ids": ids},
                     ValueError, ("image_embeds", "finite")),
            BadInput("integer embedding", {"image_embeds": torch.zeros(2, E, dtype=torch.long), "input_ids": ids},
                     ValueError, ("image_embeds", "float")),
            BadInput("id out of vocabulary", {"image_embeds": emb, "input_ids": ids + V}, ValueError,
                     ("input_ids", str(V))),
            BadInput("caption too long for prefix + table", {"image_embeds": emb, "input_ids": torch.full((2, 12), 5)},
                     ValueError, ("prefix_embeds", "context_length=14")),
            BadInput("left padding", {"image_embeds": emb, "input_ids": ids, "attention_mask": mask.flip(1)},
                     ValueError, ("attention_mask", "right padding")),
        ]


class TestClipCapMLP(_ClipCapTester):
    pass


class TestClipCapTransformerFrozen(_ClipCapTester):
    mapper, freeze = "transformer", True


def test_forward_equals_transformers_gpt2_on_inputs_embeds():
    "The reference code's forward: GPT-2 on cat(prefix, wte(tokens)), prefix labels ignored."
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=V, n_positions=14, n_embd=D, n_layer=2,
                                                              n_head=2, bos_token_id=2, eos_token_id=3)).eval()
    with torch.no_grad():
        for p in hf.parameters(): p.add_(0.1 * torch.randn_like(p))
    gpt = GPT.from_hf(hf)
    for mapper in ("mlp", "transformer"):
        model = ClipCap(ClipCapConfig(gpt=gpt.config, embed_dim=E, prefix_length=K, mapper=mapper, mapper_depth=1,
                                      mapper_heads=2), gpt=copy.deepcopy(gpt)).eval()
        ids, mask = token_batch(3)
        emb = torch.randn(3, E)
        with torch.no_grad():
            ours = model(emb, ids, mask, return_loss=True)
            labels = torch.cat([torch.full((3, K), -100), ids.masked_fill(mask == 0, -100)], 1)
            labels[:, K] = -100
            ref = hf(inputs_embeds=torch.cat([ours.prefix, hf.transformer.wte(ids)], 1),
                     attention_mask=torch.cat([torch.ones(3, K, dtype=torch.long), mask], 1), labels=labels)
        assert max_abs_diff(ours.logits[mask.bool()], ref.logits[:, K:][mask.bool()]) < 1e-4
        assert abs(ours.loss.item() - ref.loss.item()) < 1e-4


def test_frozen_language_model_does_not_move_and_counts():
    torch.manual_seed(0)
    model = ClipCap(ClipCapConfig(gpt=GCFG, embed_dim=E, prefix_length=K, mapper="transformer", mapper_depth=1,
                                  mapper_heads=2, freeze_gpt=True))
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids, mask = token_batch(3)
    for _ in range(2):
        opt.zero_grad(); model(torch.randn(3, E), ids, mask, return_loss=True).loss.backward(); opt.step()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("gpt."))
    assert not torch.equal(before["mapper.prefix_const"], after["mapper.prefix_const"])
    assert model.num_trained == sum(p.numel() for p in model.mapper.parameters())
    tuned = ClipCap(ClipCapConfig(gpt=GCFG, embed_dim=E, prefix_length=K))
    assert tuned.num_trained == sum(p.numel() for p in tuned.parameters())


def test_mapper_shapes_and_structure():
    mlp = MLPMapper(E, 4, D)
    assert [m.weight.shape for m in mlp.net if hasattr(m, "weight")] == [(2 * D, E), (4 * D, 2 * D)]   # kD/2, kD
    assert mlp(torch.randn(5, E)).shape == (5, 4, D)
    tr = TransformerMapper(E, 4, D, clip_length=6, depth=1, heads=2).eval()
    assert tr.linear.weight.shape == (6 * D, E) and tr.prefix_const.shape == (4, D)
    v = torch.randn(2, E)
    with torch.no_grad():
        out = tr(v)
        full = tr.transformer(torch.cat([tr.linear(v).view(2, 6, D), tr.prefix_const.expand(2, -1, -1)], 1))
    assert out.shape == (2, 4, D) and torch.allclose(out, full[:, 6:])     # the constants' positions


def test_loss_ignores_the_prefix_positions():
    torch.manual_seed(0)
    model = ClipCap(ClipCapConfig(gpt=GCFG, embed_dim=E, prefix_length=K)).eval()
    ids, mask = token_batch(3)
    with torch.no_grad():
        out = model(torch.randn(3, E), ids, mask, return_loss=True)
    assert out.logits.shape == (3, 6, V)
    assert torch.allclose(out.loss, caption_loss(out.logits, ids, mask))


def test_generate_greedy_and_beam():
    torch.manual_seed(0)
    model = ClipCap(ClipCapConfig(gpt=GCFG, embed_dim=E, prefix_length=K)).eval()
    emb = torch.randn(2, E)
    for method, opts in (("greedy", {}), ("beam", {"num_beams": 2})):
        out = model.generate(emb, method=method, **opts)
        assert out["input_ids"].shape[0] == 2 and out["input_ids"].shape[1] <= 14 - K
        assert (out["input_ids"][:, 0] == 2).all()
    with pytest.raises(ValueError, match="max_length"): model.generate(emb, max_length=14)


def test_config_errors():
    with pytest.raises(ValueError, match="ClipCapConfig.mapper"): ClipCapConfig(mapper="lstm")
    with pytest.raises(ValueError, match="ClipCapConfig.prefix_length"): ClipCapConfig(prefix_length=0)
    with pytest.raises(TypeError, match="gpt: expected a vlnotes.gpt.GPT"):
        ClipCap(ClipCapConfig(), gpt=torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="gpt: expected a GPT with config.gpt"):
        ClipCap(ClipCapConfig(gpt=GCFG, embed_dim=E), gpt=GPT(GPTConfig()))


# ---- caption metrics ----------------------------------------------------------------------------------------------
def test_bleu_hand_examples():
    assert bleu(["The red circle is small."], [["the red circle is small here", "a small red circle"]]) == 1.0
    assert math.isclose(bleu(["the red circle is small"], [["the red circle is small here"]]), math.exp(1 - 6 / 5))
    c, r = ["a red circle", "a blue square left"], [["a red circle"], ["a green square left"]]
    assert bleu(c, r) == 0.0
    assert math.isclose(bleu(c, r, max_n=3), (6 / 7 * 3 / 5 * 1 / 3) ** (1 / 3))


def test_bleu_matches_nltk_corpus_bleu():
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    cands = ["a small red circle on the left", "a blue star near the camera", "two shapes a red circle and a star",
             "a green square at the top of the image"]
    refs = [["a red circle on the left", "a small red circle"], ["a blue star close to the camera", "a blue star"],
            ["two shapes: a red circle and a blue star", "a red circle and a star"],
            ["a green square at the top", "an image showing a green square"]]
    ref = nltk_bleu.corpus_bleu([[caption_words(x) for x in rs] for rs in refs], [caption_words(c) for c in cands])
    assert math.isclose(bleu(cands, refs), ref, rel_tol=1e-12)


def test_cider_d_hand_example_and_properties():
    corpus, per = cider_d(["red circle", "blue square"], [["red circle"], ["red square"]])
    assert math.isclose(per[0], 5.0) and math.isclose(per[1], 10 / math.sqrt(2) / 4)
    assert math.isclose(corpus, (per[0] + per[1]) / 2)
    refs = [["a red circle", "the red circle"], ["a blue star", "a small blue star"], ["a green square"]]
    right = cider_d(["a red circle", "a blue star", "a green square"], refs)[0]
    wrong = cider_d(["a blue star", "a green square", "a red circle"], refs)[0]
    assert right > 3 * wrong


def test_cider_d_matches_pycocoevalcap():
    cider = pytest.importorskip("pycocoevalcap.cider.cider")
    refs = {0: ["a red circle on the left", "a small red circle"], 1: ["a blue star close to the camera", "a blue star"],
            2: ["a green square at the top", "an image showing a green square"]}
    cands = {0: ["a red circle"], 1: ["a blue star near the camera"], 2: ["a red square at the top"]}
    score, per = cider.Cider().compute_score(refs, cands)
    ours, ours_per = cider_d([cands[i][0] for i in range(3)], [refs[i] for i in range(3)])
    assert math.isclose(ours, score, rel_tol=1e-9) and all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(ours_per, per))


def test_distinct_n_and_metric_errors():
    assert distinct_n(["a red circle", "a red star"], 1) == 4 / 6
    assert distinct_n(["a red circle", "a red circle"], 2) == 0.5
    assert distinct_n([""], 1) == 0.0
    with pytest.raises(ValueError, match="references: expected one list per candidate"): bleu(["a"], [["a"], ["b"]])
    with pytest.raises(ValueError, match=r"references\[0\]"): cider_d(["a"], [[]])
    with pytest.raises(TypeError, match="candidates"): bleu("a red circle", [["a"]])
    with pytest.raises(ValueError, match="n"): distinct_n(["a"], 0)
