"""Parity of `vlnotes.bert` with transformers' BERT (random tiny models, eval mode), its layer split, the MLM
corruption, and input validation."""
import re

import pytest
import torch
from transformers import BertConfig as HFBertConfig, BertForMaskedLM as HFBertForMaskedLM, BertModel as HFBertModel

from vlnotes.bert import BertConfig, BertEmbeddings, BertForMaskedLM, BertModel, bert_config_from_hf, mlm_corrupt
from vlnotes.convert import max_abs_diff

ATOL = 1e-4
CONFIGS = {
    "gelu_padded_types": dict(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=48, max_position_embeddings=12, type_vocab_size=3),
    "gelu_new_eps": dict(vocab_size=30, hidden_size=24, num_hidden_layers=3, num_attention_heads=3,
                         intermediate_size=40, max_position_embeddings=9, hidden_act="gelu_new", layer_norm_eps=1e-6,
                         pad_token_id=1),
    "one_layer_wide": dict(vocab_size=50, hidden_size=48, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=96, max_position_embeddings=16, type_vocab_size=1),
}

def randomise(model, seed: int = 0):
    "Noise on every parameter (LayerNorms and biases too), eval mode."
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters(): p.add_(torch.randn_like(p) * 0.1)
    return model.eval()

def inputs(name: str):
    "Ids with right padding in one row, a mask, and segment ids where the config has more than one."
    c, g = CONFIGS[name], torch.Generator().manual_seed(3)
    T = min(8, c["max_position_embeddings"])
    ids = torch.randint(2, c["vocab_size"], (3, T), generator=g)
    mask = torch.ones(3, T, dtype=torch.long); mask[1, T - 3:] = 0; mask[2, T - 1:] = 0
    ids[mask == 0] = c.get("pad_token_id", 0)
    types = torch.randint(0, c.get("type_vocab_size", 2), (3, T), generator=g)
    return ids, mask, types

@pytest.mark.parametrize("name", CONFIGS)
def test_bert_model_parity(name):
    hf = randomise(HFBertModel(HFBertConfig(**CONFIGS[name])))
    ours = BertModel.from_hf(hf)
    ids, mask, types = inputs(name)
    with torch.no_grad():
        r = hf(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
        o = ours(ids, mask, types, output_hidden_states=True)
    real = mask.bool()
    for mine, ref in zip(o.hidden_states, r.hidden_states):
        assert max_abs_diff(mine[real], ref[real]) < ATOL
    assert max_abs_diff(o.pooler_output, r.pooler_output) < ATOL

@pytest.mark.parametrize("name", CONFIGS)
def test_masked_lm_parity(name):
    hf = randomise(HFBertForMaskedLM(HFBertConfig(**CONFIGS[name])), seed=1)
    ours = BertForMaskedLM.from_hf(hf)
    ids, mask, types = inputs(name)
    labels = torch.where(torch.rand(ids.shape) < 0.5, ids, torch.full_like(ids, -100)); labels[0, 0] = ids[0, 0]
    with torch.no_grad():
        r = hf(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels)
        o = ours(ids, mask, types, labels=labels)
    real = mask.bool()
    assert max_abs_diff(o.logits[real], r.logits[real]) < ATOL
    # our loss counts padded positions' labels too, as transformers does
    assert abs(o.loss.item() - r.loss.item()) < ATOL
    # the decoder is tied: changing the word embeddings changes the logits the same way
    assert ours.bert.word_embed.weight.data_ptr() not in {p.data_ptr() for n, p in ours.named_parameters()
                                                          if not n.startswith("bert.")}

@pytest.mark.parametrize("name", ["gelu_padded_types", "gelu_new_eps"])
def test_cross_attention_decoder_parity(name):
    "transformers' BERT with cross-attention is a decoder: causal self-attention, every layer attending to the image."
    hf = randomise(HFBertModel(HFBertConfig(**CONFIGS[name], is_decoder=True, add_cross_attention=True)), seed=2)
    ours = BertModel.from_hf(hf)
    assert ours.config.cross_attention_from == 0
    ids, mask, _ = inputs(name)
    D = CONFIGS[name]["hidden_size"]
    ctx = torch.randn(3, 5, D); ctx_mask = torch.ones(3, 5, dtype=torch.long); ctx_mask[0, 2:] = 0
    with torch.no_grad():
        r = hf(input_ids=ids, attention_mask=mask, encoder_hidden_states=ctx, encoder_attention_mask=ctx_mask)
        o = ours(ids, mask, context=ctx, context_mask=ctx_mask, causal=True)
    assert max_abs_diff(o.last_hidden_state[mask.bool()], r.last_hidden_state[mask.bool()]) < ATOL

def test_negative_control_detects_a_wrong_weight():
    "The parity check can fail: one changed weight gives a difference far above the tolerance."
    hf = randomise(HFBertModel(HFBertConfig(**CONFIGS["gelu_padded_types"])))
    ours = BertModel.from_hf(hf)
    with torch.no_grad(): ours.blocks[1].mlp.fc1.weight[0, 0] += 1.0
    ids, mask, types = inputs("gelu_padded_types")
    with torch.no_grad():
        diff = max_abs_diff(ours(ids, mask, types).last_hidden_state, hf(input_ids=ids, attention_mask=mask,
                                                                           token_type_ids=types).last_hidden_state)
    assert diff > 100 * ATOL

def test_config_from_hf_reads_every_field():
    c = bert_config_from_hf(HFBertConfig(**CONFIGS["gelu_new_eps"]))
    assert (c.vocab_size, c.max_len, c.dim, c.depth, c.heads, c.mlp_dim, c.act, c.eps, c.pad_id) == \
           (30, 9, 24, 3, 3, 40, "gelu_tanh", 1e-6, 1)

def test_from_hf_rejects_other_classes():
    hf = HFBertForMaskedLM(HFBertConfig(**CONFIGS["one_layer_wide"]))
    with pytest.raises(TypeError, match="expected a transformers BertModel"): BertModel.from_hf(hf)
    with pytest.raises(TypeError, match="expected a transformers BertForMaskedLM"):
        BertForMaskedLM.from_hf(HFBertModel(HFBertConfig(**CONFIGS["one_layer_wide"])))

def test_embeddings_keep_the_checkpoint_names():
    "BertModel is a BertEmbeddings (a subclass, not a submodule): its embedding tensors keep their top-level names."
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=30, max_len=10, dim=16, depth=1, heads=2, type_vocab_size=3)).eval()
    names = ["word_embed.weight", "pos_embed.weight", "type_embed.weight", "embed_norm.weight", "embed_norm.bias"]
    assert isinstance(bert, BertEmbeddings) and list(bert.state_dict())[:5] == names
    emb = BertEmbeddings(vocab_size=30, max_len=10, type_vocab_size=3, dim=16, pad_id=0).eval()
    emb.load_state_dict({k: v for k, v in bert.state_dict().items() if k in names})
    ids, types = torch.randint(0, 30, (2, 7)), torch.randint(0, 3, (2, 7))
    with torch.no_grad(): assert torch.equal(emb.embed(ids, types), bert.embed(ids, types))
    assert list(BertModel(BertConfig(type_vocab_size=0, depth=1)).state_dict())[:2] == names[:2]
    assert "type_embed.weight" not in BertModel(BertConfig(type_vocab_size=0, depth=1)).state_dict()

