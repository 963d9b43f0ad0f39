"""Two CPU processes (gloo) train exactly like one process with the same global batch.

`vlnotes.experiment.launch` runs `ddp_runs` below in 2 processes (a process group on a file store: no port,
no network). It trains the same tiny model four ways (plain DDP; DDP + gradient accumulation; a DDP run
stopped by a callback on rank 0 only, with checkpoints; its resumption) and returns each run's final
parameters. The test trains the same model in this process (one process, no DDP) and compares.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vlnotes.experiment import launch
from vlnotes.train import Callback, TrainConfig, Trainer


class Data(torch.utils.data.Dataset):
    def __init__(self, n=40):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(n, generator=g)
    def __len__(self): return len(self.y)
    def __getitem__(self, i): return {"x": self.x[i], "y": self.y[i]}


def loss_fn(model, batch): return F.mse_loss(model(batch["x"]).squeeze(-1), batch["y"])


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))


class StopOnMainOnly(Callback):
    "Only rank 0 asks to stop: the trainer must stop every rank at the same step."
    def __init__(self, step): self.step = step
    def on_step_end(self, trainer, step, logs):
        if trainer.accelerator.is_main_process and step >= self.step: trainer.should_stop = True


def train_once(stop=None, resume=False, ckpt=None, **kw) -> Trainer:
    cfg = TrainConfig(max_steps=7, lr=0.05, batch_size=8, log_every=1, progress=False, checkpoint_dir=ckpt,
                      checkpoint_every=2 if ckpt else None, **kw)
    t = Trainer(make_model(), loss_fn, Data(), cfg, callbacks=[StopOnMainOnly(stop)] if stop else [])
    t.fit(resume_from=ckpt if resume else None)
    return t


def params(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t.unwrapped_model.state_dict().items()}


def ddp_runs(ckpt_dir: str) -> dict:
    "One rank of the launch: the four runs; the final parameters of three, what the trainer saw."
    plain = train_once()
    accum = train_once(grad_accum_steps=2)
    stopped = train_once(stop=3, ckpt=ckpt_dir)
    resumed = train_once(resume=True, ckpt=ckpt_dir)
    return {"world_size": plain.accelerator.num_processes, "backend": str(plain.accelerator.distributed_type),
            "stopped_at": stopped.step, "loss": plain.history.series("loss")[1],
            "params": {"plain": params(plain), "accum": params(accum), "resumed": params(resumed)}}


@pytest.mark.distributed
def test_two_processes_match_one_process(tmp_path):
    ranks = launch(ddp_runs, nprocs=2, args=(str(tmp_path / "ckpt"),), timeout=300)
    for info in ranks:
        assert info["world_size"] == 2 and "MULTI_CPU" in info["backend"] and info["stopped_at"] == 3

    single = train_once()                       # this process: one process, no DDP, same global batch of 8
    assert single.accelerator.num_processes == 1
    ref = params(single)
    for r, info in enumerate(ranks):
        for name, got in info["params"].items():
            assert got.keys() == ref.keys()
            diff = max((got[k] - ref[k]).abs().max().item() for k in ref)
            assert diff <= 1e-6, f"rank {r}, {name}: 2 processes differ from 1 process by {diff}"
    # the comparison is not vacuous: training moved the parameters
    init = make_model().state_dict()
    assert max((ref[k] - v).abs().max().item() for k, v in init.items()) > 1e-2
    # the logged loss is the mean over both ranks, i.e. the one-process loss
    assert max(abs(a - b) for a, b in zip(ranks[0]["loss"], single.history.series("loss")[1])) < 1e-5
