"MoE, CondConv, CoE: the common model tests, routing invariants, parity with transformers (Mixtral, Switch) and timm."

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model_testing import ModelTesterMixin
from vlnotes.papers.moe import (CoE, CoEConfig, CondCNN, CondCNNConfig, CondConv2d, CondConvConfig, ConvFFN, MoEConfig,
                                MoEViT, MoEViTConfig, RoutedBranchConv, SparseMoE, balanced_assignment, capacity_mask,
                                coe_loss, load_balancing_loss, route)

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")
from transformers import MixtralConfig, SwitchTransformersConfig  # noqa: E402
from transformers.models.mixtral import modeling_mixtral  # noqa: E402
from transformers.models.switch_transformers import modeling_switch_transformers as modeling_switch  # noqa: E402


# ---- the common tests -------------------------------------------------------------------------------
class _MoETester(ModelTesterMixin):
    config = dict(dim=8, mlp_dim=12, num_experts=4, top_k=2)
    def build_model(self): return SparseMoE(MoEConfig(**self.config))
    def make_variant_model(self): return SparseMoE(MoEConfig(**{**self.config, "num_experts": 3, "top_k": 1}))
    def build_inputs(self, batch_size): return {"x": torch.randn(batch_size, 5, 8)}
    # the aux loss is a batch statistic and the routing indices are integers: compare the per-token outputs
    def outputs(self, model, **inputs):
        o = model(**inputs)
        return {"last_hidden_state": o.last_hidden_state, "router_logits": o.router_logits}
    def expected_output_shapes(self, batch_size):
        return {"last_hidden_state": (batch_size, 5, 8), "router_logits": (batch_size, 5, 4)}
    def bad_inputs(self):
        nan = torch.randn(2, 5, 8); nan[0, 1, 2] = float("nan")
        return [("wrong width", {"x": torch.randn(2, 5, 7)}, ValueError, ("x", "expected", "8")),
                ("rank 2", {"x": torch.randn(5, 8)}, ValueError, ("x", "expected", "3-d")),
                ("empty batch", {"x": torch.randn(0, 5, 8)}, ValueError, ("x",)),
                ("NaN", {"x": nan}, ValueError, ("x", "finite", "nan")),
                ("integer", {"x": torch.ones(2, 5, 8, dtype=torch.long)}, ValueError, ("x", "float")),
                ("not a tensor", {"x": [[0.0] * 8]}, TypeError, ("x", "tensor"))]


class TestSparseMoE(_MoETester):
    pass


class TestSparseMoESwitch(_MoETester):
    "Switch-style: top-1, dense-act-dense experts, weights p (not renormalised), capacity (tokens dropped)."
    config = dict(dim=8, mlp_dim=12, num_experts=4, top_k=1, expert="mlp", normalize_weights=False, capacity_factor=1.0)
    # bf16 can flip a near-tie between two experts, and with capacity a flip can move which token is dropped
    bf16_rel_tol = 0.2


class TestCondConv2d(ModelTesterMixin):
    image_size = 9
    channels = 4
    def build_model(self): return CondConv2d(CondConvConfig(4, 6, 3, 1, bias=True, num_experts=3))
    def make_variant_model(self): return CondConv2d(CondConvConfig(4, 6, 3, 1, num_experts=2))
    def build_inputs(self, batch_size): return {"x": torch.randn(batch_size, 4, 9, 9)}
    def expected_output_shapes(self, batch_size): return {"output": (batch_size, 6, 9, 9)}
    def bad_inputs(self): return self.image_bad_inputs("x")


class TestRoutedBranchConv(ModelTesterMixin):
    image_size = 9
    channels = 4
    def build_model(self): return RoutedBranchConv(4, 4, 1, top_k=2)
    def make_variant_model(self): return RoutedBranchConv(4, 4, 2, top_k=2)     # stride 2: no identity branch
    def build_inputs(self, batch_size): return {"x": torch.randn(batch_size, 4, 9, 9)}
    def model_config(self, model): return {"in_channels": 4, "out_channels": 4, "stride": 1, "top_k": 2}
    def bad_inputs(self): return self.image_bad_inputs("x")


