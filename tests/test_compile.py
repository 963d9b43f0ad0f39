"""`torch.compile` and `torch.jit.trace` on every model (issue 8): graph capture with `fullgraph=True`, outputs and
gradients identical to eager mode; value checks step aside inside a graph and still fire in eager mode.

Cheap backends keep this fast on 2 CPU cores: "eager" (Dynamo captures the graph, then runs it op by op) and
"aot_eager" (also traces forward and backward through AOTAutograd). Both run the same ATen kernels as eager
mode, so the outputs must be *exactly* equal. The default backend (inductor, generated C++ kernels) is checked on
one tiny model only: it takes ~30 s per model to compile here. Timing lives in benchmarks/compile_speed.py.
"""
import copy

import pytest
import torch
from torch import nn

from vlnotes.captioning import Captioner, CaptionerConfig
from vlnotes.layers import AttentionPool2d, TransformerEncoder
from vlnotes.papers import clip
from vlnotes.papers.mae import MAE, MAEConfig, PatchDropViT
from vlnotes.papers.repvgg import RepVGG, RepVGGConfig
from vlnotes.papers.resnet import ResNetConfig, resnet_cifar
from vlnotes.papers.supcon import SupConConfig, SupConModel
from vlnotes.papers.vit import ViT, ViTConfig

VOCAB, CTX = 50, 12


def token_batch(n: int = 3, L: int = 8):
    "Right-padded texts of different lengths, each ended by eos (3), and their 0/1 mask."
    g = torch.Generator().manual_seed(0)
    ids, mask = torch.zeros(n, L, dtype=torch.long), torch.zeros(n, L, dtype=torch.long)
    for i in range(n):
        l = 4 + i
        ids[i, :l - 1] = torch.randint(6, VOCAB, (l - 1,), generator=g); ids[i, l - 1] = 3; mask[i, :l] = 1
    return ids, mask


def images(n: int = 3, size: int = 16): return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))
def text_config(): return clip.CLIPTextConfig(vocab_size=VOCAB, context_length=CTX, dim=16, depth=1, heads=2)
def vit_tower(): return clip.clip_vision_config(image_size=16, patch_size=8, dim=16, depth=1, heads=2)
def resnet_tower(): return clip.CLIPResNetConfig(image_size=16, depth=8, width=4, heads=2)


def clip_inputs():
    ids, mask = token_batch()
    return (images(), ids, mask)


