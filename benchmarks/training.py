"""Training-step benchmark for the configs the notebooks and the pretrained recipes actually train.

    python benchmarks/training.py            # every config (about 10 minutes on 2 CPU cores, compile included)
    python benchmarks/training.py --quick    # fewer steps, no torch.compile (about 2 minutes)
    python benchmarks/training.py --only vit-shapes --threads 2

For each config, median seconds per optimiser step (forward, backward, AdamW) of:
  * ours        the shared `Trainer.train_step` (fused AdamW, the default)
  * plain       a plain PyTorch loop over the same model with `torch.optim.AdamW()` as it comes (for-loop kernel)
  * plain-fused the same loop with `AdamW(fused=True)`: ours / plain-fused is the Trainer's own overhead
  * reference   transformers' `ViTForImageClassification` of the same size, where one exists
  * compile     ours with `TrainConfig(compile=True)` (inductor), after its compile time (reported)
  * bf16        ours with `TrainConfig(mixed_precision="bf16")`
and the fraction of this machine's matmul peak (a 1024^3 fp32 matmul, measured in the same run) that the step
reaches: FLOPs of one step (torch.utils.flop_counter, forward + backward) / step time / peak.
Ratios are against measurements in the same process; nothing here asserts (see benchmarks/README.md).
"""
from __future__ import annotations

import argparse, copy, os, platform, statistics, sys, time, warnings

warnings.filterwarnings("ignore")
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from vlnotes.experiment import render_split
from vlnotes.papers.resnet import resnet_cifar
from vlnotes.pretrained import get_recipe, get_family
from vlnotes.train import TrainConfig, Trainer
from vlnotes.zoo import _clip_data, clip_recipe_loss


def median_step(step, warmup: int, steps: int) -> float:
    for _ in range(warmup): step()
    times = []
    for _ in range(steps):
        t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_peak(threads: int) -> float:
    "FLOP/s of a 1024^3 fp32 matmul (the best of 10): the machine's practical peak for dense work."
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3): a @ b
    best = min(_timed(lambda: a @ b) for _ in range(10))
    return 2 * 1024 ** 3 / best


def _timed(fn) -> float:
    t = time.perf_counter(); fn(); return time.perf_counter() - t


def classifier_case(name: str, quick: bool):
    "Model, batch and loss of a classifier recipe (the full recipe's model and batch size)."
    r = get_recipe(name).resolved(False)
    model, _ = get_family("classifier").build(r)
    data = render_split("all", r.train["batch_size"], seed=0, image_size=r.data.get("image_size", 32))
    batch = {"images": data.images, "label": data.label}
    loss = lambda m, b: F.cross_entropy(m(b["images"]).logits, b["label"])
    return model, batch, loss, r.train["batch_size"]


def clip_case(name: str, quick: bool):
    r = get_recipe(name).resolved(False)
    r = r.replace(data={**r.data, "n": r.train["batch_size"]})
    model, tok = get_family("clip").build(r)
    d = _clip_data(r, tok)
    batch = dict(d.tensors)
    hard = bool(r.objective.get("hard_negatives"))
    return model, batch, (lambda m, b: clip_recipe_loss(m, b, hard)["loss"]), r.train["batch_size"]


def resnet_notebook_case(depth: int = 14, width: int = 8):
    "A CIFAR-style net of the notebooks: the ResNet notebook's deepest C1 net, or the ViT notebook's C1 ResNet."
    model = resnet_cifar(depth, num_classes=8, width=width)
    data = render_split("train", 32, image_size=32)
    batch = {"images": data.images, "label": data.label}
    return model, batch, (lambda m, b: F.cross_entropy(m(b["images"]).logits, b["label"])), 32


def vit_notebook_case():
    "The ViT notebook's C1 ViT (depth 2, dim 48, patch 4, 8 classes) on 32 px scenes."
    from vlnotes.papers.vit import ViT, ViTConfig
    model = ViT(ViTConfig(image_size=32, patch_size=4, dim=48, depth=2, heads=4, num_classes=8))
    data = render_split("train", 32, image_size=32)
    batch = {"images": data.images, "label": data.label}
    return model, batch, (lambda m, b: F.cross_entropy(m(b["images"]).logits, b["label"])), 32