class TestMoEViT(ModelTesterMixin):
    image_size = 16
    config = dict(image_size=16, patch_size=4, dim=16, depth=2, heads=2, mlp_dim=16, num_classes=5, num_experts=3)
    def build_model(self): return MoEViT(MoEViTConfig(**self.config))
    def make_variant_model(self): return MoEViT(MoEViTConfig(**{**self.config, "num_experts": 2}))
    def build_inputs(self, batch_size): return {"images": torch.rand(batch_size, 3, 16, 16)}
    def outputs(self, model, **inputs):
        o = model(**inputs)
        return {"logits": o.logits, "last_hidden_state": o.last_hidden_state}
    def expected_output_shapes(self, batch_size): return {"logits": (batch_size, 16, 5)}
    def bad_inputs(self): return self.image_bad_inputs("images")


class TestMoEViTConv(TestMoEViT):
    config = {**TestMoEViT.config, "ffn": "conv", "kernel_sizes": (1, 3, 5)}
    def make_variant_model(self): return MoEViT(MoEViTConfig(**{**self.config, "kernel_sizes": (1, 3)}))


class TestCondCNN(ModelTesterMixin):
    image_size = 16
    conv = "condconv"
    def build_model(self): return CondCNN(CondCNNConfig((4, 8, 8), conv=self.conv, num_experts=3))
    def make_variant_model(self): return CondCNN(CondCNNConfig((4, 8, 16), conv=self.conv, num_experts=3))
    def build_inputs(self, batch_size): return {"images": torch.rand(batch_size, 3, 16, 16)}
    def expected_output_shapes(self, batch_size): return {"logits": (batch_size, 6), "pooled": (batch_size, 8)}
    def bad_inputs(self): return self.image_bad_inputs("images")


class TestCondCNNBranches(TestCondCNN):
    conv = "branches"


class TestCondCNNStatic(TestCondCNN):
    conv = "conv"


class TestCoE(ModelTesterMixin):
    image_size = 16
    def build_model(self): return CoE(CoEConfig(num_experts=3, expert_widths=(4, 8), delegator_widths=(4, 8)))
    def make_variant_model(self): return CoE(CoEConfig(num_experts=2, expert_widths=(4, 8), delegator_widths=(4, 8)))
    def build_inputs(self, batch_size): return {"images": torch.rand(batch_size, 3, 16, 16)}
    def outputs(self, model, **inputs):
        o = model(**inputs)
        return {"logits": o.logits, "expert_scores": o.expert_scores, "rough_logits": o.rough_logits}
    # in train mode only the chosen expert runs per image: the others get no gradient from the forward (coe_loss
    # trains all of them, tested below)
    test_every_parameter_gets_a_finite_gradient = None
    def bad_inputs(self): return self.image_bad_inputs("images")


# ---- routing, capacity, the auxiliary loss -----------------------------------------------------------
def test_route_weights():
    logits = torch.randn(10, 6)
    p, w, i = route(logits, 3)
    assert torch.allclose(w.sum(-1), torch.ones(10)) and (i == logits.topk(3).indices).all()
    p, w, i = route(logits, 1, normalize=False)
    assert torch.allclose(w[:, 0], p.max(-1).values)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_load_balancing_loss_equals_mixtral(k):
    torch.manual_seed(k)
    logits = torch.randn(40, 6) * 2
    p, _, i = route(logits, k)
    ref = modeling_mixtral.load_balancing_loss_func((logits,), 6, k)
    assert abs(load_balancing_loss(p, i) - ref) <= 1e-5
    # bounds: k at uniform routing, E when every token goes to one expert with certainty (k = 1)
    uniform = torch.full((12, 6), 1 / 6)
    balanced = torch.stack([(torch.arange(12) + j) % 6 for j in range(k)], 1)
    assert abs(load_balancing_loss(uniform, balanced) - k) <= 1e-5


def test_capacity_mask_order_and_count():
    torch.manual_seed(0)
    index = torch.stack([torch.randperm(4)[:2] for _ in range(30)])[None]          # (1, 30, 2)
    keep = capacity_mask(index, 4, 5)
    for e in range(4): assert int(((index == e) & keep).sum()) == min(5, int((index == e).sum()))
    # a first choice is never dropped while a second choice to the same expert is kept
    for e in range(4):
        first_dropped = ((index[..., 0] == e) & ~keep[..., 0]).any()
        second_kept = ((index[..., 1] == e) & keep[..., 1]).any()
        assert not (first_dropped and second_kept)