# name -> (build, inputs, kwargs); every model the issue names, the text tower, the captioner and the masked layers
MODELS = {
    "resnet": (lambda: resnet_cifar(8, num_classes=3, width=4), lambda: (images(),), {}),
    "repvgg": (lambda: RepVGG(RepVGGConfig(layers=(1, 2), widths=(4, 8), stem_width=4, stem_stride=1, num_classes=3)),
               lambda: (images(),), {}),
    "repvgg_folded": (lambda: RepVGG(RepVGGConfig(layers=(1, 2), widths=(4, 8), stem_width=4, stem_stride=1,
                                                  num_classes=3)).eval().reparameterize(), lambda: (images(),), {}),
    # no classifier: the train step's loss reads the embeddings only (an unused output's gradients are None in eager
    # mode but zeros through AOTAutograd)
    "supcon": (lambda: SupConModel(SupConConfig(ResNetConfig.cifar(8, num_classes=0, width=4), embed_dim=8, num_classes=0)),
               lambda: (images(),), {}),
    "vit": (lambda: ViT(ViTConfig(image_size=16, patch_size=8, dim=16, depth=2, heads=2, num_classes=3)),
            lambda: (images(),), {}),
    # MAE: a fixed `noise` fixes the mask, so eager and compiled runs see the same patches
    "mae": (lambda: MAE(MAEConfig(encoder=ViTConfig(image_size=16, patch_size=4, dim=16, depth=1, heads=2),
                                  decoder_dim=8, decoder_depth=1, decoder_heads=2)),
            lambda: (images(), torch.rand(3, 16, generator=torch.Generator().manual_seed(2))), {}),
    "mae_encoder_mask_tokens": (lambda: MAE(MAEConfig(encoder=ViTConfig(image_size=16, patch_size=4, dim=16, depth=1,
                                                                        heads=2), decoder_dim=8, decoder_depth=1,
                                                      decoder_heads=2, encoder_mask_tokens=True)),
                                lambda: (images(), torch.rand(3, 16, generator=torch.Generator().manual_seed(2))), {}),
    "flip_tower": (lambda: PatchDropViT(ViT(vit_tower()), 0.5),
                   lambda: (images(), torch.rand(3, 4, generator=torch.Generator().manual_seed(2))), {}),
    "clip_vit": (lambda: clip.CLIP(clip.CLIPConfig(vit_tower(), text_config(), embed_dim=8)), clip_inputs, {}),
    "clip_resnet": (lambda: clip.CLIP(clip.CLIPConfig(resnet_tower(), text_config(), embed_dim=8)), clip_inputs, {}),
    "clip_text": (lambda: clip.TextTransformer(text_config()), token_batch, {}),
    "encoder_masks": (lambda: TransformerEncoder(16, 1, 2),
                      lambda: (torch.rand(3, 8, 16), token_batch()[1] == 0), {"causal": True}),
    "attention_pool": (lambda: AttentionPool2d(4, 16, 2), lambda: (torch.rand(3, 16, 4, 4),), {}),
    "captioner": (lambda: Captioner(CaptionerConfig(vocab_size=VOCAB, context_length=CTX, dim=16, depth=1, heads=2,
                                                    context_dim=8)),
                  lambda: (torch.rand(3, 4, 8), *token_batch()), {}),
}


def tensors(out) -> dict[str, torch.Tensor]:
    "The tensors of a model output (Tensor or ModelOutput), by name."
    if isinstance(out, torch.Tensor): return {"output": out}
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    return MODELS[name][0]()


def assert_identical(a: dict, b: dict, what: str):
    assert a.keys() == b.keys(), f"{what}: keys {sorted(a)} vs {sorted(b)}"
    for k in a:
        diff = (a[k].float() - b[k].float()).abs().max().item() if a[k].numel() else 0.0
        assert torch.equal(a[k], b[k]), f"{what}: {k} differs from eager mode, max abs diff {diff:.3g}"


# The output a training loss reads. One loss, as in a training step: a loss on several outputs that share a
# tensor (ViT's normed tokens feed last_hidden_state, pooled and logits) sums their gradients in an order
# AOTAutograd may change, and float addition is not associative (ViT's gradients then differ by ~1 ulp).
LOSS_OUTPUT = {"resnet": "logits", "repvgg": "logits", "repvgg_folded": "logits", "supcon": "embeddings", "mae": "loss", "mae_encoder_mask_tokens": "loss",
               "flip_tower": "pooled", "vit": "logits", "clip_vit": "logits_per_image", "clip_resnet": "logits_per_image",
               "clip_text": "pooled", "captioner": "logits"}


def train_step(model: nn.Module, run, name: str, args, kw) -> tuple[dict, dict]:
    "`run` (the model or its compiled wrapper): forward + backward of a fixed random projection of the loss output."
    out = tensors(run(*args, **kw))
    target = out[LOSS_OUTPUT.get(name, "output")]
    (target * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in out.items()}, grads


@pytest.fixture(autouse=True)
def fresh_dynamo():
    "Every test compiles from scratch: no cache hits or recompile limits carried over from another model."
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", list(MODELS))
def test_fullgraph_eval_forward_is_identical(name, backend="eager"):
    "Eval mode, Dynamo's graph run op by op (aot_eager is covered by the train step below, forward and backward)."
    model = build(name).eval()
    args, kw = MODELS[name][1](), MODELS[name][2]
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    with torch.no_grad():
        assert_identical(tensors(compiled(*args, **kw)), tensors(model(*args, **kw)), f"{name} eval ({backend})")


