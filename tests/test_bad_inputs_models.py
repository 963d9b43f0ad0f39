"""Bad-input matrix of the models: `vlnotes.layers`, `vlnotes.papers.resnet`, `vit` and `clip` (issue 8).

Every public constructor, config, forward and helper against the kinds of bad input that apply (see `badinput.py`).
`note` records what the code did before issue 8: "was cryptic" (an error from deep inside torch/Python that does
not name the argument), "was silent" (accepted: truncated, coerced, broadcast or NaN propagated) or "was clear".
"""
import math

import pytest
import torch
from torch import nn

from badinput import Case, case_ids, check_case
from vlnotes import layers as L
from vlnotes.papers import clip as C
from vlnotes.convert import randomise_batchnorm
from vlnotes.papers import resnet as R
from vlnotes.papers import vit as V

NAN, INF, HUGE = float("nan"), float("inf"), 10 ** 9


def x3(b=2, n=5, d=16): return torch.rand(b, n, d)
def with_nan(t): t = t.clone(); t.view(-1)[0] = NAN; return t   # exactly one NaN entry
def tiny_vit(**kw): return V.ViT(V.ViTConfig(**{**dict(image_size=16, patch_size=8, dim=16, depth=1, heads=2), **kw}))
def tiny_resnet(**kw): return R.resnet_cifar(8, width=4, **kw)
def text_cfg(**kw):
    return C.CLIPTextConfig(**{**dict(vocab_size=50, context_length=12, dim=16, depth=1, heads=2), **kw})
def tiny_clip(vision=None, **text):
    vision = vision or C.clip_vision_config(image_size=16, patch_size=8, dim=16, depth=1, heads=2)
    return C.CLIP(C.CLIPConfig(vision, text_cfg(**text), embed_dim=8))
def tiny_clip_rn(): return tiny_clip(C.CLIPResNetConfig(image_size=16, depth=8, width=4, heads=2))
def ids(b=2, n=6, eos=3):
    t = torch.randint(6, 50, (b, n)); t[:, -1] = eos; return t
def imgs(b=2, s=16): return torch.rand(b, 3, s, s)


def attn(**kw): return L.Attention(16, 2, **kw)
def fwd_attn(**kw): return L.Attention(16, 2)(kw.pop("x", x3()), **kw)
def enc(**kw): return L.TransformerEncoder(16, 1, 2)(kw.pop("x", x3()), **kw)


