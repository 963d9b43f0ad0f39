"""Bad-input matrix for the core and the small foundations: settings, validators, configs, seed statistics, the claim
registry and its files, convert, losses, evaluate and captioning (see `badinput.py` for the kit)."""
import json
import os

import numpy as np
import pytest
import torch
from badinput import Case, case_ids, check_case
from torch import nn

from vlnotes import core
from vlnotes.captioning import Captioner, CaptionerConfig, caption_loss, check_tokens, generate, sequence_log_likelihood
from vlnotes.convert import assert_close_outputs, hf_activation, load_strict, max_abs_diff, rename_state_dict
from vlnotes.core import (ClaimRegistry, Config, SeedStats, check_choice, check_dtype, check_finite, check_float,
                          check_int, check_nonempty, check_pair, check_range, check_same_batch, claims_markdown,
                          evaluate_expectation, get_settings, load_claims, num_params, seed_everything, seed_stats)
from vlnotes.evaluate import (ZeroShotClassifier, accuracy, few_shot_indices, fit_linear_probe, linear_probe,
                              recall_at_k)
from vlnotes.losses import clip_loss, clip_loss_distributed, gather_with_grad

NAN, INF = float("nan"), float("inf")


def env(read=get_settings, **kw):
    "A call that runs `read` (default: reads the settings) with the environment variables `kw` set."
    def call():
        old = {k: os.environ.get(k) for k in kw}
        os.environ.update(kw)
        try: return read()
        finally:
            for k, v in old.items():
                if v is None: os.environ.pop(k)
                else: os.environ[k] = v
    return call


def registry(tmp_path): return ClaimRegistry("demo", tmp_path, settings=core.Settings(quick=True))


def claims_file(text):
    "A call that reads the claims file `demo.json` holding `text`."
    def call(tmp_path):
        (tmp_path / "claims").mkdir(exist_ok=True)
        (tmp_path / "claims" / "demo.json").write_text(text if isinstance(text, str) else json.dumps(text))
        return load_claims(tmp_path, "demo")
    return call


ROW = {"paper": "demo", "claim_id": "C1", "statement": "s", "measured": {"a": 1}, "expectation": "a > 0",
       "verdict": "reproduced"}
def row(**kw): return [{**ROW, **kw}]
def without(key): return [{k: v for k, v in ROW.items() if k != key}]


def nested_config():
    from dataclasses import dataclass, field

    @dataclass
    class TinyTower(Config):
        dim: int = 2

    @dataclass
    class TinyOuter(Config):
        tower: Config = field(default_factory=TinyTower)
    return TinyOuter


F = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
LOGITS = torch.randn(2, 3, 20)
IDS = torch.tensor([[2, 5, 3], [2, 6, 3]])
SD = {"a.w": torch.zeros(2), "b.w": torch.zeros(2)}


def captioner():
    torch.manual_seed(0)
    return Captioner(CaptionerConfig(vocab_size=20, context_length=8, dim=8, depth=1, heads=2)).eval()


def zsc(): return ZeroShotClassifier(torch.randn(2, 3), ["a", "b"])


Y4 = torch.tensor([0, 1, 0, 1])

