"SupCon (Khosla et al. 2020): the common model tests, the batched views, the losses on views, label noise, training."
import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from model_testing import ModelTesterMixin
from vlnotes.core import Config
from vlnotes.losses import supcon_loss
from vlnotes.papers.resnet import ResNetConfig
from vlnotes.papers.supcon import (SupConConfig, SupConModel, ce_views_loss, random_views, supcon_views_loss,
                                   symmetric_label_noise)

ENCODER = dict(depth=8, num_classes=0, width=4)


def small_config(**kw) -> SupConConfig:
    return SupConConfig(ResNetConfig.cifar(**ENCODER), **{"embed_dim": 8, "num_classes": 5, **kw})


# ---- the common tests -------------------------------------------------------------------------------
class TestSupConModel(ModelTesterMixin):
    image_size = 16
    def build_model(self): return SupConModel(small_config())
    def make_variant_model(self): return SupConModel(small_config(embed_dim=12))
    def build_inputs(self, batch_size): return {"images": torch.rand(batch_size, 3, 16, 16)}
    def expected_output_shapes(self, batch_size):
        return {"pooled": (batch_size, 16), "embeddings": (batch_size, 8), "logits": (batch_size, 5)}
    def bad_inputs(self): return self.image_bad_inputs("images")


class TestSupConModelLinearHeadNoClassifier(TestSupConModel):
    def build_model(self): return SupConModel(small_config(head="linear", num_classes=0))
    def make_variant_model(self): return SupConModel(small_config(head="linear", num_classes=0, embed_dim=12))
    def expected_output_shapes(self, batch_size): return {"pooled": (batch_size, 16), "embeddings": (batch_size, 8)}


def test_embeddings_are_unit_length_and_head_shapes():
    model = SupConModel(small_config()).eval()
    out = model(torch.rand(4, 3, 16, 16))
    assert torch.allclose(out.embeddings.norm(dim=-1), torch.ones(4), atol=1e-6)
    assert [type(m).__name__ for m in model.head] == ["Linear", "ReLU", "Linear"]
    assert model.head[0].in_features == model.head[0].out_features == 16     # hidden layer of the encoder's width
    assert isinstance(SupConModel(small_config(head="linear")).head, torch.nn.Linear)


def test_config_round_trip_and_errors():
    c = small_config()
    assert SupConConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown keys"): SupConConfig.from_dict({**c.to_dict(), "proj": 3})
    with pytest.raises(ValueError, match="expected num_classes=0"): SupConConfig(ResNetConfig.cifar(8, num_classes=3))
    with pytest.raises(TypeError, match="SupConConfig.encoder: expected a ResNetConfig"): SupConConfig(Config())
    with pytest.raises(ValueError, match="SupConConfig.head"): SupConConfig(head="bn")
    with pytest.raises(ValueError, match="SupConConfig.embed_dim"): SupConConfig(embed_dim=0)
    with pytest.raises(TypeError, match="config: expected a SupConConfig"): SupConModel(ResNetConfig())


# ---- random_views -------------------------------------------------------------------------------------
def test_views_shape_range_and_difference():
    imgs = torch.rand(5, 3, 12, 10)                       # non-square
    v = random_views(imgs, 3, generator=torch.Generator().manual_seed(0))
    assert v.shape == (5, 3, 3, 12, 10) and v.dtype == imgs.dtype
    assert v.min() >= 0 and v.max() <= 1
    assert not torch.allclose(v[:, 0], v[:, 1]) and not torch.allclose(v[:, 1], v[:, 2])


