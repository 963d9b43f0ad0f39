"DepthCLIP (Zhang et al. 2022): the common model tests, the dense-feature identities, the depth read-out, errors."
import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from model_testing import ModelTesterMixin
from vlnotes.evaluate import depth_metrics
from vlnotes.papers.clip import CLIP, CLIPConfig, CLIPResNetConfig, CLIPTextConfig, clip_vision_config
from vlnotes.papers.depthclip import DepthCLIP, dense_image_embeds
from vlnotes.text import world_tokenizer

TOK = world_tokenizer()
WORDS, CENTRES = ["close to the camera", "at a medium distance", "far from the camera"], [1.5, 3.0, 4.5]


def tiny_clip(seed=0):
    torch.manual_seed(seed)
    return CLIP(CLIPConfig(vision=CLIPResNetConfig(image_size=16, depth=8, width=2, heads=1),
                           text=CLIPTextConfig(dim=8, depth=1, heads=2), embed_dim=8)).eval()


class _DepthCLIPTester(ModelTesterMixin):
    image_size = 16
    window = None
    def build_model(self): return DepthCLIP(tiny_clip(torch.initial_seed() % 1000), TOK, WORDS, CENTRES,
                                            temperature=10.0, window=self.window)   # soft: bf16-stable
    def build_inputs(self, batch_size): return {"images": torch.rand(batch_size, 3, 16, 16)}
    def outputs(self, model, **inputs):
        out = model(**inputs)
        return {"depth": out.depth, "probs": out.probs}
    def expected_output_shapes(self, batch_size): return {"depth": (batch_size, 1, 16, 16), "probs": (batch_size, 3, 4, 4)}
    @property
    def params_without_grad(self):
        "The prompts are embedded once (no gradient to the text tower); the value path skips the query and key."
        skip = ("text.", "text_projection", "logit_scale") + (("visual.attnpool.attn.q_proj", "visual.attnpool.attn.k_proj")
                                                             if self.window is None else ())
        return tuple(f"clip.{n}" for n, _ in tiny_clip().named_parameters() if n.startswith(skip))
    def bad_inputs(self): return self.image_bad_inputs("images")


class TestDepthCLIPValuePath(_DepthCLIPTester):
    pass


class TestDepthCLIPWindow(_DepthCLIPTester):
    window = 3


def test_value_path_is_the_pool_on_one_token():
    clip = tiny_clip()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        dense = dense_image_embeds(clip, x)
        pool = clip.visual.attnpool
        tokens = rearrange(clip.visual(x).last_hidden_state, "b c h w -> b (h w) c") + pool.pos_embed[1:]
        for loc in (0, 5, 15):
            t = tokens[:, loc:loc + 1]
            ref = F.normalize(clip.visual_projection(pool.attn(t, context=t)[:, 0]), dim=-1)
            torch.testing.assert_close(dense[:, :, loc // 4, loc % 4], ref, atol=1e-6, rtol=1e-5)


def test_depth_is_the_expected_bin_centre():
    clip = tiny_clip()
    m = DepthCLIP(clip, TOK, WORDS, CENTRES, temperature=1.0)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad(): out = m(x)
    coarse = torch.einsum("bkhw,k->bhw", out.probs, torch.tensor(CENTRES)).unsqueeze(1)
    torch.testing.assert_close(out.depth, F.interpolate(coarse, size=16, mode="bilinear", align_corners=False))
    assert out.depth.min() >= 1.5 - 1e-6 and out.depth.max() <= 4.5 + 1e-6
    with torch.no_grad():
        flipped = DepthCLIP(clip, TOK, WORDS[::-1], CENTRES[::-1], temperature=1.0)(x)
    torch.testing.assert_close(flipped.depth, out.depth)


def test_sharper_temperature_moves_towards_the_argmax_bin():
    clip = tiny_clip()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        soft = DepthCLIP(clip, TOK, WORDS, CENTRES, temperature=10.0)(x)
        hard = DepthCLIP(clip, TOK, WORDS, CENTRES, temperature=1e-4)(x)
    argmax = torch.tensor(CENTRES)[soft.probs.argmax(1)]
    torch.testing.assert_close(torch.einsum("bkhw,k->bhw", hard.probs, torch.tensor(CENTRES)), argmax)


@pytest.mark.parametrize("kwargs,match", [
    (dict(depth_words=[]), "depth_words"), (dict(bin_centres=[1.0, 2.0]), "bin_centres"),
    (dict(bin_centres=[1.0, 0.0, 2.0]), "bin_centres"), (dict(template="no slot"), "template"),
    (dict(template="{} {}"), "template"), (dict(temperature=0.0), "temperature"), (dict(window=2), "window"),
])
def test_bad_arguments(kwargs, match):
    args = dict(depth_words=WORDS, bin_centres=CENTRES) | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        DepthCLIP(tiny_clip(), TOK, **args)(torch.rand(1, 3, 16, 16))


def test_vit_tower_is_refused_with_a_clear_error():
    clip = CLIP(CLIPConfig(vision=clip_vision_config(image_size=16, patch_size=4, dim=8, depth=1, heads=2),
                           text=CLIPTextConfig(dim=8, depth=1, heads=2), embed_dim=8))
    with pytest.raises(ValueError, match="ResNet image tower"):
        dense_image_embeds(clip, torch.rand(1, 3, 16, 16))


def test_metrics_on_a_perfect_and_a_constant_prediction():
    gt = 1 + 5 * torch.rand(2, 1, 8, 8)
    assert depth_metrics(gt, gt)["delta1"] == 1.0 and depth_metrics(gt, gt)["spearman"] == pytest.approx(1.0)
    assert depth_metrics(torch.full_like(gt, 3.0), gt)["spearman"] == 0.0
