"RepVGG (Ding et al. 2021): the common model tests, the fold's exactness, parity with timm before and after folding."
import copy

import pytest
import torch
from torch import nn

from model_testing import ModelTesterMixin
from vlnotes.convert import calibrate_batchnorm, randomise_batchnorm
from vlnotes.papers.repvgg import BRANCHES, RepVGG, RepVGGBlock, RepVGGConfig, fold_conv_bn

timm = pytest.importorskip("timm")
from timm.utils.model import reparameterize_model  # noqa: E402

SMALL = dict(layers=(1, 2, 1), widths=(8, 16, 24), stem_width=8, stem_stride=1, num_classes=5)


# ---- the common tests -------------------------------------------------------------------------------
class _RepVGGTester(ModelTesterMixin):
    image_size = 16
    branches = BRANCHES
    def build_model(self): return randomise_batchnorm(RepVGG(RepVGGConfig(**SMALL, branches=self.branches)))
    def make_variant_model(self): return RepVGG(RepVGGConfig(**{**SMALL, "widths": (8, 16, 32)}))
    def build_inputs(self, batch_size):
        return {"images": torch.rand(batch_size, 3, self.image_size, self.image_size)}
    def expected_output_shapes(self, batch_size):
        return {"logits": (batch_size, 5), "pooled": (batch_size, 24), "last_hidden_state": (batch_size, 24, 2, 2)}
    def bad_inputs(self): return self.image_bad_inputs("images")


class TestRepVGG(_RepVGGTester):
    pass


class TestRepVGGPlain(_RepVGGTester):
    "The ablation's plain network: one 3x3 branch per block."
    branches = ("3x3",)


class TestRepVGGFolded(_RepVGGTester):
    "The inference form: every block one 3x3 convolution with a bias (no BatchNorm left)."
    def build_model(self): return super().build_model().eval().reparameterize()


# ---- the fold ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cin,cout,stride", [(6, 6, 1), (6, 10, 1), (6, 6, 2), (3, 8, 2)])
@pytest.mark.parametrize("branches", [BRANCHES, ("3x3",), ("3x3", "1x1"), ("3x3", "identity"), ("1x1", "identity")])
def test_block_fold_is_exact(cin, cout, stride, branches):
    torch.manual_seed(0)
    block = randomise_batchnorm(RepVGGBlock(cin, cout, stride, branches)).eval()
    x = torch.randn(3, cin, 11, 9)                      # odd, non-square: the 1x1 and 3x3 sample the same centres
    with torch.no_grad():
        before = block(x)
        after = copy.deepcopy(block).reparameterize()(x)
    assert after.shape == before.shape
    assert (after - before).abs().max() <= 1e-5


def test_network_fold_is_exact_in_float64():
    torch.manual_seed(0)
    x = torch.randn(3, 3, 40, 40, dtype=torch.float64)
    ref = timm.create_model("repvgg_a0", pretrained=False, num_classes=6)
    ref = calibrate_batchnorm(randomise_batchnorm(ref), torch.randn(6, 3, 40, 40)).eval()
    model = RepVGG.from_timm(ref).eval().double()
    with torch.no_grad():
        before = model(x).logits
        after = model.reparameterize()(x).logits
    assert all(b.fused.weight.dtype == torch.float64 for b in model.blocks())
    assert (after - before).abs().max() <= 1e-10


def test_fold_removes_batchnorm_and_keeps_parameters_in_one_conv():
    model = randomise_batchnorm(RepVGG(RepVGGConfig(**SMALL))).eval().reparameterize()
    assert model.is_folded
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == len(model.blocks()) and all(c.kernel_size == (3, 3) and c.bias is not None for c in convs)
    # folding twice is a no-op
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.reparameterize()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_fold_conv_bn_by_hand():
    bn = nn.BatchNorm2d(1).eval()
    with torch.no_grad():
        bn.weight.fill_(2.0); bn.bias.fill_(0.5); bn.running_mean.fill_(1.0); bn.running_var.fill_(4.0 - bn.eps)
    w, b = fold_conv_bn(torch.ones(1, 1, 1, 1), bn)     # t = 2 / sqrt(4) = 1
    assert torch.allclose(w, torch.ones(1, 1, 1, 1)) and torch.allclose(b, torch.tensor([-0.5]))