LAYERS = [
    # ---- constructors
    Case("layers.Attention", "type", lambda: L.Attention(16.0, 2), TypeError, arg="dim", expected="int", got="16.0",
         note="was clear"),
    Case("layers.Attention", "zero", lambda: L.Attention(16, 0), ValueError, arg="heads", expected=">= 1", got="0",
         note="was clear"),
    Case("layers.Attention", "value", lambda: L.Attention(16, 3), ValueError, arg="dim", expected="divisible",
         got="heads=3", note="was clear"),
    Case("layers.Attention", "nan", lambda: attn(dropout=NAN), ValueError, arg="dropout", expected="finite",
         got="nan", note="was silent"),
    Case("layers.Attention", "value", lambda: attn(dropout=1.5), ValueError, arg="dropout", expected="< 1",
         got="1.5", note="was clear"),
    Case("layers.Attention", "type", lambda: attn(bias="no"), TypeError, arg="bias", expected="True or False",
         got="'no'", note="was silent"),
    Case("layers.Attention", "huge", lambda: L.Attention(HUGE, 1), ValueError, arg="dim", expected="<=",
         got=str(HUGE), note="was cryptic"),
    Case("layers.MLP", "zero", lambda: L.MLP(16, 0), ValueError, arg="mlp_dim", expected=">= 1", got="0",
         note="was clear"),
    Case("layers.MLP", "value", lambda: L.MLP(16, 32, act="swish"), ValueError, arg="act", expected="one of",
         got="swish", note="was clear"),
    Case("layers.MLP", "negative", lambda: L.MLP(16, 32, dropout=-0.1), ValueError, arg="dropout",
         expected=">= 0", got="-0.1", note="was clear"),
    Case("layers.TransformerBlock", "zero", lambda: L.TransformerBlock(16, 2, eps=0.0), ValueError, arg="eps",
         expected="> 0", got="0.0", note="was silent"),
    Case("layers.TransformerBlock", "nan", lambda: L.TransformerBlock(16, 2, eps=NAN), ValueError, arg="eps",
         expected="finite", got="nan", note="was silent"),
    Case("layers.TransformerBlock", "type", lambda: L.TransformerBlock(16, 2, norm_first="yes"), TypeError,
         arg="norm_first", expected="True or False", got="'yes'", note="was silent"),
    Case("layers.TransformerBlock", "type", lambda: L.TransformerBlock(16, 2, cross_attention=1), TypeError,
         arg="cross_attention", expected="True or False", got="1", note="was silent"),
    Case("layers.TransformerEncoder", "zero", lambda: L.TransformerEncoder(16, 0, 2), ValueError, arg="depth",
         expected=">= 1", got="0", note="was clear"),
    Case("layers.TransformerEncoder", "type", lambda: L.TransformerEncoder(16, 2.0, 2), TypeError, arg="depth",
         expected="int", got="2.0", note="was clear"),
    Case("layers.TransformerEncoder", "type", lambda: L.TransformerEncoder(16, 1, 2, final_norm="no"), TypeError,
         arg="final_norm", expected="True or False", got="'no'", note="was silent"),
    Case("layers.PatchEmbed", "zero", lambda: L.PatchEmbed(0, 4), ValueError, arg="image_size",
         expected="positive", got="0", note="was clear"),
    Case("layers.PatchEmbed", "value", lambda: L.PatchEmbed(30, 4), ValueError, arg="image_size",
         expected="divisible", got="30x30", note="was clear"),
    Case("layers.PatchEmbed", "zero", lambda: L.PatchEmbed(16, 4, in_channels=0), ValueError, arg="in_channels",
         expected=">= 1", got="0", note="was silent"),
    Case("layers.PatchEmbed", "type", lambda: L.PatchEmbed(16, 4, dim=8.5), TypeError, arg="dim", expected="int",
         got="8.5", note="was cryptic"),
    Case("layers.AttentionPool2d", "zero", lambda: L.AttentionPool2d(0, 16, 2), ValueError, arg="grid",
         expected=">= 1", got="0", note="was clear"),
    Case("layers.AttentionPool2d", "value", lambda: L.AttentionPool2d(4, 16, 3), ValueError, arg="dim",
         expected="divisible", got="heads=3", note="was clear"),
    # ---- forward
    Case("layers.Attention.forward", "type", lambda: fwd_attn(x=[[0.0] * 16]), TypeError, arg="x",
         expected="tensor", got="list", note="was clear"),
    Case("layers.Attention.forward", "shape", lambda: fwd_attn(x=x3(d=8)), ValueError, arg="x",
         expected="16", got="(2, 5, 8)", note="was clear"),
    Case("layers.Attention.forward", "dtype", lambda: fwd_attn(x=torch.ones(2, 5, 16, dtype=torch.long)),
         ValueError, arg="x", expected="float", got="int64", note="was clear"),
    Case("layers.Attention.forward", "empty", lambda: fwd_attn(x=x3(b=0)), ValueError, arg="x",
         expected="non-empty", got="0", note="was clear"),
    Case("layers.Attention.forward", "nan", lambda: fwd_attn(attn_mask=with_nan(torch.zeros(5, 5))), ValueError,
         arg="attn_mask", expected="no NaN", got="1 NaN", note="was silent"),
    Case("layers.Attention.forward", "inf", lambda: fwd_attn(attn_mask=torch.full((5, 5), INF)), ValueError,
         arg="attn_mask", expected="-inf", got="25 +inf", note="was silent"),
    Case("layers.Attention.forward", "dtype", lambda: fwd_attn(attn_mask=torch.ones(5, 5, dtype=torch.long)),
         ValueError, arg="attn_mask", expected="bool", got="int64", note="was clear"),
    Case("layers.Attention.forward", "shape", lambda: fwd_attn(attn_mask=torch.ones(5, 4, dtype=torch.bool)),
         ValueError, arg="attn_mask", expected="expected 5", got="(5, 4)", note="was clear"),
    Case("layers.Attention.forward", "value", lambda: fwd_attn(attn_mask=torch.zeros(5, 5, dtype=torch.bool)),
         ValueError, arg="attention masks", expected="at least one key", got="for 5", note="was clear"),
    Case("layers.Attention.forward", "dtype", lambda: fwd_attn(key_padding_mask=torch.zeros(2, 5)), ValueError,
         arg="key_padding_mask", expected="torch.bool", got="float32", note="was clear"),
    Case("layers.Attention.forward", "shape", lambda: fwd_attn(key_padding_mask=torch.zeros(2, 4, dtype=torch.bool)),
         ValueError, arg="key_padding_mask", expected="5", got="4", note="was clear"),
    Case("layers.Attention.forward", "value", lambda: fwd_attn(key_padding_mask=torch.ones(2, 5, dtype=torch.bool)),
         ValueError, arg="key_padding_mask", expected="at least one", got="[0, 1]", note="was clear"),
    Case("layers.Attention.forward", "type", lambda: fwd_attn(causal="yes"), TypeError, arg="causal",
         expected="True or False", got="'yes'", note="was silent"),
    Case("layers.TransformerEncoder.forward", "nan", lambda: enc(attn_mask=with_nan(torch.zeros(2, 5, 5))),
         ValueError, arg="attn_mask", expected="no NaN", got="1 NaN", note="was silent"),
    Case("layers.TransformerEncoder.forward", "shape", lambda: enc(x=torch.rand(5, 16)), ValueError, arg="x",
         expected="3-d", got="(5, 16)", note="was clear"),
    Case("layers.TransformerEncoder.forward", "value", lambda: enc(context=x3()), ValueError, arg="context",
         expected="context=None", got="(2, 5, 16)", note="was clear"),
    Case("layers.PatchEmbed.forward", "shape", lambda: L.PatchEmbed(16, 4, dim=8)(torch.rand(2, 1, 16, 16)),
         ValueError, arg="images", expected="3", got="(2, 1, 16, 16)", note="was clear"),
    Case("layers.PatchEmbed.forward", "nan", lambda: L.PatchEmbed(16, 4, dim=8)(with_nan(imgs())), ValueError,
         arg="images", expected="finite", got="1 NaN", note="was clear"),
    Case("layers.AttentionPool2d.forward", "shape", lambda: L.AttentionPool2d(4, 16, 2)(torch.rand(2, 16, 5, 5)),
         ValueError, arg="fmap", expected="4", got="(2, 16, 5, 5)", note="was clear"),
    Case("layers.AttentionPool2d.forward", "dtype",
         lambda: L.AttentionPool2d(4, 16, 2)(torch.ones(2, 16, 4, 4, dtype=torch.long)), ValueError, arg="fmap",
         expected="float", got="int64", note="was cryptic"),
    Case("layers.AttentionPool2d.forward", "empty", lambda: L.AttentionPool2d(4, 16, 2)(torch.rand(0, 16, 4, 4)),
         ValueError, arg="fmap", expected="non-empty", got="0", note="was cryptic"),
    # ---- functions
    Case("layers.interpolate_pos_embed", "zero", lambda: L.interpolate_pos_embed(torch.rand(1, 17, 8), 0),
         ValueError, arg="new_grid", expected="positive", got="0", note="was clear"),
    Case("layers.interpolate_pos_embed", "negative",
         lambda: L.interpolate_pos_embed(torch.rand(1, 17, 8), 2, num_prefix_tokens=-1), ValueError,
         arg="num_prefix_tokens", expected=">= 0", got="-1", note="was cryptic"),
    Case("layers.interpolate_pos_embed", "value",
         lambda: L.interpolate_pos_embed(torch.rand(1, 17, 8), 2, mode="cubic"),
         ValueError, arg="mode", expected="one of", got="cubic", note="was clear"),
    Case("layers.interpolate_pos_embed", "shape", lambda: L.interpolate_pos_embed(torch.rand(17, 8), 2),
         ValueError, arg="pos_embed", expected="3-d", got="(17, 8)", note="was clear"),
    Case("layers.interpolate_pos_embed", "type",
         lambda: L.interpolate_pos_embed(torch.rand(1, 17, 8), 2, antialias="yes"), TypeError,
         arg="antialias", expected="True or False", got="'yes'", note="was silent"),
    Case("layers.make_act", "value", lambda: L.make_act("swish"), ValueError, arg="act", expected="one of",
         got="swish", note="was clear"),
]

