"""The distributed CLIP loss: 2 CPU processes (gloo, DDP) give the loss and gradients of 1 process on the global batch.

The worker below is written to a file and its `main` run in 2 processes by `vlnotes.experiment.launch` (a
gloo group on a file store: no port, no network). Each rank holds half of a global batch of 8
image-text pairs, wraps a tiny CLIP in DistributedDataParallel and back-propagates `clip_loss_distributed`
(full gather and local loss). Rank 0 saves the loss (mean over ranks), DDP's averaged parameter gradients and
the gradient that reached its own features. This process computes `clip_loss` on the concatenated batch.
"""
import pytest
import torch
from safetensors.torch import load_file

from vlnotes.experiment import launch

WORKER = r'''
import torch
import torch.distributed as dist
from safetensors.torch import save_file
from vlnotes.papers.clip import CLIP, CLIPConfig, CLIPTextConfig, clip_vision_config
from vlnotes.losses import clip_loss_distributed, gather_with_grad

def build():
    torch.manual_seed(0)
    return CLIP(CLIPConfig(clip_vision_config(image_size=16, patch_size=8, dim=16, depth=1, heads=2),
                           CLIPTextConfig(vocab_size=30, context_length=8, dim=16, depth=1, heads=2), embed_dim=8))

def batch(n=8):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(6, 30, (n, 6), generator=g); ids[:, -1] = 3
    return torch.rand(n, 3, 16, 16, generator=g), ids

def main(out_dir: str):
    "One rank; the launcher has joined the process group (and tears it down)."
    rank, world = dist.get_rank(), dist.get_world_size()
    images, ids = batch()
    b = len(images) // world
    for mode in ("full", "local"):
        model = torch.nn.parallel.DistributedDataParallel(build())
        out = model(images[rank * b:(rank + 1) * b], ids[rank * b:(rank + 1) * b])
        img, txt = out["image_embeds"], out["text_embeds"]
        img.retain_grad()
        loss = clip_loss_distributed(img, txt, model.module.scale(), local_loss=mode == "local")
        loss.backward()
        mean_loss = loss.detach().clone(); dist.all_reduce(mean_loss); mean_loss /= world
        grads = {f"grad.{n}": p.grad.contiguous() for n, p in model.module.named_parameters()}
        save_file({"loss": mean_loss.reshape(1), "own_loss": loss.detach().reshape(1), "img_grad": img.grad.contiguous(), **grads},
                  f"{out_dir}/{mode}_rank{rank}.safetensors")
    # unequal shards are refused with a clear error, on every rank
    try: gather_with_grad(torch.zeros(2 + rank, 4)); msg = "no error"
    except ValueError as e: msg = str(e)
    if rank == 0:
        with open(f"{out_dir}/unequal.txt", "w") as f: f.write(msg)
'''


@pytest.mark.distributed
def test_two_processes_match_one_process(tmp_path):
    script = tmp_path / "clip_worker.py"
    script.write_text(WORKER)
    launch(f"{script}:main", nprocs=2, args=(str(tmp_path),))

    ns = {}
    exec(WORKER.split("def main")[0], ns)
    model = ns["build"]()
    images, ids = ns["batch"]()
    out = model(images, ids)
    img = out["image_embeds"]; img.retain_grad()
    from vlnotes.losses import clip_loss
    ref_loss = clip_loss(out["logits_per_image"])
    ref_loss.backward()
    ref = {f"grad.{n}": p.grad for n, p in model.named_parameters()}
    assert max(v.abs().max().item() for v in ref.values()) > 1e-3      # the comparison is not vacuous

    for mode in ("full", "local"):
        ranks = [load_file(str(tmp_path / f"{mode}_rank{r}.safetensors")) for r in (0, 1)]
        for r, got in enumerate(ranks):
            assert abs(got["loss"].item() - ref_loss.item()) <= 1e-6, f"{mode}: loss {got['loss'].item()} vs {ref_loss.item()}"
            for k in ref:
                # float32 sums in another order: a few ulps of the largest gradient (|g| ~ 18 for the text embeddings)
                diff, tol = (got[k] - ref[k]).abs().max().item(), 1e-5 * (1 + ref[k].abs().max().item())
                assert diff <= tol, f"{mode} rank {r}: {k} differs from one process by {diff:.3g} (tolerance {tol:.3g})"
            # the derivation's corollary: the gradient at a rank's own features is N times the single-process one
            ref_grad = img.grad[r * 4:(r + 1) * 4]
            assert torch.allclose(got["img_grad"], 2 * ref_grad, atol=1e-6), f"{mode} rank {r}: feature gradient is not 2x"
        if mode == "full":   # every rank computes the whole B x B loss
            assert all(abs(g["own_loss"].item() - ref_loss.item()) <= 1e-6 for g in ranks)
    msg = (tmp_path / "unequal.txt").read_text()
    assert "same batch size" in msg and "[2, 3]" in msg, msg


def test_single_process_reduces_to_clip_loss():
    import torch.nn.functional as F
    from vlnotes.losses import clip_loss, clip_loss_distributed, gather_with_grad
    torch.manual_seed(0)
    a, b = F.normalize(torch.randn(5, 8), dim=-1), F.normalize(torch.randn(5, 8), dim=-1)
    for local in (False, True):
        assert torch.allclose(clip_loss_distributed(a, b, 7.0, local_loss=local), clip_loss(7.0 * a @ b.t()))
    assert gather_with_grad(a) is a
    with pytest.raises(ValueError, match="text_feats"):
        clip_loss_distributed(a, b[:4], 1.0)
