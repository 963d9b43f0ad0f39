"The shared trainer: exact resume, accumulation, checkpoints, config validation, callbacks, evaluation, bf16."
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from matplotlib.figure import Figure

from vlnotes.train import (Callback, GlobalBatchSampler, History, StopAtStep, TrainConfig, Trainer, latest_checkpoint,
                           load_model, lr_factor, model_metadata, param_groups, save_model)


class Regression(torch.utils.data.Dataset):
    "y = x @ w + noise; deterministic in (seed, index)."
    def __init__(self, n=96, dim=4, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        self.y = self.x @ torch.linspace(-1, 1, dim) + 0.1 * torch.randn(n, generator=g)
    def __len__(self): return len(self.y)
    def __getitem__(self, i): return {"x": self.x[i], "y": self.y[i]}


class BatchedRegression(Regression):
    "Same data, fetched a whole batch at a time through `__getitems__`."
    def __init__(self, *a, **k):
        super().__init__(*a, **k); self.batched_calls = 0
    def __getitems__(self, idx):
        self.batched_calls += 1
        idx = torch.tensor(idx)
        return {"x": self.x[idx], "y": self.y[idx]}


def make_model(dropout=0.0, seed=0, width=16):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, width), nn.GELU(), nn.Dropout(dropout), nn.LayerNorm(width), nn.Linear(width, 1))


def mse(model, batch):
    return F.mse_loss(model(batch["x"]).squeeze(-1), batch["y"])


def cfg(**kw):
    return TrainConfig(**{**dict(max_steps=6, lr=1e-2, batch_size=8, progress=False, log_every=1), **kw})


def params(model):
    return [p.detach().clone() for p in model.state_dict().values()]


def test_exact_resume_with_dropout_and_accumulation(tmp_path):
    "Stop at step 4, resume in a fresh trainer with another init and a disturbed RNG: bit-identical to no stop."
    kw = dict(max_steps=8, batch_size=8, grad_accum_steps=2, warmup_steps=2, schedule="cosine", max_grad_norm=1.0)
    full = make_model(dropout=0.3)
    run_full = Trainer(full, mse, Regression(), cfg(**kw))
    run_full.fit()

    ckpt = tmp_path / "ckpt"
    stopped = Trainer(make_model(dropout=0.3), mse, Regression(),
                      cfg(**kw, checkpoint_every=2, checkpoint_dir=ckpt), callbacks=[StopAtStep(4)])
    stopped.fit()
    assert stopped.step == 4 and latest_checkpoint(ckpt).name == "step_00000004"

    torch.manual_seed(1234)
    resumed_model = make_model(dropout=0.3, seed=99)
    resumed = Trainer(resumed_model, mse, Regression(), cfg(**kw, checkpoint_every=2, checkpoint_dir=ckpt))
    resumed.fit(resume_from=ckpt)
    assert resumed.step == 8
    for a, b in zip(params(full), params(resumed_model)):
        assert torch.equal(a, b)
    assert run_full.history.rows == resumed.history.rows
    # no pickle anywhere: only safetensors and JSON
    assert {p.suffix for p in latest_checkpoint(ckpt).iterdir()} == {".safetensors", ".json"}


def test_resume_without_restoring_is_not_identical(tmp_path):
    "Control for the test above: a fresh run from the checkpointed weights alone does not match."
    kw = dict(max_steps=6, grad_accum_steps=2)
    full = make_model(dropout=0.3); Trainer(full, mse, Regression(), cfg(**kw)).fit()
    naive = make_model(dropout=0.3)
    for _ in range(2):        # 3 + 3 steps, but the second half starts a new optimiser, RNG stream and data order
        Trainer(naive, mse, Regression(), cfg(**{**kw, "max_steps": 3})).fit()
    assert any(not torch.equal(a, b) for a, b in zip(params(full), params(naive)))


def test_grad_accumulation_equals_big_batch():
    runs = {}
    for k in (1, 2, 4):
        model = make_model()
        Trainer(model, mse, Regression(), cfg(grad_accum_steps=k)).fit()
        runs[k] = params(model)
    moved = max((a - b).abs().max().item() for a, b in zip(runs[1], params(make_model())))
    assert moved > 1e-3
    for k in (2, 4):
        assert max((a - b).abs().max().item() for a, b in zip(runs[1], runs[k])) <= 1e-6


