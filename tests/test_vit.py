"ViT (vlnotes.papers.vit): the common model tests, parity with transformers (also at new resolutions), and bad inputs."
import math
import re

import pytest
import torch
from torch import nn
from transformers import ViTConfig as HFViTConfig, ViTForImageClassification, ViTModel

from model_testing import BadInput, ModelTesterMixin
from vlnotes.convert import load_strict, rename_state_dict
from vlnotes.core import num_params
from vlnotes.papers import vit
from vlnotes.papers.vit import ViT, ViTConfig, ViTOutput, hf_parity


# ---- the common model tests -------------------------------------------------------------------------
class _ViTTester(ModelTesterMixin):
    "ViTs read `images` (B, C, H, W) and return a `ViTOutput` mapping (last_hidden_state, pooled, [logits])."
    image_size = 32
    config = dict(dim=32, depth=2, heads=4, num_classes=5)

    def build_model(self): return ViT(ViTConfig(image_size=self.image_size, in_channels=self.channels, **self.config))
    def build_inputs(self, batch_size):
        h, w = (self.image_size, self.image_size) if isinstance(self.image_size, int) else self.image_size
        return {"images": torch.rand(batch_size, self.channels, h, w)}
    def make_variant_model(self):
        return ViT(ViTConfig(image_size=self.image_size, in_channels=self.channels, **{**self.config, "depth": 3}))


class TestViT(_ViTTester):
    def expected_output_shapes(self, batch_size):
        return {"logits": (batch_size, 5), "pooled": (batch_size, 32), "last_hidden_state": (batch_size, 65, 32)}

    def bad_inputs(self):
        c = self.channels
        return self.image_bad_inputs("images") + [
            BadInput("48x48 without interpolate_pos_encoding", {"images": torch.rand(2, c, 48, 48)},
                     ValueError, ("images", "expected", "32x32", "48x48", "interpolate_pos_encoding")),
            BadInput("30x30 is not a multiple of the patch size", {"images": torch.rand(2, c, 30, 30),
                     "interpolate_pos_encoding": True}, ValueError, ("images", "30", "4")),
            BadInput("float64 images into a float32 model", {"images": torch.rand(2, c, 32, 32, dtype=torch.float64)},
                     ValueError, ("images", "expected", "float32", "float64")),
        ]


class TestViTOutputsEverything(_ViTTester):
    "Hidden states and attention weights (explicit-softmax path) are outputs too; mean pooling, pre-logits, mlp_dim."
    config = dict(dim=24, depth=2, heads=3, mlp_dim=40, num_classes=4, pool="mean", pre_logits_dim=16)
    def outputs(self, model, images, **kw):
        return model(images, output_hidden_states=True, output_attentions=True, **kw)
    def expected_output_shapes(self, batch_size):
        return {"output.hidden_states.2": (batch_size, 65, 24), "output.attentions.1": (batch_size, 3, 65, 65),
                "output.pre_logits": (batch_size, 16), "output.logits": (batch_size, 4)}
    def bad_inputs(self): return self.image_bad_inputs("images")[:3]


class TestViTClipStyleNonSquare(_ViTTester):
    "CLIP's vision-tower options, one channel, a non-square image and patch grid, no head (features only)."
    image_size, channels = (32, 48), 1
    config = dict(dim=32, depth=2, heads=2, patch_size=8, pre_norm=True, final_norm="pooled",
                  qkv_bias=False, patch_bias=False, act="quick_gelu", eps=1e-5)
    def expected_output_shapes(self, batch_size):
        return {"pooled": (batch_size, 32), "last_hidden_state": (batch_size, 1 + 4 * 6, 32)}
    def bad_inputs(self): return self.image_bad_inputs("images")[:4]


class TestViTInterpolated(_ViTTester):
    "A 32x32 model run at 48x64 with interpolated position embeddings (fine-tuning at a higher resolution)."
    image_size = 32
    def build_inputs(self, batch_size): return {"images": torch.rand(batch_size, 3, 48, 64)}
    def outputs(self, model, images): return model(images, interpolate_pos_encoding=True)
    def expected_output_shapes(self, batch_size):
        return {"last_hidden_state": (batch_size, 1 + 12 * 16, 32), "logits": (batch_size, 5)}
    def bad_inputs(self):
        return [BadInput("50x50 is not a multiple of the patch size", {"images": torch.rand(2, 3, 50, 50)},
                         ValueError, ("images", "50", "4")),
                BadInput("2 channels", {"images": torch.rand(2, 2, 48, 48)}, ValueError,
                         ("images", "expected", "3", "(2, 2, 48, 48)"))]
    test_load_corrupted_checkpoint_raises = None   # file handling does not depend on the input size: TestViT covers it
    test_checkpoint_is_safetensors = None


