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
