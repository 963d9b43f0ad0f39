"""vlnotes benchmarks: ratios against a reference measured in the same run, printed as a markdown table.

    python benchmarks/run.py            # full (several minutes on 2 CPU cores; vit + clip alone about 2.5)
    python benchmarks/run.py --quick    # smaller inputs, fewer repeats (about a minute)
    python benchmarks/run.py --only vit --only clip --profile   # + torch.profiler tables, ours vs transformers

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
    "Median wall times of several functions, alternated (see `interleaved_times`)."
    return {k: statistics.median(v) for k, v in interleaved_times(fns, warmup, repeats).items()}


def interleaved_times(fns: dict, warmup: int, repeats: int) -> dict:
    """All `repeats` wall times of each function, alternating them so background load hits all alike.
    The order rotates every round, so no function always runs right after the same other one (cold caches)."""
    for _ in range(warmup):
        for f in fns.values(): f()
    keys, times = list(fns), {k: [] for k in fns}
    for r in range(repeats):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            t = time.perf_counter(); fns[k](); times[k].append(time.perf_counter() - t)
    return times


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
        out = model(x)  # torchvision returns logits, our ResNet a ResNetOutput
        loss_fn(out if isinstance(out, torch.Tensor) else out.logits, y).backward()
        opt.step()
    return step


def bench_resnet(depth: int, batch: int, size: int, warmup: int, repeats: int) -> Row:
    import torch, torchvision
    from vlnotes.papers.resnet import ResNet, torchvision_parity
    torch.manual_seed(0)
    tv = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    ours = ResNet.from_torchvision(tv)
    x, y = torch.rand(batch, 3, size, size), torch.randint(0, 1000, (batch,))
    # same weights -> same logits, or the comparison is meaningless (the notebook's and the tests' check)
    diff = torchvision_parity(tv, x, modes=("eval",))[f"eval {size}x{size}"]
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
    from vlnotes.papers.resnet import resnet_cifar
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
    for mod in ("vlnotes", "vlnotes.papers.resnet"):
        t = import_time(mod, runs)
        rows.append(Row(f"import {mod}", f"fresh subprocess, median of {runs}", f"{t * 1e3:.1f} ms",
                        f"{t_torch * 1e3:.0f} ms (import torch)", f"{t / t_torch:.3f}",
                        "the import statement alone; includes torch when the module imports it"))
    return rows


# ---- (d) ViT / CLIP train step vs transformers: same weights, fp32 and bf16 autocast, fraction of matmul peak -----
def matmul_fn(n: int):
    "A `torch.matmul` of two `n x n` fp32 matrices and its FLOPs (2 n^3): the machine's fp32 matmul peak when timed."
    import torch
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    return (lambda: torch.matmul(a, b)), 2 * n ** 3


def adamw_step_fn(model, loss_of, bf16: bool = False):
    "One forward + backward + AdamW step of `model` on the loss `loss_of(model)`; forward (and loss) under bf16 autocast if asked."
    import torch
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.05)
    model.train()
    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_of(model)
        loss.backward()
        opt.step()
    return step


def step_flops(model, loss_of) -> int:
    "FLOPs of one forward + backward (matmuls, convs, attention: what `FlopCounterMode` counts), fp32, on a throw-away copy."
    import copy
    from torch.utils.flop_counter import FlopCounterMode
    m = copy.deepcopy(model).train()
    with FlopCounterMode(display=False) as fc:
        loss_of(m).backward()
    return fc.get_total_flops()


def bench_pair(name: str, setting: str, ours, ref, ours_loss, ref_loss, parity: str, ref_name: str,
               warmup: int, repeats: int, peak_n: int) -> list[Row]:
    """Rows for one ours-vs-transformers pair: fp32 train step, fraction of matmul peak, bf16-autocast step.
    The four steps (ours/ref x fp32/bf16) and the peak matmul are timed alternately after warm-up, so background load
    hits all alike; each step has its own AdamW and model copy. FLOPs are counted once, on ours, and used for both."""
    import copy
    fl_ours, fl_ref = step_flops(ours, ours_loss), step_flops(ref, ref_loss)
    mm, mm_flops = matmul_fn(peak_n)
    fns = {"peak": mm, "ours": adamw_step_fn(ours, ours_loss), "ref": adamw_step_fn(ref, ref_loss),
           "ours_bf16": adamw_step_fn(copy.deepcopy(ours), ours_loss, bf16=True),
           "ref_bf16": adamw_step_fn(copy.deepcopy(ref), ref_loss, bf16=True)}
    times = interleaved_times(fns, warmup, repeats)
    t, best = {k: statistics.median(v) for k, v in times.items()}, {k: min(v) for k, v in times.items()}
    peak = mm_flops / t["peak"] / 1e9
    rate = lambda key, fl: fl / t[key] / 1e9
    frac = lambda key, fl: rate(key, fl) / peak
    flops_note = (f"{fl_ours / 1e9:.1f} GFLOP/step (FlopCounterMode, ours; transformers counts {fl_ref / 1e9:.1f}); "
                  f"peak {peak:,.0f} GFLOP/s = {peak_n}^3 fp32 torch.matmul, timed alternately with the steps")
    return [
        Row(f"{name} train step", f"{setting}, fwd+bwd+AdamW, fp32, median of {repeats}", fmt_ms(t["ours"]),
            f"{fmt_ms(t['ref'])} ({ref_name})", f"{t['ours'] / t['ref']:.2f}",
            f"{parity}; ratio of the fastest steps {best['ours'] / best['ref']:.2f}; lower is better, 1.00 = parity"),
        Row(f"{name} fraction of matmul peak", "fp32 step above; achieved GFLOP/s / measured peak",
            f"{rate('ours', fl_ours):,.0f} GFLOP/s = {frac('ours', fl_ours):.0%}",
            f"{rate('ref', fl_ours):,.0f} GFLOP/s = {frac('ref', fl_ours):.0%} ({ref_name})",
            f"{frac('ours', fl_ours) / frac('ref', fl_ours):.2f}", f"higher is better; {flops_note}"),
        Row(f"{name} train step, bf16 autocast", f"{setting}, fwd+loss under torch.autocast('cpu', bfloat16), median of {repeats}",
            f"{fmt_ms(t['ours_bf16'])} (speed-up {t['ours'] / t['ours_bf16']:.2f}x)",
            f"{fmt_ms(t['ref_bf16'])} (speed-up {t['ref'] / t['ref_bf16']:.2f}x) ({ref_name})",
            f"{t['ours_bf16'] / t['ref_bf16']:.2f}",
            f"ratio of the fastest steps {best['ours_bf16'] / best['ref_bf16']:.2f}; speed-up = fp32 time / bf16 time of the same implementation (> 1: bf16 helps); ratio = ours/transformers under bf16"),
    ]


def vit_sizes(quick: bool) -> dict:
    "ViT-S-ish (hidden 384, 6 layers, 6 heads, patch 16, 224 px) in full mode; a smaller one in quick mode."
    return (dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768, image_size=112, patch_size=16)
            if quick else dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, intermediate_size=1536,
                               image_size=224, patch_size=16))


def bench_vit(quick: bool, batch: int, warmup: int, repeats: int, peak_n: int) -> list[Row]:
    import torch, torch.nn.functional as F, transformers
    from vlnotes.papers.vit import ViT, hf_parity
    v = vit_sizes(quick)
    torch.manual_seed(0)
    hf = transformers.ViTForImageClassification(transformers.ViTConfig(**v, num_labels=1000))
    ours = ViT.from_hf(hf)
    x, y = torch.randn(batch, 3, v["image_size"], v["image_size"]), torch.randint(0, 1000, (batch,))
    # same weights -> same outputs, or the comparison is meaningless (the notebook's and the tests' check; it needs
    # transformers' eager attention to compare attention maps, so it runs on an eager twin of the timed model)
    eager = transformers.ViTForImageClassification(transformers.ViTConfig(**v, num_labels=1000,
                                                                          attn_implementation="eager"))
    eager.load_state_dict(hf.state_dict())
    diff = max(hf_parity(eager, x[:2], ours=ours).values())
    setting = (f"batch {batch}, 3x{v['image_size']}x{v['image_size']}, patch {v['patch_size']}, hidden {v['hidden_size']}, "
               f"{v['num_hidden_layers']} layers, {v['num_attention_heads']} heads, 1000 classes")
    return bench_pair("ViT", setting, ours, hf, lambda m: F.cross_entropy(m(x).logits, y),
                      lambda m: F.cross_entropy(m(pixel_values=x).logits, y),
                      f"same weights (ViT.from_hf), max diff {diff:.1e} (hf_parity); "
                      f"transformers attn: {hf.config._attn_implementation}",
                      f"transformers {transformers.__version__}", warmup, repeats, peak_n)


def vilt_sizes(quick: bool) -> dict:
    "A ViLT with the ViT group's transformer (patch 32, a non-square image as ViLT's 384x640), 40 tokens, VQAv2's answers."
    v = vit_sizes(quick)
    hw = (64, 96) if quick else (224, 384)
    return dict(config=dict(hidden_size=v["hidden_size"], num_hidden_layers=v["num_hidden_layers"],
                            num_attention_heads=v["num_attention_heads"], intermediate_size=v["intermediate_size"],
                            image_size=384, patch_size=32, max_position_embeddings=40, vocab_size=30522,
                            max_image_length=-1, num_labels=3129), hw=hw, text_len=40)


def bench_vilt(quick: bool, batch: int, warmup: int, repeats: int, peak_n: int) -> list[Row]:
    "ViLT VQA (backbone + VQA head), ours vs transformers with the same weights: forward (eval, no grad), train step."
    import torch, transformers
    from vlnotes.papers.vilt import ViLTForQuestionAnswering, hf_parity
    v = vilt_sizes(quick)
    c, (H, W), T = v["config"], v["hw"], v["text_len"]
    torch.manual_seed(0)
    hf = transformers.ViltForQuestionAnswering(transformers.ViltConfig(**c))
    ours = ViLTForQuestionAnswering.from_hf(hf)
    g = torch.Generator().manual_seed(0)
    ids, px = torch.randint(1000, c["vocab_size"], (batch, T), generator=g), torch.randn(batch, 3, H, W, generator=g)
    labels = torch.rand(batch, c["num_labels"], generator=g)
    diff = max(hf_parity(hf, ids[:2], px[:2]).values())
    setting = (f"batch {batch}, 3x{H}x{W}, patch 32, {T} tokens, hidden {c['hidden_size']}, {c['num_hidden_layers']} "
               f"layers, {c['num_attention_heads']} heads, {c['num_labels']} answers")
    parity = f"same weights (ViLTForQuestionAnswering.from_hf), max diff {diff:.1e} (hf_parity)"
    ref_name = f"transformers {transformers.__version__}"
    ours_eval, hf_eval = ours.eval(), hf.eval()
    def forward(model, ours_api: bool):
        def run():
            with torch.no_grad():
                return model(ids, None, px) if ours_api else model(input_ids=ids, pixel_values=px)
        return run
    t = interleaved_median_times({"ours": forward(ours_eval, True), "ref": forward(hf_eval, False)}, warmup, repeats)
    fwd = Row("ViLT forward", f"{setting}, eval, no grad, median of {repeats}", fmt_ms(t["ours"]),
              f"{fmt_ms(t['ref'])} ({ref_name})", f"{t['ours'] / t['ref']:.2f}",
              f"{parity}; lower is better, 1.00 = parity")
    return [fwd] + bench_pair("ViLT", setting, ours, hf, lambda m: m(ids, None, px, labels=labels).loss,
                              lambda m: m(input_ids=ids, pixel_values=px, labels=labels).loss, parity, ref_name,
                              warmup, repeats, peak_n)


def blip_config(quick: bool):
    "BLIP with the ViT group's vision tower and a text stack of the same width and depth, BERT's vocabulary (+[DEC], [ENC])."
    import transformers
    v = vit_sizes(quick)
    vision = dict(hidden_size=v["hidden_size"], num_hidden_layers=v["num_hidden_layers"],
                  num_attention_heads=v["num_attention_heads"], intermediate_size=v["intermediate_size"],
                  image_size=v["image_size"], patch_size=v["patch_size"])
    text = dict(vocab_size=30524, hidden_size=v["hidden_size"], num_hidden_layers=v["num_hidden_layers"],
                num_attention_heads=v["num_attention_heads"], intermediate_size=v["intermediate_size"],
                encoder_hidden_size=v["hidden_size"], max_position_embeddings=64)
    return transformers.BlipConfig(vision_config=vision, text_config=text, image_text_hidden_size=256), v


def bench_blip(quick: bool, batch: int, warmup: int, repeats: int, peak_n: int) -> list[Row]:
    """BLIP's two transformers classes, ours with the same weights (`BLIP.from_hf`): the image-grounded decoder
    (captioning: forward and a train step on the LM loss) and the image-grounded encoder (ITM: forward and a train step
    on the match/no-match cross-entropy)."""
    import torch, torch.nn.functional as F, transformers
    from vlnotes.papers.blip import BLIP
    config, v = blip_config(quick)
    T, ref_name = 30, f"transformers {transformers.__version__}"
    g = torch.Generator().manual_seed(0)
    px = torch.randn(batch, 3, v["image_size"], v["image_size"], generator=g)
    ids = torch.randint(1000, 30522, (batch, T), generator=g)
    match = torch.randint(0, 2, (batch,), generator=g)
    setting = (f"batch {batch}, 3x{v['image_size']}x{v['image_size']}, patch {v['patch_size']}, {T} tokens, hidden "
               f"{v['hidden_size']}, {v['num_hidden_layers']} + {v['num_hidden_layers']} layers, 30,524 words")
    rows = []
    torch.manual_seed(0)
    for kind, cls in (("captioning", transformers.BlipForConditionalGeneration),
                      ("ITM", transformers.BlipForImageTextRetrieval)):
        hf = cls(config).eval()
        ours = BLIP.from_hf(hf).eval()
        if kind == "captioning":
            ours_out = lambda m: m.lm_logits(m.encode_image(px), ids)
            ref_out = lambda m: m(pixel_values=px, input_ids=ids).logits
            ours_loss, ref_loss = (lambda m: m.lm_loss(m.encode_image(px), ids),
                                   lambda m: m(pixel_values=px, input_ids=ids, labels=ids).loss)
        else:
            ours_out = lambda m: m.itm_logits(m.encode_image(px), ids)
            ref_out = lambda m: m(input_ids=ids, pixel_values=px).itm_score
            ours_loss, ref_loss = (lambda m: F.cross_entropy(ours_out(m), match),
                                   lambda m: F.cross_entropy(ref_out(m), match))
        with torch.no_grad(): diff = (ours_out(ours) - ref_out(hf)).abs().max().item()
        parity = f"same weights (BLIP.from_hf), max diff {diff:.1e}"
        def forward(model, out):
            def run():
                with torch.no_grad(): return out(model)
            return run
        t = interleaved_median_times({"ours": forward(ours, ours_out), "ref": forward(hf, ref_out)}, warmup, repeats)
        rows.append(Row(f"BLIP {kind} forward", f"{setting}, eval, no grad, median of {repeats}", fmt_ms(t["ours"]),
                        f"{fmt_ms(t['ref'])} ({ref_name})", f"{t['ours'] / t['ref']:.2f}",
                        f"{parity}; lower is better, 1.00 = parity"))
        rows += bench_pair(f"BLIP {kind}", setting, ours, hf, ours_loss, ref_loss, parity, ref_name, warmup, repeats,
                           peak_n)
    return rows


def clip_sizes(quick: bool) -> tuple[dict, dict, int]:
    "(vision, text, projection_dim): the ViT group's vision tower, a 77-token text tower with CLIP's vocabulary."
    v = vit_sizes(quick)
    t = (dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512)
         if quick else dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024))
    return v, dict(t, vocab_size=49408, max_position_embeddings=77), 128 if quick else 256


def clip_text_batch(batch: int, text_config, seed: int = 0):
    "Random captions padded to the context length like CLIP's tokenizer: bos, 4-29 words, eos, then right padding; and the mask."
    import torch
    c, g = text_config, torch.Generator().manual_seed(seed)
    L = c.max_position_embeddings
    ids = torch.full((batch, L), c.pad_token_id, dtype=torch.long)
    mask = torch.zeros(batch, L, dtype=torch.long)
    for i, n in enumerate(torch.randint(4, 30, (batch,), generator=g).tolist()):
        ids[i, 0], ids[i, n + 1] = c.bos_token_id, c.eos_token_id
        ids[i, 1:n + 1] = torch.randint(2, min(c.bos_token_id, c.eos_token_id), (n,), generator=g)
        mask[i, :n + 2] = 1
    return ids, mask


def skipped(name: str, why: str, e: Exception) -> list[Row]:
    "A table row saying a group could not run, and why (one line, no table-breaking characters)."
    msg = f"{type(e).__name__}: {e}".replace("|", "/").replace("\n", " ")
    return [Row(name, "-", "-", "-", "-", f"skipped: {why}: {msg[:300]}")]


def bench_clip(quick: bool, batch: int, warmup: int, repeats: int, peak_n: int) -> list[Row]:
    import torch, transformers
    try:
        from vlnotes.papers.clip import CLIP, hf_parity
        from vlnotes.losses import clip_loss
    except Exception as e:  # vlnotes.papers.clip may be mid-development: report, don't crash the other groups
        return skipped("CLIP train step", "import vlnotes.papers.clip failed", e)
    v, t, proj = clip_sizes(quick)
    torch.manual_seed(0)
    cfg = transformers.CLIPConfig(text_config=t, vision_config={**v, "hidden_act": "quick_gelu"}, projection_dim=proj)
    hf = transformers.CLIPModel(cfg)
    try:
        ours = CLIP.from_hf(hf)
    except Exception as e:
        return skipped("CLIP train step", "CLIP.from_hf failed", e)
    x = torch.randn(batch, 3, v["image_size"], v["image_size"])
    ids, mask = clip_text_batch(batch, hf.config.text_config)
    try:
        diff = hf_parity(hf, x, ids, mask)["logits_per_image"]
    except Exception as e:
        return skipped("CLIP train step", "forward (parity check) failed", e)
    setting = (f"batch {batch}, vision {v['image_size']} px/patch {v['patch_size']}/hidden {v['hidden_size']}/"
               f"{v['num_hidden_layers']} layers, text 77 tokens (4-29 words + padding)/hidden {t['hidden_size']}/"
               f"{t['num_hidden_layers']} layers, vocab 49408, contrastive loss")
    return bench_pair("CLIP", setting, ours, hf, lambda m: clip_loss(m(x, ids, mask).logits_per_image),
                      lambda m: m(input_ids=ids, pixel_values=x, attention_mask=mask, return_loss=True).loss,
                      f"same weights (CLIP.from_hf), max logits_per_image diff {diff:.1e}; "
                      f"transformers attn: {hf.config._attn_implementation}", f"transformers {transformers.__version__}",
                      warmup, repeats, peak_n)


def profile_pair(group: str, quick: bool, batch: int, rows: int = 25):
    "Print torch.profiler tables (self CPU time) of a few fp32 train steps of ours and of transformers (`--profile`)."
    import torch, torch.nn.functional as F, transformers
    from torch.profiler import profile, ProfilerActivity
    torch.manual_seed(0)
    if group == "vit":
        from vlnotes.papers.vit import ViT
        v = vit_sizes(quick)
        hf = transformers.ViTForImageClassification(transformers.ViTConfig(**v, num_labels=1000)); ours = ViT.from_hf(hf)
        x, y = torch.randn(batch, 3, v["image_size"], v["image_size"]), torch.randint(0, 1000, (batch,))
        losses = {"ours": (ours, lambda m: F.cross_entropy(m(x).logits, y)),
                  "transformers": (hf, lambda m: F.cross_entropy(m(pixel_values=x).logits, y))}
    else:
        from vlnotes.papers.clip import CLIP
        from vlnotes.losses import clip_loss
        v, t, proj = clip_sizes(quick)
        hf = transformers.CLIPModel(transformers.CLIPConfig(text_config=t, vision_config={**v, "hidden_act": "quick_gelu"},
                                                            projection_dim=proj))
        ours = CLIP.from_hf(hf)
        x = torch.randn(batch, 3, v["image_size"], v["image_size"]); ids, mask = clip_text_batch(batch, hf.config.text_config)
        losses = {"ours": (ours, lambda m: clip_loss(m(x, ids, mask).logits_per_image)),
                  "transformers": (hf, lambda m: m(input_ids=ids, pixel_values=x, attention_mask=mask, return_loss=True).loss)}
    for who, (model, loss_of) in losses.items():
        step = adamw_step_fn(model, loss_of)
        for _ in range(2): step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3): step()
        print(f"\n### {group} {who}: 3 fp32 train steps, by self CPU time\n")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def bench_repvgg(quick: bool, batch: int, warmup: int, repeats: int, peak_n: int) -> list[Row]:
    """RepVGG-A0, ours vs timm with the same weights (`RepVGG.from_timm`): inference forward in the training form and
    folded (ours by `reparameterize()`, timm's by `reparameterize_model`), and a train step (fwd+bwd+SGD)."""
    import copy, torch, timm
    from timm.utils.model import reparameterize_model
    from vlnotes.convert import calibrate_batchnorm, randomise_batchnorm
    from vlnotes.papers.repvgg import RepVGG
    size = 96 if quick else 224
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    ref = calibrate_batchnorm(randomise_batchnorm(timm.create_model("repvgg_a0", pretrained=False)), x).eval()
    ours = RepVGG.from_timm(ref).eval()
    ref_folded, ours_folded = reparameterize_model(ref), copy.deepcopy(ours).reparameterize()
    with torch.no_grad():
        diff = (ours(x).logits - ref(x)).abs().max().item()
        diff_folded = (ours_folded(x).logits - ref_folded(x)).abs().max().item()
    ref_name = f"timm {timm.__version__}"
    setting = f"RepVGG-A0, batch {batch}, 3x{size}x{size}"
    def forward(model, ours_api: bool):
        def run():
            with torch.no_grad(): return model(x).logits if ours_api else model(x)
        return run
    t = interleaved_median_times({"ours": forward(ours, True), "ref": forward(ref, False),
                                  "ours_folded": forward(ours_folded, True), "ref_folded": forward(ref_folded, False)},
                                 warmup, repeats)
    y = torch.randint(1000, (batch,))
    steps = {"ours": train_step_fn(copy.deepcopy(ours), x, y), "ref": train_step_fn(copy.deepcopy(ref), x, y)}
    ts = interleaved_median_times(steps, warmup, repeats)
    note = "lower is better, 1.00 = parity"
    return [
        Row("RepVGG forward, training form", f"{setting}, eval, no grad, median of {repeats}", fmt_ms(t["ours"]),
            f"{fmt_ms(t['ref'])} ({ref_name})", f"{t['ours'] / t['ref']:.2f}",
            f"same weights (RepVGG.from_timm), max diff {diff:.1e}; {note}"),
        Row("RepVGG forward, folded", f"{setting}, eval, no grad, median of {repeats}",
            f"{fmt_ms(t['ours_folded'])} ({t['ours'] / t['ours_folded']:.2f}x faster than the training form)",
            f"{fmt_ms(t['ref_folded'])} ({ref_name}, reparameterize_model)", f"{t['ours_folded'] / t['ref_folded']:.2f}",
            f"max diff {diff_folded:.1e}; {note}"),
        Row("RepVGG train step", f"{setting}, fwd+bwd+SGD, fp32, median of {repeats}", fmt_ms(ts["ours"]),
            f"{fmt_ms(ts['ref'])} ({ref_name})", f"{ts['ours'] / ts['ref']:.2f}", note),
    ]


def table(rows: list[Row]) -> str:
    head = "| benchmark | setting | ours | reference | ratio | note |\n|---|---|---|---|---|---|"
    return "\n".join([head] + [f"| {r.benchmark} | {r.setting} | {r.ours} | {r.reference} | {r.ratio} | {r.note} |"
                               for r in rows])


GROUPS = ["resnet", "world", "import", "vit", "clip", "vilt", "blip", "repvgg"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller inputs and fewer repeats")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--only", choices=GROUPS, action="append", help="run only these groups (repeatable)")
    p.add_argument("--profile", action="store_true",
                   help="also print torch.profiler tables of ours vs transformers for the selected vit/clip groups")
    a = p.parse_args(argv)
    import torch
    if a.threads: torch.set_num_threads(a.threads)
    groups = set(a.only or GROUPS)
    size, warmup, repeats = (64, 2, 5) if a.quick else (112, 3, 10)
    rows: list[Row] = []
    if "resnet" in groups:
        for depth in (18, 50): rows.append(bench_resnet(depth, 8, size, warmup, repeats))
    if "world" in groups:
        for px in (32, 64):
            rows.append(bench_world(px, 128, 4 if a.quick else 10, 1 if a.quick else 2, 3 if a.quick else 5))
    if "import" in groups:
        rows += bench_imports(3 if a.quick else 5)
    tf_warmup, tf_repeats, peak_n = (2, 9, 2048) if a.quick else (2, 9, 2048)
    for g, name, bench in (("vit", "ViT", bench_vit), ("clip", "CLIP", bench_clip), ("vilt", "ViLT", bench_vilt),
                            ("blip", "BLIP", bench_blip), ("repvgg", "RepVGG", bench_repvgg)):
        if g not in groups: continue
        try: rows += bench(a.quick, 8, tf_warmup, tf_repeats, peak_n)
        except Exception as e: rows += skipped(f"{name} train step", "benchmark failed", e)   # don't lose the other rows
    print(f"vlnotes benchmarks ({'quick' if a.quick else 'full'}): torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(table(rows))
    if a.profile:
        for g in ("vit", "clip"):
            if g not in groups: continue
            try: profile_pair(g, a.quick, 8)
            except Exception as e: print(f"\n### {g}: profile skipped: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
