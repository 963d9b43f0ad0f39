"The claims file is strict JSON that round-trips: non-finite values as strings, tensors as numbers, nothing half-saved."
import json
import math

import pytest
import torch
from torch import nn

from vlnotes.core import ClaimRegistry, Settings, load_claims, seed_stats


def strict(text: str):
    def refuse(name): raise AssertionError(f"bare {name} in the claims file")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_values_are_strict_json_and_round_trip(tmp_path):
    reg = ClaimRegistry("demo", tmp_path, settings=Settings(quick=True))
    reg.check("C1", "diverged", {"loss": float("nan"), "best": torch.tensor(float("inf")), "worst": -math.inf,
                                 "acc": seed_stats([0.5, 0.7]), "xs": [1.0, float("nan")]}, "not loss < 1")
    rows = strict(reg.path.read_text())
    assert rows[0]["measured"]["loss"] == "nan" and rows[0]["measured"]["best"] == "inf"
    back = load_claims(tmp_path)[0]
    values = back.values()
    assert math.isnan(values["loss"]) and values["best"] == math.inf and values["worst"] == -math.inf
    assert values["acc"].mean == pytest.approx(0.6) and math.isnan(values["xs"][1])
    assert "loss=nan" in back.short_measured()


def test_tensor_scalars_are_stored_as_floats(tmp_path):
    reg = ClaimRegistry("demo", tmp_path, settings=Settings(quick=True))
    reg.check("C1", "s", {"acc": torch.tensor(0.25), "n": torch.tensor(3)}, "acc < 1")
    assert strict(reg.path.read_text())[0]["measured"] == {"acc": 0.25, "n": 3}


def test_a_claim_that_cannot_be_saved_is_not_recorded(tmp_path):
    reg = ClaimRegistry("demo", tmp_path, settings=Settings(quick=True))
    with pytest.raises(TypeError, match="claim C1: measured"): reg.check("C1", "s", {"m": nn.Linear(1, 1)}, "True")
    assert reg.claims == {}
    reg.check("C2", "s", {"a": 1}, "a > 0")                  # the registry still works after the refusal
    assert [c.claim_id for c in load_claims(tmp_path)] == ["C2"]
