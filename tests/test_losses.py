"vlnotes.losses: symmetric InfoNCE (clip_loss) and its distributed form, in one process."
import math

import pytest
import torch
import torch.nn.functional as F

import vlnotes.losses as losses
from vlnotes.losses import clip_loss, clip_loss_distributed, gather_with_grad, rank_world


def lse(*v): return math.log(sum(math.exp(x) for x in v))


def test_clip_loss_hand_computed_2x2():
    S = torch.tensor([[2.0, 0.0], [1.0, 3.0]])
    rows = ((lse(2, 0) - 2) + (lse(1, 3) - 3)) / 2
    cols = ((lse(2, 1) - 2) + (lse(0, 3) - 3)) / 2
    assert abs(clip_loss(S).item() - (rows + cols) / 2) < 1e-6


def test_clip_loss_symmetry_chance_and_bound():
    torch.manual_seed(0)
    S = torch.randn(6, 6)
    assert torch.allclose(clip_loss(S), clip_loss(S.t()))
    assert abs(clip_loss(torch.zeros(8, 8)).item() - math.log(8)) < 1e-6
    ideal = 2 * torch.eye(8) - 1
    for s in (1.0, 10.0, 100.0):
        assert abs(clip_loss(s * ideal).item() - math.log(1 + 7 * math.exp(-2 * s))) < 1e-5


def test_clip_loss_gradient_is_softmax_minus_identity():
    torch.manual_seed(0)
    S = torch.randn(5, 5, requires_grad=True)
    clip_loss(S).backward()
    p_rows, p_cols = S.detach().softmax(1), S.detach().softmax(0)
    expected = ((p_rows - torch.eye(5)) + (p_cols - torch.eye(5))) / (2 * 5)
    assert torch.allclose(S.grad, expected, atol=1e-6)


@pytest.mark.parametrize("logits,words", [
    (torch.zeros(3, 4), "logits_per_image"),
    (torch.zeros(2, 2, dtype=torch.long), "logits_per_image"),
    (torch.zeros(0, 0), "logits_per_image"),
    (torch.zeros(2, 2, 2), "logits_per_image"),
])
def test_clip_loss_bad_input(logits, words):
    with pytest.raises(ValueError, match=words): clip_loss(logits)


def test_single_process_is_clip_loss():
    torch.manual_seed(0)
    a, b = F.normalize(torch.randn(5, 8), dim=-1), F.normalize(torch.randn(5, 8), dim=-1)
    assert rank_world() == (0, 1)
    for local in (False, True):
        assert torch.allclose(clip_loss_distributed(a, b, 7.0, local_loss=local), clip_loss(7.0 * a @ b.t()))
    scale = torch.tensor(3.0, requires_grad=True)          # a tensor scale keeps its gradient
    clip_loss_distributed(a, b, scale).backward()
    assert scale.grad is not None and scale.grad.abs() > 0
    assert gather_with_grad(a) is a
    with pytest.raises(ValueError, match="text_feats"): clip_loss_distributed(a, b[:4], 1.0)
    with pytest.raises(ValueError, match="image_feats"): clip_loss_distributed(a[:0], b[:0], 1.0)


def test_local_loss_over_simulated_ranks_equals_global_loss(monkeypatch):
    "N ranks played one after the other: mean of the local losses = global loss, gradients sum to N x global."
    N, b = 3, 4
    torch.manual_seed(0)
    img = F.normalize(torch.randn(N * b, 8), dim=-1).requires_grad_(True)
    txt = F.normalize(torch.randn(N * b, 8), dim=-1).requires_grad_(True)
    ref = clip_loss(10.0 * img @ txt.t())
    ref_img, ref_txt = torch.autograd.grad(ref, (img, txt))
    total = 0
    for r in range(N):
        shard_img, shard_txt = img[r * b:(r + 1) * b], txt[r * b:(r + 1) * b]
        full = {id(shard_img): img, id(shard_txt): txt}
        monkeypatch.setattr(losses, "rank_world", lambda r=r: (r, N))
        monkeypatch.setattr(losses, "gather_with_grad", lambda x: full[id(x)])
        local = clip_loss_distributed(shard_img, shard_txt, 10.0, local_loss=True)
        full_mode = clip_loss_distributed(shard_img, shard_txt, 10.0, local_loss=False)
        assert torch.allclose(full_mode, ref)                 # full gather: every rank computes the global loss
        total = total + local
    assert torch.allclose(total / N, ref, atol=1e-6)
    g_img, g_txt = torch.autograd.grad(total, (img, txt))
    assert torch.allclose(g_img, N * ref_img, atol=1e-6) and torch.allclose(g_txt, N * ref_txt, atol=1e-6)


