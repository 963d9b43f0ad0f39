"CLIP: the common model tests, towers and configs, parity with transformers' CLIPModel, mask invariance, the temperature clamp, bad input."
import json
import math

import pytest
import torch
import torch.nn.functional as F
import transformers

from model_testing import ModelTesterMixin, BadInput
from vlnotes.core import ModelOutput
from vlnotes.evaluate import encode_texts, zero_shot_classifier, zero_shot_predict
from vlnotes.losses import clip_loss
from vlnotes.papers import clip
from vlnotes.papers.vit import ViT

VOCAB, CTX, EOS, PAD = 50, 12, 3, 0


def tiny_config(**text) -> "clip.CLIPConfig":
    vision = clip.clip_vision_config(image_size=16, patch_size=8, dim=16, depth=1, heads=2)
    return clip.CLIPConfig(vision, clip.CLIPTextConfig(**{**dict(vocab_size=VOCAB, context_length=CTX, dim=16, depth=1,
                                                                   heads=2, eos_id=EOS, pad_id=PAD), **text}), embed_dim=8)


def token_batch(n: int, lengths=None, L: int = 8, seed: int = 0):
    "Random ids 6..VOCAB-1, each text ended by EOS, right-padded with PAD; and the attention mask."
    g = torch.Generator().manual_seed(seed)
    lengths = lengths or [3 + (i * 2) % (L - 2) for i in range(n)]
    ids, mask = torch.full((n, L), PAD, dtype=torch.long), torch.zeros(n, L, dtype=torch.long)
    for i, l in enumerate(lengths):
        ids[i, :l - 1] = torch.randint(6, VOCAB, (l - 1,), generator=g); ids[i, l - 1] = EOS; mask[i, :l] = 1
    return ids, mask


# ---- common model tests -------------------------------------------------------------------------------
class TestCLIP(ModelTesterMixin):
    image_size = 16
    # the bf16 check compares normalised embeddings: a relative error of a few percent is bf16's resolution here
    bf16_rel_tol = 0.05

    def build_model(self): return clip.CLIP(tiny_config())
    def build_inputs(self, batch_size):
        ids, mask = token_batch(batch_size)
        return {"images": torch.rand(batch_size, 3, 16, 16), "input_ids": ids, "attention_mask": mask}
    def outputs(self, model, images, input_ids, attention_mask=None):
        # per-example outputs (the (B, B) logits of a batch are not a stack of 1x1 logits): embeddings and matched-pair logits
        out = model(images, input_ids, attention_mask)
        return {"image_embeds": out.image_embeds, "text_embeds": out.text_embeds,
                "pair_logits": out.logits_per_image.diagonal()}
    def model_config(self, model): return model.config.to_dict()
    def make_variant_model(self): return clip.CLIP(tiny_config(dim=32, heads=2))
    def expected_output_shapes(self, batch_size):
        return {"image_embeds": (batch_size, 8), "text_embeds": (batch_size, 8), "pair_logits": (batch_size,)}

    def bad_inputs(self):
        ids, mask = token_batch(2)
        cases = self.image_bad_inputs("images", extra={"input_ids": ids, "attention_mask": mask})
        cases = [c for c in cases if c.description not in ("rank 3 (missing batch dim)", "rank 5")]   # no batch to compare
        img = torch.rand(2, 3, 16, 16)
        long_ids = torch.full((2, CTX + 1), 7); long_ids[:, -1] = EOS
        cases += [
            BadInput("wrong image size", {"images": torch.rand(2, 3, 24, 24), "input_ids": ids}, ValueError, ("images", "16x16", "24x24")),
            BadInput("over-long text", {"images": img, "input_ids": long_ids}, ValueError, ("input_ids", str(CTX), str(CTX + 1))),
            BadInput("empty texts (length 0)", {"images": img, "input_ids": torch.zeros(2, 0, dtype=torch.long)}, ValueError,
                     ("input_ids", "expected", "0")),
            BadInput("a text with no real token", {"images": img, "input_ids": ids, "attention_mask": torch.tensor([[1] * 8, [0] * 8])},
                     ValueError, ("input_ids", "no real token", "[1]")),
            BadInput("mismatched batch sizes", {"images": torch.rand(3, 3, 16, 16), "input_ids": ids}, ValueError,
                     ("images", "input_ids", "3", "2")),
            BadInput("text without end token", {"images": img, "input_ids": torch.full((2, 4), 7)}, ValueError,
                     ("input_ids", f"eos_id={EOS}")),
            BadInput("token id out of vocabulary", {"images": img, "input_ids": torch.tensor([[2, VOCAB + 5, EOS]] * 2)}, ValueError,
                     ("input_ids", str(VOCAB), str(VOCAB + 5))),
            BadInput("float token ids", {"images": img, "input_ids": torch.rand(2, 4)}, ValueError, ("input_ids", "float")),
            BadInput("mask of another shape", {"images": img, "input_ids": ids, "attention_mask": mask[:, :5]}, ValueError,
                     ("attention_mask", "8", "5")),
            BadInput("left padding", {"images": img, "input_ids": ids, "attention_mask": mask.flip(1)}, ValueError,
                     ("attention_mask", "right padding")),
        ]
        return cases