def test_training_form_differs_from_plain_conv_in_training():
    "In train mode BN uses batch statistics, so the branches are not one convolution: the fold is for inference."
    torch.manual_seed(0)
    block = randomise_batchnorm(RepVGGBlock(4, 4)).train()
    folded = copy.deepcopy(block).eval().reparameterize()
    x = torch.randn(8, 4, 6, 6) * 3 + 1
    assert (block(x) - folded(x)).abs().max() > 1e-2


# ---- parity with timm -------------------------------------------------------------------------------
@pytest.mark.parametrize("name,num_classes,size", [("repvgg_a0", 7, 64), ("repvgg_a0", 0, 48), ("repvgg_b0", 3, 32)])
def test_timm_parity_before_and_after_folding(name, num_classes, size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size + 16)
    ref = timm.create_model(name, pretrained=False, num_classes=num_classes)
    # random scale and shift, running statistics of real activations: logits of a trained network's size
    ref = calibrate_batchnorm(randomise_batchnorm(ref), torch.randn(6, 3, size, size + 16)).eval()
    ours = RepVGG.from_timm(ref).eval()
    with torch.no_grad():
        want = ref(x)                                  # pooled features when num_classes=0
        got = ours(x).logits if num_classes else ours(x).pooled
        assert (got - want).abs().max() <= 1e-4
        folded_ref = reparameterize_model(ref)
        got_folded = copy.deepcopy(ours).reparameterize()(x)
        got_folded = got_folded.logits if num_classes else got_folded.pooled
        # the fold sums in another order: float32 rounding accumulated over 22 layers (pooled features reach ~20;
        # test_network_fold_is_exact_in_float64 shows the fold itself is exact)
        torch.testing.assert_close(got_folded, want, atol=5e-4, rtol=1e-4)
        from_folded = RepVGG.from_timm(folded_ref).eval()
        assert from_folded.is_folded
        again = from_folded(x).logits if num_classes else from_folded(x).pooled
        torch.testing.assert_close(again, want, atol=5e-4, rtol=1e-4)


def test_timm_parity_in_train_mode():
    torch.manual_seed(0)
    ref = timm.create_model("repvgg_a0", pretrained=False, num_classes=4)
    ref = calibrate_batchnorm(randomise_batchnorm(ref), torch.randn(6, 3, 32, 32)).train()
    ours = RepVGG.from_timm(ref)
    assert ours.training
    x = torch.randn(4, 3, 32, 32)
    assert (ours(x).logits - ref(x)).abs().max() <= 1e-4
    # both updated their running statistics the same way
    assert ref.training
    assert torch.allclose(ours.stem.conv3x3.bn.running_mean, ref.stem.conv_kxk.bn.running_mean, atol=1e-6)


def test_from_timm_layout_and_errors():
    ref = timm.create_model("repvgg_a0", pretrained=False)
    cfg = RepVGG.from_timm(ref).config
    assert (cfg.layers, cfg.widths, cfg.stem_width, cfg.stem_stride, cfg.num_classes) == (
        (2, 4, 14, 1), (48, 96, 192, 1280), 48, 2, 1000)
    with pytest.raises(TypeError, match="model: expected a timm RepVGG"):
        RepVGG.from_timm(timm.create_model("resnet18", pretrained=False))
    with pytest.raises(ValueError, match="model: expected RepVggBlocks"):
        RepVGG.from_timm(timm.create_model("mobileone_s0", pretrained=False))   # a ByobNet of other blocks
    with pytest.raises(ValueError, match="without attention or groups"):
        RepVGG.from_timm(timm.create_model("repvgg_b1g4", pretrained=False))    # grouped 3x3 convolutions
    with pytest.raises(TypeError, match="model: expected a timm RepVGG"):
        RepVGG.from_timm(nn.Linear(2, 2))


@pytest.mark.parametrize("bad,match", [
    (dict(layers=(1, 2), widths=(8,)), "layers and widths"),
    (dict(layers=(0,), widths=(8,)), r"layers\[0\]"),
    (dict(branches=("identity",)), "branches: expected '3x3' or '1x1'"),
    (dict(branches=("3x3", "3x3")), "branches: expected distinct names"),
    (dict(branches=("5x5",)), "branches: expected distinct names"),
    (dict(stem_stride=4), "stem_stride"),
    (dict(eps=0.0), "eps"),
])
def test_bad_configs(bad, match):
    with pytest.raises(ValueError, match=match):
        RepVGGConfig(**bad)