def test_views_identity_flip_and_grey():
    imgs = torch.rand(4, 3, 9, 9)
    same = random_views(imgs, 2, crop_scale=(1, 1), ratio=(1, 1), flip=False, jitter_p=0, grey_p=0)
    assert torch.allclose(same, imgs[:, None].expand_as(same), atol=1e-5)
    flips = random_views(imgs[:1].expand(200, -1, -1, -1), 1, crop_scale=(1, 1), ratio=(1, 1), jitter_p=0, grey_p=0)[:, 0]
    mirrored = torch.tensor([torch.allclose(f, imgs[0].flip(-1), atol=1e-5) for f in flips])
    unchanged = torch.tensor([torch.allclose(f, imgs[0], atol=1e-5) for f in flips])
    assert (mirrored | unchanged).all() and 70 < int(mirrored.sum()) < 130
    grey = random_views(imgs, 2, jitter_p=0, grey_p=1)
    assert torch.allclose(grey[:, :, 0], grey[:, :, 1], atol=1e-6) and torch.allclose(grey[:, :, 1], grey[:, :, 2], atol=1e-6)


def test_views_crop_keeps_area_fraction():
    "A crop of area fraction s, resampled to the full size, magnifies: a centred dot grows by about 1/s in area."
    img = torch.zeros(1, 1, 64, 64); img[..., 28:36, 28:36] = 1.0
    v = random_views(img.expand(256, -1, -1, -1), 1, crop_scale=(0.25, 0.25), ratio=(1, 1), flip=False,
                     generator=torch.Generator().manual_seed(0))[:, 0]
    visible = v.flatten(1).sum(1)
    whole = visible[visible > 0.999 * visible.max()]         # crops that contain the whole dot
    assert len(whole) > 10 and torch.allclose(whole, torch.full_like(whole, 64.0 * 4), rtol=0.05)


def test_views_one_channel_and_determinism():
    assert random_views(torch.rand(2, 1, 8, 8), 2).shape == (2, 2, 1, 8, 8)
    imgs = torch.rand(3, 3, 8, 8)
    a = random_views(imgs, generator=torch.Generator().manual_seed(3))
    b = random_views(imgs, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("kw,match", [
    (dict(crop_scale=(0.0, 1.0)), "crop_scale"), (dict(crop_scale=(0.8, 0.5)), "crop_scale"),
    (dict(crop_scale=0.5), "crop_scale"), (dict(ratio=(1.5, 1.0)), "ratio"), (dict(n_views=0), "n_views"),
    (dict(colour_jitter=1.5), "colour_jitter"), (dict(jitter_p=-0.1), "jitter_p"), (dict(grey_p=2), "grey_p")])
def test_views_bad_arguments(kw, match):
    with pytest.raises((ValueError, TypeError), match=match): random_views(torch.rand(2, 3, 8, 8), **kw)


def test_views_bad_images():
    with pytest.raises(ValueError, match="images"): random_views(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="images"): random_views(torch.rand(0, 3, 8, 8))
    with pytest.raises(ValueError, match="images"): random_views(torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8))


# ---- the losses on views ------------------------------------------------------------------------------
def test_view_losses_equal_the_long_way():
    torch.manual_seed(0)
    model = SupConModel(small_config()).eval()
    views, labels = torch.rand(6, 2, 3, 16, 16), torch.tensor([0, 1, 0, 2, 1, 3])
    with torch.no_grad():
        z = torch.stack([model(views[:, i]).embeddings for i in range(2)], 1)
        logits = torch.cat([model(views[:, i]).logits for i in range(2)])
        assert torch.allclose(supcon_views_loss(model, views, labels, 0.2, 0.07), supcon_loss(z, labels, 0.2, 0.07), atol=1e-6)
        assert torch.allclose(supcon_views_loss(model, views), supcon_loss(z, None, 0.1, 0.07), atol=1e-6)
        assert torch.allclose(ce_views_loss(model, views, labels), F.cross_entropy(logits, labels.repeat(2)), atol=1e-6)