# ---- the ResNet image tower (attention pooling) ---------------------------------------------------------
def tiny_resnet_config(**text) -> "clip.CLIPConfig":
    return clip.CLIPConfig(clip.CLIPResNetConfig(image_size=16, depth=8, width=4, heads=2), tiny_config(**text).text, embed_dim=8)


class TestCLIPResNet(TestCLIP):
    "The common tests and the same bad input, with the ResNet + attention-pooling image tower."
    def build_model(self): return clip.CLIP(tiny_resnet_config())
    def make_variant_model(self): return clip.CLIP(clip.CLIPConfig(clip.CLIPResNetConfig(image_size=16, depth=14, width=4, heads=2),
                                                                   tiny_config().text, embed_dim=8))


# ---- configs and towers -------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [tiny_config, tiny_resnet_config], ids=["vit", "resnet"])
def test_config_json_round_trip_keeps_the_tower_type(make):
    cfg = make()
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["vision"]["type"] == type(cfg.vision).__name__ and d["text"]["type"] == "CLIPTextConfig"
    back = clip.CLIPConfig.from_dict(d)
    assert back == cfg and type(back.vision) is type(cfg.vision)
    assert type(clip.CLIP(back).visual) is clip.TOWERS[type(cfg.vision)]


def test_towers_are_built_by_config_class_or_given():
    cfg = tiny_resnet_config()
    model = clip.CLIP(cfg)
    assert isinstance(model.visual, clip.CLIPResNet) and isinstance(model.text, clip.TextTransformer)
    assert isinstance(clip.CLIP(tiny_config()).visual, ViT) and model.image_size == 16 and model.context_length == CTX
    assert not any("fc" in n for n, _ in model.visual.named_parameters())   # no unused classifier in the tower
    text = clip.TextTransformer(cfg.text)
    shared = clip.CLIP(cfg, text=text)
    assert shared.text is text
    with pytest.raises(TypeError, match="build_tower.*TrainConfig"):
        from vlnotes.train import TrainConfig
        clip.build_tower(TrainConfig(max_steps=1))
    with pytest.raises(TypeError, match="visual.*str"):
        clip.CLIP(cfg, visual="resnet")
    with pytest.raises(TypeError, match="CLIPConfig.vision"):
        clip.CLIPConfig(vision=cfg.text)
    with pytest.raises(ValueError, match="vision_tower"):   # the old string switch is gone
        clip.CLIPConfig.from_dict({**cfg.to_dict(), "vision_tower": "resnet"})


def test_tower_outputs_share_names():
    model = clip.CLIP(tiny_resnet_config()).eval()
    ids, mask = token_batch(2)
    v, t = model.visual(torch.rand(2, 3, 16, 16)), model.text(ids, mask)
    assert isinstance(v, ModelOutput) and isinstance(t, ModelOutput)
    assert v.last_hidden_state.shape == (2, 16, 4, 4) and v.pooled.shape == (2, 16)     # CNN: the feature map
    assert t.last_hidden_state.shape == (2, 8, 16) and t.pooled.shape == (2, 16)
    out = model(torch.rand(2, 3, 16, 16), ids, mask, return_loss=True)
    assert isinstance(out, ModelOutput) and torch.equal(out["loss"], out.loss)
    assert torch.allclose(out.loss, clip_loss(out.logits_per_image))