# ---- supervised contrastive loss ----------------------------------------------------------------------
def official_supcon(features, labels=None, temperature=0.07, base_temperature=0.07, guard=1e-9):
    """HobbitLong/SupContrast `losses.py` `SupConLoss.forward` (contrast_mode='all'), transcribed for comparison:
    the repository is not installable. `guard` is its `+ 1e-9` inside the log: a numerical guard, not the formula,
    which moves the loss where the denominator is tiny (a batch whose only alternative is the positive far away);
    the parity checks set it to 0."""
    batch_size = features.shape[0]
    if labels is None: mask = torch.eye(batch_size, dtype=torch.float32)
    else:
        labels = labels.contiguous().view(-1, 1)
        mask = torch.eq(labels, labels.T).float()
    contrast_count = features.shape[1]
    contrast_feature = torch.cat(torch.unbind(features, dim=1), dim=0)
    anchor_feature, anchor_count = contrast_feature, contrast_count
    anchor_dot_contrast = torch.div(torch.matmul(anchor_feature, contrast_feature.T), temperature)
    logits_max, _ = torch.max(anchor_dot_contrast, dim=1, keepdim=True)
    logits = anchor_dot_contrast - logits_max.detach()
    mask = mask.repeat(anchor_count, contrast_count)
    logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(batch_size * anchor_count).view(-1, 1), 0)
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True) + guard)
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask.sum(1)
    loss = - (temperature / base_temperature) * mean_log_prob_pos
    return loss.view(anchor_count, batch_size).mean()


@pytest.mark.parametrize("bsz,views,dim,classes", [(8, 2, 16, 3), (6, 3, 4, 6), (16, 2, 32, 2), (1, 2, 8, 1)])
@pytest.mark.parametrize("temperature,base", [(0.1, 0.1), (0.5, 0.07), (1.0, 1.0)])
def test_supcon_matches_the_official_code(bsz, views, dim, classes, temperature, base):
    g = torch.Generator().manual_seed(bsz * 31 + views)
    f = F.normalize(torch.randn(bsz, views, dim, generator=g), dim=-1)
    y = torch.randint(classes, (bsz,), generator=g)
    for labels in (y, None):
        ours = losses.supcon_loss(f, labels, temperature, base)
        ref = official_supcon(f, labels, temperature, base, guard=0.0)
        assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-5), (labels, ours, ref)
        assert torch.allclose(ours, official_supcon(f, labels, temperature, base), atol=1e-4)   # with the guard


def test_supcon_gradient_matches_the_official_code():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 2, 12, generator=g)
    y = torch.randint(3, (10,), generator=g)
    grads = []
    for fn in (losses.supcon_loss, lambda *a: official_supcon(*a, guard=0.0)):
        xx = x.clone().requires_grad_()
        fn(F.normalize(xx, dim=-1), y, 0.2, 0.2).backward()
        grads.append(xx.grad)
    assert torch.allclose(*grads, atol=1e-6)


@pytest.mark.parametrize("temperature", [0.07, 0.1, 0.5])
def test_supcon_matches_pytorch_metric_learning(temperature):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    g = torch.Generator().manual_seed(1)
    f = F.normalize(torch.randn(12, 2, 16, generator=g), dim=-1)
    y = torch.randint(4, (12,), generator=g)
    # PML takes (N, D) embeddings and one label each: the views stacked view-major, labels repeated per view
    ref = pml.SupConLoss(temperature=temperature)(torch.cat(torch.unbind(f, 1)), y.repeat(2))
    assert torch.allclose(losses.supcon_loss(f, y, temperature, temperature), ref, atol=1e-5)
    # PML has no base temperature: ours is PML's times temperature / base_temperature
    assert torch.allclose(losses.supcon_loss(f, y, temperature, 0.07), ref * temperature / 0.07, atol=1e-5)


def test_supcon_anchors_without_positives():
    "One view, some classes seen once: those anchors add 0 (official, current); PML averages over the others."
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    g = torch.Generator().manual_seed(2)
    f = F.normalize(torch.randn(6, 1, 8, generator=g), dim=-1)
    y = torch.tensor([0, 0, 1, 1, 2, 3])                       # anchors 4 and 5 have no positive
    ours = losses.supcon_loss(f, y, 0.1, 0.1)
    ref = pml.SupConLoss(temperature=0.1)(f[:, 0], y)
    assert torch.allclose(ours, ref * 4 / 6, atol=1e-5)         # PML: mean over the 4 anchors with a positive
    assert torch.isnan(official_supcon(f, y, 0.1, 0.1))         # the first official version: 0 / 0
    with pytest.raises(ValueError, match="at least one positive pair"):
        losses.supcon_loss(f, torch.arange(6))
