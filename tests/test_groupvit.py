"GroupViT: the common model tests, parity with transformers' GroupViTModel, the straight-through Gumbel-softmax, grouping invariants, zero-shot segmentation and its errors."
import pytest
import torch
import torch.nn.functional as F

from model_testing import BadInput, ModelTesterMixin
from vlnotes.evaluate import zero_shot_classifier
from vlnotes.papers.clip import CLIPTextConfig
from vlnotes.papers.groupvit import (GroupViT, GroupViTConfig, GroupViTVisionConfig, GroupViTVisionTransformer,
                                     compose_assignments, gumbel_softmax, hard_softmax, zero_shot_segment)

transformers = pytest.importorskip("transformers")
from transformers import GroupViTModel  # noqa: E402  (top level; see the notebook if it moves to deprecated)

VOCAB, CTX, EOS, PAD = 50, 12, 3, 0


def tiny_config(dim: int = 16, **vision) -> GroupViTConfig:
    v = dict(image_size=16, patch_size=4, dim=dim, heads=2, depths=(1, 1, 1), num_group_tokens=(4, 2, 0),
             num_output_groups=(4, 2, 2))
    return GroupViTConfig(vision=GroupViTVisionConfig(**{**v, **vision}),
                          text=CLIPTextConfig(vocab_size=VOCAB, context_length=CTX, dim=16, depth=1, heads=2,
                                              eos_id=EOS, pad_id=PAD),
                          embed_dim=8, projection_mlp_dim=16)