RESNET = [
    Case("resnet.ResNetConfig", "type", lambda: R.ResNetConfig(layers=[2.7, 1], widths=[8, 16]), TypeError,
         arg="layers[0]", expected="int", got="2.7", note="was clear"),
    Case("resnet.ResNetConfig", "type", lambda: R.ResNetConfig(layers=[1, 1], widths=["8", "8"]), TypeError,
         arg="widths[0]", expected="int", got="'8'", note="was clear"),
    Case("resnet.ResNetConfig", "empty", lambda: R.ResNetConfig(layers=[], widths=[]), TypeError, arg="layers",
         expected="non-empty", got="[]", note="was clear"),
    Case("resnet.ResNetConfig", "type", lambda: R.ResNetConfig(layers=4), TypeError, arg="layers",
         expected="sequence", got="4", note="was clear"),
    Case("resnet.ResNetConfig", "zero", lambda: R.ResNetConfig(layers=[1, 1], widths=[0, 8]), ValueError,
         arg="widths[0]", expected=">= 1", got="0", note="was clear"),
    Case("resnet.ResNetConfig", "negative", lambda: R.ResNetConfig(layers=[-1, 1], widths=[8, 8]), ValueError,
         arg="layers[0]", expected=">= 1", got="-1", note="was clear"),
    Case("resnet.ResNetConfig", "huge", lambda: R.ResNetConfig(layers=[1, 1], widths=[HUGE, 8]), ValueError,
         arg="widths[0]", expected="<=", got=str(HUGE), note="was silent"),
    Case("resnet.ResNetConfig", "huge", lambda: R.ResNetConfig(layers=[HUGE, 1], widths=[8, 8]), ValueError,
         arg="layers[0]", expected="<=", got=str(HUGE), note="was silent"),
    Case("resnet.ResNetConfig", "negative", lambda: R.ResNetConfig(num_classes=-1), ValueError,
         arg="num_classes", expected=">= 0", got="-1", note="was clear"),
    Case("resnet.ResNetConfig", "nan", lambda: R.ResNetConfig(num_classes=NAN), TypeError, arg="num_classes",
         expected="int", got="nan", note="was clear"),
    Case("resnet.ResNetConfig", "huge", lambda: R.ResNetConfig(num_classes=HUGE), ValueError, arg="num_classes",
         expected="<=", got=str(HUGE), note="was silent"),
    Case("resnet.ResNetConfig", "value", lambda: R.ResNetConfig(block="wide"), ValueError, arg="block",
         expected="one of", got="wide", note="was clear"),
    Case("resnet.ResNetConfig", "value", lambda: R.ResNetConfig(shortcut="D"), ValueError, arg="shortcut",
         expected="one of", got="'D'", note="was clear"),
    Case("resnet.ResNetConfig", "type", lambda: R.ResNetConfig(plain="yes"), TypeError, arg="plain",
         expected="True or False", got="'yes'", note="was clear"),
    Case("resnet.ResNetConfig", "shape", lambda: R.ResNetConfig(layers=[1, 1], widths=[8]), ValueError,
         arg="widths", expected="one width per stage", got="(8,)", note="was clear"),
    Case("resnet.ResNetConfig", "value", lambda: R.ResNetConfig(layers=[1, 1], widths=[16, 8], shortcut="A"),
         ValueError, arg="widths", expected="non-decreasing", got="(16, 8)", note="was silent"),
    Case("resnet.ResNetConfig.from_dict", "schema", lambda: R.ResNetConfig.from_dict({"depth": 3}), ValueError,
         arg="ResNetConfig", expected="subset", got="depth", note="was clear"),
    Case("resnet.ResNetConfig.cifar", "value", lambda: R.ResNetConfig.cifar(9), ValueError, arg="depth",
         expected="6n+2", got="9", note="was clear"),
    Case("resnet.resnet_cifar", "type", lambda: R.resnet_cifar(20.0), TypeError, arg="depth", expected="int",
         got="20.0", note="was clear"),
    Case("resnet.resnet_cifar", "zero", lambda: R.resnet_cifar(8, width=0), ValueError, arg="width",
         expected=">= 1", got="0", note="was clear"),
    Case("resnet.resnet18", "negative", lambda: R.resnet18(num_classes=-1), ValueError, arg="num_classes",
         expected=">= 0", got="-1", note="was clear"),
    Case("resnet.ResNet", "type", lambda: R.ResNet({"block": "basic"}), TypeError, arg="config",
         expected="ResNetConfig", got="dict", note="was clear"),
    Case("resnet.ResNet.forward", "shape", lambda: tiny_resnet()(torch.rand(2, 3, 2, 2)), ValueError,
         arg="images", expected=">= 4", got="2x2", note="was clear"),
    Case("resnet.ResNet.forward", "dtype", lambda: tiny_resnet()(imgs().double()), ValueError, arg="images",
         expected="float32", got="float64", note="was clear"),
    Case("resnet.ResNet.forward", "nan", lambda: tiny_resnet()(with_nan(imgs())), ValueError, arg="images",
         expected="finite", got="1 NaN", note="was clear"),
    Case("resnet.ResNet.forward", "empty", lambda: tiny_resnet()(imgs(b=0)), ValueError, arg="images",
         expected="non-empty", got="0", note="was clear"),
    Case("resnet.ResNet.from_torchvision", "type", lambda: R.ResNet.from_torchvision(tiny_vit()), TypeError,
         arg="model", expected="torchvision.models.ResNet", got="ViT", note="was clear"),
    Case("resnet.ResNet.from_torchvision", "value", lambda: R.ResNet.from_torchvision(_resnext()), ValueError,
         arg="groups", expected="groups=1", got="groups=32", note="was clear"),
    Case("convert.randomise_batchnorm", "type", lambda: randomise_batchnorm(tiny_resnet(), seed="1"), TypeError,
         arg="seed", expected="int", got="'1'", note="was clear"),
    Case("convert.randomise_batchnorm", "type", lambda: randomise_batchnorm("model"), TypeError, arg="model",
         expected="nn.Module", got="str", note="was cryptic"),
    Case("resnet.torchvision_parity", "value", lambda: R.torchvision_parity(_tv18(), imgs(s=32), modes=("test",)),
         ValueError, arg="modes", expected="one of", got="test", note="was clear"),
    Case("resnet.gradient_split", "shape", lambda: R.gradient_split(tiny_resnet(), imgs(b=2), torch.tensor([1])),
         ValueError, arg="labels", expected="equal", got="'labels': 1", note="was clear"),
    Case("resnet.gradient_split", "dtype",
         lambda: R.gradient_split(tiny_resnet(), imgs(b=2), torch.tensor([0.5, 1.0])), ValueError, arg="labels",
         expected="int", got="float32", note="was cryptic"),
    Case("resnet.gradient_split", "value", lambda: R.gradient_split(tiny_resnet(), imgs(b=2), torch.tensor([0, 10])),
         ValueError, arg="labels", expected="[0, 9]", got="[0, 10]", note="was cryptic"),
    Case("resnet.branch_ratios", "value", lambda: R.branch_ratios(tiny_resnet(plain=True), imgs()), ValueError,
         arg="model", expected="residual", got="plain", note="was clear"),
    Case("resnet.layer_responses", "type", lambda: R.layer_responses(tiny_resnet(), imgs().tolist()), TypeError,
         arg="images", expected="tensor", got="list", note="was clear"),
]


