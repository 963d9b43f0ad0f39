"""Parity of `vlnotes.papers.vilt` with transformers' ViLT (random tiny models, eval mode) and its input validation."""
import pytest
import torch
from transformers import (ViltConfig, ViltForImageAndTextRetrieval, ViltForMaskedLM, ViltForQuestionAnswering,
                          ViltModel)

from vlnotes.papers.vilt import (ViLT, ViLTConfig, ViLTForImageAndTextRetrieval, ViLTForImageTextMatching,
                                 ViLTForMaskedLM, ViLTForQuestionAnswering,
                                 hf_first_patches, hf_parity, select_patches, vilt_config_from_hf)
from vlnotes.bert import BertConfig, BertEmbeddings, BertModel
from vlnotes.convert import max_abs_diff

ATOL = 1e-4
HF_CLASSES = (ViltModel, ViltForQuestionAnswering, ViltForImageAndTextRetrieval, ViltForMaskedLM)

# three tiny configs: non-square images larger than the position grid, partial pixel masks (one not patch-aligned,
# one a single patch column), padded text, token types, gelu_new, no qkv bias, and a mask-free square-grid case
CONFIGS = {
    "A_32x48_mask_pad": dict(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=64, image_size=32, patch_size=8, max_position_embeddings=12,
                             num_labels=7),
    "B_64x32_masks_types": dict(vocab_size=40, hidden_size=48, num_hidden_layers=3, num_attention_heads=3,
                                intermediate_size=96, image_size=48, patch_size=16, max_position_embeddings=10,
                                hidden_act="gelu_new", layer_norm_eps=1e-5, qkv_bias=False, type_vocab_size=3,
                                pad_token_id=0, num_labels=4),
    "C_48x64_no_masks": dict(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32, image_size=32, patch_size=8, max_position_embeddings=8,
                             modality_type_vocab_size=3, num_labels=3),
}

def hf_config(name: str, **kw) -> ViltConfig:
    return ViltConfig(**{**CONFIGS[name], "max_image_length": -1, **kw})

def make_inputs(name: str) -> dict:
    "Inputs of a config: ids, text mask, images, pixel mask (None where the case has none), token types."
    g = torch.Generator().manual_seed(1)
    c = CONFIGS[name]
    if name.startswith("A"):
        ids = torch.randint(1, c["vocab_size"], (2, 7), generator=g)
        am = torch.ones(2, 7, dtype=torch.long); am[1, 4:] = 0; ids[1, 4:] = 0
        px = torch.randn(2, 3, 32, 48, generator=g)
        pm = torch.ones(2, 32, 48, dtype=torch.long); pm[1, 24:] = 0; pm[1, :, 40:] = 0      # 3x5 of 4x6 patches
        return dict(input_ids=ids, attention_mask=am, pixel_values=px, pixel_mask=pm, token_type_ids=None)
    if name.startswith("B"):
        ids = torch.randint(1, c["vocab_size"], (3, 9), generator=g)
        am = torch.ones(3, 9, dtype=torch.long); am[0, 6:] = 0; am[2, 2:] = 0; ids[am == 0] = 0
        px = torch.randn(3, 3, 64, 32, generator=g)
        pm = torch.ones(3, 64, 32, dtype=torch.long)
        pm[1, 40:] = 0                   # not patch-aligned: rows 0, 16, 32 have a valid top-left pixel -> 3x2
        pm[2, :, 16:] = 0                # one patch column -> 4x1
        tt = torch.randint(0, 3, (3, 9), generator=g)
        return dict(input_ids=ids, attention_mask=am, pixel_values=px, pixel_mask=pm, token_type_ids=tt)
    ids = torch.randint(0, c["vocab_size"], (2, 5), generator=g)
    return dict(input_ids=ids, attention_mask=None, pixel_values=torch.randn(2, 3, 48, 64, generator=g),
                pixel_mask=None, token_type_ids=None)

def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    "Add noise to every parameter (the zero-initialised [class] token and positions too); eval mode."
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters(): p.add_(torch.randn_like(p) * 0.1)
    return model.eval()

def build(cls, name: str, **kw):
    torch.manual_seed(0)
    return randomise(cls(hf_config(name, **kw)))

def parity(cls, name: str, **kw) -> dict[str, float]:
    x = make_inputs(name)
    hf = build(cls, name, **kw)
    return hf_parity(hf, x["input_ids"], x["pixel_values"], x["attention_mask"], x["pixel_mask"],
                     x["token_type_ids"], atol=ATOL)

# ------------------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("cls", HF_CLASSES, ids=lambda c: c.__name__)
def test_parity(cls, name):
    diffs = parity(cls, name)          # hidden states, attentions, last hidden state, pooler / logits
    assert max(diffs.values()) <= ATOL, diffs

