"CLIP: the common model tests, parity with transformers' CLIPModel, mask invariance, the temperature clamp, bad input."
import json
import math

import pytest
import torch
import torch.nn.functional as F

from model_testing import ModelTesterMixin, BadInput

clip = pytest.importorskip("vlnotes.clip")
transformers = pytest.importorskip("transformers")

VOCAB, CTX, EOS, PAD = 50, 12, 3, 0


def tiny_config(**text) -> "clip.CLIPConfig":
    vision = clip.clip_vision_config(image_size=16, patch_size=8, dim=16, depth=1, num_heads=2)
    return clip.CLIPConfig(vision, clip.CLIPTextConfig(**{**dict(vocab_size=VOCAB, context_length=CTX, width=16, depth=1,
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
        return {"image_embeds": out["image_embeds"], "text_embeds": out["text_embeds"],
                "pair_logits": out["logits_per_image"].diagonal()}
    def model_config(self, model): return model.config.to_dict()
    def make_variant_model(self): return clip.CLIP(tiny_config(width=32, heads=2))
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
        ]
        return cases


# ---- the ResNet image tower (attention pooling) ---------------------------------------------------------
def tiny_resnet_config(**text) -> "clip.CLIPConfig":
    base = tiny_config(**text)
    return clip.CLIPConfig(clip.CLIPResNetConfig(image_size=16, depth=8, width=4, heads=2), base.text, embed_dim=8)


class TestCLIPResNet(TestCLIP):
    "The common tests and the same bad input, with the ResNet + attention-pooling image tower."
    def build_model(self): return clip.CLIP(tiny_resnet_config())
    def make_variant_model(self): return clip.CLIP(clip.CLIPConfig(clip.CLIPResNetConfig(image_size=16, depth=14, width=4, heads=2),
                                                                   tiny_config().text, embed_dim=8))


def test_resnet_tower_config_round_trip_and_kind():
    cfg = tiny_resnet_config()
    assert cfg.vision_tower == "resnet" and cfg.vision.dim == 16 and cfg.vision.grid == 4
    assert clip.CLIPConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # a config dict written before the ResNet tower existed (no vision_tower) still reads as a ViT
    vit = tiny_config().to_dict(); vit.pop("vision_tower")
    assert clip.CLIPConfig.from_dict(vit).vision_tower == "vit"
    model = clip.CLIP(cfg)
    assert isinstance(model.visual, clip.CLIPResNet) and model.image_size == 16
    assert not any("fc" in n for n, _ in model.visual.named_parameters())   # no unused classifier in the tower


@pytest.mark.parametrize("kw,error,words", [
    (dict(depth=10), ValueError, ("depth", "6n+2", "10")),
    (dict(image_size=18), ValueError, ("image_size", "multiple of 4", "18")),
    (dict(width=4, heads=3), ValueError, ("heads", "16", "3")),
    (dict(width=0), ValueError, ("width", "positive", "0")),
])
def test_resnet_tower_bad_config(kw, error, words):
    with pytest.raises(error) as e:
        clip.CLIPResNetConfig(**{**dict(image_size=16, depth=8, width=4, heads=2), **kw})
    for w in words: assert w in str(e.value), (w, str(e.value))


def test_vision_tower_must_match_the_config():
    with pytest.raises(TypeError, match="CLIPResNetConfig.*ViTConfig"):
        clip.CLIPConfig(tiny_config().vision, vision_tower="resnet")
    with pytest.raises(ValueError, match="vision_tower.*cnn"):
        clip.CLIPConfig(vision_tower="cnn")


def test_attention_pool_bad_feature_map():
    pool = clip.AttentionPool2d(grid=4, dim=8, heads=2)
    assert pool(torch.rand(2, 8, 4, 4)).shape == (2, 8)
    with pytest.raises(ValueError, match="fmap"):
        pool(torch.rand(2, 8, 5, 5))
    with pytest.raises(ValueError, match="fmap"):
        pool(torch.rand(2, 6, 4, 4))


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
    ours = clip.CLIP.from_hf(ref).eval()
    size, eos = ref.config.vision_config.image_size, ref.config.text_config.eos_token_id
    g = torch.Generator().manual_seed(1)
    ids, mask = torch.ones(4, 16, dtype=torch.long), torch.zeros(4, 16, dtype=torch.long)
    for i, l in enumerate((3, 9, 16, 5)):
        ids[i, :l - 1] = torch.randint(3, 96, (l - 1,), generator=g); ids[i, l - 1] = 98 if eos == 2 else eos; mask[i, :l] = 1
    images = torch.rand(4, 3, size, size, generator=g)
    with torch.no_grad():
        r, o = ref(input_ids=ids, pixel_values=images, attention_mask=mask), ours(images, ids, mask)
    for k in ("logits_per_image", "logits_per_text", "image_embeds", "text_embeds"):
        diff = (o[k] - r[k]).abs().max().item()
        assert diff <= 1e-4, f"{k}: max |ours - transformers| = {diff:.3g}"
    with torch.no_grad():   # the projected, unnormalised features too
        assert torch.allclose(ours.encode_image(images), ref.get_image_features(pixel_values=images).pooler_output, atol=1e-4)
        assert torch.allclose(ours.encode_text(ids, mask), ref.get_text_features(input_ids=ids, attention_mask=mask).pooler_output, atol=1e-4)


def test_from_hf_rejects_other_models():
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
        loss = clip.clip_loss(model.logit_scale.exp() * feats @ feats.t())
        opt.zero_grad(); loss.backward(); opt.step()
        model.clamp_logit_scale_()
        assert model.logit_scale.exp().item() <= 100.0 * (1 + 1e-6) and model.scale().item() <= 100.0
        assert model.logit_scale.item() >= 0.0


def test_clamp_callback_in_trainer_and_forward_cap():
    from vlnotes.train import Trainer, TrainConfig
    torch.manual_seed(0)
    model = clip.CLIP(tiny_config())
    ids, mask = token_batch(16)
    data = [{"images": torch.rand(3, 16, 16), "input_ids": ids[i], "attention_mask": mask[i]} for i in range(16)]
    collate = lambda rows: {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
    opt = torch.optim.SGD([{"params": [model.logit_scale], "lr": 1e4}, {"params": [p for n, p in model.named_parameters() if n != "logit_scale"], "lr": 0.0}])
    cfg = TrainConfig(max_steps=5, lr=1e4, weight_decay=0.0, batch_size=8, log_every=1, progress=False)
    Trainer(model, clip.clip_loss_fn, data, cfg, optimizer=opt, collate_fn=collate, callbacks=[clip.ClampLogitScale()]).fit()
    assert model.logit_scale.item() <= math.log(100) + 1e-6
    with torch.no_grad(): model.logit_scale.fill_(50.0)   # even a parameter set above the bound by hand
    out = model(torch.rand(2, 3, 16, 16), ids[:2], mask[:2])
    assert out["logits_per_image"].abs().max().item() <= 100.0 + 1e-4


# ---- zero-shot API: bad input -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def zs_setup():
    from vlnotes.text import world_tokenizer
    tok = world_tokenizer()
    torch.manual_seed(0)
    model = clip.CLIP(clip.CLIPConfig(clip.clip_vision_config(image_size=16, patch_size=8, dim=16, depth=1, num_heads=2),
                                      clip.CLIPTextConfig(vocab_size=tok.vocab_size, context_length=20, width=16, depth=1, heads=2,
                                                          eos_id=tok.eos_id, pad_id=tok.pad_id), embed_dim=8)).eval()
    return model, tok


def test_zero_shot_ensembling_is_renormalised_mean(zs_setup):
    model, tok = zs_setup
    temps = ["a {}.", "a photo of a {}."]
    head = clip.zero_shot_classifier(model, tok, ["circle", "square"], temps)
    e = clip.encode_texts(model, tok, ["a circle.", "a photo of a circle."])
    assert torch.allclose(head.weight[0], F.normalize(e.mean(0), dim=0), atol=1e-6)
    assert torch.allclose(head.weight.norm(dim=1), torch.ones(2), atol=1e-6)


@pytest.mark.parametrize("case", ["unknown class", "empty templates", "template without placeholder", "empty class list",
                                  "prompt too long", "string instead of list", "duplicate class"])
def test_zero_shot_bad_input(zs_setup, case):
    model, tok = zs_setup
    head = clip.zero_shot_classifier(model, tok, ["circle", "square"], ["a {}."])
    imgs = torch.rand(2, 3, 16, 16)
    call, err, words = {
        "unknown class": (lambda: clip.zero_shot_predict(model, imgs, head, class_names=["circle", "blob"]), ValueError, ("blob", "circle")),
        "empty templates": (lambda: clip.zero_shot_classifier(model, tok, ["circle"], []), ValueError, ("templates", "empty")),
        "template without placeholder": (lambda: clip.zero_shot_classifier(model, tok, ["circle"], ["a photo"]), ValueError, ("{}", "a photo")),
        "empty class list": (lambda: clip.zero_shot_classifier(model, tok, [], ["a {}."]), ValueError, ("class_names", "empty")),
        "prompt too long": (lambda: clip.zero_shot_classifier(model, tok, ["circle " * 30], ["a {}."]), ValueError, ("max_length=20",)),
        "string instead of list": (lambda: clip.zero_shot_classifier(model, tok, "circle", ["a {}."]), TypeError, ("class_names", "str")),
        "duplicate class": (lambda: clip.zero_shot_classifier(model, tok, ["circle", "circle"], ["a {}."]), ValueError, ("duplicates",)),
    }[case]
    with pytest.raises(err) as e: call()
    assert all(w.lower() in str(e.value).lower() for w in words), str(e.value)


def test_linear_probe_and_few_shot():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=g) * 4
    x = torch.cat([c + torch.randn(30, 8, generator=g) for c in centres]); y = torch.arange(3).repeat_interleave(30)
    idx = clip.few_shot_indices(y, 5, seed=0)
    assert torch.equal(torch.bincount(y[idx]), torch.tensor([5, 5, 5]))
    assert (clip.linear_probe(x[idx], y[idx], x) == y).float().mean() > 0.9
    with pytest.raises(ValueError, match="at least k=31"): clip.few_shot_indices(y, 31)
