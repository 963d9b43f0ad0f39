"LSeg (Li et al. 2022): the common model tests, the dense head, logit and loss invariants, the frozen text side."
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model_testing import BadInput, ModelTesterMixin
from vlnotes.evaluate import zero_shot_classifier
from vlnotes.layers import DenseHead
from vlnotes.papers.clip import CLIP, CLIPConfig, CLIPResNetConfig, CLIPTextConfig
from vlnotes.papers.lseg import LabelEncoder, LSeg, LSegConfig, label_words, segmentation_loss
from vlnotes.papers.vit import ViT, ViTConfig
from vlnotes.text import world_tokenizer

VISION = ViTConfig(image_size=16, patch_size=4, dim=16, depth=1, heads=2)
SMALL = dict(vision=VISION, embed_dim=8, head_dim=8, head_depth=1)


# ---- the common tests -------------------------------------------------------------------------------
class _LSegTester(ModelTesterMixin):
    image_size = 16
    config = SMALL
    def build_model(self): return LSeg(LSegConfig(**self.config))
    def make_variant_model(self): return LSeg(LSegConfig(**{**self.config, "head_dim": 12}))
    def build_inputs(self, batch_size):
        return {"images": torch.rand(batch_size, 3, 16, 16), "label_embeddings": torch.randn(5, 8),
                "targets": torch.randint(0, 5, (batch_size, 16, 16))}
    def split_example(self, inputs, i):            # the label set is shared by the batch, not batched
        return {"images": inputs["images"][i:i + 1], "label_embeddings": inputs["label_embeddings"],
                "targets": inputs["targets"][i:i + 1]}
    def outputs(self, model, **inputs):
        out = model(**inputs)
        return {"logits": out.logits, "pixel_features": out.pixel_features}
    def expected_output_shapes(self, batch_size):
        return {"logits": (batch_size, 5, 16, 16), "pixel_features": (batch_size, 8, 16, 16)}
    def bad_inputs(self):
        emb, img = torch.randn(5, 8), torch.rand(2, 3, 16, 16)
        cases = self.image_bad_inputs("images", extra={"label_embeddings": emb})
        cases += [
            BadInput("empty label set", {"images": img, "label_embeddings": torch.randn(0, 8)}, ValueError,
                     ("label_embeddings", "empty label set")),
            BadInput("label embeddings of the wrong width", {"images": img, "label_embeddings": torch.randn(5, 7)},
                     ValueError, ("label_embeddings", "7")),
            BadInput("NaN label embedding", {"images": img, "label_embeddings": torch.full((5, 8), float("nan"))},
                     ValueError, ("label_embeddings",)),
            BadInput("masks of the wrong size", {"images": img, "label_embeddings": emb,
                                                 "targets": torch.zeros(2, 32, 32, dtype=torch.long)},
                     ValueError, ("targets", "32")),
            BadInput("masks of another batch", {"images": img, "label_embeddings": emb,
                                                "targets": torch.zeros(3, 16, 16, dtype=torch.long)},
                     ValueError, ("targets",)),
            BadInput("float masks", {"images": img, "label_embeddings": emb, "targets": torch.zeros(2, 16, 16)},
                     ValueError, ("targets", "int")),
            BadInput("label index out of range", {"images": img, "label_embeddings": emb,
                                                  "targets": torch.full((2, 16, 16), 5)},
                     ValueError, ("targets", "[0, 4]", "5")),
            BadInput("ignore_index inside the label range", {"images": img, "label_embeddings": emb,
                                                             "targets": torch.zeros(2, 16, 16, dtype=torch.long),
                                                             "ignore_index": 3}, ValueError, ("ignore_index", "3")),
        ]
        return cases


class TestLSeg(_LSegTester):
    pass


class TestLSegFlatHead(_LSegTester):
    "No refinement stage: the features are a bilinear blend of projected patch tokens."
    config = {**SMALL, "head_depth": 0}


# ---- invariants -----------------------------------------------------------------------------------------
def _tiny(seed=0, **kw):
    torch.manual_seed(seed)
    return LSeg(LSegConfig(**{**SMALL, **kw})).eval()