def test_uses_getitems_and_collate_fn():
    data, seen = BatchedRegression(), []
    def collate(batch):
        seen.append(batch["x"].shape[0]); return batch
    Trainer(make_model(), mse, data, cfg(max_steps=3, grad_accum_steps=2), collate_fn=collate).fit()
    assert data.batched_calls == 6 and seen == [4] * 6


def test_sampler_shards_union_to_single_process():
    one = GlobalBatchSampler(50, 12, grad_accum_steps=3, seed=5, max_steps=10)
    ranks = [GlobalBatchSampler(50, 12, grad_accum_steps=3, num_replicas=2, rank=r, seed=5, max_steps=10)
             for r in (0, 1)]
    for step in range(10):
        for i, micro in enumerate(one.micro_batches(step)):
            assert micro == ranks[0].micro_batches(step)[i] + ranks[1].micro_batches(step)[i]
    with pytest.raises(ValueError, match="divisible"):
        GlobalBatchSampler(50, 12, grad_accum_steps=3, num_replicas=8)
    with pytest.raises(ValueError, match="num_samples: expected at least one global batch"):
        Trainer(make_model(), mse, Regression(n=4), cfg())


def test_save_load_round_trip_with_tied_weights(tmp_path):
    class LM(nn.Module):
        def __init__(self, vocab=10, dim=6):
            super().__init__()
            self.emb, self.out = nn.Embedding(vocab, dim), nn.Linear(dim, vocab)
            self.out.weight = self.emb.weight
            self.register_buffer("steps", torch.tensor(5))
    src, dst = LM(), LM()
    path = save_model(src, tmp_path / "lm.safetensors", config={"vocab": 10, "dim": 6})
    assert load_model(dst, path) is dst
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        assert torch.equal(a, b), k
    assert dst.out.weight is dst.emb.weight
    assert model_metadata(path) == {"architecture": "LM", "config": {"vocab": 10, "dim": 6}}


def test_load_model_errors(tmp_path):
    model = make_model()
    path = save_model(model, tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="holds a Sequential checkpoint, expected one for Linear"):
        load_model(nn.Linear(4, 1), path)
    with pytest.raises(ValueError, match=r"shape mismatches \(5\): 0.weight: expected \(8, 4\), found \(16, 4\)"):
        load_model(make_model(width=8), path)
    bigger = nn.Sequential(*make_model(), nn.Linear(1, 1))
    with pytest.raises(ValueError, match=r"missing keys \(2\): 5.weight, 5.bias"):
        load_model(bigger, path)
    smaller = nn.Sequential(*list(make_model())[:4])
    with pytest.raises(ValueError, match=r"unexpected keys \(2\): 4.bias, 4.weight"):
        load_model(smaller, path)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:-20])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00not a checkpoint" * 50)
    for bad in (truncated, garbage):
        with pytest.raises(ValueError, match="not a valid safetensors checkpoint"):
            load_model(make_model(), bad)
    with pytest.raises(FileNotFoundError):
        load_model(make_model(), tmp_path / "nope.safetensors")