@pytest.mark.parametrize("kw,error,words", [
    (dict(depth=10), ValueError, ("depth", "6n+2", "10")),
    (dict(image_size=18), ValueError, ("image_size", "multiple of 4", "18")),
    (dict(width=4, heads=3), ValueError, ("heads", "16", "3")),
    (dict(width=0), ValueError, ("CLIPResNetConfig.width", ">= 1", "0")),
    (dict(heads=2.0), TypeError, ("CLIPResNetConfig.heads", "int", "float")),
])
def test_resnet_tower_bad_config(kw, error, words):
    with pytest.raises(error) as e:
        clip.CLIPResNetConfig(**{**dict(image_size=16, depth=8, width=4, heads=2), **kw})
    for w in words: assert w in str(e.value), (w, str(e.value))


@pytest.mark.parametrize("kw,words", [
    (dict(dim=60, heads=8), ("dim", "divisible", "heads")),
    (dict(pool="mean"), ("CLIPTextConfig.pool", "mean")),
    (dict(eos_id=600), ("CLIPTextConfig.eos_id", "600")),
    (dict(depth=0), ("CLIPTextConfig.depth", "0")),
])
def test_text_config_bad_values(kw, words):
    with pytest.raises(ValueError) as e: clip.CLIPTextConfig(**kw)
    for w in words: assert w in str(e.value), (w, str(e.value))


# ---- parity with transformers -------------------------------------------------------------------------
def hf_model(vision: dict, text: dict, projection_dim: int = 24):
    v = {**dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4), **vision}
    t = {**dict(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=16, bos_token_id=97, eos_token_id=98, pad_token_id=1), **text}
    return transformers.CLIPModel(transformers.CLIPConfig(text_config=t, vision_config=v, projection_dim=projection_dim)).eval()


@pytest.mark.parametrize("vision,text,projection_dim", [
    ({}, {}, 24),
    (dict(image_size=16, patch_size=4, hidden_act="gelu"), dict(hidden_act="gelu", hidden_size=48, intermediate_size=100), 16),
    (dict(image_size=48, patch_size=16, num_hidden_layers=3, num_attention_heads=2), dict(num_hidden_layers=1, num_attention_heads=2), 32),
    ({}, dict(eos_token_id=2, bos_token_id=0), 24),                       # legacy config: pool at the largest id
], ids=["vit8-32px", "vit4-16px-gelu-widetext", "vit16-48px-deep", "legacy-eos"])
def test_parity_with_transformers(vision, text, projection_dim):
    torch.manual_seed(0)
    ref = hf_model(vision, text, projection_dim)
    size, eos = ref.config.vision_config.image_size, ref.config.text_config.eos_token_id
    g = torch.Generator().manual_seed(1)
    ids, mask = torch.ones(4, 16, dtype=torch.long), torch.zeros(4, 16, dtype=torch.long)
    for i, l in enumerate((3, 9, 16, 5)):
        ids[i, :l - 1] = torch.randint(3, 96, (l - 1,), generator=g); ids[i, l - 1] = 98 if eos == 2 else eos; mask[i, :l] = 1
    diffs = clip.hf_parity(ref, torch.rand(4, 3, size, size, generator=g), ids, mask)
    assert set(diffs) == {"logits_per_image", "logits_per_text", "image_embeds", "text_embeds", "image_features", "text_features"}
    for k, d in diffs.items():
        assert d <= 1e-4, f"{k}: max |ours - transformers| = {d:.3g}"


def test_from_hf_config_and_rejects_other_models():
    ours = clip.CLIP.from_hf(hf_model({}, dict(intermediate_size=37)))
    assert ours.config.text.mlp_dim == 37 and ours.config.vision.mlp_dim == 37 and ours.config.vision.heads == 4
    with pytest.raises(TypeError, match="CLIPModel"):
        clip.CLIP.from_hf(torch.nn.Linear(2, 2))


