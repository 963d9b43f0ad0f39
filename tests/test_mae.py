"MAE (He et al. 2021) and FLIP (Li et al. 2022): the common model tests, masking invariants, transformers parity."
import copy

import pytest
import torch
from torch import nn

from model_testing import BadInput, ModelTesterMixin
from vlnotes.layers import random_masking
from vlnotes.papers.clip import CLIP, CLIPConfig, CLIPResNetConfig, CLIPTextConfig, clip_vision_config
from vlnotes.papers.mae import (MAE, MAEConfig, PatchDropViT, embed_visible, flip, patchify, sincos_pos_embed,
                                unpatchify)
from vlnotes.papers.vit import ViT, ViTConfig

transformers = pytest.importorskip("transformers")
from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding  # noqa: E402

SMALL = dict(encoder=ViTConfig(image_size=16, patch_size=4, dim=16, depth=2, heads=2), decoder_dim=8,
             decoder_depth=1, decoder_heads=2, mask_ratio=0.75)


# ---- the common tests -------------------------------------------------------------------------------
class _MAETester(ModelTesterMixin):
    image_size = 16
    config = SMALL
    batch_atol = 2e-5
    params_without_grad = ("encoder.pos_embed", "decoder_pos_embed")   # fixed sin-cos tables
    def build_model(self): return MAE(MAEConfig(**self.config))
    def make_variant_model(self): return MAE(MAEConfig(**{**self.config, "decoder_dim": 12}))
    def build_inputs(self, batch_size):                 # the noise fixes the mask, so a batch = its examples
        return {"images": torch.rand(batch_size, 3, 16, 16), "noise": torch.rand(batch_size, 16)}
    def outputs(self, model, **inputs):
        out = model(**inputs)
        return {"logits": out.logits, "mask": out.mask, "last_hidden_state": out.last_hidden_state}
    def expected_output_shapes(self, batch_size):
        k = 1 + (16 if self.config.get("encoder_mask_tokens") else int(16 * (1 - self.config["mask_ratio"])))
        return {"logits": (batch_size, 16, 48), "mask": (batch_size, 16), "last_hidden_state": (batch_size, k, 16)}
    def bad_inputs(self):
        noise = torch.rand(2, 16)
        cases = self.image_bad_inputs("images", extra={"noise": noise})
        # image_bad_inputs builds batches of 2; cases whose batch is not 2 cannot reach the noise check first
        cases = [c for c in cases if c.description not in ("rank 3 (missing batch dim)", "rank 5", "empty batch",
                                                           "not a tensor")]
        img = torch.rand(2, 3, 16, 16)
        cases += [BadInput("noise of the wrong length", {"images": img, "noise": torch.rand(2, 15)}, ValueError,
                           ("noise",)),
                  BadInput("NaN noise", {"images": img, "noise": torch.full((2, 16), float("nan"))}, ValueError,
                           ("noise", "finite")),
                  BadInput("integer noise", {"images": img, "noise": torch.zeros(2, 16, dtype=torch.long)}, ValueError,
                           ("noise",))]
        return cases


class TestMAE(_MAETester):
    pass


class TestMAERawPixels(_MAETester):
    config = {**SMALL, "mask_ratio": 0.5}


class TestMAEEncoderMaskTokens(_MAETester):
    "The ablation of C2: the encoder runs on all tokens, masked ones as a learned [M]."
    config = {**SMALL, "encoder_mask_tokens": True}


class TestFLIPTower(ModelTesterMixin):
    "FLIP's image tower in eval mode (all patches): the plain ViT; in training it drops patches."
    image_size = 16
    def build_model(self): return PatchDropViT(ViT(clip_vision_config(image_size=16, patch_size=4, dim=16, depth=1,
                                                                      heads=2)), 0.5)
    def build_inputs(self, batch_size): return {"images": torch.rand(batch_size, 3, 16, 16)}
    def expected_output_shapes(self, batch_size):
        return {"pooled": (batch_size, 16), "last_hidden_state": (batch_size, 17, 16)}
    def bad_inputs(self): return self.image_bad_inputs("images")