CASES = [
    # ---- settings and seeding --------------------------------------------------------------------------------------
    Case("core.Settings", "type", env(VLNOTES_SEED="abc"), ValueError, arg="VLNOTES_SEED",
         expected="integer in [0,", got="'abc'", note="was clear"),
    Case("core.Settings", "huge", env(VLNOTES_SEED="99999999999999999999999"), ValueError, arg="VLNOTES_SEED",
         expected="integer in [0, 9223372036854775807]", got="99999999999999999999999", note="was silent"),
    Case("core.Settings", "negative", env(VLNOTES_SEED="-1"), ValueError, arg="VLNOTES_SEED",
         expected="integer in [0,", got="'-1'", note="was clear"),
    Case("core.Settings", "empty", env(VLNOTES_SEED=""), ValueError, arg="VLNOTES_SEED",
         expected="integer in [0,", got="''", note="was clear"),
    Case("core.Settings", "value", env(VLNOTES_SEED="٣"), ValueError, arg="VLNOTES_SEED",
         expected="integer in [0,", got="'٣'", note="was silent (a non-ASCII digit read as 3)"),
    Case("core.Settings", "value", env(VLNOTES_QUICK="maybe"), ValueError, arg="VLNOTES_QUICK",
         expected="expected one of", got="'maybe'", note="was silent (meant full mode)"),
    Case("core.Settings", "empty", env(VLNOTES_QUICK=""), ValueError, arg="VLNOTES_QUICK",
         expected="expected one of", got="''", note="was silent (meant full mode)"),
    Case("core.Settings", "empty", env(VLNOTES_RESULTS_DIR=""), ValueError, arg="VLNOTES_RESULTS_DIR",
         expected="a directory path", got="empty string", note="was silent (the current directory)"),
    Case("core.Settings", "empty", env(VLNOTES_CACHE_DIR=" "), ValueError, arg="VLNOTES_CACHE_DIR",
         expected="a directory path", got="empty string", note="was silent (the current directory)"),
    Case("core.seed_everything", "huge", lambda: seed_everything(2**70), ValueError, arg="seed",
         expected="<= 9223372036854775807", got="1180591620717411303424", note="was cryptic (Overflow when unpacking)"),
    Case("core.seed_everything", "negative", lambda: seed_everything(-1), ValueError, arg="seed",
         expected="int >= 0", got="-1", note="was clear"),
    Case("core.seed_everything", "type", lambda: seed_everything(0, deterministic="no"), TypeError,
         arg="deterministic", expected="True or False", got="'no'", note="was silent"),
    # ---- scalar and tensor validators ------------------------------------------------------------------------------
    Case("core.check_int", "nan", lambda: check_int(NAN, "n"), TypeError, arg="n", expected="an int", got="nan",
         note="was clear"),
    Case("core.check_int", "type", lambda: check_int(True, "n"), TypeError, arg="n", expected="an int", got="bool",
         note="was clear"),
    Case("core.check_int", "huge", lambda: check_int(np.int64(2**40), "n", high=10), ValueError, arg="n",
         expected="<= 10", got="1099511627776", note="was clear"),
    Case("core.check_float", "type", lambda: check_float("1.0", "x"), TypeError, arg="x", expected="a number",
         got="str '1.0'", note="was clear"),
    Case("core.check_float", "type", lambda: check_float(None, "x"), TypeError, arg="x", expected="a number",
         got="NoneType", note="was clear"),
    Case("core.check_float", "huge", lambda: check_float(10**400, "x"), ValueError, arg="x",
         expected="finite number", got="1000000", note="was cryptic (OverflowError)"),
    Case("core.check_pair", "type", lambda: check_pair((2.5, 3), "size"), ValueError, arg="size",
         expected="pair (h, w) of positive ints", got="(2.5, 3)", note="was clear"),
    Case("core.check_pair", "negative", lambda: check_pair(-2, "size"), ValueError, arg="size",
         expected="positive int", got="-2", note="was clear"),
    Case("core.check_pair", "shape", lambda: check_pair((1, 2, 3), "size"), ValueError, arg="size",
         expected="pair (h, w)", got="(1, 2, 3)", note="was clear"),
    Case("core.check_choice", "type", lambda: check_choice([1], ["a"], "act"), ValueError, arg="act",
         expected="one of ['a']", got="[1]", note="was clear"),
    Case("core.check_nonempty", "type", lambda: check_nonempty([], "x"), TypeError, arg="x",
         expected="torch.Tensor", got="list", note="was cryptic (AttributeError)"),
    Case("core.check_nonempty", "shape", lambda: check_nonempty(torch.tensor(1.0), "x"), ValueError, arg="x",
         expected="at least 1 dimension", got="0-d", note="was cryptic (IndexError)"),
    Case("core.check_dtype", "type", lambda: check_dtype([1.0], "float", "x"), TypeError, arg="x",
         expected="torch.Tensor", got="list", note="was cryptic (AttributeError)"),
    Case("core.check_finite", "type", lambda: check_finite([NAN], "x"), TypeError, arg="x",
         expected="torch.Tensor", got="list", note="was cryptic (AttributeError)"),
    Case("core.check_range", "nan", lambda: check_range(torch.tensor([NAN, 0.5]), 0, 1, "x"), ValueError, arg="x",
         expected="values in [0, 1]", got="1 NaN", note="was silent"),
    Case("core.check_same_batch", "empty", lambda: check_same_batch(), TypeError, arg="check_same_batch",
         expected="at least one", got="none", note="was cryptic (StopIteration)"),
    Case("core.check_same_batch", "type", lambda: check_same_batch(a=torch.zeros(2), b=3), TypeError, arg="b",
         expected="a batch", got="int", note="was cryptic (TypeError: no len())"),
    Case("core.check_same_batch", "shape", lambda: check_same_batch(a=torch.zeros(2), b=torch.tensor(1.0)),
         ValueError, arg="b", expected="at least 1 dimension", got="0-d", note="was cryptic (IndexError)"),
    # ---- configs, parameters, seed statistics ----------------------------------------------------------------------
    Case("core.Config", "missing-key", lambda: CaptionerConfig.from_dict({"dimm": 3}), ValueError,
         arg="CaptionerConfig", expected="subset of", got="['dimm']", note="was clear"),
    Case("core.Config", "type", lambda: CaptionerConfig.from_dict([1]), TypeError, arg="CaptionerConfig.from_dict",
         expected="a mapping", got="list", note="was clear"),
    Case("core.Config", "type", lambda: CaptionerConfig.from_dict({"dim": "64"}), TypeError,
         arg="CaptionerConfig.dim", expected="an int >= 1", got="'64'", note="was clear"),
    Case("core.Config", "schema", lambda: CaptionerConfig().replace(dimm=3), ValueError, arg="CaptionerConfig",
         expected="subset of", got="['dimm']", note="was clear"),
    Case("core.Config", "schema", lambda: nested_config().from_dict({"tower": {"type": "Nope"}}), ValueError,
         arg="TinyOuter.tower", expected="expected one of", got="'Nope'", note="was clear"),
    Case("core.Config", "type", lambda: nested_config().from_dict({"tower": {"type": ["x"]}}), TypeError,
         arg="TinyOuter.tower", expected="config class name", got="['x']", note="was cryptic (unhashable type)"),
    Case("core.Config", "type", lambda: nested_config().from_dict({"tower": 5}), TypeError,
         arg="TinyOuter.tower", expected="a config or a dict", got="int", note="was silent"),
    Case("core.num_params", "type", lambda: num_params("x"), TypeError, arg="model", expected="nn.Module",
         got="str", note="was clear"),
    Case("core.num_params", "type", lambda: num_params(nn.Linear(2, 2), trainable_only="yes"), TypeError,
         arg="trainable_only", expected="True or False", got="'yes'", note="was silent"),
    Case("core.seed_stats", "empty", lambda: seed_stats([]), ValueError, arg="values",
         expected="at least one measurement", got="none", note="was clear"),
    Case("core.seed_stats", "nan", lambda: seed_stats([1.0, NAN]), ValueError, arg="values[1]",
         expected="finite number", got="nan", note="was clear"),
    Case("core.seed_stats", "type", lambda: seed_stats(3.0), TypeError, arg="values",
         expected="sequence of numbers", got="float", note="was cryptic (not iterable)"),
    Case("core.seed_stats", "shape", lambda: seed_stats([torch.tensor([1.0, 2.0])]), TypeError, arg="values[0]",
         expected="a number", got="Tensor", note="was cryptic (RuntimeError)"),
    Case("core.SeedStats", "nan", lambda: SeedStats(NAN, 0.0, 1, (1.0,)), ValueError, arg="SeedStats.mean",
         expected="finite number", got="nan", note="was silent"),
    Case("core.SeedStats", "zero", lambda: SeedStats(1.0, 0.0, 0, ()), ValueError, arg="SeedStats.n",
         expected="int >= 1", got="0", note="was silent"),
    # ---- expectations and the claim registry -----------------------------------------------------------------------
    Case("core.evaluate_expectation", "huge", lambda: evaluate_expectation("10 ** 10 ** 10 > a", {"a": 1}),
         ValueError, arg="expect", expected="could not evaluate", got="10 ** 10 ** 10",
         note="was silent (ran for minutes computing a huge int)"),
    Case("core.evaluate_expectation", "huge", lambda: evaluate_expectation("len(xs * 1000000000000) > 0",
                                                                          {"xs": [0]}),
         ValueError, arg="expect", expected="arithmetic takes numbers", got="xs * 1000000000000",
         note="was silent (tried to build a list of 10**12 items)"),
    Case("core.evaluate_expectation", "zero", lambda: evaluate_expectation("a / 0 > 1", {"a": 1}), ValueError,
         arg="expect", expected="could not evaluate", got="ZeroDivisionError", note="was cryptic (ZeroDivisionError)"),
    Case("core.evaluate_expectation", "type", lambda: evaluate_expectation("a.mean > 1", {"a": 1.0}), ValueError,
         arg="expect", expected="could not evaluate", got="has no attribute 'mean'", note="was cryptic (AttributeError)"),
    Case("core.ClaimRegistry", "path", lambda tmp_path: ClaimRegistry("../x", tmp_path), ValueError, arg="paper",
         expected="lowercase identifier", got="'../x'", note="was clear"),
    Case("core.ClaimRegistry", "type", lambda: ClaimRegistry("demo", 5), TypeError, arg="results_dir",
         expected="a path (str or os.PathLike)", got="int 5", note="was cryptic (TypeError from pathlib)"),
    Case("core.ClaimRegistry", "type", lambda tmp_path: ClaimRegistry("demo", tmp_path, settings="x"), TypeError,
         arg="settings", expected="a Settings", got="str", note="was silent"),
    Case("core.ClaimRegistry.check", "security", lambda tmp_path: registry(tmp_path).check("../x", "s", {"a": 1},
                                                                                          "a > 0"),
         ValueError, arg="claim_id", expected="short id", got="'../x'", note="was silent"),
    Case("core.ClaimRegistry.check", "type", lambda tmp_path: registry(tmp_path).check("C1", 5, {"a": 1}, "a > 0"),
         TypeError, arg="statement", expected="a string", got="int 5", note="was silent"),
    Case("core.ClaimRegistry.check", "type",
         lambda tmp_path: registry(tmp_path).check("C1", "s", {"m": nn.Linear(1, 1)}, "True"), TypeError,
         arg="claim C1: measured['m']", expected="numbers, strings, tensors", got="Linear",
         note="was cryptic (JSON TypeError; and it poisoned every later check)"),
    Case("core.ClaimRegistry.check", "schema", lambda tmp_path: registry(tmp_path).check("C1", "s", {1: 1}, "True"),
         ValueError, arg="claim C1: measured", expected="identifiers", got="[1]",
         note="was cryptic (TypeError comparing int and str)"),
    Case("core.ClaimRegistry.check", "corrupt", lambda tmp_path: registry(tmp_path).check("C1", "s", {"a": 1},
                                                                                         "a >"),
         ValueError, arg="claim C1", expected="valid expression", got="'a >'", note="was clear (without the claim id)"),
    Case("core.ClaimRegistry.check", "missing-key",
         lambda tmp_path: registry(tmp_path).check("C1", "s", {"a": 1}, "b > 1"), ValueError, arg="claim C1",
         expected="unknown name 'b'", got="'b > 1'", note="was clear (without the claim id)"),
    Case("core.ClaimRegistry.check", "security",
         lambda tmp_path: registry(tmp_path).check("C1", "s", {"a": 1}, "__import__('os')"), ValueError,
         arg="claim C1", expected="not allowed", got="__import__", note="was clear (without the claim id)"),
    Case("core.ClaimRegistry.check", "shape",
         lambda tmp_path: registry(tmp_path).check("C1", "s", {"a": torch.ones(2)}, "a > 0"), ValueError,
         arg="claim C1", expected="could not evaluate", got="more than one value", note="was cryptic (RuntimeError)"),
    Case("core.ClaimRegistry.markdown", "security",
         lambda tmp_path: registry(tmp_path).markdown("{C1.__class__}"), ValueError, arg="markdown",
         expected="fields like", got="{C1.__class__}", note="was silent (format strings reach any attribute)"),
    Case("core.ClaimRegistry.markdown", "type", lambda tmp_path: registry(tmp_path).markdown(5), TypeError,
         arg="text", expected="a string", got="5", note="was cryptic (AttributeError)"),
    Case("core.load_claims", "path", lambda tmp_path: load_claims(tmp_path, "../../x"), ValueError, arg="paper",
         expected="lowercase identifier", got="'../../x'", note="was clear"),
    Case("core.load_claims", "security", lambda tmp_path: load_claims(tmp_path, "/etc/hostname"), ValueError,
         arg="paper", expected="lowercase identifier", got="'/etc/hostname'", note="was clear"),
    Case("core.load_claims", "type", lambda: load_claims(3), TypeError, arg="results_dir",
         expected="a path (str or os.PathLike)", got="int 3", note="was cryptic (TypeError from pathlib)"),
    Case("core.load_claims", "truncated", claims_file('[{"paper": "demo", '), ValueError, arg="demo.json",
         expected="valid strict JSON", got="JSONDecodeError", note="was clear"),
    Case("core.load_claims", "corrupt", claims_file('[{"paper": "demo", "measured": {"a": NaN}}]'),
         ValueError, arg="demo.json", expected="valid strict JSON", got="bare NaN", note="was silent"),
    Case("core.load_claims", "schema", claims_file({"a": 1}), ValueError, arg="demo.json",
         expected="JSON list of claim objects", got="dict", note="was clear"),
    Case("core.load_claims", "missing-key", claims_file(without("statement")), ValueError, arg="claim 'C1'",
         expected="missing key 'statement'", got="'verdict'", note="was clear (without the claim id)"),
    Case("core.load_claims", "schema", claims_file(row(measured=[1])), ValueError, arg="key 'measured'",
         expected="an object", got="list", extra=("demo.json", "'C1'"), note="was silent"),
    Case("core.load_claims", "schema", claims_file(row(verdict="maybe")), ValueError, arg="key 'verdict'",
         expected="one of ['reproduced', 'not reproduced']", got="'maybe'", extra=("'C1'",), note="was silent"),
    Case("core.load_claims", "schema", claims_file(row(claim_id=5)), ValueError, arg="key 'claim_id'",
         expected="a string", got="int 5", note="was silent"),
    Case("core.load_claims", "security", claims_file(row(paper="../x")), ValueError, arg="key 'paper'",
         expected="'demo' (the file's name)", got="'../x'", note="was silent"),
    Case("core.load_claims", "schema", claims_file(row() + row()), ValueError, arg="key 'claim_id'",
         expected="distinct ids", got="['C1']", note="was silent"),
    Case("core.load_claims", "corrupt", lambda tmp_path: (
        (tmp_path / "claims").mkdir(), (tmp_path / "claims" / "demo.json").write_bytes(b"\xff\xfe"),
        load_claims(tmp_path)), ValueError, arg="demo.json", expected="valid strict JSON", got="UnicodeDecodeError",
         note="was cryptic (UnicodeDecodeError)"),
    Case("core.claims_markdown", "type", lambda: claims_markdown([{"paper": "x"}]), TypeError, arg="claims[0]",
         expected="a Claim", got="dict", note="was cryptic (AttributeError)"),
    Case("core.claims_markdown", "type", lambda: claims_markdown([], with_paper="no"), TypeError, arg="with_paper",
         expected="True or False", got="'no'", note="was silent"),
    # ---- convert ---------------------------------------------------------------------------------------------------
    Case("convert.rename_state_dict", "type", lambda: rename_state_dict(SD, None), TypeError, arg="rules",
         expected="list of (pattern, replacement", got="NoneType", note="was cryptic (not iterable)"),
    Case("convert.rename_state_dict", "type", lambda: rename_state_dict(SD, [["a", "b"]]), TypeError, arg="rules",
         expected="(pattern: str, replacement: str", got="['a', 'b']", note="was clear"),
    Case("convert.rename_state_dict", "value", lambda: rename_state_dict(SD, [(r"(a|b)\.w", "x")]), ValueError,
         arg="checkpoint", expected="distinct target names", got="'x'", note="was clear"),
    Case("convert.rename_state_dict", "corrupt", lambda: rename_state_dict(SD, [("(", "x")]), ValueError,
         arg="rules", expected="valid regex rule", got="'('", note="was cryptic (re.error)"),
    Case("convert.rename_state_dict", "type", lambda: rename_state_dict([1], [("a", "b")]), TypeError,
         arg="checkpoint", expected="a state dict", got="list", note="was cryptic (AttributeError)"),
    Case("convert.rename_state_dict", "shape", lambda: rename_state_dict(SD, [(".*", r"\g<0>", lambda t: t.view(5))]),
         ValueError, arg="checkpoint", expected="transform failed on 'a.w'", got="(2,)", note="was cryptic"),
    Case("convert.rename_state_dict", "type", lambda: rename_state_dict(SD, [(".*", r"\g<0>", lambda t: None)]),
         TypeError, arg="checkpoint", expected="return a tensor", got="NoneType", note="was silent"),
    Case("convert.load_strict", "missing-key", lambda: load_strict(nn.Linear(2, 2), {"weight": torch.zeros(2, 2)}),
         ValueError, arg="checkpoint", expected="missing (1)", got="['bias']", note="was clear"),
    Case("convert.load_strict", "dtype", lambda: load_strict(nn.Linear(2, 2), {"weight": torch.zeros(2, 2).long(),
                                                                               "bias": torch.zeros(2)}),
         ValueError, arg="weight", expected="expected torch.float32", got="torch.int64", note="was silent (cast)"),
    Case("convert.load_strict", "type", lambda: load_strict("x", {}), TypeError, arg="module",
         expected="nn.Module", got="str", note="was cryptic (AttributeError)"),
    Case("convert.load_strict", "type", lambda: load_strict(nn.Linear(2, 2), {"weight": [[0, 0]]}), TypeError,
         arg="checkpoint", expected="tensor values", got="'weight': list", note="was cryptic (AttributeError)"),
    Case("convert.hf_activation", "value", lambda: hf_activation("swish"), ValueError, arg="hidden_act",
         expected="one of", got="'swish'", note="was clear"),
    Case("convert.max_abs_diff", "schema", lambda: max_abs_diff([torch.zeros(2)], {"a": torch.zeros(2)}), TypeError,
         arg="output", expected="two mappings", got="output", note="was clear"),
    Case("convert.max_abs_diff", "shape", lambda: max_abs_diff(torch.zeros(2, 1), torch.zeros(1, 2)), ValueError,
         arg="output", expected="equal shapes", got="(2, 1) and (1, 2)", note="was clear"),
    Case("convert.max_abs_diff", "type", lambda: max_abs_diff(object(), object()), TypeError, arg="output",
         expected="tensors or numbers", got="object", note="was cryptic (RuntimeError)"),
    Case("convert.assert_close_outputs", "nan", lambda: assert_close_outputs(torch.zeros(2), torch.zeros(2), NAN),
         ValueError, arg="atol", expected="finite number >= 0", got="nan", note="was clear"),
    Case("convert.assert_close_outputs", "missing-key",
         lambda: assert_close_outputs({"a": torch.zeros(2)}, {"b": torch.zeros(2)}), ValueError, arg="outputs",
         expected="the same keys", got="only-left ['a']", note="was clear"),
    # ---- losses ----------------------------------------------------------------------------------------------------
    Case("losses.clip_loss", "nan", lambda: clip_loss(torch.tensor([[NAN, 0.0], [0.0, 1.0]])), ValueError,
         arg="logits_per_image", expected="finite values", got="1 NaN", note="was silent (loss NaN)"),
    Case("losses.clip_loss", "inf", lambda: clip_loss(torch.tensor([[INF, 0.0], [0.0, 1.0]])), ValueError,
         arg="logits_per_image", expected="finite values", got="1 inf", note="was silent (loss NaN)"),
    Case("losses.clip_loss", "shape", lambda: clip_loss(torch.randn(2, 3)), ValueError, arg="logits_per_image",
         expected="expected 2 to match", got="(2, 3)", note="was clear"),
    Case("losses.clip_loss", "dtype", lambda: clip_loss(torch.ones(2, 2, dtype=torch.long)), ValueError,
         arg="logits_per_image", expected="dtype float", got="torch.int64", note="was clear"),
    Case("losses.clip_loss", "empty", lambda: clip_loss(torch.zeros(0, 0)), ValueError, arg="logits_per_image",
         expected="non-empty batch", got="batch size 0", note="was clear"),
    Case("losses.clip_loss_distributed", "zero", lambda: clip_loss_distributed(F, F, 0.0), ValueError,
         arg="logit_scale", expected="> 0", got="0.0", note="was silent"),
    Case("losses.clip_loss_distributed", "negative", lambda: clip_loss_distributed(F, F, -1.0), ValueError,
         arg="logit_scale", expected="> 0", got="-1.0", note="was silent"),
    Case("losses.clip_loss_distributed", "nan", lambda: clip_loss_distributed(F, F, torch.tensor(NAN)), ValueError,
         arg="logit_scale", expected="finite number > 0", got="nan", note="was silent"),
    Case("losses.clip_loss_distributed", "shape", lambda: clip_loss_distributed(F, F, torch.tensor([1.0, 2.0])),
         ValueError, arg="logit_scale", expected="one-element float tensor", got="(2,)", note="was cryptic"),
    Case("losses.clip_loss_distributed", "type", lambda: clip_loss_distributed(F, F, "10"), TypeError,
         arg="logit_scale", expected="a number", got="'10'", note="was cryptic"),
    Case("losses.clip_loss_distributed", "nan", lambda: clip_loss_distributed(torch.full((3, 4), NAN), F, 10.0),
         ValueError, arg="image_feats", expected="finite values", got="12 NaN", note="was silent"),
    Case("losses.clip_loss_distributed", "dtype",
         lambda: clip_loss_distributed(F.long(), F.long(), 10.0), ValueError, arg="image_feats",
         expected="dtype float", got="torch.int64", note="was cryptic (matmul dtype RuntimeError)"),
    Case("losses.clip_loss_distributed", "shape", lambda: clip_loss_distributed(F, torch.randn(3, 5), 10.0),
         ValueError, arg="text_feats", expected="expected 4 to match", got="(3, 5)", note="was clear"),
    Case("losses.clip_loss_distributed", "type", lambda: clip_loss_distributed(F, F, 10.0, local_loss="yes"),
         TypeError, arg="local_loss", expected="True or False", got="'yes'", note="was silent"),
    Case("losses.gather_with_grad", "type", lambda: gather_with_grad([1, 2]), TypeError, arg="x",
         expected="torch.Tensor", got="list", note="was silent (returned the list)"),
    Case("losses.gather_with_grad", "shape", lambda: gather_with_grad(torch.tensor(1.0)), ValueError, arg="x",
         expected="at least 1 dimension", got="0-d", note="was silent"),
    # ---- evaluate --------------------------------------------------------------------------------------------------
    Case("evaluate.accuracy", "nan", lambda: accuracy(torch.tensor([[NAN, 0.0]]), torch.tensor([0])), ValueError,
         arg="logits_or_preds", expected="finite values", got="1 NaN", note="was clear"),
    Case("evaluate.accuracy", "type", lambda: accuracy(None, [0, 1]), TypeError, arg="logits_or_preds",
         expected="a tensor or a (nested) list", got="NoneType", note="was cryptic (RuntimeError)"),
    Case("evaluate.accuracy", "shape", lambda: accuracy([[1, 2], [3]], [0, 1]), TypeError, arg="logits_or_preds",
         expected="a tensor or a (nested) list", got="[[1, 2], [3]]", note="was cryptic"),
    Case("evaluate.accuracy", "dtype", lambda: accuracy(torch.zeros(2, 2), ["a", "b"]), TypeError, arg="labels",
         expected="list of numbers", got="['a', 'b']", note="was cryptic (too many dimensions 'str')"),
    Case("evaluate.accuracy", "empty", lambda: accuracy(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)),
         ValueError, arg="labels", expected="at least one example", got="empty batch", note="was clear"),
    Case("evaluate.ZeroShotClassifier", "dtype", lambda: ZeroShotClassifier(torch.ones(2, 3).long(), ["a", "b"]),
         ValueError, arg="weight", expected="dtype float", got="torch.int64", note="was silent"),
    Case("evaluate.ZeroShotClassifier", "zero", lambda: ZeroShotClassifier(torch.zeros(2, 3), ["a", "b"]),
         ValueError, arg="weight", expected="non-zero class embeddings", got="zero rows [0, 1]", note="was silent"),
    Case("evaluate.ZeroShotClassifier", "nan", lambda: ZeroShotClassifier(torch.randn(2, 3), ["a", "b"], scale=NAN),
         ValueError, arg="scale", expected="finite number > 0", got="nan", note="was silent"),
    Case("evaluate.ZeroShotClassifier", "type", lambda: ZeroShotClassifier(torch.randn(2, 3), ["a"] * 2),
         ValueError, arg="class_names", expected="distinct", got="['a']", note="was clear"),
    Case("evaluate.ZeroShotClassifier.forward", "nan", lambda: zsc()(torch.full((2, 3), NAN)), ValueError,
         arg="image_embeds", expected="finite values", got="6 NaN", note="was silent"),
    Case("evaluate.ZeroShotClassifier.forward", "empty", lambda: zsc()(torch.zeros(0, 3)), ValueError,
         arg="image_embeds", expected="non-empty batch", got="batch size 0", note="was silent"),
    Case("evaluate.fit_linear_probe", "type", lambda: fit_linear_probe(torch.randn(4, 2), Y4, standardize="no"),
         TypeError, arg="standardize", expected="True or False", got="'no'", note="was silent"),
    Case("evaluate.fit_linear_probe", "zero", lambda: fit_linear_probe(torch.randn(4, 0), Y4), ValueError,
         arg="feats", expected="at least one feature", got="(N, 0)", note="was silent"),
    Case("evaluate.fit_linear_probe", "nan", lambda: fit_linear_probe(torch.randn(4, 2), Y4, l2=NAN), ValueError,
         arg="l2", expected="finite number >= 0", got="nan", note="was clear"),
    Case("evaluate.linear_probe", "dtype", lambda: linear_probe(torch.randn(4, 2), Y4, torch.ones(3, 2).long()),
         ValueError, arg="test_feats", expected="dtype float", got="torch.int64", note="was silent"),
    Case("evaluate.linear_probe", "empty", lambda: linear_probe(torch.randn(4, 2), Y4, torch.ones(0, 2)),
         ValueError, arg="test_feats", expected="non-empty batch", got="batch size 0", note="was silent"),
    Case("evaluate.few_shot_indices", "zero", lambda: few_shot_indices(torch.tensor([0, 1]), 0), ValueError,
         arg="k", expected="int >= 1", got="0", note="was clear"),
    Case("evaluate.few_shot_indices", "huge", lambda: few_shot_indices(torch.tensor([0, 1]), 2), ValueError,
         arg="class 0", expected="at least k=2", got="got 1", note="was clear"),
    Case("evaluate.few_shot_indices", "shape", lambda: few_shot_indices(torch.tensor([[0, 1]]), 1), ValueError,
         arg="labels", expected="1-d tensor of integer", got="(1, 2)", note="was clear"),
    Case("evaluate.few_shot_indices", "negative", lambda: few_shot_indices(torch.tensor([0, 1]), 1, seed=-1),
         ValueError, arg="seed", expected="int >= 0", got="-1", note="was silent"),
    Case("evaluate.few_shot_indices", "huge", lambda: few_shot_indices(torch.tensor([0, 1]), 1, seed=2**70),
         ValueError, arg="seed", expected="<= 9223372036854775807", got="1180591620717411303424",
         note="was cryptic (Overflow when unpacking)"),
    Case("evaluate.few_shot_indices", "type", lambda: few_shot_indices(torch.tensor([0, 1]), 1, classes="ab"),
         TypeError, arg="classes", expected="list of class indices", got="str", note="was cryptic (AttributeError)"),
    Case("evaluate.few_shot_indices", "value", lambda: few_shot_indices(torch.tensor([0, 1]), 1, classes=[0, 0]),
         ValueError, arg="classes", expected="distinct", got="[0]", note="was silent (index drawn twice)"),
    Case("evaluate.recall_at_k", "zero", lambda: recall_at_k(torch.randn(3, 3), 0), ValueError, arg="k",
         expected="int >= 1", got="0", note="was clear"),
    Case("evaluate.recall_at_k", "huge", lambda: recall_at_k(torch.randn(3, 3), 5), ValueError, arg="k",
         expected="<= 3", got="5", note="was silent (recall 1 by construction)"),
    Case("evaluate.recall_at_k", "shape", lambda: recall_at_k(torch.randn(3, 4), 1), ValueError, arg="positives",
         expected="needed when N_img != N_txt", got="3 images, 4 captions", note="was clear"),
    Case("evaluate.recall_at_k", "nan", lambda: recall_at_k(torch.full((3, 3), NAN), 1), ValueError,
         arg="similarity", expected="finite values", got="9 NaN", note="was clear"),
    # ---- captioning ------------------------------------------------------------------------------------------------
    Case("captioning.CaptionerConfig", "zero", lambda: CaptionerConfig(vocab_size=0), ValueError,
         arg="CaptionerConfig.vocab_size", expected="int >= 1", got="0", note="was clear"),
    Case("captioning.CaptionerConfig", "value", lambda: CaptionerConfig(context_length=1), ValueError,
         arg="CaptionerConfig.context_length", expected="int >= 2", got="1",
         note="was silent (no caption could be generated or trained)"),
    Case("captioning.CaptionerConfig", "nan", lambda: CaptionerConfig(eps=NAN), ValueError, arg="CaptionerConfig.eps",
         expected="finite number > 0", got="nan", note="was clear"),
    Case("captioning.CaptionerConfig", "huge", lambda: CaptionerConfig(bos_id=600), ValueError,
         arg="CaptionerConfig.bos_id", expected="<= 511", got="600", note="was clear"),
    Case("captioning.Captioner", "value", lambda: captioner()(torch.randn(2, 3, 8), IDS + 40), ValueError,
         arg="input_ids", expected="ids in [0, 20)", got="[42, 46]", note="was clear"),
    Case("captioning.Captioner", "dtype", lambda: captioner()(torch.randn(2, 3, 8), IDS.float()), ValueError,
         arg="input_ids", expected="integer token ids", got="torch.float32", note="was clear"),
    Case("captioning.Captioner", "shape", lambda: captioner()(torch.randn(1, 3, 8), IDS), ValueError,
         arg="input_ids", expected="equal sizes", got="'image_features': 1", note="was clear"),
    Case("captioning.Captioner", "nan", lambda: captioner()(torch.full((2, 3, 8), NAN), IDS), ValueError,
         arg="image_features", expected="finite values", got="48 NaN", note="was clear"),
    Case("captioning.Captioner", "dtype", lambda: captioner()(torch.randn(2, 3, 8).double(), IDS), ValueError,
         arg="image_features", expected="torch.float32", got="torch.float64", note="was cryptic (mixed dtype)"),
    Case("captioning.Captioner", "type", lambda: captioner()(torch.randn(2, 3, 8), IDS, return_loss="yes"),
         TypeError, arg="return_loss", expected="True or False", got="'yes'", note="was silent"),
    Case("captioning.generate", "zero", lambda: generate(captioner(), torch.randn(2, 3, 8), 0), ValueError,
         arg="max_length", expected="int >= 2", got="0", note="was clear"),
    Case("captioning.generate", "negative", lambda: generate(captioner(), torch.randn(2, 3, 8), -1), ValueError,
         arg="max_length", expected="int >= 2", got="-1", note="was clear"),
    Case("captioning.generate", "type", lambda: generate("m", torch.randn(2, 3, 8)), TypeError, arg="model",
         expected="a Captioner", got="str", note="was cryptic (AttributeError)"),
    Case("captioning.check_tokens", "zero", lambda: check_tokens(IDS, vocab_size=0), ValueError, arg="vocab_size",
         expected="int >= 1", got="0", note="was cryptic (ids in [0, 0))"),
    Case("captioning.check_tokens", "type", lambda: check_tokens(IDS, eos_id="3"), TypeError, arg="eos_id",
         expected="an int", got="'3'", note="was cryptic (reported missing eos tokens)"),
    Case("captioning.check_tokens", "empty", lambda: check_tokens(torch.zeros(0, 3, dtype=torch.long)), ValueError,
         arg="input_ids", expected="non-empty batch", got="batch size 0", note="was clear"),
    Case("captioning.caption_loss", "nan", lambda: caption_loss(torch.full((2, 3, 20), NAN), IDS), ValueError,
         arg="logits", expected="finite values", got="120 NaN", note="was silent (loss NaN)"),
    Case("captioning.caption_loss", "value", lambda: caption_loss(LOGITS, IDS + 40), ValueError, arg="input_ids",
         expected="ids in [0, 20)", got="[42, 46]", note="was cryptic (index out of bounds in gather)"),
    Case("captioning.caption_loss", "dtype", lambda: caption_loss(LOGITS, IDS.float()), ValueError, arg="input_ids",
         expected="integer token ids", got="torch.float32", note="was cryptic (gather dtype)"),
    Case("captioning.caption_loss", "dtype", lambda: caption_loss(LOGITS.long(), IDS), ValueError, arg="logits",
         expected="dtype float", got="torch.int64", note="was silent"),
    Case("captioning.caption_loss", "value", lambda: caption_loss(LOGITS, IDS, torch.full((2, 3), 2)), ValueError,
         arg="attention_mask", expected="0/1", got="1 = real token", note="was silent"),
    Case("captioning.sequence_log_likelihood", "value",
         lambda: sequence_log_likelihood(LOGITS, torch.tensor([[2, -1, 3], [2, 6, 3]])), ValueError, arg="input_ids",
         expected="ids in [0, 20)", got="[-1, 6]", note="was cryptic (index out of bounds in gather)"),
    Case("captioning.sequence_log_likelihood", "nan",
         lambda: sequence_log_likelihood(torch.full((2, 3, 20), NAN), IDS), ValueError, arg="logits",
         expected="finite values", got="NaN", note="was silent"),
    Case("captioning.sequence_log_likelihood", "empty", lambda: sequence_log_likelihood(LOGITS[:0], IDS[:0]),
         ValueError, arg="logits", expected="non-empty batch", got="batch size 0", note="was silent (empty result)"),
    # ---- the shared string and path validators (were private copies in text, train, formats, world, evaluate, cli) --
    Case("core.check_str", "type", lambda: core.check_str(3, "split"), TypeError, arg="split",
         expected="a string", got="int 3", note="was clear"),
    Case("core.check_str", "type", lambda: core.check_str(None, "split"), TypeError, arg="split",
         expected="a string", got="NoneType None", note="was clear"),
    Case("core.check_str", "empty", lambda: core.check_str(" ", "split"), ValueError, arg="split",
         expected="non-empty string", got="' '", note="was clear"),
    Case("core.check_strings", "type", lambda: core.check_strings("cat", "names"), TypeError, arg="names",
         expected="a list of strings", got="str 'cat'", note="was clear"),
    Case("core.check_strings", "type", lambda: core.check_strings(["a", 2], "names"), TypeError, arg="names[1]",
         expected="a string", got="int 2", note="was clear"),
    Case("core.check_strings", "empty", lambda: core.check_strings([], "names", nonempty=True), ValueError,
         arg="names", expected="at least one string", got="an empty list", note="was clear"),
    Case("core.check_strings", "value", lambda: core.check_strings(["a", "b", "a"], "names", distinct=True), ValueError,
         arg="names", expected="distinct entries", got="['a'] more than once", note="was clear"),
    Case("core.check_path", "type", lambda: core.check_path(3, "root"), TypeError, arg="root",
         expected="a path (str or os.PathLike)", got="int 3", note="was clear"),
    Case("core.check_path", "type", lambda: core.check_path(b"/tmp", "root"), TypeError, arg="root",
         expected="a path (str or os.PathLike)", got="bytes", note="was clear"),
    Case("core.check_path", "empty", lambda: core.check_path("", "root"), ValueError, arg="root",
         expected="a non-empty path", got="''", note="was silent in text and train (the current folder)"),
    Case("core.check_dir", "missing-key", lambda tmp_path: core.check_dir(tmp_path / "nope", "root"),
         FileNotFoundError, arg="root", expected="a folder", got="which does not exist", note="was clear"),
    Case("core.check_dir", "path", lambda tmp_path: core.check_dir((tmp_path / "f").write_text("x") and tmp_path / "f",
         "root"), ValueError, arg="root", expected="a folder", got="which is a file", note="was clear"),
    Case("core.check_writable_dir", "path", lambda tmp_path: core.check_writable_dir(
         (tmp_path / "f").write_text("x") and tmp_path / "f" / "sub", "out", create=True), ValueError, arg="out",
         expected="a folder to write into", got="below the file",
         note="was cryptic in cli (a PermissionError for a file in the way)"),
    Case("core.check_writable_dir", "unwritable", lambda: core.check_writable_dir("/proc/vlnotes-unwritable", "out"),
         PermissionError, arg="out", expected="a writable folder", got="/proc",
         note="was cryptic in formats (a raw OSError from the first write)"),
    Case("core.check_writable_dir", "type", lambda: core.check_writable_dir(None, "out"), TypeError, arg="out",
         expected="a path", got="NoneType", note="was clear"),
    Case("core.check_tensor", "type", lambda: core.check_tensor([1.0], "x", ndim=1, dtype="float"), TypeError,
         arg="x", expected="1-d float torch.Tensor", got="list", note="was clear"),
    Case("core.check_tensor", "shape", lambda: core.check_tensor(torch.zeros(2, 2), "x", ndim=3), ValueError,
         arg="x", expected="3-d tensor", got="(2, 2)", note="was clear"),
    Case("core.check_tensor", "dtype", lambda: core.check_tensor(torch.zeros(2), "x", ndim=1, dtype="int"),
         ValueError, arg="x", expected="dtype int", got="torch.float32", note="was clear"),
    Case("core.env_flag", "value", env(lambda: core.env_flag("VLNOTES_DEBUG"), VLNOTES_DEBUG="2"), ValueError,
         arg="VLNOTES_DEBUG", expected="expected one of", got="'2'", note="was clear"),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, tmp_path): check_case(case, tmp_path)