def hf_vit_reference(model):
    "transformers' ViT of the same size (random weights), or None."
    try: from transformers import ViTConfig as HFViTConfig, ViTForImageClassification
    except ImportError: return None
    c = model.config
    hf = ViTForImageClassification(HFViTConfig(hidden_size=c.dim, num_hidden_layers=c.depth, num_attention_heads=c.heads,
                                               intermediate_size=c.mlp_dim or 4 * c.dim, image_size=c.image_size,
                                               patch_size=c.patch_size, num_labels=c.num_classes,
                                               attn_implementation="sdpa"))
    return hf


class _Batches(torch.utils.data.Dataset):
    "A dataset that hands the Trainer the same batch rows again and again."
    def __init__(self, batch, n): self.batch, self.n = batch, n
    def __len__(self): return self.n
    def __getitem__(self, i): return {k: v[i % len(v)] for k, v in self.batch.items()}


def trainer_step_time(model, batch, loss, bs, warmup, steps, **config) -> tuple[float, float]:
    "Median seconds per `Trainer.train_step`, and the seconds the first step took (compile time, if any)."
    cfg = TrainConfig(max_steps=warmup + steps + 1, batch_size=bs, lr=1e-3, progress=False, **config)
    t = Trainer(copy.deepcopy(model), lambda m, b: loss(m, b), _Batches(batch, bs), cfg)
    it = iter(t._loader())
    first = _timed(lambda: t.train_step(it))
    return median_step(lambda: t.train_step(it), max(0, warmup - 1), steps), first


def plain_step_time(model, batch, loss, warmup, steps, fused: bool) -> float:
    m = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True) if fused else torch.optim.AdamW(m.parameters(), lr=1e-3)
    def step():
        l = loss(m, batch); l.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    return median_step(step, warmup, steps)


def step_flops(model, batch, loss) -> int:
    m = copy.deepcopy(model).train()
    with FlopCounterMode(display=False) as fc:
        loss(m, batch).backward()
    return fc.get_total_flops()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--only", action="append", default=None)
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    warmup, steps = (2, 5) if a.quick else (3, 15)
    cases = {"resnet-notebook-c1": lambda: resnet_notebook_case(14, 8),
             "vit-notebook-c1": vit_notebook_case,
             "vit-notebook-c1-resnet": lambda: resnet_notebook_case(8, 12),
             "resnet-shapes": lambda: classifier_case("resnet-shapes", a.quick),
             "vit-shapes": lambda: classifier_case("vit-shapes", a.quick),
             "clip-shapes-heldout": lambda: clip_case("clip-shapes-heldout", a.quick),
             "clip-shapes": lambda: clip_case("clip-shapes", a.quick)}
    peak = matmul_peak(torch.get_num_threads())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, {platform.processor()}; "
          f"matmul peak {peak / 1e9:.1f} GFLOP/s (1024^3 fp32)\n")
    print("| config | batch | ours (s/step) | plain AdamW | plain fused | ours / plain | ours / plain fused | "
          "reference | compile (s/step; compile time) | bf16 | GFLOP/step | % of matmul peak |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, make in cases.items():
        if a.only and name not in a.only: continue
        model, batch, loss, bs = make()
        ours, _ = trainer_step_time(model, batch, loss, bs, warmup, steps)
        plain = plain_step_time(model, batch, loss, warmup, steps, fused=False)
        fused = plain_step_time(model, batch, loss, warmup, steps, fused=True)
        ref = "-"
        if name == "vit-shapes":
            hf = hf_vit_reference(model)
            if hf is not None:
                hf_loss = lambda m, b: F.cross_entropy(m(pixel_values=b["images"]).logits, b["label"])
                ref = f"{plain_step_time(hf, batch, hf_loss, warmup, steps, fused=True):.4f} (transformers, fused)"
        comp = "-"
        if not a.quick:
            c, first = trainer_step_time(model, batch, loss, bs, warmup, steps, compile=True)
            comp = f"{c:.4f}; {first:.0f}s"
        bf16, _ = trainer_step_time(model, batch, loss, bs, 1, max(2, steps // 3), mixed_precision="bf16")
        flops = step_flops(model, batch, loss)
        print(f"| {name} | {bs} | {ours:.4f} | {plain:.4f} | {fused:.4f} | {ours / plain:.2f} | {ours / fused:.2f} | "
              f"{ref} | {comp} | {bf16:.4f} | {flops / 1e9:.2f} | {100 * flops / ours / peak:.1f}% |", flush=True)


if __name__ == "__main__":
    main()
