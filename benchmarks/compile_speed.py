"""Train-step time with and without `torch.compile` (inductor), for the configs the paper notebooks train.

    python benchmarks/compile_speed.py               # the full-mode configs (several minutes on 2 CPU cores)
    python benchmarks/compile_speed.py --quick       # the quick-mode configs, fewer repeats
    python benchmarks/compile_speed.py --only clip --threads 2

For ResNet (10_resnet: `resnet_cifar(deep)`, SGD, batch 32), ViT (11_vit: patch 8 on 32 px, AdamW, batch 32) and
CLIP (20_clip: the ResNet tower with attention pooling + the causal text tower, AdamW, batch 32/64, padded
captions): one train step = forward + loss + backward + optimiser step. Eager and compiled copies start from the
same weights; the first compiled step includes compilation (`compile s`; inductor's on-disk caches are off
unless TORCHINDUCTOR_FORCE_DISABLE_CACHES=0 is set, so this is the cold compile a first run pays). Steady-state
steps of both are timed alternately after warm-up (median). *Ratio = eager / compiled: above 1 the compiled step
is faster.* The first-step loss and gradients of the two copies are compared (max abs diff, and over the largest
gradient): inductor fuses kernels and reorders float sums, so expect round-off, not 0 (the exact-equality tests
with the graph-capture backends are in tests/test_compile.py). Prints a markdown table and writes
results/benchmarks/compile.json. Not a test.
"""
from __future__ import annotations

import os
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")   # time a cold compile, as a first run sees it

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import Row, fmt_ms, interleaved_median_times, table  # noqa: E402  (the house helpers)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "benchmarks" / "compile.json"


def captions(n: int, vocab: int, max_len: int, seed: int = 0):
    "Right-padded random captions of 8..max_len tokens ended by eos (3), trimmed to the longest (as 20_clip does)."
    import torch
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(8, max_len + 1, (n,), generator=g)
    L = int(lengths.max())
    ids = torch.randint(6, vocab, (n, L), generator=g)
    mask = (torch.arange(L) < lengths[:, None]).long()
    ids[torch.arange(n), lengths - 1] = 3
    return ids * mask, mask