# ---- masking ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,ratio", [(16, 0.75), (49, 0.75), (64, 0.9), (10, 0.5), (7, 0.0)])
def test_random_masking_keeps_int_n_times_1_minus_r(n, ratio):
    x = torch.randn(4, n, 3)
    kept, mask, ids_restore = random_masking(x, ratio)
    k = int(n * (1 - ratio))
    assert kept.shape == (4, k, 3) and mask.shape == (4, n)
    assert torch.equal(mask.sum(1), torch.full((4,), float(n - k)))
    assert torch.equal(ids_restore.sort(1).values, torch.arange(n).expand(4, -1))      # a permutation per example
    # the kept tokens are the unmasked ones, in the order of the noise
    for b in range(4):
        assert torch.equal(kept[b].sort(0).values, x[b][mask[b] == 0].sort(0).values)


def test_random_masking_is_per_sample_and_uniform():
    torch.manual_seed(0)
    masks = torch.stack([random_masking(torch.zeros(2, 8, 1), 0.5)[1] for _ in range(3000)])
    assert (masks[:, 0] != masks[:, 1]).any()                             # examples get different masks
    assert (masks.mean(0) - 0.5).abs().max() < 0.04                      # each position dropped half of the time


def test_random_masking_matches_transformers():
    cfg = transformers.ViTMAEConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, image_size=16,
                                    patch_size=4, mask_ratio=0.6)
    emb = transformers.models.vit_mae.modeling_vit_mae.ViTMAEEmbeddings(cfg)
    x, noise = torch.randn(3, 16, 8), torch.rand(3, 16)
    for ours, ref in zip(random_masking(x, 0.6, noise), emb.random_masking(x, noise)):
        assert torch.equal(ours, ref.to(ours.dtype))


def test_random_masking_compiles():
    fn = torch.compile(lambda x, n: random_masking(x, 0.75, n), fullgraph=True, backend="eager")
    x, noise = torch.randn(2, 16, 4), torch.rand(2, 16)
    for a, b in zip(fn(x, noise), random_masking(x, 0.75, noise)): assert torch.equal(a, b)


@pytest.mark.parametrize("bad,match", [((torch.randn(2, 8, 3), 1.0), "mask_ratio"),
                                       ((torch.randn(2, 8, 3), -0.1), "mask_ratio"),
                                       ((torch.randn(2, 8, 3), 0.9), "keeps at least one"),
                                       ((torch.randn(8, 3), 0.5), "x"),
                                       ((torch.randn(0, 8, 3), 0.5), "x"),
                                       ((torch.zeros(2, 8, 3, dtype=torch.long), 0.5), "x")])
def test_random_masking_bad_inputs(bad, match):
    with pytest.raises(ValueError, match=match):
        random_masking(*bad)