def test_capacity_drops_tokens_through_zero_output():
    torch.manual_seed(0)
    moe = SparseMoE(MoEConfig(dim=8, mlp_dim=12, num_experts=4, top_k=1, expert_capacity=2)).eval()
    x = torch.randn(2, 16, 8)
    out = moe(x)
    dropped = out.expert_index[..., 0] < 0
    assert dropped.any() and (out.last_hidden_state[dropped] == 0).all()
    assert ((out.expert_index >= 0).sum(1) <= 2 * 4).all()
    free = SparseMoE(MoEConfig(dim=8, mlp_dim=12, num_experts=4, top_k=1))
    free.load_state_dict(moe.state_dict())
    kept = ~dropped
    assert torch.allclose(free.eval()(x).last_hidden_state[kept], out.last_hidden_state[kept], atol=1e-6)


def test_top_k_equal_experts_is_a_dense_soft_mixture():
    "Idea 1.3's layer: k = E runs every expert, weighted by the softmax."
    torch.manual_seed(0)
    moe = SparseMoE(MoEConfig(dim=8, mlp_dim=12, num_experts=3, top_k=3)).eval()
    x = torch.randn(2, 4, 8)
    p = moe.router(x).softmax(-1).reshape(-1, 3)
    want = sum(p[:, e, None] * moe.experts.ffn(e, x.reshape(-1, 8)) for e in range(3)).view(2, 4, 8)
    assert torch.allclose(moe(x).last_hidden_state, want, atol=1e-5)


def test_one_expert_is_an_mlp():
    moe = SparseMoE(MoEConfig(dim=8, mlp_dim=12, num_experts=1, top_k=1, expert="mlp", act="gelu"))
    x = torch.randn(2, 4, 8)
    want = F.gelu(x @ moe.experts.w_in[0].T) @ moe.experts.w_out[0].T
    assert torch.allclose(moe(x).last_hidden_state, want, atol=1e-6)


def test_router_jitter_only_in_training():
    moe = SparseMoE(MoEConfig(dim=8, mlp_dim=12, num_experts=4, router_jitter=0.5))
    x = torch.randn(2, 5, 8)
    assert torch.equal(moe.eval()(x).router_logits, moe(x).router_logits)
    torch.manual_seed(0)
    assert not torch.equal(moe.train()(x).router_logits, moe.eval()(x).router_logits)


@pytest.mark.parametrize("bad,match", [
    (dict(num_experts=4, top_k=5), "top_k"), (dict(num_experts=0), "num_experts"), (dict(expert="glu"), "expert"),
    (dict(capacity_factor=1.0, expert_capacity=2), "at most one"), (dict(capacity_factor=0.0), "capacity_factor"),
    (dict(router_jitter=1.0), "router_jitter"), (dict(aux_loss_weight=-1.0), "aux_loss_weight"), (dict(dim=0), "dim")])
def test_bad_moe_configs(bad, match):
    with pytest.raises(ValueError, match=match): MoEConfig(**bad)


# ---- parity with transformers -----------------------------------------------------------------------
def _mixtral(k, experts=8, dim=16, mlp_dim=24, seed=0):
    torch.manual_seed(seed)
    cfg = MixtralConfig(hidden_size=dim, intermediate_size=mlp_dim, num_local_experts=experts, num_experts_per_tok=k,
                        experts_implementation="eager")     # used alone: name the experts forward (no warning)
    block = modeling_mixtral.MixtralSparseMoeBlock(cfg)
    with torch.no_grad():
        for p in block.parameters(): p.normal_(0, 0.3)
    return block.eval()