def test_view_losses_bad_inputs():
    model = SupConModel(small_config())
    views = torch.rand(4, 2, 3, 16, 16)
    with pytest.raises(ValueError, match="views"): supcon_views_loss(model, views[0])
    with pytest.raises(ValueError, match="labels"): ce_views_loss(model, views, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="expected a classifier"):
        ce_views_loss(SupConModel(small_config(num_classes=0)), views, torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="labels: expected at least one positive pair"):
        supcon_views_loss(model, views[:, :1], torch.tensor([0, 1, 2, 3]))


def test_collapsed_embeddings_give_the_fixed_point_loss():
    "All embeddings equal: the loss is (tau / base) log(N - 1), whatever the labels, and its gradient is zero."
    z = F.normalize(torch.ones(8, 2, 4), dim=-1).requires_grad_()
    for labels in (None, torch.tensor([0, 1, 0, 1, 2, 2, 3, 3])):
        loss = supcon_loss(F.normalize(z, dim=-1), labels, 0.1, 0.07)
        assert math.isclose(loss.item(), 0.1 / 0.07 * math.log(15), rel_tol=1e-5)
        (grad,) = torch.autograd.grad(loss, z)
        assert grad.abs().max() < 1e-5


def test_supcon_training_leaves_the_collapse_on_separable_data():
    "Two classes that differ in brightness: a few SupCon steps pull each class together, below the fixed point."
    torch.manual_seed(0)
    labels = torch.arange(32) % 2
    images = (0.25 + 0.5 * labels.float()).view(-1, 1, 1, 1) + 0.1 * torch.rand(32, 3, 16, 16)
    model = SupConModel(small_config(num_classes=0))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(30):
        loss = supcon_views_loss(model, random_views(images, colour_jitter=0, grey_p=0), labels)
        opt.zero_grad(); loss.backward(); opt.step()
    fixed_point = 0.1 / 0.07 * math.log(63)
    model.eval()
    with torch.no_grad():
        z = model(images).embeddings
    sim = z @ z.t()
    same = labels[:, None] == labels[None]
    assert loss.item() < fixed_point - 0.5
    assert sim[same].mean() > sim[~same].mean() + 0.5


# ---- label noise ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [0.0, 0.25, 0.4, 1.0])
def test_label_noise_exact_rate_and_other_class(rate):
    y = torch.randint(0, 6, (500,), generator=torch.Generator().manual_seed(0))
    noisy = symmetric_label_noise(y, rate, 6, torch.Generator().manual_seed(1))
    assert int((noisy != y).sum()) == round(rate * 500)
    assert noisy.dtype == y.dtype and noisy.min() >= 0 and noisy.max() < 6
    assert torch.equal(y, torch.randint(0, 6, (500,), generator=torch.Generator().manual_seed(0)))   # input untouched


def test_label_noise_is_uniform_over_the_other_classes_and_seeded():
    y = torch.zeros(6000, dtype=torch.long)
    counts = torch.bincount(symmetric_label_noise(y, 1.0, 4, torch.Generator().manual_seed(0)), minlength=4)
    assert counts[0] == 0 and (counts[1:] - 2000).abs().max() < 150
    a = symmetric_label_noise(y[:100], 0.3, 4, torch.Generator().manual_seed(5))
    assert torch.equal(a, symmetric_label_noise(y[:100], 0.3, 4, torch.Generator().manual_seed(5)))


@pytest.mark.parametrize("args,error,match", [
    ((torch.tensor([0, 1]), -0.1, 3), ValueError, "rate"), ((torch.tensor([0, 1]), 0.5, 1), ValueError, "num_classes"),
    ((torch.tensor([0, 5]), 0.5, 3), ValueError, r"labels: expected classes in \[0, 2\]"),
    ((torch.tensor([0.0, 1.0]), 0.5, 3), TypeError, "labels: expected an integer tensor"),
    ((torch.zeros(2, 2, dtype=torch.long), 0.5, 3), ValueError, "labels")])
def test_label_noise_bad_inputs(args, error, match):
    with pytest.raises(error, match=match): symmetric_label_noise(*args)
