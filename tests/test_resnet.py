"ResNet (He et al. 2015): the common model tests (tests/model_testing.py), parity with torchvision, config and outputs."
import pytest
import torch
import torchvision

from model_testing import ModelTesterMixin
from vlnotes.core import num_params
from vlnotes.papers import resnet
from vlnotes.convert import randomise_batchnorm
from vlnotes.papers.resnet import ResNet, ResNetConfig, ResNetOutput, torchvision_parity


# ---- the common tests -------------------------------------------------------------------------------
class _ResNetTester(ModelTesterMixin):
    "ResNets read `images` (B, 3, H, W) and return a ResNetOutput (feature map, pooled features, logits)."
    num_classes = 5
    image_size = 64
    min_size = 32          # the smallest side the ImageNet ResNets accept (5 stride-2 stages)

    def build_inputs(self, batch_size):
        return {"images": torch.rand(batch_size, 3, self.image_size, self.image_size)}
    features, fmap = 512, 2   # channels and side of the final feature map (64 px / 32)
    def expected_output_shapes(self, batch_size):
        c, s = self.features, self.fmap
        return {"logits": (batch_size, self.num_classes), "pooled": (batch_size, c),
                "last_hidden_state": (batch_size, c, s, s)}
    def bad_inputs(self): return self.image_bad_inputs("images", min_size=self.min_size)


class TestResNet18(_ResNetTester):
    def build_model(self): return resnet.resnet18(num_classes=self.num_classes)
    def make_variant_model(self): return resnet.resnet34(num_classes=self.num_classes)


class TestResNet50(_ResNetTester):
    batch_size, features = 2, 2048
    batch_atol = 1e-4      # the random-init feature map reaches ~50; other fp32 sum orders move it by ~1e-6 of that
    def build_model(self): return resnet.resnet50(num_classes=self.num_classes)
    def make_variant_model(self): return resnet.resnet18(num_classes=self.num_classes)
    # input validation and checkpoint-file handling do not depend on the block type: resnet18 and the CIFAR
    # nets cover them; dropping them here saves several seconds of building/saving a 25M-parameter model
    def bad_inputs(self): return self.image_bad_inputs("images")[:3]
    test_load_corrupted_checkpoint_raises = None
    test_checkpoint_is_safetensors = None
    test_load_other_architecture_raises = None


class _CifarTester(_ResNetTester):
    num_classes = 10
    image_size = 32
    min_size = 4           # the CIFAR nets downsample by 4
    features, fmap = 64, 8
    depth, plain, shortcut = 20, False, "A"
    def build_model(self):
        return resnet.resnet_cifar(self.depth, num_classes=self.num_classes, plain=self.plain, shortcut=self.shortcut)
    def make_variant_model(self):
        return resnet.resnet_cifar(self.depth + 6, num_classes=self.num_classes, plain=self.plain, shortcut=self.shortcut)
    def bad_inputs(self): return self.image_bad_inputs("images")[:4]


class TestResNetCifar20(_CifarTester):
    def bad_inputs(self): return self.image_bad_inputs("images", min_size=self.min_size)


class TestPlainCifar20(_CifarTester):
    plain = True


class TestResNetCifar8ShortcutB(_CifarTester):
    depth, shortcut = 8, "B"


class TestResNetCifar8ShortcutC(_CifarTester):
    depth, shortcut = 8, "C"


class TestResNetCifar8Backbone(_CifarTester):
    "num_classes=0: no classifier (a backbone, as CLIP's ResNet tower uses it); the output has no logits."
    depth, num_classes = 8, 0
    def expected_output_shapes(self, batch_size):
        return {"pooled": (batch_size, 64), "last_hidden_state": (batch_size, 64, 8, 8)}
    def outputs(self, model, **inputs):
        out = model(**inputs)
        assert out.logits is None
        return out
    def test_no_logits(self):
        out = self.make_model().eval()(**self.make_inputs())
        assert out.logits is None and list(out) == ["last_hidden_state", "pooled"]
        assert not any(k.startswith("fc.") for k in self.make_model().state_dict())


# ---- parity with torchvision ------------------------------------------------------------------------
@pytest.mark.parametrize("depth,num_classes,sizes", [(18, 1000, [(64, 64), (40, 56)]), (50, 7, [(64, 64)])])
def test_resnet_matches_torchvision(depth, num_classes, sizes):
    "Same weights (from a torchvision model with random BatchNorm statistics) -> same logits, eval and train mode."
    torch.manual_seed(0)
    tv = randomise_batchnorm(getattr(torchvision.models, f"resnet{depth}")(weights=None, num_classes=num_classes))
    before = {k: v.clone() for k, v in tv.state_dict().items()}
    diffs = torchvision_parity(tv, [torch.rand(2, 3, *hw) for hw in sizes])   # asserts <= 1e-4 itself
    assert sorted(diffs) == sorted(f"{m} {h}x{w}" for m in ("eval", "train") for h, w in sizes)
    assert max(diffs.values()) <= 1e-4
    assert all(torch.equal(v, tv.state_dict()[k]) for k, v in before.items()), "the check changed the reference"