# ---- patches and positions ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape,P", [((2, 3, 8, 12), 4), ((1, 1, 28, 28), 4), ((2, 3, 16, 16), 16)])
def test_patchify_matches_transformers_and_inverts(shape, P):
    x = torch.randn(*shape)
    cfg = transformers.ViTMAEConfig(image_size=shape[-1], patch_size=P, num_channels=shape[1], hidden_size=8,
                                    num_hidden_layers=1, num_attention_heads=2, decoder_hidden_size=8,
                                    decoder_num_hidden_layers=1, decoder_num_attention_heads=2)
    ref = transformers.ViTMAEForPreTraining(cfg)
    if shape[-1] == shape[-2]: assert torch.equal(patchify(x, P), ref.patchify(x))
    assert torch.equal(unpatchify(patchify(x, P), P, (shape[2] // P, shape[3] // P), shape[1]), x)


@pytest.mark.parametrize("grid,dim", [(2, 4), (4, 16), (7, 32), (14, 64)])
def test_sincos_matches_transformers_table(grid, dim):
    t = build_2d_sinusoidal_position_embedding(grid, grid, dim, cls_token=True)
    ref = torch.cat([t[..., dim // 2:], t[..., :dim // 2]], dim=-1)       # transformers' initialize_weights layout
    assert torch.allclose(sincos_pos_embed((grid, grid), dim), ref, atol=1e-7)


# ---- parity with transformers ------------------------------------------------------------------------
def hf_mae(**kw):
    base = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, image_size=32,
                patch_size=8, decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                decoder_intermediate_size=40, attn_implementation="eager")
    model = transformers.ViTMAEForPreTraining(transformers.ViTMAEConfig(**{**base, **kw})).eval()
    c, g = model.config, model.config.image_size // model.config.patch_size
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "position" not in n and "pos_embed" not in n: p.add_(torch.randn_like(p) * 0.2)
        model.vit.embeddings.position_embeddings.copy_(sincos_pos_embed((g, g), c.hidden_size)[None])
        model.decoder.decoder_pos_embed.copy_(sincos_pos_embed((g, g), c.decoder_hidden_size)[None])
    return model


@pytest.mark.parametrize("kw", [dict(), dict(norm_pix_loss=True), dict(patch_size=4, mask_ratio=0.5, qkv_bias=False),
                                dict(mask_ratio=0.25, decoder_num_hidden_layers=2, hidden_act="gelu_new"),
                                dict(image_size=24, patch_size=4, num_channels=1, mask_ratio=0.9, norm_pix_loss=True)])
def test_parity_with_transformers(kw):
    torch.manual_seed(0)
    hf = hf_mae(**kw)
    c = hf.config
    n = (c.image_size // c.patch_size) ** 2
    x, noise = torch.randn(3, c.num_channels, c.image_size, c.image_size), torch.rand(3, n)
    ours = MAE.from_hf(hf).eval()
    with torch.no_grad():
        ref, out = hf(x, noise=noise), ours(x, noise)
        enc = hf.vit(x, noise=noise).last_hidden_state
    assert torch.equal(out.mask, ref.mask) and torch.equal(out.ids_restore, ref.ids_restore)
    for a, b in ((out.loss, ref.loss), (out.logits, ref.logits), (out.last_hidden_state, enc)):
        assert (a - b).abs().max() <= 1e-4


def test_parity_in_train_mode_with_gradients():
    "Training mode (no dropout configured): same loss and the same gradient on every weight."
    torch.manual_seed(0)
    hf = hf_mae(norm_pix_loss=True).train()
    ours = MAE.from_hf(hf)
    assert ours.training
    x, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    hf(x, noise=noise).loss.backward(); ours(x, noise).loss.backward()
    assert ours.encoder.encoder.blocks[0].attn.q_proj.weight.grad is not None
    torch.testing.assert_close(ours.encoder.encoder.blocks[0].attn.q_proj.weight.grad,
                               hf.vit.layers[0].attention.q_proj.weight.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours.mask_token.grad, hf.decoder.mask_token.grad, atol=1e-5, rtol=1e-4)


def test_parity_at_other_resolutions():
    torch.manual_seed(0)
    hf = hf_mae()
    ours = MAE.from_hf(hf).eval()
    for size in ((48, 48), (24, 40)):
        n = (size[0] // 8) * (size[1] // 8)
        x, noise = torch.randn(2, 3, *size), torch.rand(2, n)
        with torch.no_grad():
            ref, out = hf(x, noise=noise, interpolate_pos_encoding=True), ours(x, noise, interpolate_pos_encoding=True)
        assert (out.logits - ref.logits).abs().max() <= 1e-4 and (out.loss - ref.loss).abs() <= 1e-5
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        ours(torch.randn(1, 3, 48, 48))


def test_from_hf_errors():
    with pytest.raises(TypeError, match="expected a transformers ViTMAEForPreTraining, got Linear"):
        MAE.from_hf(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="hidden_act"):
        MAE.from_hf(transformers.ViTMAEForPreTraining(transformers.ViTMAEConfig(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, decoder_hidden_size=8,
            decoder_num_hidden_layers=1, decoder_num_attention_heads=2, hidden_act="silu")))


# ---- the model's invariants ------------------------------------------------------------------------
def test_masked_pixels_never_reach_the_encoder_or_the_loss_of_visible_patches():
    torch.manual_seed(0)
    mae = MAE(MAEConfig(**SMALL)).eval()
    x, noise = torch.rand(2, 3, 16, 16), torch.rand(2, 16)
    with torch.no_grad():
        out = mae(x, noise)
        m = unpatchify(out.mask[..., None].expand(-1, -1, 48), 4, (4, 4)).bool()
        other = mae(torch.where(m, torch.rand_like(x), x), noise)
    assert torch.allclose(other.last_hidden_state, out.last_hidden_state, atol=1e-6)
    # the loss ignores predictions at visible positions
    target = mae.target(x)
    per_patch = ((out.logits - target) ** 2).mean(-1)
    assert torch.allclose(out.loss, per_patch[out.mask.bool()].mean(), atol=1e-6)


def test_encoder_after_pretraining_is_a_plain_vit():
    mae = MAE(MAEConfig(**SMALL))
    vit = copy.deepcopy(mae.encoder).eval()
    assert isinstance(vit, ViT) and vit(torch.rand(2, 3, 16, 16)).last_hidden_state.shape == (2, 17, 16)
    assert not vit.pos_embed.requires_grad


def test_config_roundtrip_and_errors():
    cfg = MAEConfig(**SMALL)
    assert MAEConfig.from_dict(cfg.to_dict()) == cfg
    for bad, match in ((dict(mask_ratio=1.0), "mask_ratio"), (dict(decoder_dim=10, decoder_heads=2), "multiple of 4"),
                       (dict(decoder_depth=0), "decoder_depth"),
                       (dict(encoder=ViTConfig(final_norm="pooled")), "final_norm")):
        with pytest.raises(ValueError, match=match):
            MAEConfig(**{**SMALL, **bad})
    with pytest.raises(TypeError, match="MAEConfig.norm_pix_loss: expected True or False"):
        MAEConfig(**{**SMALL, "norm_pix_loss": 1})
    with pytest.raises(TypeError, match="MAEConfig.encoder: expected a ViTConfig"):
        MAEConfig(**{**SMALL, "encoder": {"dim": 8}})


# ---- FLIP --------------------------------------------------------------------------------------------
def test_flip_tower_drops_patches_only_in_training():
    torch.manual_seed(0)
    tower = PatchDropViT(ViT(clip_vision_config(image_size=16, patch_size=4, dim=16, depth=1, heads=2)), 0.5)
    x = torch.rand(3, 3, 16, 16)
    assert tower.train()(x).last_hidden_state.shape == (3, 9, 16)
    assert tower.eval()(x).last_hidden_state.shape == (3, 17, 16)
    noise = torch.rand(3, 16)
    a = tower.train()(x, noise).pooled
    tokens, _, _ = embed_visible(tower.vit, x, 0.5, noise)
    z = tower.vit.encoder(tower.vit.pre_norm(tokens))
    assert torch.allclose(a, tower.vit.norm(z[:, 0]), atol=1e-6)


def test_flip_is_clip_with_the_same_weights():
    vcfg = clip_vision_config(image_size=16, patch_size=4, dim=16, depth=1, heads=2)
    cfg = CLIPConfig(vcfg, CLIPTextConfig(vocab_size=40, context_length=8, dim=16, depth=1, heads=2), embed_dim=8)
    torch.manual_seed(0)
    model = flip(cfg, 0.5).eval()
    plain = CLIP(cfg).eval()
    plain.load_state_dict({k.replace("visual.vit.", "visual."): v for k, v in model.state_dict().items()})
    x, ids = torch.rand(2, 3, 16, 16), torch.tensor([[2, 9, 3], [2, 10, 3]])
    with torch.no_grad():
        assert torch.equal(model(x, ids).logits_per_image, plain(x, ids).logits_per_image)   # eval: all patches
    with pytest.raises(TypeError, match="config.vision: expected a ViTConfig"):
        flip(CLIPConfig(vision=CLIPResNetConfig(), text=cfg.text))