def token_batch(n: int, L: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids, mask = torch.full((n, L), PAD, dtype=torch.long), torch.zeros(n, L, dtype=torch.long)
    for i in range(n):
        l = 3 + (i * 2) % (L - 2)
        ids[i, :l - 1] = torch.randint(6, VOCAB, (l - 1,), generator=g); ids[i, l - 1] = EOS; mask[i, :l] = 1
    return ids, mask


# ---- the common tests ----------------------------------------------------------------------------------
class TestGroupViT(ModelTesterMixin):
    image_size = 16
    bf16_rel_tol = 0.05
    def build_model(self): return GroupViT(tiny_config())
    def build_inputs(self, batch_size):
        ids, mask = token_batch(batch_size)
        return {"images": torch.rand(batch_size, 3, 16, 16), "input_ids": ids, "attention_mask": mask}
    def outputs(self, model, images, input_ids, attention_mask=None):
        # per-example outputs: the (B, B) logits of a batch are not a stack of 1x1 logits
        out = model(images, input_ids, attention_mask)
        return {"image_embeds": out.image_embeds, "text_embeds": out.text_embeds,
                "pair_logits": out.logits_per_image.diagonal()}
    def model_config(self, model): return model.config.to_dict()
    def make_variant_model(self): return GroupViT(tiny_config(dim=32))
    def expected_output_shapes(self, batch_size):
        return {"image_embeds": (batch_size, 8), "text_embeds": (batch_size, 8), "pair_logits": (batch_size,)}
    def bad_inputs(self):
        ids, mask = token_batch(2)
        cases = self.image_bad_inputs("images", extra={"input_ids": ids, "attention_mask": mask})
        cases = [c for c in cases if c.description not in ("rank 3 (missing batch dim)", "rank 5")]
        img = torch.rand(2, 3, 16, 16)
        long_ids = torch.full((2, CTX + 1), 7); long_ids[:, -1] = EOS
        return cases + [
            BadInput("wrong image size", {"images": torch.rand(2, 3, 24, 24), "input_ids": ids}, ValueError,
                     ("images", "16x16", "24x24")),
            BadInput("over-long text", {"images": img, "input_ids": long_ids}, ValueError, ("input_ids", str(CTX))),
            BadInput("batch mismatch", {"images": torch.rand(3, 3, 16, 16), "input_ids": ids}, ValueError,
                     ("images", "input_ids")),
        ]


class TestGroupViTVisionTower(ModelTesterMixin):
    "The image tower alone, in eval mode (noise-free arg-max assignment)."
    image_size = 16
    def build_model(self): return GroupViTVisionTransformer(tiny_config().vision)
    def build_inputs(self, batch_size): return {"images": torch.rand(batch_size, 3, 16, 16)}
    def outputs(self, model, images):
        o = model(images)
        return {"pooled": o.pooled, "last_hidden_state": o.last_hidden_state, "soft": o.soft_assignments[-1]}
    def expected_output_shapes(self, batch_size):
        return {"pooled": (batch_size, 16), "last_hidden_state": (batch_size, 2, 16), "soft": (batch_size, 2, 4)}
    def bad_inputs(self): return self.image_bad_inputs("images")


# ---- parity ---------------------------------------------------------------------------------------------
def hf_model(depths=(1, 1, 1), tokens=(4, 2, 0), outputs=(4, 2, 2), dim=16, image=16, patch=4, act="gelu", eos=49):
    text = dict(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=CTX, eos_token_id=eos, pad_token_id=0, bos_token_id=48)
    vision = dict(hidden_size=dim, intermediate_size=2 * dim, num_hidden_layers=sum(depths), depths=list(depths),
                  num_group_tokens=list(tokens), num_output_groups=list(outputs), num_attention_heads=2,
                  image_size=image, patch_size=patch, hidden_act=act)
    hf = GroupViTModel(transformers.GroupViTConfig(text_config=text, vision_config=vision, projection_dim=8,
                                                   projection_intermediate_dim=12)).eval()
    with torch.no_grad():
        for m in hf.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(); m.running_var.uniform_(0.5, 2); m.weight.normal_(); m.bias.normal_()
            if getattr(m, "group_token", None) is not None: m.group_token.normal_()
        hf.vision_model.embeddings.position_embeddings.normal_(std=0.1)
    return hf


@pytest.mark.parametrize("kw", [dict(), dict(depths=(1, 1), tokens=(4, 2), outputs=(4, 2)),
                                dict(depths=(2, 1, 1), tokens=(6, 3, 0), outputs=(6, 2, 2), act="quick_gelu"),
                                dict(image=12, patch=3, tokens=(4, 3, 0), outputs=(4, 3, 3))])
def test_parity_with_transformers(kw):
    torch.manual_seed(0)
    hf = hf_model(**kw)
    ours = GroupViT.from_hf(hf).eval()
    size = hf.config.vision_config.image_size
    images, (ids, mask) = torch.randn(3, 3, size, size), token_batch(3)
    ids[ids == EOS] = 49; ids[:, :1] = torch.randint(6, 40, (3, 1))
    with torch.no_grad():
        ref = hf(input_ids=ids, pixel_values=images, attention_mask=mask, output_segmentation=True)
        got = ours(images, ids, mask, output_segmentation=True)
    for k in ("image_embeds", "text_embeds", "logits_per_image", "logits_per_text", "segmentation_logits"):
        assert (got[k] - getattr(ref, k)).abs().max() <= 1e-4, k


def test_from_hf_rejects_other_models():
    with pytest.raises(TypeError, match="GroupViTModel"): GroupViT.from_hf(torch.nn.Linear(2, 2))


def test_train_mode_matches_transformers_up_to_noise():
    "In training both sample a Gumbel one-hot: every patch is in exactly one group, and the BatchNorm uses the batch."
    torch.manual_seed(0)
    ours = GroupViT.from_hf(hf_model()).train()
    assert ours.training
    o = ours.visual(torch.rand(4, 3, 16, 16))
    for a in o.hard_assignments: assert torch.equal(a.detach().sum(1), torch.ones(a.shape[0], a.shape[2]))


# ---- the straight-through Gumbel-softmax ---------------------------------------------------------------
def test_gumbel_straight_through_forward_is_one_hot_and_backward_flows():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 7, requires_grad=True)
    y = gumbel_softmax(logits, dim=1)
    assert set(y.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(y.detach().sum(1), torch.ones(3, 7))
    w = torch.randn(3, 5, 7)
    (y * w).sum().backward()
    # the gradient is that of the relaxed softmax with the same noise: non-zero and finite
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_gumbel_gradient_equals_relaxed_softmax_gradient():
    logits = torch.randn(2, 4, 3, requires_grad=True)
    noise = -torch.empty(2, 4, 3).exponential_().log()
    w = torch.randn(2, 4, 3)
    g1, = torch.autograd.grad((gumbel_softmax(logits, 1, noise=noise) * w).sum(), logits)
    g2, = torch.autograd.grad((gumbel_softmax(logits, 1, noise=noise, hard=False) * w).sum(), logits)
    assert torch.allclose(g1, g2)


def test_hard_softmax_is_argmax_one_hot():
    logits = torch.randn(4, 6)
    h = hard_softmax(logits, -1)
    assert torch.equal(h, F.one_hot(logits.argmax(-1), 6).float())


def test_gumbel_bad_inputs():
    with pytest.raises(ValueError, match="tau"): gumbel_softmax(torch.randn(2, 3), tau=0.0)
    with pytest.raises(ValueError, match="noise"): gumbel_softmax(torch.randn(2, 3), noise=torch.zeros(3, 2))


# ---- grouping ---------------------------------------------------------------------------------------------
def test_compose_assignments_columns_sum_to_one():
    a1, a2 = torch.softmax(torch.randn(2, 4, 16), 1), torch.softmax(torch.randn(2, 2, 4), 1)
    m = compose_assignments((a1, a2), (4, 4), (4, 4))
    assert torch.allclose(m.flatten(2), a2 @ a1, atol=1e-6)
    assert torch.allclose(m.sum(1), torch.ones(2, 4, 4), atol=1e-5)


def test_config_errors():
    with pytest.raises(ValueError, match="one length"): GroupViTVisionConfig(depths=(1, 1), num_group_tokens=(4, 2, 0))
    with pytest.raises(ValueError, match="equal"):
        GroupViTVisionConfig(num_group_tokens=(4, 2, 0), num_output_groups=(3, 2, 2))
    with pytest.raises(ValueError, match="grouping stages first"):
        GroupViTVisionConfig(depths=(1, 1, 1), num_group_tokens=(4, 0, 2), num_output_groups=(4, 4, 2))
    with pytest.raises(ValueError, match="dim"): GroupViTVisionConfig(dim=30, heads=4)
    with pytest.raises(TypeError, match="GroupViTVisionConfig"): GroupViTConfig(vision={"dim": 3})


# ---- zero-shot segmentation ---------------------------------------------------------------------------
class _Tok:
    "A tiny word tokenizer for the classifier: one id per word, EOS at the end."
    vocab_size, eos_id, pad_id = VOCAB, EOS, PAD
    def encode(self, texts, max_length=CTX, padding="longest"):
        rows = [[6 + (hash(w) % (VOCAB - 6)) for w in t.split()][:max_length - 1] + [EOS] for t in texts]
        L = max(map(len, rows)) if padding == "longest" else max_length
        ids = torch.tensor([r + [PAD] * (L - len(r)) for r in rows])
        return {"input_ids": ids, "attention_mask": (torch.arange(L) < torch.tensor([len(r) for r in rows])[:, None]).long()}


@pytest.fixture(scope="module")
def model_and_classifier():
    torch.manual_seed(0)
    m = GroupViT(tiny_config()).eval()
    return m, zero_shot_classifier(m, _Tok(), ["circle", "square", "star"], ["a {}."])


def test_zero_shot_segment_shapes_and_background(model_and_classifier):
    m, clf = model_and_classifier
    r = zero_shot_segment(m, torch.rand(3, 3, 16, 16), clf)
    assert r["labels"].shape == r["segments"].shape == (3, 16, 16)
    assert r["labels"].min() >= 0 and r["labels"].max() <= 3
    # a pixel's class is its group's class: labels are constant on every segment
    for b in range(3):
        for s in r["segments"][b].unique():
            assert r["labels"][b][r["segments"][b] == s].unique().numel() == 1
    # bg_thresh = 0: nothing is background; bg_thresh = 1: only pixels of the best group stay foreground
    r0 = zero_shot_segment(m, torch.rand(3, 3, 16, 16), clf, bg_thresh=0.0)
    assert (r0["labels"] > 0).all()
    nobg = zero_shot_segment(m, torch.rand(3, 3, 16, 16), clf, background=False)
    assert nobg["labels"].max() < 3


def test_zero_shot_segment_restores_training_mode(model_and_classifier):
    m, clf = model_and_classifier
    m.train(); zero_shot_segment(m, torch.rand(2, 3, 16, 16), clf); assert m.training; m.eval()


def test_zero_shot_segment_errors(model_and_classifier):
    m, clf = model_and_classifier
    img = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="unknown classes"): clf.subset(["circle", "hexagonn"])
    with pytest.raises(ValueError, match="class_names"): zero_shot_classifier(m, _Tok(), [], ["a {}."])
    with pytest.raises(ValueError, match="templates"): zero_shot_classifier(m, _Tok(), ["circle"], ["a shape"])
    with pytest.raises(TypeError, match="ZeroShotClassifier"): zero_shot_segment(m, img, torch.randn(3, 8))
    with pytest.raises(ValueError, match="bg_thresh"): zero_shot_segment(m, img, clf, bg_thresh=1.5)
    with pytest.raises(ValueError, match="top_k"): zero_shot_segment(m, img, clf, top_k=0)
    with pytest.raises(ValueError, match="images"): zero_shot_segment(m, torch.rand(2, 3, 20, 20), clf)
    wide = zero_shot_classifier(GroupViT(tiny_config()).eval(), _Tok(), ["circle"], ["a {}."])
    wide.weight = torch.randn(1, 5)
    with pytest.raises(ValueError, match="embed_dim"): zero_shot_segment(m, img, wide)