@pytest.mark.parametrize("max_len", [5, 20])
@pytest.mark.parametrize("cls", HF_CLASSES, ids=lambda c: c.__name__)
def test_parity_sampled_patches(cls, max_len):
    "max_image_length > 0: the same multinomial draws as transformers, so the same patches under the same seed."
    diffs = parity(cls, "A_32x48_mask_pad", max_image_length=max_len)
    assert max(diffs.values()) <= ATOL, diffs

def test_parity_is_sensitive_to_the_patches():
    "A negative control: other draws (another seed) give other image tokens, far beyond the tolerance."
    name, x = "A_32x48_mask_pad", make_inputs("A_32x48_mask_pad")
    hf = build(ViltModel, name, max_image_length=5)
    ours = ViLT.from_hf(hf).eval()
    with torch.no_grad():
        torch.manual_seed(0); ref = hf(**x)
        torch.manual_seed(1); out = ours(**x)
    assert max_abs_diff(out.last_hidden_state, ref.last_hidden_state) > 1e-2

def test_parity_without_first_patches():
    """transformers' own random patch order (max_image_length=-1): text tokens, image [class], pooler and logits
    are order-free and match; each valid image token matches one of transformers' image tokens."""
    name, x = "A_32x48_mask_pad", make_inputs("A_32x48_mask_pad")
    hf = build(ViltModel, name)
    ours = ViLT.from_hf(hf).eval()
    args = dict(attention_mask=x["attention_mask"], pixel_values=x["pixel_values"], pixel_mask=x["pixel_mask"])
    with torch.no_grad():
        ref, out = hf(x["input_ids"], **args), ours(x["input_ids"], **args)
    T = x["input_ids"].shape[1]
    assert max_abs_diff(out.pooler_output, ref.pooler_output) <= ATOL
    assert max_abs_diff(out.last_hidden_state[:, :T + 1], ref.last_hidden_state[:, :T + 1]) <= ATOL
    for b in range(len(out.image_mask)):
        mine = out.image_features[b][out.image_mask[b]]
        theirs = ref.last_hidden_state[b, T:]
        nearest = (mine[:, None] - theirs[None]).abs().amax(-1).min(-1).values
        assert nearest.max() <= ATOL

def test_image_token_type_idx():
    name, x = "C_48x64_no_masks", make_inputs("C_48x64_no_masks")
    hf = build(ViltModel, name)
    ours = ViLT.from_hf(hf).eval()
    with torch.no_grad(), hf_first_patches():
        ref = hf(x["input_ids"], pixel_values=x["pixel_values"], image_token_type_idx=2)
    out = ours(x["input_ids"], pixel_values=x["pixel_values"], image_token_type_idx=2)
    assert max_abs_diff(out.last_hidden_state, ref.last_hidden_state) <= ATOL
    assert max_abs_diff(out.pooler_output, ref.pooler_output) <= ATOL

@pytest.mark.parametrize("name", ["A_32x48_mask_pad", "B_64x32_masks_types"])
def test_losses_match(name):
    x = make_inputs(name)
    hf_qa, hf_mlm = build(ViltForQuestionAnswering, name), build(ViltForMaskedLM, name)
    B, T = x["input_ids"].shape
    soft = torch.rand(B, hf_qa.config.num_labels, generator=torch.Generator().manual_seed(2))
    mlm_labels = torch.full((B, T), -100); mlm_labels[:, 1] = x["input_ids"][:, 1]; mlm_labels[0, 2] = 3
    kw = {k: v for k, v in x.items() if k != "input_ids"}
    with torch.no_grad(), hf_first_patches():
        ref_qa = hf_qa(x["input_ids"], labels=soft, **kw).loss
        ref_mlm = hf_mlm(x["input_ids"], labels=mlm_labels, **kw).loss
    with torch.no_grad():
        out_qa = ViLTForQuestionAnswering.from_hf(hf_qa).eval()(x["input_ids"], labels=soft, **kw).loss
        out_mlm = ViLTForMaskedLM.from_hf(hf_mlm).eval()(x["input_ids"], labels=mlm_labels, **kw).loss
    assert max_abs_diff(out_qa, ref_qa) <= ATOL and max_abs_diff(out_mlm, ref_mlm) <= ATOL

# ---------------------------------------------------------------------------------------------- structure, heads
def test_config_from_hf():
    c = vilt_config_from_hf(hf_config("B_64x32_masks_types"), num_answers=4)
    assert (c.vocab_size, c.max_text_len, c.type_vocab_size, c.modality_types) == (40, 10, 3, 2)
    assert (c.dim, c.depth, c.heads, c.mlp_dim, c.patch_size, c.image_size) == (48, 3, 3, 96, 16, 48)
    assert (c.act, c.eps, c.qkv_bias, c.max_image_length, c.pad_id, c.num_answers) == \
        ("gelu_tanh", 1e-5, False, -1, 0, 4)
    assert ViLTConfig.from_hf(hf_config("A_32x48_mask_pad", max_image_length=-5)).max_image_length == -1