# ---- parity with transformers -----------------------------------------------------------------------
PARITY_CASES = {
    "model-32-p4-pooler": (ViTModel, (32, 32), dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                     intermediate_size=64, image_size=32, patch_size=4)),
    "cls-32-p8-noqkvbias-gelunew": (ViTForImageClassification, (32, 32), dict(
        hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=60, image_size=32, patch_size=8,
        qkv_bias=False, hidden_act="gelu_new", num_labels=5)),
    "cls-48-p16-1ch": (ViTForImageClassification, (48, 48), dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=48,
        patch_size=16, num_channels=1, num_labels=3)),
    "cls-32x48-p8-odd-mlp": (ViTForImageClassification, (32, 48), dict(
        hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=77, image_size=(32, 48),
        patch_size=8, num_labels=4)),
    "model-24-p2-nopooler-pooler-size": (ViTModel, (24, 24), dict(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=24, patch_size=2,
        pooler_output_size=12)),
}


def hf_model(kind, seed=0, add_pooling_layer=True, attn="eager", **kw):
    "A transformers ViT with seeded random weights, perturbed so every block matters."
    torch.manual_seed(seed)
    extra = {"add_pooling_layer": add_pooling_layer} if kind is ViTModel else {}
    model = kind(HFViTConfig(**kw, attn_implementation=attn), **extra).eval()
    with torch.no_grad():
        for p in model.parameters(): p.add_(torch.randn_like(p) * 0.2)
    return model


@pytest.mark.parametrize("case", list(PARITY_CASES))
def test_from_hf_matches_transformers(case):
    kind, size, kw = PARITY_CASES[case]
    hf = hf_model(kind, **kw)
    ours = ViT.from_hf(hf).eval()
    assert num_params(ours) == num_params(hf)
    assert ours.config.mlp_dim == kw["intermediate_size"] and ours.config.heads == kw["num_attention_heads"]
    x = torch.randn(2, hf.config.num_channels, *size)
    d = hf_parity(hf, x)
    assert set(d) >= {"hidden_states", "attentions"} and max(d.values()) <= 1e-4, d
    assert ("logits" in d) == (kind is ViTForImageClassification)
    # and the differences are not vacuous: another seed's model is far off
    other = ViT.from_hf(hf_model(kind, seed=1, **kw)).eval()
    with torch.no_grad():
        far = (other(x).last_hidden_state - ours(x).last_hidden_state).abs().max().item()
    assert far > 1e-2


# transformers' interpolation reshapes the old grid as a square, so only square-trained models are compared
@pytest.mark.parametrize("case", ["model-32-p4-pooler", "cls-32-p8-noqkvbias-gelunew", "cls-48-p16-1ch"])
@pytest.mark.parametrize("scale", [(2, 2), (0.5, 0.5), (1.5, 0.75)])
def test_interpolate_pos_encoding_matches_transformers(case, scale):
    kind, (h, w), kw = PARITY_CASES[case]
    p = kw["patch_size"]
    new = (max(p, round(h * scale[0] / p) * p), max(p, round(w * scale[1] / p) * p))
    assert new != (h, w)
    hf = hf_model(kind, **kw)
    d = hf_parity(hf, torch.randn(2, hf.config.num_channels, *new), interpolate_pos_encoding=True)
    assert max(d.values()) <= 1e-4, (new, d)