@pytest.mark.parametrize("bad, match", [
    (dict(max_steps=0), "max_steps"), (dict(max_steps=2.5), "max_steps"), (dict(lr=0), "lr"),
    (dict(batch_size=10, grad_accum_steps=4), "multiple of grad_accum_steps"),
    (dict(mixed_precision="fp16"), "mixed_precision"), (dict(schedule="step"), "schedule"),
    (dict(max_grad_norm=-1), "max_grad_norm"), (dict(warmup_steps=100), "warmup_steps"),
    (dict(checkpoint_every=2), "checkpoint_dir"), (dict(log_every=0), "log_every"), (dict(seed=-1), "seed"),
    (dict(eval_every=0), "eval_every"), (dict(min_lr_ratio=2.0), "min_lr_ratio"),
    (dict(weight_decay=-0.1), "weight_decay"),
])
def test_config_validation(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cfg(**bad)


def test_trainer_argument_errors():
    with pytest.raises(TypeError, match="TrainConfig"):
        Trainer(make_model(), mse, Regression(), {"max_steps": 2})
    with pytest.raises(TypeError, match="nn.Module"):
        Trainer(lambda x: x, mse, Regression(), cfg())
    with pytest.raises(ValueError, match="scalar"):
        Trainer(make_model(), lambda m, b: (m(b["x"]) - b["y"]) ** 2, Regression(), cfg()).fit()
    with pytest.raises(ValueError, match="without 'loss'"):
        Trainer(make_model(), lambda m, b: {"mse": mse(m, b)}, Regression(), cfg()).fit()


def test_callbacks_and_stop():
    events = []
    class Recorder(Callback):
        def on_train_begin(self, trainer): events.append("begin")
        def on_step_end(self, trainer, step, logs):
            events.append(step); assert set(logs) >= {"loss", "lr"}
            if step == 3: trainer.should_stop = True
        def on_eval(self, trainer, step, metrics): events.append(("eval", step, metrics))
        def on_train_end(self, trainer): events.append("end")
    t = Trainer(make_model(), mse, Regression(), cfg(max_steps=10), eval_fn=lambda m: {"one": 1.0},
                callbacks=[Recorder()])
    h = t.fit()
    assert events == ["begin", 1, 2, 3, ("eval", 3, {"eval_one": 1.0}), "end"]
    assert t.step == 3 and h.rows[-1]["step"] == 3 and h.rows[-1]["eval_one"] == 1.0


def test_eval_hook_every_and_at_end():
    calls = []
    def eval_fn(model):
        calls.append((model.training, torch.is_grad_enabled()))
        return {"acc": torch.tensor(0.5), "eval_loss": 2}
    t = Trainer(make_model(dropout=0.5), mse, Regression(), cfg(max_steps=7, eval_every=3, log_every=2),
                eval_fn=eval_fn)
    h = t.fit()
    assert calls == [(False, False)] * 3                       # steps 3, 6 and the end (7); eval mode, no grad
    assert h.series("eval_acc") == ([3, 6, 7], [0.5] * 3) and h.series("eval_loss")[1] == [2.0] * 3
    assert h.series("loss")[0] == [2, 4, 6, 7] and t.model.training
    fig = h.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert History.from_json(h.to_json()).rows == h.rows
    with pytest.raises(ValueError, match="History key"):
        h.plot(["nope"])


def test_schedule_and_weight_decay_groups():
    model = make_model()
    groups = param_groups(model, 0.1)
    assert all(p.ndim >= 2 for p in groups[0]["params"]) and groups[0]["weight_decay"] == 0.1
    assert all(p.ndim < 2 for p in groups[1]["params"]) and groups[1]["weight_decay"] == 0.0
    h = Trainer(model, mse, Regression(), cfg(max_steps=10, lr=0.1, warmup_steps=3, schedule="cosine")).fit()
    lrs = h.series("lr")[1]
    assert all(math.isclose(lr, 0.1 * lr_factor(s, 10, 3, "cosine")) for s, lr in enumerate(lrs))
    assert lrs[0] < lrs[2] == max(lrs) and lrs[-1] < lrs[3]


def test_bf16_autocast_trains():
    model, seen = make_model(), set()
    model[0].register_forward_hook(lambda m, i, o: seen.add(o.dtype))
    before = params(model)
    h = Trainer(model, mse, Regression(), cfg(mixed_precision="bf16", max_steps=4)).fit()
    assert seen == {torch.bfloat16}
    assert all(math.isfinite(r["loss"]) for r in h.rows)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, params(model)))
    # and an fp32 trainer afterwards in the same process still runs in fp32
    seen.clear(); Trainer(model, mse, Regression(), cfg(max_steps=1)).fit()
    assert seen == {torch.float32}


def test_nan_loss_is_reported():
    with pytest.raises(FloatingPointError, match="step 1"):
        Trainer(make_model(), lambda m, b: mse(m, b) * float("nan"), Regression(), cfg()).fit()


def test_worker_processes_give_the_same_run():
    runs = []
    for workers in (0, 2):
        model = make_model(dropout=0.2)
        Trainer(model, mse, Regression(), cfg(max_steps=4, num_workers=workers)).fit()
        runs.append(params(model))
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_user_optimizer_follows_the_schedule(tmp_path):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    h = Trainer(model, mse, Regression(), cfg(max_steps=4, warmup_steps=4), optimizer=opt).fit()
    assert h.series("lr")[1] == [0.125, 0.25, 0.375, 0.5]
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        Trainer(make_model(), mse, Regression(), cfg()).fit(resume_from=tmp_path / "empty")
