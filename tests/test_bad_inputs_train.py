"""The bad-input matrix of the trainer (`vlnotes.train`) and the experiment scaffolding (`vlnotes.experiment`).

Every public constructor, function, method and reader against the kinds of bad input that apply to it; each
case asserts an error whose message names the argument (or file and key), what was expected and what came.
`note` says what the code did before issue 8: "was clear", "was cryptic" (an internal error, or no argument
named) or "was silent" (accepted, or failing only later, e.g. at the first checkpoint or after training).
"""
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from badinput import Case, case_ids, check_case
from vlnotes.data.world import ShapesWorld
from vlnotes.experiment import (RenderedSplit, classification_loss, evaluate_classifier, launch, logits_of,
                                multi_seed, plot_curves, render_split, run)
from vlnotes.train import (ClampParameter, GlobalBatchSampler, History, StopAtStep, TrainConfig, Trainer,
                           latest_checkpoint, load_model, load_optimizer, lr_factor, model_metadata, param_groups,
                           save_model, save_optimizer, set_rng_state)
from safetensors.torch import save_file

UNWRITABLE = "/sys/vlnotes-unwritable"          # not writable, not even for root


class Data(torch.utils.data.Dataset):
    def __init__(self, n=16):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 4, generator=g), torch.randn(n, generator=g)
    def __len__(self): return len(self.y)
    def __getitem__(self, i): return {"x": self.x[i], "y": self.y[i]}


def model(): return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
def mse(m, b): return F.mse_loss(m(b["x"]).squeeze(-1), b["y"])
def cfg(**kw): return TrainConfig(**{**dict(max_steps=2, batch_size=4, progress=False), **kw})
def trainer(**kw): return Trainer(model(), mse, Data(), cfg(**kw.pop("config", {})), **kw)
def fit(**kw): return trainer(**kw).fit()


def checkpoint(tmp_path):
    "A complete two-step checkpoint folder."
    t = trainer(config=dict(checkpoint_dir=tmp_path / "ckpt"))
    t.fit()
    return latest_checkpoint(tmp_path / "ckpt")


def resume_after(tmp_path, spoil):
    "Write a checkpoint, spoil it with `spoil(folder)`, resume from it."
    ckpt = checkpoint(tmp_path)
    spoil(ckpt)
    return trainer(config=dict(max_steps=4)).fit(resume_from=ckpt)


def state_with(**changes):
    "Spoil trainer_state.json by changing keys (None: delete the key)."
    def spoil(ckpt):
        f = ckpt / "trainer_state.json"
        state = json.loads(f.read_text())
        for k, v in changes.items():
            if v is None: state.pop(k)
            else: state[k] = v
        f.write_text(json.dumps(state))
    return spoil


def truncate(name, keep=0.5):
    def spoil(ckpt):
        f = ckpt / name
        f.write_bytes(f.read_bytes()[:int(len(f.read_bytes()) * keep)])
    return spoil


def model_file(tmp_path, config=None):
    return save_model(model(), tmp_path / "m.safetensors", config)


def bad_metadata_file(tmp_path):
    p = tmp_path / "m.safetensors"
    save_file({"w": torch.zeros(1)}, str(p), metadata={"architecture": "Sequential", "config": "{bad"})
    return p


def history():
    h = History()
    h.log(1, loss=1.0)
    return h


def split(n=8):
    return RenderedSplit({"images": torch.rand(n, 3, 8, 8), "label": torch.arange(n) % 4}, [["c"]] * n,
                         [{}] * n, ["a", "b", "c", "d"])


def net(classes=4): return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, classes))