@pytest.mark.parametrize("k,experts", [(1, 8), (2, 8), (2, 4), (3, 6)])
def test_mixtral_parity(k, experts):
    ref = _mixtral(k, experts)
    ours = SparseMoE.from_hf(ref)
    assert (ours.config.top_k, ours.config.num_experts, ours.config.expert) == (k, experts, "swiglu")
    x = torch.randn(3, 11, 16)
    with torch.no_grad():
        o = ours(x)
        assert (o.last_hidden_state - ref(x)).abs().max() <= 1e-4
        logits = ref.gate(x.reshape(-1, 16))[0]
        assert torch.allclose(o.router_logits.reshape(-1, experts), logits, atol=1e-6)
        assert abs(o.aux_loss - modeling_mixtral.load_balancing_loss_func((logits,), experts, k)) <= 1e-5
        # the comparison can fail: perturb one expert and the outputs differ
        ours.experts.w_out[0] += 1
        assert (ours(x).last_hidden_state - ref(x)).abs().max() > 1e-3


@pytest.mark.parametrize("capacity,act,bias", [(64, "relu", False), (2, "relu", False), (3, "gelu_new", True)])
def test_switch_parity(capacity, act, bias):
    torch.manual_seed(0)
    cfg = SwitchTransformersConfig(d_model=16, d_ff=24, num_experts=4, expert_capacity=capacity, dense_act_fn=act,
                                   router_bias=bias)
    ref = modeling_switch.SwitchTransformersSparseMLP(cfg).eval()
    ours = SparseMoE.from_hf(ref)
    assert ours.config.expert_capacity == capacity and ours.config.router_bias == bias
    x = torch.randn(3, 12, 16)
    with torch.no_grad():
        o = ours(x)
        assert (o.last_hidden_state - ref(x)).abs().max() <= 1e-4
        selected, _, logits = ref.router(x)
        assert torch.equal(o.expert_index[..., 0] >= 0, selected.any(-1))
        per_seq = torch.stack([load_balancing_loss(logits[b].softmax(-1), logits[b].argmax(-1, keepdim=True))
                               for b in range(3)]).mean()
        assert abs(per_seq - modeling_switch.load_balancing_loss_func(logits.softmax(-1), logits.argmax(-1))) <= 1e-5


def test_from_hf_errors():
    with pytest.raises(TypeError, match="module: expected one of"): SparseMoE.from_hf(nn.Linear(2, 2))
    cfg = MixtralConfig(hidden_size=8, intermediate_size=8, num_local_experts=2, num_experts_per_tok=1, hidden_act="gelu")
    with pytest.raises(ValueError, match="silu"): SparseMoE.from_hf(modeling_mixtral.MixtralSparseMoeBlock(cfg))


# ---- CondConv: the fold, parity with timm -----------------------------------------------------------
@pytest.mark.parametrize("cin,cout,k,stride,groups,bias,dilation", [
    (4, 8, 3, 1, 1, False, 1), (4, 8, 5, 2, 1, True, 1), (8, 8, 3, 1, 4, True, 1), (4, 6, 3, 1, 1, False, 2),
    (4, 6, 1, 2, 1, True, 1)])
def test_condconv_timm_parity(cin, cout, k, stride, groups, bias, dilation):
    torch.manual_seed(0)
    ref = timm.layers.CondConv2d(cin, cout, k, stride, dilation=dilation, groups=groups, bias=bias, num_experts=3)
    routing_fn = nn.Linear(cin, 3)
    x = torch.randn(3, cin, 13, 11)
    ours = CondConv2d.from_timm(ref, routing_fn)
    with torch.no_grad():
        assert (ours(x) - ref(x, torch.sigmoid(routing_fn(x.mean((2, 3)))))).abs().max() <= 1e-4
        r = torch.rand(3, 3)
        assert (ours(x, r) - ref(x, r)).abs().max() <= 1e-4


def test_condconv_is_the_routed_sum_of_expert_convolutions():
    torch.manual_seed(0)
    cc = CondConv2d(CondConvConfig(4, 6, 3, 2, bias=True, num_experts=5))
    x = torch.randn(3, 4, 10, 10)
    r = cc.routing(x)
    want = sum(r[:, e, None, None, None] * F.conv2d(x, cc.weight[e], cc.bias[e], 2, 1) for e in range(5))
    assert torch.allclose(cc(x), want, atol=1e-5)
    # training runs the mixture-of-experts form, inference the mixed kernel: the same function
    assert torch.allclose(cc.train()(x), cc.eval()(x), atol=1e-5)
    grouped = CondConv2d(CondConvConfig(4, 8, 3, groups=2, num_experts=3))
    assert torch.allclose(grouped.train()(x), grouped.eval()(x), atol=1e-5)
    # one expert and routing 1 is an ordinary convolution
    one = CondConv2d(CondConvConfig(4, 6, 3, num_experts=1))
    assert torch.allclose(one(x, torch.ones(3, 1)), F.conv2d(x, one.weight[0], None, 1, 1), atol=1e-6)