def setups(quick: bool) -> dict:
    "name -> (setting, build model, batch, loss(model, batch), optimiser factory), from the notebooks' `sz`."
    import torch
    import torch.nn.functional as F
    from vlnotes.papers import clip
    from vlnotes.papers.resnet import resnet_cifar
    from vlnotes.papers.vit import ViT, ViTConfig
    g = torch.Generator().manual_seed(0)
    classes = 8
    def labelled(batch):
        return torch.rand(batch, 3, 32, 32, generator=g), torch.randint(0, classes, (batch,), generator=g)
    def ce(model, b): return F.cross_entropy(model(b[0]).logits, b[1])
    sgd = lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    adamw = lambda lr, wd: (lambda m: torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=wd))
    depth, width = (14, 4) if quick else (32, 8)                                 # 10_resnet sz.deep, sz.width
    vit = dict(dim=32, depth=2, heads=4) if quick else dict(dim=48, depth=4, heads=4)   # 11_vit sz
    cw, cd, ch, cb = (32, 1, 2, 32) if quick else (64, 2, 4, 64)                 # 20_clip sz.width/depth/heads/batch
    text = clip.CLIPTextConfig(vocab_size=512, context_length=40, dim=cw, depth=cd, heads=ch)
    tower = clip.CLIPResNetConfig(image_size=32, depth=8, width=cw // 4, heads=ch)
    clip_cfg = clip.CLIPConfig(tower, text, embed_dim=cw)
    ids, mask = captions(cb, 512, 36)
    def clip_loss(model, b): return model(b[0], b[1], b[2], return_loss=True).loss
    return {
        "ResNet": (f"resnet_cifar({depth}, width={width}), 32 px, batch 32, SGD",
                   lambda: resnet_cifar(depth, num_classes=classes, width=width), labelled(32), ce, sgd),
        "ViT": (f"ViT dim {vit['dim']}, depth {vit['depth']}, patch 8, 32 px, batch 32, AdamW",
                lambda: ViT(ViTConfig(image_size=32, patch_size=8, num_classes=classes, **vit)), labelled(32), ce,
                adamw(1e-3, 0.05)),
        "CLIP": (f"ResNet-8 tower + text width {cw}, depth {cd}, {ids.shape[1]} tokens, batch {cb}, AdamW",
                 lambda: clip.CLIP(clip_cfg), (torch.rand(cb, 3, 32, 32, generator=g), ids, mask), clip_loss,
                 adamw(2e-3, 0.1)),
    }


def step_fn(model, run, batch, loss_of, opt):
    "One train step of `model` (whose forward `run` is, compiled or not); returns the loss."
    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_of(run, batch)
        loss.backward()
        opt.step()
        return loss
    return step


def first_step_diffs(eager, compiled, batch, loss_of) -> dict:
    """Max |eager - compiled| of the loss and the gradients, same weights, before any update; `grad_rel`: the
    gradients' max |difference| over their max |value| (the scale of gradients differs a lot between models)."""
    la, lb = loss_of(eager, batch), loss_of(compiled, batch)
    la.backward(); lb.backward()
    orig = getattr(compiled, "_orig_mod", compiled)
    pairs = [(p.grad, q.grad) for p, q in zip(eager.parameters(), orig.parameters()) if p.grad is not None]
    diffs = [(a - b).abs().max().item() for a, b in pairs]
    largest = max(a.abs().max().item() for a, _ in pairs)
    for m in (eager, orig): m.zero_grad(set_to_none=True)
    return {"loss": abs(la.item() - lb.item()), "grad": max(diffs), "grad_rel": max(diffs) / max(largest, 1e-30)}


def bench(name: str, setting: str, build, batch, loss_of, make_opt, warmup: int, repeats: int) -> tuple[Row, dict]:
    import torch
    torch.manual_seed(0)
    eager = build().train()
    twin = copy.deepcopy(eager)
    compiled = torch.compile(twin, fullgraph=True)           # inductor, the default backend
    t = time.perf_counter()
    diffs = first_step_diffs(eager, compiled, batch, loss_of)  # also compiles forward and backward
    compile_s = time.perf_counter() - t
    steps = {"eager": step_fn(eager, eager, batch, loss_of, make_opt(eager)),
             "compiled": step_fn(twin, compiled, batch, loss_of, make_opt(twin))}
    med = interleaved_median_times(steps, warmup, repeats)
    ratio = med["eager"] / med["compiled"]
    rec = dict(setting=setting, compile_s=compile_s, eager_step_s=med["eager"], compiled_step_s=med["compiled"],
               ratio_eager_over_compiled=ratio, first_step_max_abs_diff=dict(loss=diffs["loss"], grad=diffs["grad"]),
               first_step_grad_diff_over_max_grad=diffs["grad_rel"],
               warmup=warmup, repeats=repeats)
    note = (f"compile (first step) {compile_s:.1f} s; first-step max abs diff: loss {diffs['loss']:.1e}, "
            f"grads {diffs['grad']:.1e} (= {diffs['grad_rel']:.0e} of the largest gradient)")
    return Row(f"{name} train step, compiled", setting, fmt_ms(med["compiled"]), fmt_ms(med["eager"]) + " eager",
               f"{ratio:.2f}", note), rec


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the quick-mode configs and fewer repeats")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--only", choices=["resnet", "vit", "clip"], action="append", help="run only these (repeatable)")
    p.add_argument("--out", type=Path, default=OUT, help=f"JSON file (default {OUT.relative_to(ROOT)})")
    a = p.parse_args(argv)
    import torch
    if a.threads: torch.set_num_threads(a.threads)
    warmup, repeats = (2, 5) if a.quick else (3, 15)
    rows, records = [], {}
    for name, (setting, build, batch, loss_of, make_opt) in setups(a.quick).items():
        if a.only and name.lower() not in a.only: continue
        try:
            row, records[name] = bench(name, setting, build, batch, loss_of, make_opt, warmup, repeats)
        except Exception as e:   # keep the other rows
            row, records[name] = Row(f"{name} train step, compiled", setting, "-", "-", "-",
                                     f"skipped: {type(e).__name__}: {e}"), {"error": f"{type(e).__name__}: {e}"}
        rows.append(row)
        torch._dynamo.reset()
    header = (f"vlnotes compile benchmark ({'quick' if a.quick else 'full'}): torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
              f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(header + "\n")
    print(table(rows).replace("| ours | reference |", "| compiled | eager |"))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    result = dict(header=header, mode="quick" if a.quick else "full", models=records)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