def _resnext():
    import torchvision
    return torchvision.models.resnext50_32x4d(weights=None)


def _tv18():
    import torchvision
    return torchvision.models.resnet18(weights=None, num_classes=4)


def vitcfg(**kw): return V.ViTConfig(**{**dict(image_size=16, patch_size=8, dim=16, depth=1, heads=2), **kw})


VIT = [
    Case("vit.ViTConfig", "nan", lambda: vitcfg(mlp_dim=NAN), TypeError, arg="mlp_dim", expected="int", got="nan",
         note="was clear"),
    Case("vit.ViTConfig", "nan", lambda: vitcfg(dim=NAN), TypeError, arg="dim", expected="int", got="nan",
         note="was clear"),
    Case("vit.ViTConfig", "zero", lambda: vitcfg(image_size=0), ValueError, arg="image_size", expected="positive",
         got="0", note="was clear"),
    Case("vit.ViTConfig", "shape", lambda: vitcfg(image_size=(16, 16, 3)), ValueError, arg="image_size",
         expected="pair", got="(16, 16, 3)", note="was clear"),
    Case("vit.ViTConfig", "value", lambda: vitcfg(image_size=20), ValueError, arg="image_size",
         expected="multiple of patch_size", got="20x20", note="was clear"),
    Case("vit.ViTConfig", "value", lambda: vitcfg(heads=3), ValueError, arg="dim", expected="multiple of heads",
         got="dim=16", note="was clear"),
    Case("vit.ViTConfig", "zero", lambda: vitcfg(eps=0.0), ValueError, arg="eps", expected="> 0", got="0.0",
         note="was clear"),
    Case("vit.ViTConfig", "inf", lambda: vitcfg(init_std=INF), ValueError, arg="init_std", expected="finite",
         got="inf", note="was clear"),
    Case("vit.ViTConfig", "value", lambda: vitcfg(dropout=1.0), ValueError, arg="dropout", expected="< 1",
         got="1.0", note="was clear"),
    Case("vit.ViTConfig", "value", lambda: vitcfg(pool="max"), ValueError, arg="pool", expected="one of",
         got="max", note="was clear"),
    Case("vit.ViTConfig", "type", lambda: vitcfg(qkv_bias="yes"), TypeError, arg="qkv_bias",
         expected="True or False", got="'yes'", note="was clear"),
    Case("vit.ViTConfig", "negative", lambda: vitcfg(num_classes=-3), ValueError, arg="num_classes",
         expected=">= 0", got="-3", note="was clear"),
    Case("vit.ViTConfig", "huge", lambda: vitcfg(dim=2 ** 20, heads=1), ValueError, arg="dim", expected="<=",
         got=str(2 ** 20), note="was silent"),
    Case("vit.ViTConfig", "huge", lambda: vitcfg(depth=HUGE), ValueError, arg="depth", expected="<=", got=str(HUGE),
         note="was silent"),
    Case("vit.ViTConfig", "huge", lambda: vitcfg(image_size=2 ** 20, patch_size=1), ValueError, arg="image_size",
         expected="<=", got=str(2 ** 20), note="was silent"),
    Case("vit.ViTConfig", "type", lambda: vitcfg(in_channels="3"), TypeError, arg="in_channels", expected="int",
         got="'3'", note="was clear"),
    Case("vit.ViTConfig.from_dict", "schema", lambda: V.ViTConfig.from_dict({"mlp_ratio": 4.0}), ValueError,
         arg="ViTConfig", expected="subset", got="mlp_ratio", note="was clear"),
    Case("vit.ViT", "type", lambda: V.ViT({"dim": 16}), TypeError, arg="config", expected="ViTConfig", got="dict",
         note="was clear"),
    Case("vit.ViT.forward", "shape", lambda: tiny_vit()(imgs(s=32)), ValueError, arg="images",
         expected="16x16", got="32x32", extra=("interpolate_pos_encoding=true",), note="was clear"),
    Case("vit.ViT.forward", "shape", lambda: tiny_vit()(imgs(s=20), interpolate_pos_encoding=True), ValueError,
         arg="images", expected="divisible", got="20x20", note="was clear"),
    Case("vit.ViT.forward", "type", lambda: tiny_vit()(imgs(), interpolate_pos_encoding="yes"), TypeError,
         arg="interpolate_pos_encoding", expected="True or False", got="'yes'", note="was silent"),
    Case("vit.ViT.forward", "type", lambda: tiny_vit()(imgs(), output_attentions=1), TypeError,
         arg="output_attentions", expected="True or False", got="1", note="was silent"),
    Case("vit.ViT.forward", "dtype", lambda: tiny_vit()(torch.randint(0, 255, (2, 3, 16, 16), dtype=torch.uint8)),
         ValueError, arg="images", expected="float", got="uint8", note="was clear"),
    Case("vit.ViT.forward", "inf", lambda: tiny_vit()(imgs().index_fill(0, torch.tensor([1]), INF)), ValueError,
         arg="images", expected="finite", got="inf", note="was clear"),
    Case("vit.ViT.resized", "zero", lambda: tiny_vit().resized(0), ValueError, arg="image_size",
         expected="positive", got="0", note="was clear"),
    Case("vit.ViT.from_hf", "type", lambda: V.ViT.from_hf(tiny_resnet()), TypeError, arg="from_hf",
         expected="ViTModel", got="ResNet", note="was clear"),
    Case("vit.vit_num_params", "type", lambda: V.vit_num_params({"dim": 16}), TypeError, arg="config",
         expected="ViTConfig", got="dict", note="was cryptic"),
    Case("vit.mean_attention_distance", "shape",
         lambda: V.mean_attention_distance([torch.rand(1, 2, 5, 5)], (3, 3), 4), ValueError, arg="attentions[0]",
         expected="10", got="(1, 2, 5, 5)", note="was clear"),
    Case("vit.attention_distances", "zero", lambda: V.attention_distances(tiny_vit(), imgs(), batch_size=0),
         ValueError, arg="batch_size", expected=">= 1", got="0", note="was cryptic"),
    Case("vit.attention_distances", "empty", lambda: V.attention_distances(tiny_vit(), imgs(b=0)),
         ValueError, arg="images", expected="non-empty", got="0", note="was cryptic"),
    Case("vit.similarity_by_distance", "shape", lambda: V.similarity_by_distance(torch.rand(2, 2, 3, 3)),
         ValueError, arg="sim", expected="2", got="(2, 2, 3, 3)", note="was clear"),
]


