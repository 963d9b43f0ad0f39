"""vlnotes benchmarks: ratios against a reference measured in the same run, printed as a markdown table.

    python benchmarks/run.py            # full (a few minutes on 2 CPU cores)
    python benchmarks/run.py --quick    # smaller inputs, fewer repeats (well under a minute)

Not part of the test suite: timings depend on the machine, so nothing here asserts. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass


@dataclass
class Row:
    benchmark: str
    setting: str
    ours: str
    reference: str
    ratio: str
    note: str = ""


def median_time(fn, warmup: int, repeats: int) -> float:
    "Median wall time of `fn()` in seconds, after `warmup` untimed calls."
    for _ in range(warmup): fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times)


def interleaved_median_times(fns: dict, warmup: int, repeats: int) -> dict:
    "Like `median_time` for several functions, alternating them so background load hits all alike."
    for _ in range(warmup):
        for f in fns.values(): f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter(); f(); times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def fmt_ms(s: float) -> str: return f"{s * 1e3:.1f} ms"
def fmt_rate(r: float) -> str: return f"{r:,.0f} scenes/s"


# ---- (a) ResNet train step: ours vs torchvision, same weights, same input ---------------------------------
def train_step_fn(model, x, y):
    import torch
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    return step


def bench_resnet(depth: int, batch: int, size: int, warmup: int, repeats: int) -> Row:
    import torch, torchvision
    from vlnotes.resnet import ResNet
    torch.manual_seed(0)
    tv = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    ours = ResNet.from_torchvision(tv)
    x, y = torch.rand(batch, 3, size, size), torch.randint(0, 1000, (batch,))
    with torch.no_grad():  # same weights -> same logits, or the comparison is meaningless
        diff = (ours.eval()(x) - tv.eval()(x)).abs().max().item()
    t = interleaved_median_times({"ours": train_step_fn(ours, x, y), "tv": train_step_fn(tv, x, y)}, warmup, repeats)
    return Row(f"ResNet-{depth} train step", f"batch {batch}, 3x{size}x{size}, fwd+bwd+SGD, median of {repeats}",
               fmt_ms(t["ours"]), fmt_ms(t["tv"]) + " (torchvision)", f"{t['ours'] / t['tv']:.2f}",
               f"same weights, max logit diff {diff:.1e}; lower ratio is better, 1.00 = parity")


# ---- (b) shapes world render rate vs what a trainer consumes ----------------------------------------------
def world_rate(size: int, batch: int, n_batches: int) -> float:
    "Scenes/s through a torch DataLoader (which calls the world's vectorised `__getitems__` + `collate`)."
    import torch
    from vlnotes.data.world import ShapesWorld, collate
    world = ShapesWorld(split="train", seed=0, length=batch * (n_batches + 1), image_size=size)
    loader = torch.utils.data.DataLoader(world, batch_size=batch, shuffle=False, num_workers=0, collate_fn=collate)
    it = iter(loader); next(it)  # warm-up batch (first-call caches)
    t = time.perf_counter()
    n = sum(b["images"].shape[0] for _, b in zip(range(n_batches), it))
    return n / (time.perf_counter() - t)


def consume_rate(size: int, batch: int, warmup: int, repeats: int) -> float:
    "Scenes/s a resnet_cifar(20) train step (fwd+bwd+SGD) eats at this image size."
    import torch
    from vlnotes.resnet import resnet_cifar
    torch.manual_seed(0)
    model = resnet_cifar(20, num_classes=10)
    x, y = torch.rand(batch, 3, size, size), torch.randint(0, 10, (batch,))
    return batch / median_time(train_step_fn(model, x, y), warmup, repeats)


def bench_world(size: int, batch: int, n_batches: int, warmup: int, repeats: int) -> Row:
    render, consume = world_rate(size, batch, n_batches), consume_rate(size, batch, warmup, repeats)
    return Row(f"shapes world {size} px", f"DataLoader batch {batch} (num_workers=0) vs resnet_cifar(20) train step",
               fmt_rate(render), fmt_rate(consume) + " consumed", f"{render / consume:.1f}",
               "render/consume; > 1 means data is not the bottleneck even in the training process")


# ---- (c) import time ------------------------------------------------------------------------------------
def import_time(module: str, runs: int) -> float:
    "Median seconds to import `module` in a fresh interpreter (the import alone, not interpreter start-up)."
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                  env={**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}).stdout) for _ in range(runs)]
    return statistics.median(times)


def bench_imports(runs: int) -> list[Row]:
    t_torch = import_time("torch", runs)
    rows = []
    for mod in ("vlnotes", "vlnotes.resnet"):
        t = import_time(mod, runs)
        rows.append(Row(f"import {mod}", f"fresh subprocess, median of {runs}", f"{t * 1e3:.1f} ms",
                        f"{t_torch * 1e3:.0f} ms (import torch)", f"{t / t_torch:.3f}",
                        "the import statement alone; includes torch when the module imports it"))
    return rows


def table(rows: list[Row]) -> str:
    head = "| benchmark | setting | ours | reference | ratio | note |\n|---|---|---|---|---|---|"
    return "\n".join([head] + [f"| {r.benchmark} | {r.setting} | {r.ours} | {r.reference} | {r.ratio} | {r.note} |"
                               for r in rows])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller inputs and fewer repeats")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--only", choices=["resnet", "world", "import"], action="append",
                   help="run only these groups (repeatable)")
    a = p.parse_args(argv)
    import torch
    if a.threads: torch.set_num_threads(a.threads)
    groups = set(a.only or ["resnet", "world", "import"])
    size, warmup, repeats = (64, 2, 5) if a.quick else (112, 3, 10)
    rows: list[Row] = []
    if "resnet" in groups:
        for depth in (18, 50): rows.append(bench_resnet(depth, 8, size, warmup, repeats))
    if "world" in groups:
        for px in (32, 64):
            rows.append(bench_world(px, 128, 4 if a.quick else 10, 1 if a.quick else 2, 3 if a.quick else 5))
    if "import" in groups:
        rows += bench_imports(3 if a.quick else 5)
    print(f"vlnotes benchmarks ({'quick' if a.quick else 'full'}): torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