def test_position_embeddings_match_transformers_resampling():
    "The resampled table itself equals transformers' `interpolate_pos_encoding`, not only the outputs."
    kind, _, kw = PARITY_CASES["model-32-p4-pooler"]
    hf = hf_model(kind, **kw)
    ours = ViT.from_hf(hf)
    for size in ((48, 48), (16, 40), (64, 32)):
        with torch.no_grad():
            ref = hf.embeddings.interpolate_pos_encoding(torch.zeros(1, 1 + (size[0] // 4) * (size[1] // 4), 32), *size)
            got = ours.position_embeddings(*size)
        assert got.shape == ref.shape and (got - ref).abs().max().item() <= 1e-5, size


def test_hf_parity_fails_on_a_real_difference_and_needs_eager_attention():
    kind, size, kw = PARITY_CASES["model-32-p4-pooler"]
    hf = hf_model(kind, **kw).train()
    ours = ViT.from_hf(hf)
    with torch.no_grad(): ours.encoder.blocks[1].mlp.fc2.bias.add_(1e-3)
    with pytest.raises(AssertionError, match=r"ViT hidden_states: max \|ours - reference\| exceeds atol=0.0001"):
        hf_parity(hf, torch.randn(2, 3, *size), ours=ours)
    assert hf.training and ours.training                  # compared in eval mode, modes restored
    sdpa = hf_model(kind, attn="sdpa", **kw)
    with pytest.raises(ValueError, match="attn_implementation='eager'"):
        hf_parity(sdpa, torch.randn(2, 3, *size))


def test_from_hf_train_mode_no_pooler_and_subclass():
    kind, _, kw = PARITY_CASES["model-32-p4-pooler"]
    hf = hf_model(kind, add_pooling_layer=False, **kw).train()
    ours = ViT.from_hf(hf)
    assert ours.training and ours.pre_logits is None and ours.head is None

    class MyViT(ViT): pass
    assert type(MyViT.from_hf(hf)) is MyViT          # a classmethod: builds the class it is called on


def test_transformers4_key_names_load():
    "The renaming rules also take transformers 4 names (`encoder.layer.i.attention.attention.query` ...)."
    kind, size, kw = PARITY_CASES["cls-32-p8-noqkvbias-gelunew"]
    hf = hf_model(kind, **kw)
    v4 = [(r"layers\.(\d+)\.attention\.([qkv])_proj\.", lambda m: f"encoder.layer.{m[1]}.attention.attention."
           + {"q": "query", "k": "key", "v": "value"}[m[2]] + "."),
          (r"layers\.(\d+)\.attention\.o_proj\.", r"encoder.layer.\1.attention.output.dense."),
          (r"layers\.(\d+)\.mlp\.fc1\.", r"encoder.layer.\1.intermediate.dense."),
          (r"layers\.(\d+)\.mlp\.fc2\.", r"encoder.layer.\1.output.dense."),
          (r"layers\.(\d+)\.", r"encoder.layer.\1.")]
    old = {}
    for k, v in hf.state_dict().items():
        for pat, rep in v4:
            if re.search(pat, k): k = re.sub(pat, rep, k, count=1); break
        old[k] = v
    assert all(k.startswith(("vit.", "classifier.")) for k in old)
    assert any(".attention.attention.query." in k for k in old)
    ours = ViT(vit.vit_config_from_hf(hf.config, num_classes=5))
    load_strict(ours, rename_state_dict(old, vit.HF_VIT_RULES, "transformers 4 checkpoint"))
    x = torch.randn(2, 3, *size)
    with torch.no_grad(): assert (ours.eval()(x).logits - hf(x).logits).abs().max().item() <= 1e-4


# ---- errors ------------------------------------------------------------------------------------------
def test_from_hf_errors():
    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64)
    with pytest.raises(ValueError, match="hidden_act: expected one of .*got 'silu'"):
        ViT.from_hf(hf_model(ViTModel, **small, hidden_act="silu"))
    with pytest.raises(ValueError, match="mask_token"):
        ViT.from_hf(ViTModel(HFViTConfig(**small), use_mask_token=True))
    with pytest.raises(TypeError, match="expected a transformers ViTModel .*got Linear"):
        ViT.from_hf(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="pooler_act: expected 'tanh'"):
        vit.vit_config_from_hf(HFViTConfig(**small, pooler_act="relu"), pooler=True)


def test_rules_refuse_unknown_keys_and_strict_loading_names_the_shapes():
    with pytest.raises(ValueError, match=r"got 1 unmatched: \['decoder.weight'\]"):
        rename_state_dict({"embeddings.cls_token": torch.zeros(1), "decoder.weight": torch.zeros(1)}, vit.HF_VIT_RULES)
    model = ViT(ViTConfig(dim=16, depth=1, heads=2))
    bad = dict(model.state_dict())
    bad["pos_embed"] = bad["pos_embed"][:, :10]
    with pytest.raises(ValueError, match=r"pos_embed: expected \(1, 65, 16\), got \(1, 10, 16\)"):
        load_strict(model, bad, "a checkpoint")


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(image_size=30), ValueError, r"ViTConfig.image_size: expected a multiple of patch_size 4x4, got 30x30"),
    (dict(image_size=0), ValueError, r"ViTConfig.image_size: expected a positive int .*got 0"),
    (dict(patch_size=(4, 4, 4)), ValueError, r"ViTConfig.patch_size: expected a positive int or a pair .*\(4, 4, 4\)"),
    (dict(dim=30, heads=4), ValueError, r"ViTConfig.dim: expected a multiple of heads=4, got dim=30"),
    (dict(depth=0), ValueError, r"ViTConfig.depth: expected an int >= 1 and <= 1024, got 0"),
    (dict(heads=2.0), TypeError, r"ViTConfig.heads: expected an int >= 1 and <= 65536, got float 2.0"),
    (dict(mlp_dim=0), ValueError, r"ViTConfig.mlp_dim: expected an int >= 1 and <= 262144, got 0"),
    (dict(num_classes=-1), ValueError, r"ViTConfig.num_classes: expected an int >= 0 and <= 16777216, got -1"),
    (dict(pool="max"), ValueError, r"ViTConfig.pool: expected one of \['cls', 'mean'\], got 'max'"),
    (dict(final_norm="none"), ValueError, r"ViTConfig.final_norm.*'none'"),
    (dict(act="swish"), ValueError, r"ViTConfig.act.*'swish'"),
    (dict(dropout=1.0), ValueError, r"ViTConfig.dropout: expected a finite number >= 0 and < 1, got 1.0"),
    (dict(eps=0.0), ValueError, r"ViTConfig.eps: expected a finite number > 0"),
    (dict(pre_norm="yes"), TypeError, r"ViTConfig.pre_norm: expected True or False, got 'yes'"),
])
def test_config_errors(kwargs, error, match):
    with pytest.raises(error, match=match): ViTConfig(**kwargs)