def test_mlm_decoder_tied():
    ours = ViLTForMaskedLM.from_hf(build(ViltForMaskedLM, "A_32x48_mask_pad"))
    assert ours.mlm_head[3].weight is ours.vilt.text_embed.word_embed.weight

def test_text_embeddings_are_berts():
    "ViLT's text side is vlnotes.bert's BertEmbeddings: a BertModel with the same tables embeds text identically."
    torch.manual_seed(0)
    vilt = ViLT(ViLTConfig(vocab_size=50, max_text_len=12, dim=32, heads=4, type_vocab_size=3, pad_id=0)).eval()
    assert isinstance(vilt.text_embed, BertEmbeddings)
    bert = BertModel(BertConfig(vocab_size=50, max_len=12, type_vocab_size=3, dim=32, depth=1, heads=4,
                                eps=vilt.config.eps, pad_id=0)).eval()
    missing, unexpected = bert.load_state_dict(vilt.text_embed.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("blocks.", "pooler.")) for k in missing)
    ids, types = torch.randint(0, 50, (2, 7)), torch.randint(0, 3, (2, 7))
    with torch.no_grad(): assert torch.equal(vilt.text_embed.embed(ids, types), bert.embed(ids, types))

def test_itm_head():
    name, x = "A_32x48_mask_pad", make_inputs("A_32x48_mask_pad")
    hf = build(ViltForImageAndTextRetrieval, name)
    itm = ViLTForImageTextMatching.from_hf(hf).eval()
    kw = {k: v for k, v in x.items() if k != "input_ids"}
    with torch.no_grad(), hf_first_patches(): ref = hf(x["input_ids"], **kw).logits
    with torch.no_grad():
        out = itm(x["input_ids"], **kw).logits
        ret = itm.to_retrieval().eval()
        again = ret(x["input_ids"], **kw).logits
    assert isinstance(ret, ViLTForImageAndTextRetrieval)
    assert out.shape == (2, 2) and out[:, 0].abs().max() == 0
    assert max_abs_diff(out[:, 1:], ref) <= ATOL and max_abs_diff(again, ref) <= ATOL
    itm.train()
    loss = itm(x["input_ids"], labels=torch.tensor([1, 0]), **kw).loss
    loss.backward()
    assert torch.isfinite(loss) and itm.itm_head.weight.grad is not None

def test_deterministic_order_ignores_rng():
    ours = ViLT.from_hf(build(ViltModel, "A_32x48_mask_pad")).eval()
    x = make_inputs("A_32x48_mask_pad")
    outs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        outs.append(ours(**{k: v for k, v in x.items()}).last_hidden_state)
    assert torch.equal(*outs)

def test_select_patches():
    valid = torch.tensor([[1, 1, 0, 1], [0, 1, 0, 0]], dtype=torch.bool)
    assert select_patches(valid).tolist() == [[0, 1, 3], [1, 0, 2]]    # valid in order, then the first padding
    torch.manual_seed(0)
    idx = select_patches(valid, 2)
    assert idx.shape == (2, 2) and valid[0, idx[0]].all() and idx[1, 0] == 1 and not valid[1, idx[1, 1]]

def test_outputs_split_and_mask():
    x = make_inputs("A_32x48_mask_pad")
    ours = ViLT.from_hf(build(ViltModel, "A_32x48_mask_pad")).eval()
    out = ours(**x)
    T = x["input_ids"].shape[1]
    assert out.text_features.shape == (2, T, 32) and out.image_features.shape == (2, 1 + 24, 32)
    assert out.image_mask.sum(1).tolist() == [25, 16]                  # [class] + 24 and + 3x5 valid patches
    assert torch.equal(out.last_hidden_state, torch.cat([out.text_features, out.image_features], 1))
    assert out.patch_index[1, 14].tolist() == [2, 4] and out.patch_index[1, 15].tolist() == [0, 5]

# --------------------------------------------------------------------------------------------------------- errors
@pytest.fixture(scope="module")
def model():
    return ViLT(ViLTConfig(vocab_size=50, max_text_len=12, dim=32, depth=1, heads=4, patch_size=8,
                           image_size=32)).eval()

def good(**changes):
    g = torch.Generator().manual_seed(0)
    x = dict(input_ids=torch.randint(0, 50, (2, 6), generator=g), attention_mask=torch.ones(2, 6, dtype=torch.long),
             pixel_values=torch.randn(2, 3, 32, 48, generator=g), pixel_mask=torch.ones(2, 32, 48, dtype=torch.long))
    return {**x, **changes}

