"vlnotes.convert: renaming rules, strict loading, transformers activation names, the parity check."
import math

import pytest
import torch
from torch import nn

from vlnotes.convert import (HF_ACTIVATIONS, assert_close_outputs, hf_activation, load_strict, max_abs_diff,
                             rename_state_dict)
from vlnotes.layers import ACTIVATIONS


# ---- rename_state_dict --------------------------------------------------------------------------------
RULES = [(r"^enc\.layer\.(\d+)\.attn\.", r"blocks.\1.attention."),
         (r"^enc\.layer\.(\d+)\.", r"blocks.\1."),
         (r"^cls$", "cls_token", lambda t: t.reshape(1, 1, -1))]


def test_rename_first_rule_wins_groups_and_transforms():
    state = {"enc.layer.0.attn.weight": torch.zeros(2), "enc.layer.11.norm.bias": torch.ones(3),
             "cls": torch.arange(4.)}
    out = rename_state_dict(state, RULES)
    assert list(out) == ["blocks.0.attention.weight", "blocks.11.norm.bias", "cls_token"]
    assert out["cls_token"].shape == (1, 1, 4) and out["blocks.11.norm.bias"] is state["enc.layer.11.norm.bias"]


def test_rename_unmatched_keys_raise():
    with pytest.raises(ValueError, match=r"a checkpoint: expected every key to match a renaming rule, "
                                         r"got 1 unmatched: \['decoder.weight'\]"):
        rename_state_dict({"cls": torch.zeros(1), "decoder.weight": torch.zeros(1)}, RULES, "a checkpoint")
    many = {f"x{i}": torch.zeros(1) for i in range(9)}
    with pytest.raises(ValueError, match=r"got 9 unmatched: .*'x5'\] \.\.\."):
        rename_state_dict(many, RULES)


def test_rename_refuses_two_keys_on_one_target():
    with pytest.raises(ValueError, match=r"'a.x' and 'b.x' both renamed to 'x'"):
        rename_state_dict({"a.x": torch.zeros(1), "b.x": torch.zeros(1)}, [(r"^[ab]\.", "")])


@pytest.mark.parametrize("rule", [("^cls$",), ["^cls$", "x"], (3, "x"), ("^cls$", "x", "not callable")])
def test_rename_bad_rules(rule):
    with pytest.raises(TypeError, match=r"rules: expected \(pattern: str, replacement: str, \[fn\]\) tuples"):
        rename_state_dict({"cls": torch.zeros(1)}, [rule])


# ---- load_strict --------------------------------------------------------------------------------------
def net():
    return nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))


def test_load_strict_copies_matching_state():
    torch.manual_seed(0)
    a, b = net(), net()
    assert load_strict(b, a.state_dict()) is b
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_load_strict_reports_every_kind_of_mismatch():
    model = net()
    bad = dict(model.state_dict(), extra=torch.zeros(1))
    bad["0.weight"] = torch.zeros(4, 5)
    del bad["1.bias"]
    before = model[0].weight.detach().clone()
    with pytest.raises(ValueError) as e: load_strict(model, bad, "a checkpoint")
    msg = str(e.value)
    assert msg.startswith("a checkpoint does not match Sequential")
    assert "missing (1): ['1.bias']" in msg and "unexpected (1): ['extra']" in msg
    assert "0.weight: expected (4, 3), got (4, 5)" in msg
    assert torch.equal(model[0].weight, before)          # nothing was loaded


# ---- activation names ---------------------------------------------------------------------------------
def test_hf_activation_names_map_into_layers():
    assert set(HF_ACTIVATIONS.values()) <= set(ACTIVATIONS)
    assert hf_activation("gelu_new") == hf_activation("gelu_pytorch_tanh") == "gelu_tanh"
    assert hf_activation("quick_gelu", "text_config.hidden_act") == "quick_gelu"


@pytest.mark.parametrize("name", ["silu", "swish", None, 3])
def test_hf_activation_unknown(name):
    with pytest.raises(ValueError, match=rf"vision_config.hidden_act: expected one of \['gelu', .*got {name!r}"):
        hf_activation(name, "vision_config.hidden_act")


# ---- max_abs_diff / assert_close_outputs --------------------------------------------------------------
A, B = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[1.0, 2.5], [2.0, 4.0]])


def test_max_abs_diff_hand_cases_and_structures():
    assert max_abs_diff(A, B) == 1.0
    assert max_abs_diff(A, A) == 0.0
    assert max_abs_diff([A, (A, {"x": A})], [A, (A, {"x": B})]) == 1.0
    assert max_abs_diff({"h": (A, A), "pooled": None}, {"h": [A, A + 0.25], "pooled": None}) == 0.25
    assert max_abs_diff(2, 2.75) == 0.75
    assert max_abs_diff(torch.zeros(0, 3), torch.zeros(0, 3)) == 0.0
    # float64 on the CPU: mixed dtypes compare by value
    assert max_abs_diff(A.to(torch.bfloat16), A.double()) == 0.0


def test_max_abs_diff_nan_is_never_close():
    nan = torch.tensor([0.0, float("nan")])
    assert math.isnan(max_abs_diff(nan, torch.zeros(2)))
    assert math.isnan(max_abs_diff([torch.ones(1) * 5, nan], [torch.zeros(1), torch.zeros(2)]))
    with pytest.raises(AssertionError, match="exceeds atol"):
        assert_close_outputs(nan, nan)
    with pytest.raises(AssertionError, match="exceeds atol"):
        assert_close_outputs(torch.tensor([math.inf]), torch.tensor([math.inf]))


@pytest.mark.parametrize("a,b,error,words", [
    (A, A[0], ValueError, "expected equal shapes, got (2, 2) and (2,)"),
    (A, A.reshape(1, 4), ValueError, "expected equal shapes"),                 # no broadcasting
    ([A], [A, A], ValueError, "same length, got 1 and 2"),
    ({"x": A}, {"y": A}, ValueError, "only-left ['x'], only-right ['y']"),
    ({"x": A}, {"x": None}, ValueError, "output['x']: expected both sides or neither to be None"),
    ({"x": A}, [A], TypeError, "expected two mappings"),
    ([A], A, TypeError, "expected two sequences"),
    ("abc", "abc", TypeError, "got a string"),
    ([], [], ValueError, "at least one pair"),
])
def test_max_abs_diff_mismatched_structures(a, b, error, words):
    with pytest.raises(error) as e: max_abs_diff(a, b)
    assert words in str(e.value), str(e.value)


def test_assert_close_outputs_returns_the_diff_and_names_offenders():
    assert abs(assert_close_outputs(A, A + 1e-6) - 1e-6) < 1e-7
    assert assert_close_outputs(A, B, atol=1.0) == 1.0
    with pytest.raises(AssertionError) as e:
        assert_close_outputs({"logits": A, "pooled": A, "tokens": A}, {"logits": B, "pooled": A, "tokens": A + 0.5},
                             what="ViT vs transformers")
    msg = str(e.value)
    assert msg.startswith("ViT vs transformers: max |ours - reference| exceeds atol=0.0001 in 2 of 3 outputs")
    assert msg.index("['logits'] 1") < msg.index("['tokens'] 0.5") and "pooled" not in msg   # worst first


@pytest.mark.parametrize("atol,error", [(-1e-4, ValueError), (math.inf, ValueError), (float("nan"), ValueError),
                                        ("1e-4", TypeError), (True, TypeError)])
def test_assert_close_outputs_bad_atol(atol, error):
    with pytest.raises(error, match="atol: expected a (finite )?number >= 0"):
        assert_close_outputs(A, A, atol=atol)