def test_config_roundtrip_mlp_dim_and_unknown_keys():
    c = ViTConfig(image_size=(32, 48), patch_size=8, dim=16, heads=2)
    assert c.mlp_dim == 64 and ViTConfig.from_dict(c.to_dict()) == c and c.to_dict()["mlp_dim"] == 64
    assert ViTConfig(dim=16, heads=2, mlp_dim=24).mlp_dim == 24
    with pytest.raises(ValueError, match=r"unknown keys \['hidden_size'\]"): ViTConfig.from_dict({"hidden_size": 8})
    with pytest.raises(ValueError, match=r"unknown keys \['mlp_ratio', 'num_heads'\]"):
        ViTConfig.from_dict({"num_heads": 2, "mlp_ratio": 4.0})
    with pytest.raises(TypeError, match="expected a ViTConfig, got dict"): ViT({"dim": 8})


def test_vit_num_params_formula():
    for c in (ViTConfig(), ViTConfig(dim=24, heads=2, mlp_dim=40, qkv_bias=False, patch_bias=False, pre_norm=True,
                                     pre_logits_dim=12, num_classes=3, image_size=(32, 48), patch_size=8)):
        assert vit.vit_num_params(c) == num_params(ViT(c))


def test_resized_equals_interpolating_on_the_fly():
    torch.manual_seed(0)
    model = ViT(ViTConfig(dim=16, depth=1, heads=2, num_classes=3)).eval()
    x = torch.rand(2, 3, 48, 40)
    big = model.resized((48, 40)).eval()
    with torch.no_grad():
        assert torch.allclose(big(x).logits, model(x, interpolate_pos_encoding=True).logits, atol=1e-6)
    assert big.pos_embed.shape == (1, 1 + 12 * 10, 16) and big.config.image_size == (48, 40)


def test_output_is_a_model_output_and_attentions_come_from_the_encoder():
    torch.manual_seed(0)
    model = ViT(ViTConfig(dim=16, depth=2, heads=2, num_classes=3)).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out, fast = model(x, output_attentions=True), model(x)
        enc = model.encoder(model.embed(x), output_attentions=True)
    assert isinstance(out, ViTOutput) and list(fast) == ["last_hidden_state", "pooled", "logits"]
    assert out.hidden_states is None and len(out.attentions) == 2
    assert all(torch.equal(a, b) for a, b in zip(out.attentions, enc.attentions))
    assert torch.allclose(out.logits, fast.logits, atol=1e-5)


# ---- analysis tools ------------------------------------------------------------------------------------
def test_mean_attention_distance_hand_cases():
    B, H, T = 1, 2, 5
    own = torch.zeros(B, H, T, T); own[:, :, 0, 0] = 1; own[:, :, 1:, 1:] = torch.eye(4)
    uniform = torch.full((B, H, T, T), 1 / T)
    mad = vit.mean_attention_distance([own, uniform], (2, 2), 4)
    assert torch.allclose(mad[0], torch.zeros(2))
    assert torch.allclose(mad[1], torch.tensor((4 + 4 + 4 * math.sqrt(2)) / 4))
    with pytest.raises(ValueError, match=r"attentions\[0\]"):
        vit.mean_attention_distance([torch.rand(1, 2, 6, 6)], (2, 2), 4)


def test_pos_embed_similarity_structure():
    model = ViT(ViTConfig(image_size=24, patch_size=4, dim=8, heads=2))
    gh, gw = model.grid_size
    ii, jj = torch.meshgrid(torch.arange(gh).float(), torch.arange(gw).float(), indexing="ij")
    smooth = torch.stack([torch.cos(ii / 3), torch.sin(ii / 3), torch.cos(jj / 3), torch.sin(jj / 3)] * 2, -1)
    with torch.no_grad(): model.pos_embed[:, 1:] = smooth.reshape(1, -1, 8)
    sim = vit.pos_embed_similarity(model)
    assert sim.shape == (6, 6, 6, 6) and torch.allclose(torch.diagonal(sim.reshape(36, 36)), torch.ones(36), atol=1e-6)
    nd = vit.neighbour_vs_distant(sim)
    assert nd["difference"] > 0.1