# ---- text padding does not change a caption's embedding -----------------------------------------------
def test_padding_does_not_change_text_embedding():
    torch.manual_seed(0)
    model = clip.CLIP(tiny_config()).eval()
    ids, mask = token_batch(1, lengths=[5], L=5)
    alone = model.encode_text(ids, mask)
    for pad_to in (6, 9, CTX):
        padded = torch.cat([ids, torch.full((1, pad_to - 5), PAD)], 1)
        pmask = torch.cat([mask, torch.zeros(1, pad_to - 5, dtype=torch.long)], 1)
        assert torch.allclose(model.encode_text(padded, pmask), alone, atol=1e-6)
        junk = padded.clone(); junk[0, 5:] = 17          # whatever sits in the padding is ignored
        assert torch.allclose(model.encode_text(junk, pmask), alone, atol=1e-6)
    # in a batch with a longer text
    other, omask = token_batch(1, lengths=[10], L=10, seed=3)
    batch = torch.cat([torch.cat([ids, torch.full((1, 5), PAD)], 1), other]); bmask = torch.cat([torch.cat([mask, torch.zeros(1, 5, dtype=torch.long)], 1), omask])
    assert torch.allclose(model.encode_text(batch, bmask)[:1], alone, atol=1e-6)


# ---- the temperature ----------------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [1, 10, 200])
def test_logit_scale_never_exceeds_100(steps):
    "A perfectly ranked batch always pushes t up; with a huge lr and the clamp after every step, s stays <= 100."
    torch.manual_seed(0)
    model = clip.CLIP(tiny_config())
    opt = torch.optim.Adam([model.logit_scale], lr=10.0)   # Adam: steps of ~lr whatever the gradient size
    feats = F.normalize(torch.randn(6, 8), dim=-1)
    for _ in range(steps):
        loss = clip_loss(model.logit_scale.exp() * feats @ feats.t())
        opt.zero_grad(); loss.backward(); opt.step()
        model.clamp_logit_scale_()
        assert model.logit_scale.exp().item() <= 100.0 * (1 + 1e-6) and model.scale().item() <= 100.0
        assert model.logit_scale.item() >= 0.0