def run_clip(model=None, images=None, input_ids=None, attention_mask=None, **kw):
    model = model or tiny_clip()
    return model(imgs() if images is None else images, ids() if input_ids is None else input_ids, attention_mask,
                 **kw)


CLIP = [
    Case("clip.CLIPTextConfig", "zero", lambda: text_cfg(vocab_size=0), ValueError, arg="vocab_size",
         expected=">= 1", got="0", note="was clear"),
    Case("clip.CLIPTextConfig", "nan", lambda: text_cfg(context_length=NAN), TypeError, arg="context_length",
         expected="int", got="nan", note="was clear"),
    Case("clip.CLIPTextConfig", "value", lambda: text_cfg(heads=3), ValueError, arg="dim", expected="divisible",
         got="heads=3", note="was clear"),
    Case("clip.CLIPTextConfig", "value", lambda: text_cfg(eos_id=50), ValueError, arg="eos_id", expected="<= 49",
         got="50", note="was clear"),
    Case("clip.CLIPTextConfig", "negative", lambda: text_cfg(pad_id=-1), ValueError, arg="pad_id", expected=">= 0",
         got="-1", note="was clear"),
    Case("clip.CLIPTextConfig", "value", lambda: text_cfg(pool="mean"), ValueError, arg="pool", expected="one of",
         got="mean", note="was clear"),
    Case("clip.CLIPTextConfig", "nan", lambda: text_cfg(eps=NAN), ValueError, arg="eps", expected="finite",
         got="nan", note="was clear"),
    Case("clip.CLIPTextConfig", "huge", lambda: text_cfg(vocab_size=HUGE), ValueError, arg="vocab_size",
         expected="<=", got=str(HUGE), note="was silent"),
    Case("clip.CLIPTextConfig", "huge", lambda: text_cfg(context_length=HUGE), ValueError, arg="context_length",
         expected="<=", got=str(HUGE), note="was silent"),
    Case("clip.CLIPTextConfig", "type", lambda: text_cfg(mlp_dim=64.0), TypeError, arg="mlp_dim", expected="int",
         got="64.0", note="was clear"),
    Case("clip.CLIPResNetConfig", "value", lambda: C.CLIPResNetConfig(depth=9), ValueError, arg="depth",
         expected="6n+2", got="9", note="was clear"),
    Case("clip.CLIPResNetConfig", "value", lambda: C.CLIPResNetConfig(image_size=30), ValueError, arg="image_size",
         expected="multiple of 4", got="30", note="was clear"),
    Case("clip.CLIPResNetConfig", "zero", lambda: C.CLIPResNetConfig(width=0), ValueError, arg="width",
         expected=">= 1", got="0", note="was clear"),
    Case("clip.CLIPResNetConfig", "value", lambda: C.CLIPResNetConfig(width=16, heads=5), ValueError, arg="heads",
         expected="divisible", got="heads=5", note="was clear"),
    Case("clip.CLIPResNetConfig", "huge", lambda: C.CLIPResNetConfig(width=HUGE), ValueError, arg="width",
         expected="<=", got=str(HUGE), note="was silent"),
    Case("clip.CLIPResNetConfig", "type", lambda: C.CLIPResNetConfig(image_size=32.0), TypeError, arg="image_size",
         expected="int", got="32.0", note="was clear"),
    Case("clip.CLIPConfig", "type", lambda: C.CLIPConfig(vision="vit"), TypeError, arg="vision",
         expected="image tower config", got="str", note="was clear"),
    Case("clip.CLIPConfig", "type", lambda: C.CLIPConfig(text={"dim": 16}), TypeError, arg="text",
         expected="CLIPTextConfig", got="dict", note="was clear"),
    Case("clip.CLIPConfig", "zero", lambda: C.CLIPConfig(embed_dim=0), ValueError, arg="embed_dim",
         expected=">= 1", got="0", note="was clear"),
    Case("clip.CLIPConfig", "nan", lambda: C.CLIPConfig(max_logit_scale=NAN), ValueError, arg="max_logit_scale",
         expected="finite", got="nan", note="was clear"),
    Case("clip.CLIPConfig", "value", lambda: C.CLIPConfig(logit_scale_init=10.0), ValueError,
         arg="logit_scale_init", expected="<=", got="10.0", note="was clear"),
    Case("clip.CLIPConfig", "huge", lambda: C.CLIPConfig(embed_dim=HUGE), ValueError, arg="embed_dim",
         expected="<=", got=str(HUGE), note="was silent"),
    Case("clip.CLIPConfig.from_dict", "schema", lambda: C.CLIPConfig.from_dict({"vision": {"type": "Nope"}}),
         ValueError, arg="vision", expected="one of", got="Nope", note="was clear"),
    Case("clip.CLIP", "type", lambda: C.CLIP({"embed_dim": 8}), TypeError, arg="config", expected="CLIPConfig",
         got="dict", note="was clear"),
    Case("clip.CLIP", "type", lambda: C.CLIP(C.CLIPConfig(), visual="vit"), TypeError, arg="visual",
         expected="nn.Module", got="str", note="was clear"),
    Case("clip.build_tower", "type", lambda: C.build_tower(R.ResNetConfig()), TypeError, arg="build_tower",
         expected="ViTConfig", got="ResNetConfig", note="was clear"),
    Case("clip.TextTransformer", "type", lambda: C.TextTransformer(vitcfg()), TypeError, arg="config",
         expected="CLIPTextConfig", got="ViTConfig", note="was clear"),
    Case("clip.CLIP.forward", "dtype", lambda: run_clip(input_ids=ids().float()), ValueError, arg="input_ids",
         expected="integer", got="float32", note="was clear"),
    Case("clip.CLIP.forward", "value", lambda: run_clip(input_ids=ids().index_fill(1, torch.tensor([0]), 50)),
         ValueError, arg="input_ids", expected="[0, 50)", got="50]", note="was clear"),
    Case("clip.CLIP.forward", "negative", lambda: run_clip(input_ids=ids().index_fill(1, torch.tensor([0]), -1)),
         ValueError, arg="input_ids", expected="[0, 50)", got="[-1", note="was clear"),
    Case("clip.CLIP.forward", "shape", lambda: run_clip(input_ids=ids(n=13)), ValueError, arg="input_ids",
         expected="context_length=12", got="13", note="was clear"),
    Case("clip.CLIP.forward", "empty", lambda: run_clip(images=imgs(b=0), input_ids=ids(b=0)), ValueError,
         arg="images", expected="non-empty", got="0", note="was clear"),
    Case("clip.CLIP.forward", "shape", lambda: run_clip(images=imgs(b=3)), ValueError, arg="input_ids",
         expected="equal", got="'images': 3", note="was clear"),
    Case("clip.CLIP.forward", "shape", lambda: run_clip(attention_mask=torch.ones(2, 5, dtype=torch.long)),
         ValueError, arg="attention_mask", expected="6", got="5", note="was clear"),
    Case("clip.CLIP.forward", "nan", lambda: run_clip(images=with_nan(imgs())), ValueError, arg="images",
         expected="finite", got="1 NaN", note="was clear"),
    Case("clip.CLIP.forward", "shape", lambda: run_clip(images=imgs(s=32)), ValueError, arg="images",
         expected="16x16", got="32x32", extra=("interpolate_pos_encoding=true",), note="was clear"),
    Case("clip.CLIP.forward", "value",
         lambda: run_clip(tiny_clip_rn(), images=imgs(s=32), interpolate_pos_encoding=True),
         ValueError, arg="interpolate_pos_encoding", expected="expected False", got="got True",
         extra=("CLIPResNet", "resize the images"), note="was cryptic"),
    Case("clip.CLIP.forward", "type", lambda: run_clip(return_loss="yes"), TypeError, arg="return_loss",
         expected="True or False", got="'yes'", note="was silent"),
    Case("clip.CLIP.encode_text", "shape", lambda: tiny_clip().encode_text(ids()[0]), ValueError, arg="input_ids",
         expected="2-d", got="(6,)", note="was clear"),
    Case("clip.CLIP.encode_text", "value", lambda: tiny_clip().encode_text(ids(eos=7)), ValueError, arg="input_ids",
         expected="eos_id=3", got="[0, 1]", note="was clear"),
    Case("clip.CLIP.encode_image", "shape", lambda: tiny_clip().encode_image(imgs(s=32)), ValueError, arg="images",
         expected="16x16", got="32x32", note="was clear"),
    Case("clip.CLIP.encode_image", "type", lambda: tiny_clip().encode_image(imgs(), normalize="yes"), TypeError,
         arg="normalize", expected="True or False", got="'yes'", note="was silent"),
    Case("clip.CLIPResNet.forward", "shape", lambda: tiny_clip_rn().visual(imgs(s=32)), ValueError, arg="images",
         expected="16x16", got="32x32", note="was clear"),
    Case("clip.clip_preprocess", "zero", lambda: C.clip_preprocess(imgs(), size=0), ValueError, arg="size",
         expected=">= 1", got="0", note="was cryptic"),
    Case("clip.clip_preprocess", "type", lambda: C.clip_preprocess(imgs(), size=2.5), TypeError, arg="size",
         expected="int", got="2.5", note="was cryptic"),
    Case("clip.clip_preprocess", "huge", lambda: C.clip_preprocess(imgs(), size=HUGE), ValueError, arg="size",
         expected="<=", got=str(HUGE), note="was cryptic"),
    Case("clip.clip_preprocess", "nan", lambda: C.clip_preprocess(with_nan(imgs())), ValueError, arg="images",
         expected="finite", got="1 NaN", note="was silent"),
    Case("clip.clip_preprocess", "empty", lambda: C.clip_preprocess(imgs(b=0)), ValueError, arg="images",
         expected="non-empty", got="0", note="was silent"),
    Case("clip.clip_preprocess", "dtype", lambda: C.clip_preprocess(torch.ones(2, 3, 8, 8, dtype=torch.uint8)),
         ValueError, arg="images", expected="float", got="uint8", note="was silent"),
    Case("clip.clip_preprocess", "type", lambda: C.clip_preprocess(imgs().numpy()), TypeError, arg="images",
         expected="tensor", got="ndarray", note="was clear"),
    Case("clip.CLIP.from_hf", "type", lambda: C.CLIP.from_hf(tiny_vit()), TypeError, arg="from_hf",
         expected="CLIPModel", got="ViT", note="was clear"),
]

CASES = LAYERS + RESNET + VIT + CLIP


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, tmp_path): check_case(case, tmp_path)


def test_matrix_size():
    "The issue asks for 60+ model cases; the notes count them per module."
    assert len(CASES) >= 60