def test_text_then_fusion_equals_one_pass():
    "ALBEF's split: layers (0, k) on text, then (k, L) with the image, equals running all layers with the image."
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=30, max_len=10, dim=16, depth=4, heads=2, cross_attention_from=2,
                                context_dim=12)).eval()
    ids, mask = torch.randint(1, 30, (2, 7)), torch.ones(2, 7, dtype=torch.long)
    image = torch.randn(2, 4, 12)
    with torch.no_grad():
        text = bert(ids, mask, layers=(0, 2))
        fused = bert.forward_layers(text.last_hidden_state, mask, 2, 4, context=image)
        assert max_abs_diff(fused.last_hidden_state, bert(ids, mask, context=image).last_hidden_state) < 1e-6

def test_mlm_corrupt_proportions_and_labels():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 100, (400, 40), generator=g)
    chosen = torch.rand(ids.shape, generator=g) < 0.2
    out, labels = mlm_corrupt(ids, chosen, mask_id=3, vocab_size=100, low=6, generator=g)
    assert torch.equal(out[~chosen], ids[~chosen]) and (labels[~chosen] == -100).all()
    assert torch.equal(labels[chosen], ids[chosen])
    masked = (out[chosen] == 3).float().mean().item()
    replaced = ((out[chosen] != 3) & (out[chosen] != ids[chosen])).float().mean().item()
    assert abs(masked - 0.8) < 0.02 and abs(replaced - 0.1 * 89 / 94) < 0.02
    assert out[chosen & (out != 3)].min() >= 6                      # specials are never drawn

@pytest.mark.parametrize("call, message", [
    (lambda m: m(torch.randint(0, 30, (2, 11))), "tokens"),
    (lambda m: m(torch.randint(0, 30, (2, 5)).float()), "input_ids"),
    (lambda m: m(torch.randint(0, 30, (2, 5)), torch.zeros(2, 5, dtype=torch.long)), "attention_mask"),
    (lambda m: m(torch.randint(0, 30, (2, 5)), context=torch.randn(3, 4, 12)), "batch"),
    (lambda m: m(torch.randint(0, 30, (2, 5)), context=torch.randn(2, 4, 16)), "context"),
    (lambda m: m(torch.randint(0, 30, (2, 5)), layers=(0, 1), context=torch.randn(2, 4, 12)), "no cross-attention"),
    (lambda m: m(torch.randint(0, 30, (2, 5)), layers=(2, 1)), "layers[1]"),
    (lambda m: m(torch.randint(0, 30, (2, 5)), context_mask=torch.ones(2, 4)), "context_mask"),
    (lambda m: m(torch.randint(0, 30, (2, 0))), "input_ids"),
])
def test_bad_inputs_are_named(call, message):
    bert = BertModel(BertConfig(vocab_size=30, max_len=10, dim=16, depth=4, heads=2, cross_attention_from=2,
                                context_dim=12))
    with pytest.raises((ValueError, TypeError), match=re.escape(message)): call(bert)
