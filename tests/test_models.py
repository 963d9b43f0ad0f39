"The common model tests (tests/model_testing.py) applied to every model, plus parity with reference implementations."
import pytest
import torch

from model_testing import ModelTesterMixin

resnet = pytest.importorskip("vlnotes.resnet")


# ---- ResNet (He et al. 2015) -----------------------------------------------------------------------
class _ResNetTester(ModelTesterMixin):
    "ResNets read `images` (B, 3, H, W) and return logits (B, num_classes)."
    num_classes = 5
    image_size = 64
    min_size = 32          # the smallest side the ImageNet ResNets accept (5 stride-2 stages)

    def build_inputs(self, batch_size):
        return {"images": torch.rand(batch_size, 3, self.image_size, self.image_size)}
    def expected_output_shapes(self, batch_size): return {"output": (batch_size, self.num_classes)}
    def bad_inputs(self): return self.image_bad_inputs("images", min_size=self.min_size)


class TestResNet18(_ResNetTester):
    def build_model(self): return resnet.resnet18(num_classes=self.num_classes)
    def make_variant_model(self): return resnet.resnet34(num_classes=self.num_classes)


class TestResNet50(_ResNetTester):
    batch_size = 2
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


# ---- parity with torchvision ------------------------------------------------------------------------
@pytest.mark.parametrize("depth,num_classes,size", [(18, 1000, 64), (50, 7, 64)])
def test_resnet_matches_torchvision(depth, num_classes, size):
    "Same weights (copied from a randomly initialised torchvision model) -> same logits, eval and train mode."
    import torchvision
    torch.manual_seed(0)
    tv = getattr(torchvision.models, f"resnet{depth}")(weights=None, num_classes=num_classes)
    # non-trivial BatchNorm statistics so eval-mode parity tests them too
    with torch.no_grad():
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1); m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5); m.bias.uniform_(-0.1, 0.1)
    ours = resnet.ResNet.from_torchvision(tv)
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        diff_eval = (ours.eval()(x) - tv.eval()(x)).abs().max().item()
        diff_train = (ours.train()(x) - tv.train()(x)).abs().max().item()
    assert diff_eval <= 1e-4, f"eval: max |ours - torchvision| = {diff_eval:.3g}"
    assert diff_train <= 1e-4, f"train: max |ours - torchvision| = {diff_train:.3g}"


def test_resnet18_parameter_count_matches_torchvision():
    import torchvision
    n_tv = sum(p.numel() for p in torchvision.models.resnet18(weights=None).parameters())
    n_ours = sum(p.numel() for p in resnet.resnet18().parameters())
    assert n_ours == n_tv == 11_689_512


def test_shortcut_options_parameter_counts():
    "A (zero-padding) adds no parameters, B projects only where dimensions change, C projects every shortcut."
    n = {s: sum(p.numel() for p in resnet.resnet_cifar(20, shortcut=s).parameters()) for s in "ABC"}
    n_plain = sum(p.numel() for p in resnet.resnet_cifar(20, plain=True).parameters())
    assert n_plain == n["A"] < n["B"] < n["C"], n