def test_logits_are_scaled_cosines_and_bounded():
    model, imgs, emb = _tiny(), torch.rand(3, 3, 16, 16), torch.randn(4, 8) * 5
    with torch.no_grad(): out = model(imgs, emb)
    cos = torch.einsum("bchw,kc->bkhw", out.pixel_features, F.normalize(emb, dim=-1))
    torch.testing.assert_close(out.logits, model.config.logit_scale * cos, atol=1e-4, rtol=1e-4)
    assert out.logits.abs().max() <= model.config.logit_scale + 1e-4
    # the scale of a label embedding does not matter (they are normalised)
    with torch.no_grad(): torch.testing.assert_close(model(imgs, emb * 0.1).logits, out.logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_order_permutes_the_logit_channels(seed):
    model, imgs = _tiny(seed), torch.rand(2, 3, 16, 16)
    emb, perm = torch.randn(6, 8), torch.randperm(6, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        a, b = model(imgs, emb).logits, model(imgs, emb[perm]).logits
    torch.testing.assert_close(b, a[:, perm])
    assert torch.equal(perm[b.argmax(1)], a.argmax(1))                   # the same label wins


def test_adding_a_label_leaves_the_other_channels_unchanged():
    model, imgs, emb = _tiny(), torch.rand(2, 3, 16, 16), torch.randn(5, 8)
    with torch.no_grad():
        more = model(imgs, torch.cat([emb, torch.randn(2, 8)])).logits
        torch.testing.assert_close(more[:, :5], model(imgs, emb).logits)


def test_loss_is_cross_entropy_over_the_kept_pixels():
    model, imgs, emb = _tiny(), torch.rand(2, 3, 16, 16), torch.randn(4, 8)
    tgt = torch.randint(0, 4, (2, 16, 16)); tgt[1, 8:] = -1
    out = model(imgs, emb, tgt, ignore_index=-1)
    keep = tgt >= 0
    by_hand = -out.logits.log_softmax(1).gather(1, tgt.clamp(min=0)[:, None])[:, 0][keep].mean()
    torch.testing.assert_close(out.loss, by_hand)
    torch.testing.assert_close(segmentation_loss(out.logits, tgt, -1), by_hand)


def test_training_moves_pixels_towards_their_label():
    "A few steps on one image lower the loss and raise the pixel accuracy (the model can fit masks)."
    model = _tiny().train()
    imgs, emb = torch.rand(2, 3, 16, 16), torch.randn(3, 8)
    tgt = torch.zeros(2, 16, 16, dtype=torch.long); tgt[:, 4:12, 4:12] = 1; tgt[:, :, 12:] = 2
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    first = None
    for _ in range(20):
        loss = model(imgs, emb, tgt).loss
        first = first if first is not None else loss.item()
        opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad(): acc = (model(imgs, emb).logits.argmax(1) == tgt).float().mean()   # batch statistics
    assert loss.item() < 0.2 * first and acc > 0.9


def test_load_visual_copies_the_vit_and_drops_its_head():
    torch.manual_seed(0)
    vit = ViT(VISION.replace(num_classes=7))
    model = LSeg(LSegConfig(**SMALL)).load_visual(vit)
    for k, v in model.visual.state_dict().items(): assert torch.equal(v, vit.state_dict()[k])
    with pytest.raises(ValueError, match="vit: expected a ViT of config"):
        LSeg(LSegConfig(**SMALL)).load_visual(ViT(VISION.replace(dim=32)))
    with pytest.raises(TypeError, match="vit: expected a ViT"):
        LSeg(LSegConfig(**SMALL)).load_visual(nn.Linear(2, 2))


def test_config_checks():
    with pytest.raises(ValueError, match="num_classes"): LSegConfig(vision=VISION.replace(num_classes=3))
    with pytest.raises(TypeError, match="vision"): LSegConfig(vision=CLIPResNetConfig())
    with pytest.raises(ValueError, match="logit_scale"): LSegConfig(logit_scale=0.0)
    with pytest.raises(ValueError, match="head_depth"): LSegConfig(head_depth=-1)
    with pytest.raises(TypeError, match="config"): LSeg({"embed_dim": 8})
    assert LSegConfig.from_dict(LSegConfig(**SMALL).to_dict()) == LSegConfig(**SMALL)


# ---- the dense head ---------------------------------------------------------------------------------------
def test_dense_head_shapes_and_checks():
    head = DenseHead(12, 5, (4, 6), (16, 24), dim=8, depth=2).eval()
    assert head(torch.randn(3, 24, 12)).shape == (3, 5, 16, 24)
    assert DenseHead(12, 5, 8, 32, depth=0)(torch.randn(1, 64, 12)).shape == (1, 5, 32, 32)
    for bad, match in [(torch.randn(3, 25, 12), "tokens"), (torch.randn(3, 24, 10), "tokens"),
                       (torch.randn(0, 24, 12), "tokens"), (torch.full((1, 24, 12), float("nan")), "tokens"),
                       (torch.ones(1, 24, 12, dtype=torch.long), "tokens")]:
        with pytest.raises((ValueError, TypeError), match=match): head(bad)
    with pytest.raises(ValueError, match="grid"): DenseHead(12, 5, (4, 0), 16)
    with pytest.raises(ValueError, match="depth"): DenseHead(12, 5, 4, 16, depth=9)
    with pytest.raises(TypeError, match="in_dim"): DenseHead(12.0, 5, 4, 16)


def test_dense_head_depth0_is_project_then_resize():
    torch.manual_seed(0)
    head, tok = DenseHead(6, 3, (2, 3), (8, 12), depth=0), torch.randn(2, 6, 6)
    w = head.proj.weight[:, :, 0, 0] @ head.reassemble.weight[:, :, 0, 0]
    b = head.proj.weight[:, :, 0, 0] @ head.reassemble.bias + head.proj.bias
    grid = (tok @ w.T + b).view(2, 2, 3, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(head(tok), F.interpolate(grid, size=(8, 12), mode="bilinear", align_corners=False),
                               atol=1e-5, rtol=1e-5)


def test_dense_head_token_order_is_row_major():
    "Moving a token's content one cell down and right moves the response 4 px down and right (away from borders)."
    torch.manual_seed(0)
    head = DenseHead(4, 2, (10, 10), (40, 40), dim=4, depth=1).eval()
    base = torch.zeros(1, 100, 4)
    a, b = base.clone(), base.clone()
    a[0, 4 * 10 + 4] = 1.0; b[0, 5 * 10 + 5] = 1.0                    # cell (4, 4) vs cell (5, 5)
    with torch.no_grad():
        ra, rb, r0 = head(a), head(b), head(base)
    da, db = (ra - r0)[0].abs().sum(0), (rb - r0)[0].abs().sum(0)
    assert da.max() > 0
    torch.testing.assert_close(da[4:32, 4:32], db[8:36, 8:36], atol=1e-5, rtol=1e-4)


# ---- the frozen text side -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_side():
    torch.manual_seed(0)
    tok = world_tokenizer()
    clip = CLIP(CLIPConfig(CLIPResNetConfig(image_size=32, depth=8, width=4, heads=2),
                           CLIPTextConfig(vocab_size=tok.vocab_size, context_length=16, dim=16, depth=1, heads=2),
                           embed_dim=8))
    vocab = {"a", "circle", "square", "disc", "dark", "background", "photo", "of", "."}
    return clip, tok, LabelEncoder(clip, tok, ("a {}.", "a photo of a {}."), vocabulary=vocab)


def test_label_encoder_rows_follow_the_labels(text_side):
    clip, tok, enc = text_side
    names = ["dark background", "circle", "square", "disc"]
    E = enc(names)
    assert E.shape == (4, 8)
    torch.testing.assert_close(E.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(enc(names[::-1]), E.flip(0))
    torch.testing.assert_close(E, zero_shot_classifier(clip, tok, names, ("a {}.", "a photo of a {}.")).weight)


def test_text_encoder_stays_frozen_while_lseg_trains(text_side):
    clip, tok, enc = text_side
    before = {k: v.clone() for k, v in clip.state_dict().items()}
    model = LSeg(LSegConfig(**SMALL)).train()
    opt = torch.optim.SGD(list(model.parameters()) + list(enc.parameters()), lr=1.0)
    emb = enc(["dark background", "circle", "square"])
    assert not emb.requires_grad and not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not clip.training
    for _ in range(2):
        loss = model(torch.rand(2, 3, 16, 16), emb, torch.randint(0, 3, (2, 16, 16))).loss
        opt.zero_grad(); loss.backward(); opt.step()
    for k, v in clip.state_dict().items(): assert torch.equal(v, before[k]), k
    assert not set(map(id, enc.parameters())) & set(map(id, model.parameters()))   # not part of LSeg's weights


@pytest.mark.parametrize("labels,match", [([], "labels"), (["circle", "circle"], "labels"),
                                          (["circle", "zebra"], "unknown word(s) 'zebra' in 'zebra'"),
                                          (["dark zebra background"], "'zebra' in 'dark zebra background'"),
                                          (["circle", ""], "labels"), ("circle", "labels")])
def test_label_encoder_refuses_bad_label_sets(text_side, labels, match):
    with pytest.raises((ValueError, TypeError), match=match.replace("(", r"\(").replace(")", r"\)")):
        text_side[2](labels)


def test_label_encoder_checks(text_side):
    clip, tok, _ = text_side
    with pytest.raises(TypeError, match="clip: expected a model with `encode_text`"): LabelEncoder(nn.Linear(2, 2), tok)
    with pytest.raises(ValueError, match="template"): LabelEncoder(clip, tok, ("a photo",))(["circle"])
    with pytest.raises(ValueError, match="templates"): LabelEncoder(clip, tok, ())
    assert LabelEncoder(clip, tok)(["zebra"]).shape == (1, 8)                       # no vocabulary: open
    assert label_words("a Plus-sign, dark.") == ["a", "plus-sign", ",", "dark", "."]
