"""Two CPU processes (gloo) under `torch.distributed.run` train exactly like one process with the same global batch.

The worker script below is written to a temp dir and launched with `python -m torch.distributed.run
--nproc_per_node 2` on 127.0.0.1 and a free port (no network). It trains the same tiny model four ways
(plain DDP; DDP + gradient accumulation; a DDP run stopped by a callback on rank 0 only, with
checkpoints; its resumption) and rank 0 saves the final parameters. The test runs the same script
in this process (one process, no DDP) and compares.
"""
import importlib.util, json, os, signal, socket, subprocess, sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = r'''
import json, sys
from pathlib import Path
import torch, torch.nn.functional as F
from torch import nn
from vlnotes.train import Callback, TrainConfig, Trainer, save_model

torch.set_num_threads(1)

class Data(torch.utils.data.Dataset):
    def __init__(self, n=40):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(n, generator=g)
    def __len__(self): return len(self.y)
    def __getitem__(self, i): return {"x": self.x[i], "y": self.y[i]}

def loss_fn(model, batch): return F.mse_loss(model(batch["x"]).squeeze(-1), batch["y"])

class StopOnMainOnly(Callback):
    "Only rank 0 asks to stop: the trainer must stop every rank at the same step."
    def __init__(self, step): self.step = step
    def on_step_end(self, trainer, step, logs):
        if trainer.accelerator.is_main_process and step >= self.step: trainer.should_stop = True

def run(out, name, stop=None, resume=False, ckpt=None, **kw):
    cfg = TrainConfig(max_steps=7, lr=0.05, batch_size=8, log_every=1, progress=False, checkpoint_dir=ckpt,
                      checkpoint_every=2 if ckpt else None, **kw)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    t = Trainer(model, loss_fn, Data(), cfg, callbacks=[StopOnMainOnly(stop)] if stop else [])
    t.fit(resume_from=ckpt if resume else None)
    if t.accelerator.is_main_process:
        save_model(t.unwrapped_model, Path(out) / f"{name}.safetensors")
    return t

def main(out):
    Path(out).mkdir(parents=True, exist_ok=True)
    plain = run(out, "plain")
    run(out, "accum", grad_accum_steps=2)
    ckpt = str(Path(out) / "ckpt")
    stopped = run(out, "stopped", stop=3, ckpt=ckpt)
    run(out, "resumed", resume=True, ckpt=ckpt)
    if plain.accelerator.is_main_process:
        info = {"world_size": plain.accelerator.num_processes, "backend": str(plain.accelerator.distributed_type),
                "stopped_at": stopped.step, "loss": plain.history.series("loss")[1]}
        (Path(out) / "info.json").write_text(json.dumps(info))
    plain.accelerator.wait_for_everyone()
    plain.accelerator.end_training()      # destroys the process group

if __name__ == "__main__":
    main(sys.argv[1])
'''


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two_processes(script: Path, out: Path, timeout: float = 240) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "RANK", "LOCAL_RANK", "WORLD_SIZE"))}
    env.update(OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"      # keep gloo on the loopback interface: no network needed
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(script), str(out)]
    # own session, so a hang can be ended by killing exactly this launcher and its workers
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"distributed run did not finish in {timeout}s:\n{output[-4000:]}")
    assert proc.returncode == 0, f"distributed run failed (exit {proc.returncode}):\n{output[-4000:]}"
    return output


@pytest.mark.distributed
def test_two_processes_match_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    launch_two_processes(script, tmp_path / "ddp")
    info = json.loads((tmp_path / "ddp" / "info.json").read_text())
    assert info["world_size"] == 2 and "MULTI_CPU" in info["backend"] and info["stopped_at"] == 3

    # the same script in this process: one process, no DDP, same global batch of 8
    spec = importlib.util.spec_from_file_location("vlnotes_ddp_worker", script)
    worker = importlib.util.module_from_spec(spec); spec.loader.exec_module(worker)
    single = worker.run(tmp_path / "single", "plain")
    assert single.accelerator.num_processes == 1
    ref = load_file(str(tmp_path / "single" / "plain.safetensors"))

    for name in ("plain", "accum", "resumed"):
        got = load_file(str(tmp_path / "ddp" / f"{name}.safetensors"))
        assert got.keys() == ref.keys()
        diff = max((got[k] - ref[k]).abs().max().item() for k in ref)
        assert diff <= 1e-6, f"{name}: 2 processes differ from 1 process by {diff}"
    # the comparison is not vacuous: training moved the parameters
    torch.manual_seed(0); init = worker.nn.Sequential(worker.nn.Linear(4, 16), worker.nn.Tanh(), worker.nn.Linear(16, 1))
    assert max((ref[k] - v).abs().max().item() for k, v in init.state_dict().items()) > 1e-2
    # the logged loss is the mean over both ranks, i.e. the one-process loss
    assert max(abs(a - b) for a, b in zip(info["loss"], single.history.series("loss")[1])) < 1e-5