CASES = [
    # ---- TrainConfig: every float field through check_float (NaN/inf), paths typed ----------------------------
    Case("train.TrainConfig", "inf", lambda: cfg(lr=float("inf")), ValueError,
         arg="TrainConfig.lr", expected="finite", got="inf", note="was clear"),
    Case("train.TrainConfig", "nan", lambda: cfg(lr=float("nan")), ValueError,
         arg="TrainConfig.lr", expected="finite", got="nan", note="was clear"),
    Case("train.TrainConfig", "nan", lambda: cfg(weight_decay=float("nan")), ValueError,
         arg="TrainConfig.weight_decay", expected="finite", got="nan", note="was clear"),
    Case("train.TrainConfig", "inf", lambda: cfg(max_grad_norm=float("inf")), ValueError,
         arg="TrainConfig.max_grad_norm", expected="finite", got="inf", note="was clear"),
    Case("train.TrainConfig", "nan", lambda: cfg(min_lr_ratio=float("nan")), ValueError,
         arg="TrainConfig.min_lr_ratio", expected="finite", got="nan", note="was clear"),
    Case("train.TrainConfig", "type", lambda: cfg(batch_size="4"), TypeError,
         arg="TrainConfig.batch_size", expected="int", got="str", note="was clear"),
    Case("train.TrainConfig", "type", lambda: cfg(checkpoint_dir=5), TypeError,
         arg="TrainConfig.checkpoint_dir", expected="a path (str or os.PathLike)", got="int", note="was silent"),
    Case("train.TrainConfig", "empty", lambda: cfg(checkpoint_dir=""), ValueError,
         arg="TrainConfig.checkpoint_dir", expected="non-empty", got="''", note="was silent"),
    Case("train.TrainConfig", "schema", lambda: TrainConfig.from_dict({"max_steps": 2, "lrr": 1}), ValueError,
         arg="TrainConfig", expected="subset of", got="lrr", note="was clear"),

    # ---- lr_factor ---------------------------------------------------------------------------------------------
    Case("train.lr_factor", "negative", lambda: lr_factor(-1, 10), ValueError,
         arg="step", expected=">= 0", got="-1", note="was silent"),
    Case("train.lr_factor", "zero", lambda: lr_factor(0, 0), ValueError,
         arg="max_steps", expected=">= 1", got="0", note="was silent"),
    Case("train.lr_factor", "nan", lambda: lr_factor(0, 10, schedule="cosine", min_lr_ratio=float("nan")),
         ValueError, arg="min_lr_ratio", expected="finite", got="nan", note="was silent"),
    Case("train.lr_factor", "huge", lambda: lr_factor(0, 10, warmup_steps=20), ValueError,
         arg="warmup_steps", expected="<= 10", got="20", note="was silent"),
    Case("train.lr_factor", "value", lambda: lr_factor(3, 10, schedule="linear"), ValueError,
         arg="schedule", expected="one of", got="linear", note="was clear"),

    # ---- GlobalBatchSampler --------------------------------------------------------------------------------
    Case("train.GlobalBatchSampler", "type", lambda: GlobalBatchSampler(16, 8.0), TypeError,
         arg="batch_size", expected="int", got="float", note="was silent"),
    Case("train.GlobalBatchSampler", "zero", lambda: GlobalBatchSampler(16, 8, grad_accum_steps=0), ValueError,
         arg="grad_accum_steps", expected=">= 1", got="0", note="was cryptic"),
    Case("train.GlobalBatchSampler", "zero", lambda: GlobalBatchSampler(16, 8, num_replicas=0), ValueError,
         arg="num_replicas", expected=">= 1", got="0", note="was cryptic"),
    Case("train.GlobalBatchSampler", "negative", lambda: GlobalBatchSampler(16, 8, num_replicas=2, rank=-1),
         ValueError, arg="rank", expected="[0, 2)", got="-1", note="was clear"),
    Case("train.GlobalBatchSampler", "negative", lambda: GlobalBatchSampler(16, 8, seed=-1), ValueError,
         arg="seed", expected=">= 0", got="-1", note="was silent"),
    Case("train.GlobalBatchSampler", "empty", lambda: GlobalBatchSampler(0, 8), ValueError,
         arg="num_samples", expected="at least one global batch", got="0", note="was clear"),
    Case("train.GlobalBatchSampler", "huge", lambda: GlobalBatchSampler(16, 8, start_step=5, max_steps=3),
         ValueError, arg="start_step", expected="<= 3", got="5", note="was silent"),
    Case("train.GlobalBatchSampler", "value", lambda: GlobalBatchSampler(16, 6, grad_accum_steps=4), ValueError,
         arg="batch_size", expected="divisible", got="6", note="was clear"),
    Case("train.GlobalBatchSampler.global_batch", "negative", lambda: GlobalBatchSampler(16, 8).global_batch(-1),
         ValueError, arg="step", expected=">= 0", got="-1", note="was silent"),

    # ---- save_model / load_model / model_metadata ----------------------------------------------------------
    Case("train.save_model", "type", lambda p: save_model("net", p / "m.safetensors"), TypeError,
         arg="model", expected="nn.Module", got="str", note="was clear"),
    Case("train.save_model", "path", lambda p: save_model(model(), p), ValueError,
         arg="path", expected="file path", got="existing directory", note="was cryptic"),
    Case("train.save_model", "unwritable", lambda: save_model(model(), f"{UNWRITABLE}/m.safetensors"),
         PermissionError, arg="path", expected="writable folder", got=UNWRITABLE, note="was cryptic"),
    Case("train.save_model", "schema", lambda p: save_model(model(), p / "m.safetensors", {"a": {"b": object()}}),
         TypeError, arg="config['a']['b']", expected="JSON", got="object", note="was cryptic"),
    Case("train.save_model", "nan", lambda p: save_model(model(), p / "m.safetensors", {"lr": float("nan")}),
         ValueError, arg="config['lr']", expected="finite", got="nan", note="was silent"),
    Case("train.save_model", "type", lambda p: save_model(model(), p / "m.safetensors", "abc"), TypeError,
         arg="config", expected="mapping", got="str", note="was cryptic"),
    Case("train.save_model", "schema", lambda p: save_model(model(), p / "m.safetensors", {1: 2}), TypeError,
         arg="config", expected="str keys", got="1", note="was silent"),
    Case("train.load_model", "path", lambda p: load_model(model(), p / "nope.safetensors"), FileNotFoundError,
         arg="nope.safetensors", expected="checkpoint file", got="no", note="was clear"),
    Case("train.load_model", "corrupt", lambda p: (p / "g.safetensors").write_bytes(b"\x00junk" * 40)
         and load_model(model(), p / "g.safetensors"), ValueError,
         arg="g.safetensors", expected="valid safetensors", got="header",
         note="was clear"),
    Case("train.load_model", "truncated", lambda p: load_model(model(), truncate_file(model_file(p))), ValueError,
         arg="m.safetensors", expected="valid safetensors", got="m.safetensors", note="was clear"),
    Case("train.load_model", "schema", lambda p: load_model(nn.Linear(4, 1), model_file(p)), ValueError,
         arg="m.safetensors", expected="one for Linear", got="Sequential", note="was clear"),
    Case("train.load_model", "type", lambda p: load_model("net", model_file(p)), TypeError,
         arg="model", expected="nn.Module", got="str", note="was cryptic"),
    Case("train.model_metadata", "corrupt", lambda p: model_metadata(bad_metadata_file(p)), ValueError,
         arg="'config'", expected="JSON", got="{bad", note="was cryptic"),

    # ---- optimiser and RNG state ------------------------------------------------------------------------------
    Case("train.save_optimizer", "type", lambda p: save_optimizer("adam", p / "o.safetensors"), TypeError,
         arg="optimizer", expected="torch.optim.Optimizer", got="str", note="was cryptic"),
    Case("train.load_optimizer", "schema", lambda p: load_optimizer(torch.optim.AdamW(model().parameters()),
                                                                     model_file(p)), ValueError,
         arg="m.safetensors", expected="optimizer checkpoint", got="no param_groups", note="was clear"),
    Case("train.load_optimizer", "type", lambda p: load_optimizer("adam", model_file(p)), TypeError,
         arg="optimizer", expected="torch.optim.Optimizer", got="str", note="was cryptic"),
    Case("train.set_rng_state", "missing-key", lambda: set_rng_state({}, {}), ValueError,
         arg="RNG state", expected="torch", got="missing", note="was cryptic"),
    Case("train.set_rng_state", "shape", lambda: set_rng_state(
        {"torch": torch.zeros(3, dtype=torch.uint8), "numpy": torch.zeros(624, dtype=torch.int64)},
        {"python": "[3, [0], null]", "numpy": '["MT19937", 0, 0, 0.0]'}), ValueError,
         arg="RNG state", expected="valid", got="torch", note="was cryptic"),

    # ---- History ----------------------------------------------------------------------------------------------
    Case("train.History", "type", lambda: History("abc"), TypeError,
         arg="rows", expected="list of dicts", got="str", note="was cryptic"),
    Case("train.History", "missing-key", lambda: History([{"loss": 1.0}]), ValueError,
         arg="rows[0]", expected="'step'", got="loss", note="was silent"),
    Case("train.History.log", "type", lambda: History().log("3", loss=1.0), TypeError,
         arg="step", expected="int", got="str", note="was silent"),
    Case("train.History.log", "type", lambda: History().log(3, loss="low"), TypeError,
         arg="loss", expected="number", got="str", note="was silent"),
    Case("train.History.from_json", "corrupt", lambda: History.from_json("not json"), ValueError,
         arg="text", expected="JSON", got="not json", note="was cryptic"),
    Case("train.History.from_json", "schema", lambda: History.from_json('{"step": 1}'), TypeError,
         arg="rows", expected="list of dicts", got="dict", note="was cryptic"),
    Case("train.History.from_json", "type", lambda p: History.from_json(p / "h.json"), TypeError,
         arg="text", expected="History.from_file", got="Path", note="was cryptic"),
    Case("train.History.from_file", "path", lambda p: History.from_file(p / "h.json"), FileNotFoundError,
         arg="path", expected="history file", got="h.json", note="was clear"),
    Case("train.History.to_json", "unwritable", lambda: history().to_json(f"{UNWRITABLE}/h.json"),
         PermissionError, arg="path", expected="writable folder", got=UNWRITABLE, note="was cryptic"),
    Case("train.History.plot", "value", lambda: history().plot(smoothing=1.0), ValueError,
         arg="smoothing", expected="< 1", got="1.0", note="was cryptic"),
    Case("train.History.plot", "empty", lambda: History().plot(), ValueError,
         arg="History.plot", expected="at least one logged row", got="none", note="was clear"),
    Case("train.History.series", "missing-key", lambda: history().series("acc"), ValueError,
         arg="History key", expected="one of", got="acc", note="was clear"),

    # ---- callbacks ----------------------------------------------------------------------------------------------
    Case("train.StopAtStep", "type", lambda: StopAtStep("3"), TypeError,
         arg="step", expected="int", got="str", note="was silent"),
    Case("train.StopAtStep", "zero", lambda: StopAtStep(0), ValueError,
         arg="step", expected=">= 1", got="0", note="was silent"),
    Case("train.ClampParameter", "nan", lambda: ClampParameter(min=float("nan")), ValueError,
         arg="min", expected="finite", got="nan", note="was clear"),
    Case("train.ClampParameter", "value", lambda: ClampParameter(min=2.0, max=1.0), ValueError,
         arg="min", expected="<= max", got="2.0", note="was clear"),
    Case("train.ClampParameter", "empty", lambda: ClampParameter(attr=""), TypeError,
         arg="attr", expected="parameter name", got="''", note="was clear"),
    Case("train.ClampParameter.parameter", "missing-key", lambda: ClampParameter("scale").parameter(model()),
         ValueError, arg="'scale'", expected="parameter", got="0.weight", note="was clear"),

    # ---- param_groups -----------------------------------------------------------------------------------------
    Case("train.param_groups", "type", lambda: param_groups("net", 0.1), TypeError,
         arg="model", expected="nn.Module", got="str", note="was cryptic"),
    Case("train.param_groups", "nan", lambda: param_groups(model(), float("nan")), ValueError,
         arg="weight_decay", expected="finite", got="nan", note="was silent"),
    Case("train.param_groups", "negative", lambda: param_groups(model(), -1.0), ValueError,
         arg="weight_decay", expected=">= 0", got="-1.0", note="was silent"),
    Case("train.param_groups", "type", lambda: param_groups(model(), "0.1"), TypeError,
         arg="weight_decay", expected="number", got="str", note="was silent"),

    # ---- Trainer: construction ---------------------------------------------------------------------------------
    Case("train.Trainer", "type", lambda: Trainer("net", mse, Data(), cfg()), TypeError,
         arg="model", expected="nn.Module", got="str", note="was clear"),
    Case("train.Trainer", "type", lambda: Trainer(model(), mse, Data(), {"max_steps": 2}), TypeError,
         arg="config", expected="TrainConfig", got="dict", note="was clear"),
    Case("train.Trainer", "type", lambda: Trainer(model(), "mse", Data(), cfg()), TypeError,
         arg="loss_fn", expected="callable", got="str", note="was clear"),
    Case("train.Trainer", "empty", lambda: Trainer(model(), mse, Data(0), cfg()), ValueError,
         arg="num_samples", expected="at least one global batch", got="0", note="was clear"),
    Case("train.Trainer", "type", lambda: trainer(optimizer="adam"), TypeError,
         arg="optimizer", expected="torch.optim.Optimizer", got="str", note="was cryptic"),
    Case("train.Trainer", "type", lambda: trainer(eval_fn=5), TypeError,
         arg="eval_fn", expected="callable", got="int", note="was silent"),
    Case("train.Trainer", "type", lambda: trainer(collate_fn=5), TypeError,
         arg="collate_fn", expected="callable", got="int", note="was silent"),
    Case("train.Trainer", "type", lambda: trainer(callbacks=[object()]), TypeError,
         arg="callbacks[0]", expected="Callback", got="object", note="was silent"),
    Case("train.Trainer", "type", lambda: trainer(callbacks=StopAtStep(2)), TypeError,
         arg="callbacks", expected="list of Callback", got="StopAtStep", note="was cryptic"),
    Case("train.Trainer", "unwritable", lambda: trainer(config=dict(checkpoint_dir=f"{UNWRITABLE}/ckpt")),
         PermissionError, arg="TrainConfig.checkpoint_dir", expected="writable folder", got=UNWRITABLE,
         note="was silent"),
    Case("train.Trainer", "path", lambda p: (p / "f").write_text("x") and trainer(config=dict(checkpoint_dir=p / "f")),
         ValueError, arg="TrainConfig.checkpoint_dir", expected="a folder to write into", got="which is a file",
         note="was silent"),
    Case("train.Trainer", "path", lambda p: (p / "f").write_text("x")
         and trainer(config=dict(checkpoint_dir=p / "f" / "ckpt")), ValueError,
         arg="TrainConfig.checkpoint_dir", expected="a folder to write into", got="below the file", note="was silent"),

    # ---- Trainer: hooks -----------------------------------------------------------------------------------------
    Case("train.Trainer.fit", "type", lambda: Trainer(model(), lambda m, b: "low", Data(), cfg()).fit(), ValueError,
         arg="loss_fn", expected="scalar tensor", got="str", note="was clear"),
    Case("train.Trainer.fit", "missing-key", lambda: Trainer(model(), lambda m, b: {"mse": mse(m, b)}, Data(),
                                                             cfg()).fit(), ValueError,
         arg="loss_fn", expected="'loss'", got="mse", note="was clear"),
    Case("train.Trainer.fit", "shape", lambda: Trainer(model(), lambda m, b: {"loss": mse(m, b), "acc": torch.ones(2)},
                                                       Data(), cfg()).fit(), ValueError,
         arg="loss_fn", expected="scalar", got="(2,)", extra=("'acc'",), note="was cryptic"),
    Case("train.Trainer.evaluate", "type", lambda: fit(eval_fn=lambda m: "high"), TypeError,
         arg="eval_fn", expected="dict of metric name", got="str", note="was clear"),
    Case("train.Trainer.evaluate", "type", lambda: fit(eval_fn=lambda m: {"acc": "high"}), TypeError,
         arg="eval_fn", expected="number", got="str", extra=("'acc'",), note="was cryptic"),
    Case("train.Trainer.evaluate", "shape", lambda: fit(eval_fn=lambda m: {"acc": torch.ones(2)}), TypeError,
         arg="eval_fn", expected="number", got="(2,)", extra=("'acc'",), note="was cryptic"),

    # ---- Trainer: checkpoints and resume ---------------------------------------------------------------------
    Case("train.Trainer.fit", "path", lambda p: trainer().fit(resume_from=p / "none"),
         FileNotFoundError, arg="checkpoint", expected="trainer_state.json", got="none", note="was clear"),
    Case("train.Trainer.fit", "truncated", lambda p: resume_after(p, truncate("trainer_state.json")), ValueError,
         arg="trainer_state.json", expected="JSON", got="invalid", note="was cryptic"),
    Case("train.Trainer.fit", "missing-key", lambda p: resume_after(p, lambda c: (c / "trainer_state.json")
                                                                   .write_text("{}")), ValueError,
         arg="trainer_state.json", expected="keys", got="missing", extra=("'step'",), note="was cryptic"),
    Case("train.Trainer.fit", "schema", lambda p: resume_after(p, state_with(step="2")), TypeError,
         arg="'step'", expected="int", got="str", extra=("trainer_state.json",), note="was cryptic"),
    Case("train.Trainer.fit", "schema", lambda p: resume_after(p, state_with(history={"step": 1})), TypeError,
         arg="'history'", expected="list", got="dict", extra=("trainer_state.json",), note="was cryptic"),
    Case("train.Trainer.fit", "corrupt", lambda p: resume_after(p, lambda c: (c / "rng_state_0.safetensors")
                                                               .write_bytes(b"\x00junk" * 30)), ValueError,
         arg="rng_state_0.safetensors", expected="valid", got="header",
         note="was cryptic"),
    Case("train.Trainer.fit", "schema", lambda p: resume_after(p, lambda c: (c / "rng_state_0.safetensors")
                                                              .write_bytes((c / "model.safetensors").read_bytes())),
         ValueError, arg="rng_state_0.safetensors", expected="RNG state", got="missing", note="was cryptic"),
    Case("train.Trainer.fit", "truncated", lambda p: resume_after(p, truncate("optimizer.safetensors")), ValueError,
         arg="optimizer.safetensors", expected="valid safetensors", got="optimizer.safetensors", note="was clear"),
    Case("train.Trainer.fit", "schema", lambda p: Trainer(nn.Linear(4, 1), mse, Data(), cfg(max_steps=4))
         .fit(resume_from=checkpoint(p)), ValueError,
         arg="model.safetensors", expected="one for Linear", got="Sequential", note="was clear"),
    Case("train.Trainer.fit", "path", lambda p: resume_after(p, lambda c: (c / "model.safetensors").unlink()),
         FileNotFoundError, arg="model.safetensors", expected="checkpoint file", got="no", note="was clear"),
    Case("train.Trainer.save_checkpoint", "unwritable", lambda: trainer().save_checkpoint(f"{UNWRITABLE}/c"),
         PermissionError, arg="path", expected="writable folder", got=UNWRITABLE, note="was cryptic"),
    Case("train.Trainer.save_checkpoint", "missing-key", lambda: trainer().save_checkpoint(), ValueError,
         arg="path", expected="checkpoint_dir", got="None", note="was clear"),
    Case("train.latest_checkpoint", "type", lambda: latest_checkpoint(5), TypeError,
         arg="path", expected="a path (str or os.PathLike)", got="int", note="was cryptic"),
    Case("train.latest_checkpoint", "path", lambda p: latest_checkpoint(p / "none"), FileNotFoundError,
         arg="checkpoint", expected="trainer_state.json", got="none", note="was clear"),

    # ---- experiment: RenderedSplit, render_split -----------------------------------------------------------
    Case("experiment.RenderedSplit", "value", lambda: RenderedSplit({"images": torch.rand(3, 3, 4, 4)}, [[]] * 2,
                                                                    [{}] * 3), ValueError,
         arg="captions", expected="one non-zero length", got="captions 2", note="was clear"),
    Case("experiment.RenderedSplit", "type", lambda: RenderedSplit({"images": [1, 2]}, [[]] * 2, [{}] * 2), TypeError,
         arg="tensors['images']", expected="torch.Tensor", got="list", note="was silent"),
    Case("experiment.RenderedSplit.subset", "zero", lambda: split().subset(0), ValueError,
         arg="index", expected=">= 1", got="0", note="was clear"),
    Case("experiment.RenderedSplit.subset", "huge", lambda: split().subset([99]), ValueError,
         arg="index", expected="[0, 8)", got="[99]", note="was clear"),
    Case("experiment.RenderedSplit.subset", "type", lambda: split().subset("a"), TypeError,
         arg="index", expected="int, a slice or a list", got="str", note="was cryptic"),
    Case("experiment.RenderedSplit.with_tensors", "shape", lambda: split().with_tensors(images=torch.rand(2, 3, 8, 8)),
         ValueError, arg="tensors", expected="one non-zero length", got="'images': 2", note="was clear"),
    Case("experiment.render_split", "zero", lambda: render_split("train", 0), ValueError,
         arg="n", expected=">= 1", got="0", note="was clear"),
    Case("experiment.render_split", "type", lambda: render_split("train", "5"), TypeError,
         arg="n", expected="int", got="str", note="was clear"),
    Case("experiment.render_split", "value", lambda: render_split("train", 4, fields=["images", "mask"]), ValueError,
         arg="fields", expected="subset of", got="mask", note="was clear"),
    Case("experiment.render_split", "type", lambda: render_split("train", 4, fields="images"), TypeError,
         arg="fields", expected="list of field names", got="str", note="was cryptic"),
    Case("experiment.render_split", "zero", lambda: render_split("train", 4, chunk=0), ValueError,
         arg="chunk", expected=">= 1", got="0", note="was clear"),
    Case("experiment.render_split", "type", lambda: render_split(3, 4), ValueError,
         arg="split", expected="one of", got="3", note="was clear"),
    Case("experiment.render_split", "huge", lambda: render_split(ShapesWorld("train", length=4), 10), ValueError,
         arg="n", expected="<= 4", got="10", note="was clear"),

    # ---- experiment: loss, evaluation --------------------------------------------------------------------------
    Case("experiment.logits_of", "type", lambda: logits_of(None), TypeError,
         arg="model output", expected="logits", got="NoneType", note="was clear"),
    Case("experiment.classification_loss", "missing-key",
         lambda: classification_loss(net(), {"images": torch.rand(2, 3, 8, 8)}), TypeError,
         arg="batch", expected="'label'", got="images", note="was clear"),
    Case("experiment.classification_loss", "shape",
         lambda: classification_loss(net(), (torch.rand(4, 3, 8, 8), torch.zeros(3, dtype=torch.long))), ValueError,
         arg="label", expected="equal sizes", got="3", note="was cryptic"),
    Case("experiment.classification_loss", "dtype",
         lambda: classification_loss(net(), (torch.rand(4, 3, 8, 8), torch.zeros(4))), ValueError,
         arg="label", expected="dtype int", got="float32", note="was cryptic"),
    Case("experiment.classification_loss", "huge",
         lambda: classification_loss(net(), (torch.rand(2, 3, 8, 8), torch.tensor([0, 9]))), ValueError,
         arg="label", expected="[0, 3]", got="9", note="was cryptic"),
    Case("experiment.evaluate_classifier", "zero", lambda: evaluate_classifier(net(), split(), batch_size=0),
         ValueError, arg="batch_size", expected=">= 1", got="0", note="was clear"),
    Case("experiment.evaluate_classifier", "type", lambda: evaluate_classifier("net", split()), TypeError,
         arg="model", expected="nn.Module", got="str", note="was clear"),
    Case("experiment.evaluate_classifier", "shape",
         lambda: evaluate_classifier(net(), (torch.rand(4, 3, 8, 8), torch.zeros(3, dtype=torch.long))),
         ValueError, arg="data", expected="as many images as labels", got="4 and 3", note="was clear"),
    Case("experiment.evaluate_classifier", "type", lambda: evaluate_classifier(net(), None), TypeError,
         arg="data", expected="'images' and 'label'", got="NoneType", note="was clear"),

    # ---- experiment: run, multi_seed, plot_curves ------------------------------------------------------------
    Case("experiment.run", "missing-key", lambda: run(net(), split()), ValueError,
         arg="config", expected="max_steps", got="neither", note="was clear"),
    Case("experiment.run", "type", lambda: run(net(), split(), config={"max_steps": 2}), TypeError,
         arg="config", expected="TrainConfig", got="dict", note="was clear"),
    Case("experiment.run", "schema", lambda: run(net(), split(), max_steps=2, lrr=0.1), ValueError,
         arg="TrainConfig", expected="subset of", got="lrr", note="was clear"),
    Case("experiment.run", "value", lambda: run(net(), split(), max_steps=2, eval_data=split(),
                                                eval_fn=lambda m: {}), ValueError,
         arg="eval_fn", expected="`eval_data` or `eval_fn`", got="both", note="was clear"),
    Case("experiment.run", "type", lambda: run(net(), split(), max_steps=2, batch_size=4, progress=False,
                                               eval_data=5), TypeError,
         arg="eval_data", expected="RenderedSplit", got="int", note="was silent"),
    Case("experiment.run", "type", lambda: run(net(), split(), max_steps=2, batch_size=4, progress=False,
                                               eval_data={"val": 5}), TypeError,
         arg="eval_data['val']", expected="RenderedSplit", got="int", note="was silent"),
    Case("experiment.multi_seed", "empty", lambda: multi_seed(lambda s: 1.0, seeds=[]), ValueError,
         arg="seeds", expected="distinct seeds", got="[]", note="was clear"),
    Case("experiment.multi_seed", "value", lambda: multi_seed(lambda s: 1.0, seeds=[1, 1]), ValueError,
         arg="seeds", expected="distinct seeds", got="[1, 1]", note="was clear"),
    Case("experiment.multi_seed", "type", lambda: multi_seed(lambda s: 1.0, seeds=3), TypeError,
         arg="seeds", expected="list of", got="int", note="was cryptic"),
    Case("experiment.multi_seed", "negative", lambda: multi_seed(lambda s: 1.0, seeds=[-1]), ValueError,
         arg="seeds[0]", expected=">= 0", got="-1", note="was clear"),
    Case("experiment.multi_seed", "type", lambda: multi_seed(5), TypeError,
         arg="fn", expected="callable", got="int", note="was clear"),
    Case("experiment.multi_seed", "type", lambda: multi_seed(lambda s: "high"), TypeError,
         arg="fn", expected="number", got="str", note="was clear"),
    Case("experiment.multi_seed", "nan", lambda: multi_seed(lambda s: float("nan")), ValueError,
         arg="fn", expected="finite", got="nan", note="was clear"),
    Case("experiment.plot_curves", "value", lambda: plot_curves({"a": history()}, smoothing=1), ValueError,
         arg="smoothing", expected="< 1", got="1", note="was clear"),
    Case("experiment.plot_curves", "nan", lambda: plot_curves({"a": history()}, smoothing=float("nan")), ValueError,
         arg="smoothing", expected="finite", got="nan", note="was clear"),
    Case("experiment.plot_curves", "empty", lambda: plot_curves({}), ValueError,
         arg="histories", expected="non-empty dict", got="{}", note="was clear"),
    Case("experiment.plot_curves", "type", lambda: plot_curves({"a": [1.0]}), TypeError,
         arg="histories['a']", expected="History", got="list", note="was clear"),
    Case("experiment.plot_curves", "missing-key", lambda: plot_curves({"a": history()}, key="acc"), ValueError,
         arg="histories['a']", expected="metric", got="acc", note="was clear"),
    Case("experiment.plot_curves", "type", lambda: plot_curves({"a": history()}, ax="left"), TypeError,
         arg="ax", expected="matplotlib Axes", got="str", note="was cryptic"),

    # ---- experiment: launch -------------------------------------------------------------------------------------
    Case("experiment.launch", "zero", lambda: launch("math:sqrt", nprocs=0), ValueError,
         arg="nprocs", expected=">= 1", got="0", note="was clear"),
    Case("experiment.launch", "negative", lambda: launch("math:sqrt", nprocs=-1), ValueError,
         arg="nprocs", expected=">= 1", got="-1", note="was clear"),
    Case("experiment.launch", "type", lambda: launch("math:sqrt", nprocs="2"), TypeError,
         arg="nprocs", expected="int", got="str", note="was clear"),
    Case("experiment.launch", "value", lambda: launch("math.sqrt"), ValueError,
         arg="target", expected="'module:function'", got="math.sqrt", note="was clear"),
    Case("experiment.launch", "value", lambda: launch("vlnotes_no_such_module:main"), ValueError,
         arg="target", expected="importable module", got="vlnotes_no_such_module", note="was silent"),
    Case("experiment.launch", "path", lambda p: launch(f"{p}/none.py:main"), ValueError,
         arg="target", expected="no file", got="none.py", note="was clear"),
    Case("experiment.launch", "type", lambda: launch(lambda: 1), TypeError,
         arg="target", expected="define it in a module", got="<lambda>", note="was clear"),
    Case("experiment.launch", "nan", lambda: launch("math:sqrt", timeout=float("nan")), ValueError,
         arg="timeout", expected="finite", got="nan", note="was clear"),
    Case("experiment.launch", "zero", lambda: launch("math:sqrt", timeout=0), ValueError,
         arg="timeout", expected="> 0", got="0", note="was clear"),
    Case("experiment.launch", "type", lambda: launch("math:sqrt", args=5), TypeError,
         arg="args", expected="tuple", got="int", note="was clear"),
    Case("experiment.launch", "type", lambda: launch("math:sqrt", show_output="yes"), TypeError,
         arg="show_output", expected="True or False", got="yes", note="was silent"),
]


def truncate_file(path, keep=0.5):
    path.write_bytes(path.read_bytes()[:int(path.stat().st_size * keep)])
    return path


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, tmp_path):
    check_case(case, tmp_path)


def test_every_case_says_what_it_did_before():
    assert all(c.note in ("was clear", "was cryptic", "was silent") for c in CASES)