@pytest.mark.parametrize("name", list(MODELS))
def test_fullgraph_train_step_is_identical(name):
    "Train mode (BatchNorm batch statistics), forward + backward through AOTAutograd: outputs, grads, BN buffers."
    model = build(name).train()
    twin = copy.deepcopy(model)
    args, kw = MODELS[name][1](), MODELS[name][2]
    out, grads = train_step(model, model, name, args, kw)
    c_out, c_grads = train_step(twin, torch.compile(twin, backend="aot_eager", fullgraph=True), name, args, kw)
    assert grads, f"{name}: no gradients"
    assert_identical(c_out, out, f"{name} train outputs")
    assert_identical(c_grads, grads, f"{name} gradients")
    assert_identical(dict(twin.named_buffers()), dict(model.named_buffers()), f"{name} buffers")


def test_inductor_on_one_tiny_model():
    """The default backend generates fused C++ kernels: sums run in another order (and may vectorise), so float32
    results agree to round-off, not bit for bit; 1e-5 on outputs of size ~1 is a few hundred ulps of slack."""
    model = build("vit").eval()
    x = images()
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        got, want = tensors(compiled(x)), tensors(model(x))
    for k in want: torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=1e-5, msg=lambda m: f"{k}: {m}")


class AsTuple(nn.Module):
    "jit.trace needs tensors or tuples out: the present tensors of a ModelOutput, in field order."
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
    def forward(self, *args): return tuple(tensors(self.model(*args)).values())


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")   # the static shape checks, recorded as constants
@pytest.mark.parametrize("name", ["clip_vit", "clip_resnet", "vit", "resnet", "repvgg", "repvgg_folded", "supcon"])
def test_jit_trace_matches_eager(name):
    "Tracing used to fail on CLIP with a false 'mismatched batch sizes'; the traced graph must equal eager mode."
    model = AsTuple(build(name).eval())
    args = MODELS[name][1]()
    with torch.no_grad():
        traced = torch.jit.trace(model, args, check_trace=False)
        for a, b in zip(traced(*args), model(*args)): assert torch.equal(a, b)
        other = tuple(a[:2] for a in args)      # another batch size runs through the same trace
        for a, b in zip(traced(*other), model(*other)): assert torch.equal(a, b)


def test_value_checks_fire_in_eager_mode_and_step_aside_in_a_graph():
    "NaN pixels: eager mode raises; inside a compiled graph value checks are skipped (NaN flows through)."
    model = build("clip_vit").eval()
    x, ids, mask = clip_inputs()
    bad = x.clone(); bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="images: expected finite values"):
        model(bad, ids, mask)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        out = compiled(bad, ids, mask)
    assert torch.isnan(out.image_embeds[0]).all() and torch.isfinite(out.image_embeds[1:]).all()
    with pytest.raises(ValueError, match="images: expected finite values"):   # the eager model still checks
        model(bad, ids, mask)
    nan_mask = torch.zeros(8, 8); nan_mask[0, 0] = float("nan")
    with pytest.raises(ValueError, match="attn_mask"):
        build("encoder_masks")(torch.rand(3, 8, 16), attn_mask=nan_mask)


def test_shape_checks_fire_inside_a_compiled_graph():
    """Shape and dtype checks are static: a compiled model still refuses wrong channels and float token ids. By
    default the ValueError itself propagates; with fullgraph=True Dynamo wraps it, and its message is kept."""
    model = build("clip_vit").eval()
    x, ids, mask = clip_inputs()
    compiled, strict = torch.compile(model, backend="eager"), torch.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        compiled(x, ids, mask); strict(x, ids, mask)
        with pytest.raises(ValueError, match="images: dimension 1 expected size 3"):
            compiled(x[:, :1], ids, mask)
        with pytest.raises(ValueError, match="input_ids: expected dtype int"):
            compiled(x, ids.float(), mask)
        with pytest.raises(Exception, match="images: dimension 1 expected size 3"):
            strict(x[:, :1], ids, mask)