def test_good_inputs_run(model):
    assert model(**good()).pooler_output.shape == (2, 32)

@pytest.mark.parametrize("changes, match", [
    (dict(pixel_values=torch.randn(3, 3, 32, 48)), r"mismatched batch sizes.*'input_ids': 2.*'pixel_values': 3"),
    (dict(input_ids=torch.rand(2, 6)), r"input_ids: expected integer token ids, got dtype torch.float32"),
    (dict(pixel_values=torch.randn(2, 1, 32, 48)), r"pixel_values: dimension 1 expected size 3"),
    (dict(input_ids=torch.zeros(2, 13, dtype=torch.long), attention_mask=None),
     r"input_ids: expected at most max_text_len=12 tokens"),
    (dict(input_ids=torch.full((2, 6), 50)), r"input_ids: expected ids in \[0, 50\)"),
    (dict(attention_mask=torch.ones(2, 5, dtype=torch.long)), r"attention_mask: dimension 1"),
    (dict(pixel_values=torch.randn(2, 3, 30, 48), pixel_mask=None), r"pixel_values: expected height and width divis"),
    (dict(pixel_values=torch.randn(2, 3, 32, 48).double()), r"pixel_values: expected dtype torch.float32"),
    (dict(pixel_mask=torch.ones(2, 32, 40)), r"pixel_mask: dimension 2 expected size 48"),
    (dict(pixel_mask=torch.full((2, 32, 48), 2)), r"pixel_mask: expected 0/1"),
    (dict(pixel_mask=torch.ones(2, 32, 48).index_fill_(2, torch.tensor([0]), 0)),
     r"pixel_mask: images \[0, 1\] have no"),
    (dict(pixel_mask=torch.ones(2, 32, 48).index_fill_(1, torch.tensor([8]), 0)), r"pixel_mask: .*top-left rectangle"),
    (dict(token_type_ids=torch.full((2, 6), 2)), r"token_type_ids: expected ids in \[0, 2\)"),
    (dict(image_token_type_idx=2), r"image_token_type_idx: expected an int >= 1 and <= 1"),
])
def test_input_errors(model, changes, match):
    with pytest.raises((ValueError, TypeError), match=match): model(**good(**changes))

@pytest.mark.parametrize("kw, match", [
    (dict(dim=30, heads=4), r"ViLTConfig.dim: expected a multiple of heads=4"),
    (dict(image_size=30, patch_size=8), r"ViLTConfig.image_size: expected a multiple of patch_size=8"),
    (dict(max_image_length=0), r"ViLTConfig.max_image_length"),
    (dict(modality_types=1), r"ViLTConfig.modality_types"),
    (dict(act="swish"), r"ViLTConfig.act"),
    (dict(pad_id=512), r"ViLTConfig.pad_id"),
])
def test_config_errors(kw, match):
    with pytest.raises((ValueError, TypeError), match=match): ViLTConfig(**kw)

def test_max_image_side():
    m = ViLT(ViLTConfig(dim=16, depth=1, heads=2, max_image_side=40))
    with pytest.raises(ValueError, match=r"pixel_values: expected sides of at most max_image_side=40, got 32x48"):
        m(**{k: v for k, v in good().items() if k != "pixel_mask"})

def test_conversion_errors():
    hf = ViltModel(hf_config("C_48x64_no_masks"))
    with pytest.raises(TypeError, match="from_hf: expected a transformers ViltForQuestionAnswering, got ViltModel"):
        ViLTForQuestionAnswering.from_hf(hf)
    with pytest.raises(ValueError, match="add_pooling_layer=False"):
        ViLT.from_hf(ViltModel(hf_config("C_48x64_no_masks"), add_pooling_layer=False))
    with pytest.raises(ValueError, match=r"image_size: expected one side .* got \(32, 48\)"):
        vilt_config_from_hf(hf_config("C_48x64_no_masks", image_size=(32, 48)))
    with pytest.raises(ValueError, match="ViLTConfig.num_answers: expected >= 1"):
        ViLTForQuestionAnswering(ViLTConfig())

def test_label_errors():
    x = good()
    qa = ViLTForQuestionAnswering(ViLTConfig(vocab_size=50, max_text_len=12, dim=16, depth=1, heads=2,
                                             num_answers=5))
    with pytest.raises(ValueError, match=r"labels: dimension 1 expected size 5"): qa(**x, labels=torch.rand(2, 4))
    itm = ViLTForImageTextMatching(ViLTConfig(vocab_size=50, max_text_len=12, dim=16, depth=1, heads=2))
    with pytest.raises(ValueError, match=r"labels: expected 0 \(mismatched pair\) or 1"):
        itm(**x, labels=torch.tensor([0, 2]))