def test_clamp_callback_in_trainer_and_forward_cap():
    from vlnotes.train import Trainer, TrainConfig, ClampParameter
    torch.manual_seed(0)
    model = clip.CLIP(tiny_config())
    ids, mask = token_batch(16)
    data = [{"images": torch.rand(3, 16, 16), "input_ids": ids[i], "attention_mask": mask[i]} for i in range(16)]
    collate = lambda rows: {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
    loss_fn = lambda m, b: m(b["images"], b["input_ids"], b["attention_mask"], return_loss=True).loss
    opt = torch.optim.SGD([{"params": [model.logit_scale], "lr": 1e4},
                           {"params": [p for n, p in model.named_parameters() if n != "logit_scale"], "lr": 0.0}])
    cfg = TrainConfig(max_steps=5, lr=1e4, weight_decay=0.0, batch_size=8, log_every=1, progress=False)
    clamp = ClampParameter("logit_scale", 0.0, math.log(model.config.max_logit_scale))
    Trainer(model, loss_fn, data, cfg, optimizer=opt, collate_fn=collate, callbacks=[clamp]).fit()
    assert model.logit_scale.item() <= math.log(100) + 1e-6
    with torch.no_grad(): model.logit_scale.fill_(50.0)   # even a parameter set above the bound by hand
    out = model(torch.rand(2, 3, 16, 16), ids[:2], mask[:2])
    assert out.logits_per_image.abs().max().item() <= 100.0 + 1e-4


# ---- the distributed worker needs a process group -----------------------------------------------------
def test_ddp_check_needs_a_process_group():
    with pytest.raises(RuntimeError, match="launch"):
        clip.ddp_check()


# ---- zero-shot with a CLIP: vlnotes.evaluate on this model --------------------------------------------
@pytest.fixture(scope="module")
def zs_setup():
    from vlnotes.text import world_tokenizer
    tok = world_tokenizer()
    torch.manual_seed(0)
    model = clip.CLIP(clip.CLIPConfig(clip.clip_vision_config(image_size=16, patch_size=8, dim=16, depth=1, heads=2),
                                      clip.CLIPTextConfig(vocab_size=tok.vocab_size, context_length=20, dim=16, depth=1, heads=2,
                                                          eos_id=tok.eos_id, pad_id=tok.pad_id), embed_dim=8)).eval()
    return model, tok


def test_zero_shot_ensembling_is_renormalised_mean(zs_setup):
    model, tok = zs_setup
    temps = ["a {}.", "a photo of a {}."]
    head = zero_shot_classifier(model, tok, ["circle", "square"], temps)
    e = encode_texts(model, tok, ["a circle.", "a photo of a circle."])
    assert torch.allclose(head.weight[0], F.normalize(e.mean(0), dim=0), atol=1e-6)
    assert torch.allclose(head.weight.norm(dim=1), torch.ones(2), atol=1e-6)
    assert head.scale == pytest.approx(model.scale().item())


@pytest.mark.parametrize("case", ["unknown class", "empty templates", "template without placeholder", "empty class list",
                                  "prompt too long", "string instead of list", "duplicate class"])
def test_zero_shot_bad_input(zs_setup, case):
    model, tok = zs_setup
    head = zero_shot_classifier(model, tok, ["circle", "square"], ["a {}."])
    imgs = torch.rand(2, 3, 16, 16)
    call, err, words = {
        "unknown class": (lambda: zero_shot_predict(model, imgs, head, class_names=["circle", "blob"]), ValueError, ("blob", "circle")),
        "empty templates": (lambda: zero_shot_classifier(model, tok, ["circle"], []), ValueError, ("templates", "empty")),
        "template without placeholder": (lambda: zero_shot_classifier(model, tok, ["circle"], ["a photo"]), ValueError, ("{}", "a photo")),
        "empty class list": (lambda: zero_shot_classifier(model, tok, [], ["a {}."]), ValueError, ("class_names", "empty")),
        "prompt too long": (lambda: zero_shot_classifier(model, tok, ["circle " * 30], ["a {}."]), ValueError, ("max_length=20",)),
        "string instead of list": (lambda: zero_shot_classifier(model, tok, "circle", ["a {}."]), TypeError, ("class_names", "str")),
        "duplicate class": (lambda: zero_shot_classifier(model, tok, ["circle", "circle"], ["a {}."]), ValueError, ("distinct entries",)),
    }[case]
    with pytest.raises(err) as e: call()
    assert all(w.lower() in str(e.value).lower() for w in words), str(e.value)


def test_interpolate_pos_encoding_through_clip():
    "A ViT-tower CLIP runs at another resolution when asked (the error message's advice works on CLIP itself)."
    torch.manual_seed(0)
    model = clip.CLIP(tiny_config()).eval()
    ids, mask = token_batch(2)
    big = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        model(big, ids, mask)
    with torch.no_grad():
        out = model(big, ids, mask, interpolate_pos_encoding=True)
        pooled = model.visual(big, interpolate_pos_encoding=True).pooled
        expected = F.normalize(model.visual_projection(pooled), dim=-1)
        assert torch.equal(model.encode_image(big, normalize=True, interpolate_pos_encoding=True), expected)
    torch.testing.assert_close(out.image_embeds, expected)
    small = model(torch.rand(2, 3, 16, 16), ids, mask, interpolate_pos_encoding=True)   # native size: a no-op
    assert small.logits_per_image.shape == (2, 2)


def test_text_tower_mask_given_or_not_agrees():
    "With a mask of all ones the padding path runs (no data-dependent shortcut) and equals the unmasked result."
    torch.manual_seed(0)
    text = clip.TextTransformer(tiny_config().text).eval()
    ids, _ = token_batch(3, lengths=[8, 8, 8])
    with torch.no_grad():
        torch.testing.assert_close(text(ids, torch.ones_like(ids)).pooled, text(ids).pooled, atol=1e-6, rtol=1e-6)