def test_parity_check_can_fail():
    "A model that differs from the reference in one BatchNorm statistic fails the shared comparison."
    from vlnotes.convert import assert_close_outputs
    torch.manual_seed(0)
    tv = randomise_batchnorm(torchvision.models.resnet18(num_classes=4)).eval()
    ours, x = ResNet.from_torchvision(tv).eval(), torch.rand(2, 3, 64, 64)
    with torch.no_grad(): ours.layer2[0].bn2.running_mean.add_(0.05)
    with pytest.raises(AssertionError, match="exceeds atol"):
        assert_close_outputs(ours(x).logits, tv(x))


def test_from_torchvision_config_and_errors():
    cfg = ResNet.from_torchvision(torchvision.models.resnet50(num_classes=3)).config
    assert cfg == ResNetConfig("bottleneck", (3, 4, 6, 3), num_classes=3, shortcut="B")
    with pytest.raises(ValueError, match="expected groups=1"):
        ResNet.from_torchvision(torchvision.models.resnext50_32x4d())
    with pytest.raises(TypeError, match="model: expected a torchvision.models.ResNet, got Linear"):
        ResNet.from_torchvision(torch.nn.Linear(2, 2))


def test_resnet18_parameter_count_matches_torchvision():
    n_tv = num_params(torchvision.models.resnet18(weights=None))
    assert num_params(resnet.resnet18()) == n_tv == 11_689_512


def test_shortcut_options_parameter_counts():
    "A (zero-padding) adds no parameters, B projects only where dimensions change, C projects every shortcut."
    n = {s: num_params(resnet.resnet_cifar(20, shortcut=s)) for s in "ABC"}
    assert num_params(resnet.resnet_cifar(20, plain=True)) == n["A"] < n["B"] < n["C"], n


# ---- config and output ------------------------------------------------------------------------------
def test_factories_are_configs():
    assert resnet.resnet18().config == ResNetConfig()
    assert resnet.resnet_cifar(14, num_classes=3, width=8).config == \
        ResNetConfig("basic", (2, 2, 2), (8, 16, 32), 3, "cifar", False, "A")
    assert [f().config.depth for f in (resnet.resnet18, resnet.resnet34, resnet.resnet50)] == [18, 34, 50]


def test_config_round_trip_through_a_checkpoint(tmp_path):
    "save_model stores the config; ResNetConfig.from_dict rebuilds the same architecture from the file alone."
    from vlnotes.train import save_model, load_model, model_metadata
    torch.manual_seed(0)
    model = resnet.resnet_cifar(8, num_classes=3, width=4, shortcut="C").eval()
    path = save_model(model, tmp_path / "m.safetensors", config=model.config.to_dict())
    rebuilt = ResNet(ResNetConfig.from_dict(model_metadata(path)["config"]))
    assert rebuilt.config == model.config
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(load_model(rebuilt, path).eval()(x).logits, model(x).logits)


@pytest.mark.parametrize("kw,error,words", [
    (dict(block="wide"), ValueError, "ResNetConfig.block: expected one of ['basic', 'bottleneck'], got 'wide'"),
    (dict(layers=(2, 2)), ValueError, "expected one width per stage"),
    (dict(layers=()), TypeError, "ResNetConfig.layers: expected a non-empty sequence of ints"),
    (dict(widths=(64, 128, 256, -1)), ValueError, "ResNetConfig.widths[3]: expected an int >= 1 and <= 65536, got -1"),
    (dict(num_classes=True), TypeError, "ResNetConfig.num_classes: expected an int"),
    (dict(plain="no"), TypeError, "ResNetConfig.plain: expected True or False, got 'no'"),
    (dict(stem="vit"), ValueError, "ResNetConfig.stem: expected one of ['imagenet', 'cifar'], got 'vit'"),
])
def test_bad_config(kw, error, words):
    with pytest.raises(error) as e:
        ResNetConfig(**kw)
    assert words in str(e.value)


def test_unknown_config_key():
    with pytest.raises(ValueError, match=r"unknown keys \['width'\]"):
        ResNetConfig.from_dict({"block": "basic", "width": 16})


def test_output_fields():
    torch.manual_seed(0)
    model = resnet.resnet_cifar(8, num_classes=3, width=4).eval()
    out = model(torch.rand(2, 3, 16, 20))
    assert isinstance(out, ResNetOutput) and list(out) == ["last_hidden_state", "pooled", "logits"]
    assert out.last_hidden_state.shape == (2, 16, 4, 5) and out["pooled"].shape == (2, 16)
    assert torch.allclose(out.pooled, out.last_hidden_state.mean((2, 3)), atol=1e-6)
    assert torch.equal(out.logits, model.fc(out.pooled))