def test_condconv_errors():
    with pytest.raises(TypeError, match="module: expected a timm.layers.CondConv2d"):
        CondConv2d.from_timm(nn.Conv2d(3, 3, 3))
    with pytest.raises(ValueError, match="dynamic"):
        CondConv2d.from_timm(timm.layers.CondConv2d(4, 4, 3, 2, padding="same"))
    with pytest.raises(ValueError, match="routing_fn"):
        CondConv2d.from_timm(timm.layers.CondConv2d(4, 4, 3, num_experts=2), nn.Linear(4, 3))
    with pytest.raises(ValueError, match="groups"): CondConvConfig(in_channels=6, groups=4)
    with pytest.raises(ValueError, match="routing_weights"): CondConv2d()(torch.randn(2, 16, 5, 5), torch.rand(2, 3))


# ---- idea 1.1, idea 1.2, CoE ------------------------------------------------------------------------
@pytest.mark.parametrize("cin,cout,stride,k", [(6, 6, 1, 1), (6, 6, 1, 2), (6, 6, 1, 3), (6, 9, 2, 2), (6, 6, 2, 1)])
def test_routed_branches_fold_exactly(cin, cout, stride, k):
    torch.manual_seed(0)
    rb = RoutedBranchConv(cin, cout, stride, k).train()
    with torch.no_grad(): rb.router.weight.mul_(10)
    x = torch.randn(5, cin, 11, 9)
    g = rb.gates(x)
    assert ((g > 0).sum(1) == k).all() and torch.allclose(g.sum(1), torch.ones(5))
    assert (rb(x, fold=True) - rb(x)).abs().max() <= 1e-5


def test_conv_ffn_with_kernel_one_is_the_mlp():
    from vlnotes.layers import MLP
    torch.manual_seed(0)
    mlp, conv = MLP(8, 16), ConvFFN(8, 16)
    with torch.no_grad():
        conv.fc1.weight.copy_(mlp.fc1.weight[:, :, None, None]); conv.fc1.bias.copy_(mlp.fc1.bias)
        conv.fc2.weight.copy_(mlp.fc2.weight[:, :, None, None]); conv.fc2.bias.copy_(mlp.fc2.bias)
    x = torch.randn(2, 20, 8)
    assert torch.allclose(conv(x, (4, 5)), mlp(x), atol=1e-5)
    with pytest.raises(ValueError, match="kernel_sizes"): ConvFFN(8, 16, (1, 4))


def test_balanced_assignment_and_coe_training_step():
    torch.manual_seed(0)
    for B, E in ((12, 3), (16, 4), (10, 5)):
        a = balanced_assignment(torch.randn(B, E) * 2)
        assert torch.bincount(a, minlength=E).max() <= B // E + 1
    model = CoE(CoEConfig(num_experts=2, expert_widths=(4, 8), delegator_widths=(4, 8)))
    images, labels = torch.rand(6, 3, 16, 16), torch.randint(0, 6, (6,))
    out = coe_loss(model, images, labels)
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_moevit_aux_loss_and_routing_outputs():
    torch.manual_seed(0)
    model = MoEViT(MoEViTConfig(image_size=16, patch_size=4, dim=16, depth=3, heads=2, mlp_dim=16, num_experts=4))
    out = model(torch.rand(2, 3, 16, 16))
    assert len(out.router_logits) == 3 and out.expert_index[0].shape == (2, 16, 1)
    assert out.aux_loss.ndim == 0 and out.aux_loss > 0
    want = sum(load_balancing_loss(lg.softmax(-1), ix) for lg, ix in zip(out.router_logits, out.expert_index))
    assert torch.allclose(out.aux_loss, want)
    conv = MoEViT(MoEViTConfig(image_size=16, patch_size=4, dim=16, heads=2, ffn="conv"))
    assert conv(torch.rand(2, 3, 16, 16)).aux_loss == 0 and conv(torch.rand(2, 3, 16, 16)).router_logits == ()
