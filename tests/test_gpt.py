"""The decoder-only language model `vlnotes.gpt`: the common model tests, parity with transformers' GPT2LMHeadModel
(random tiny models, padded batches, with and without a prefix of embeddings), the prefix and causality invariants,
decoding, and input validation."""
import pytest
import torch
import torch.nn.functional as F

from model_testing import BadInput, ModelTesterMixin
from vlnotes.convert import max_abs_diff
from vlnotes.gpt import GPT, GPTConfig, gpt_config_from_hf

transformers = pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

ATOL = 1e-4
V, D, T = 30, 16, 12
SMALL = dict(vocab_size=V, context_length=T, dim=D, depth=2, heads=2)


def token_batch(batch_size: int, length: int = 6):
    "Right-padded ids starting with <bos>=2, one row shorter than the others."
    ids = torch.randint(4, V, (batch_size, length)); ids[:, 0] = 2
    mask = torch.ones(batch_size, length, dtype=torch.long)
    if batch_size > 1: mask[1, length - 2:] = 0
    return ids * mask, mask


class _GPTTester(ModelTesterMixin):
    with_prefix = False
    def build_model(self): return GPT(GPTConfig(**SMALL))
    def make_variant_model(self): return GPT(GPTConfig(**{**SMALL, "dim": 24}))
    def build_inputs(self, batch_size):
        ids, mask = token_batch(batch_size)
        out = {"input_ids": ids, "attention_mask": mask}
        if self.with_prefix: out["prefix_embeds"] = torch.randn(batch_size, 3, D)
        return out
    def outputs(self, model, **inputs): return {"logits": model(**inputs).logits}
    def expected_output_shapes(self, batch_size): return {"logits": (batch_size, 6, V)}
    def bad_inputs(self):
        ids, mask = token_batch(2)
        extra = {"prefix_embeds": torch.randn(2, 3, D)} if self.with_prefix else {}
        return [
            BadInput("float ids", {"input_ids": ids.float(), "attention_mask": mask, **extra}, ValueError,
                     ("input_ids", "integer")),
            BadInput("id out of vocabulary", {"input_ids": ids + V, **extra}, ValueError, ("input_ids", str(V))),
            BadInput("too long", {"input_ids": torch.full((2, T + 1), 5)}, ValueError,
                     ("input_ids", f"context_length={T}")),
            BadInput("left padding", {"input_ids": ids, "attention_mask": mask.flip(1), **extra}, ValueError,
                     ("attention_mask", "right padding")),
            BadInput("a text with no real token", {"input_ids": ids, "attention_mask": mask * 0, **extra},
                     ValueError, ("input_ids", "no real token")),
            BadInput("prefix of the wrong width", {"input_ids": ids, "prefix_embeds": torch.randn(2, 3, D + 1)},
                     ValueError, ("prefix_embeds", str(D + 1))),
            BadInput("prefix of another batch", {"input_ids": ids, "prefix_embeds": torch.randn(3, 3, D)},
                     ValueError, ("prefix_embeds", "input_ids")),
            BadInput("prefix + tokens too long", {"input_ids": ids, "prefix_embeds": torch.randn(2, T - 5, D)},
                     ValueError, ("prefix_embeds", f"context_length={T}")),
            BadInput("NaN prefix", {"input_ids": ids, "prefix_embeds": torch.full((2, 3, D), float("nan"))},
                     ValueError, ("prefix_embeds", "finite")),
        ]


class TestGPT(_GPTTester):
    pass


class TestGPTWithPrefix(_GPTTester):
    with_prefix = True


# ---- parity ---------------------------------------------------------------------------------------------------------
CONFIGS = {
    "two_layers": dict(vocab_size=40, n_positions=16, n_embd=32, n_layer=2, n_head=4),
    "n_inner_eps": dict(vocab_size=30, n_positions=20, n_embd=24, n_layer=3, n_head=3, n_inner=40,
                        layer_norm_epsilon=1e-6),
    "exact_gelu": dict(vocab_size=50, n_positions=12, n_embd=48, n_layer=1, n_head=2, activation_function="gelu"),
}


def randomise(model, seed: int = 0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters(): p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def hf_model(name: str, seed: int = 0):
    return randomise(GPT2LMHeadModel(GPT2Config(**CONFIGS[name], bos_token_id=1, eos_token_id=2)), seed)


def padded(name: str, seed: int = 0):
    c, g = CONFIGS[name], torch.Generator().manual_seed(seed)
    ids = torch.randint(0, c["vocab_size"], (3, 8), generator=g)
    mask = torch.ones(3, 8, dtype=torch.long); mask[1, 5:] = 0; mask[2, 2:] = 0
    return ids, mask


@pytest.mark.parametrize("name", CONFIGS)
def test_logits_match_transformers(name):
    hf = hf_model(name)
    ours = GPT.from_hf(hf)
    ids, mask = padded(name)
    labels = ids.masked_fill(mask == 0, -100)
    with torch.no_grad():
        r, o = hf(input_ids=ids, attention_mask=mask, labels=labels), ours(ids, mask, return_loss=True)
    real = mask.bool()
    assert max_abs_diff(o.logits[real], r.logits[real]) < ATOL
    assert abs(o.loss.item() - r.loss.item()) < ATOL          # the same next-token loss over real tokens


@pytest.mark.parametrize("name", CONFIGS)
def test_prefix_matches_transformers_inputs_embeds(name):
    hf = hf_model(name, seed=1)
    ours = GPT.from_hf(hf)
    ids, mask = padded(name, seed=1)
    prefix = torch.randn(3, 4, CONFIGS[name]["n_embd"])
    with torch.no_grad():
        emb = torch.cat([prefix, hf.transformer.wte(ids)], 1)
        r = hf(inputs_embeds=emb, attention_mask=torch.cat([torch.ones(3, 4, dtype=torch.long), mask], 1)).logits
        o = ours(ids, mask, prefix_embeds=prefix).logits
    assert max_abs_diff(o[mask.bool()], r[:, 4:][mask.bool()]) < ATOL


def test_greedy_decoding_matches_transformers():
    hf = hf_model("two_layers", seed=2)
    ours = GPT.from_hf(hf)
    start = torch.full((2, 1), 1)
    ref = hf.generate(start, attention_mask=torch.ones_like(start), max_new_tokens=7, do_sample=False,
                      eos_token_id=2, pad_token_id=0)
    ours.config.bos_id, ours.config.eos_id, ours.config.pad_id = 1, 2, 0
    out = ours.generate(batch_size=2, max_length=8)["input_ids"]
    n = min(out.shape[1], ref.shape[1])
    assert torch.equal(out[:, :n], ref[:, :n])


def test_negative_control_detects_a_transposed_weight():
    "The parity check can fail: an MLP weight copied without GPT-2's Conv1D transpose gives a large difference."
    hf = hf_model("two_layers")
    ours = GPT.from_hf(hf)
    with torch.no_grad():
        w = ours.transformer.blocks[0].attn.out_proj.weight
        w.copy_(w.t().clone())
    ids, mask = padded("two_layers")
    with torch.no_grad():
        diff = max_abs_diff(ours(ids, mask).logits[mask.bool()], hf(input_ids=ids, attention_mask=mask).logits[mask.bool()])
    assert diff > 100 * ATOL


def test_head_is_tied_and_state_has_no_copy():
    ours = GPT.from_hf(hf_model("two_layers"))
    assert "lm_head.weight" not in ours.state_dict()
    with torch.no_grad(): ours.token_embedding.weight[5] += 1.0        # the head changes with the embeddings
    ids = torch.tensor([[1, 5, 6]])
    with torch.no_grad(): before = ours(ids).logits
    with torch.no_grad(): ours.token_embedding.weight[7] += 1.0
    with torch.no_grad(): after = ours(ids).logits
    assert (after[..., 7] - before[..., 7]).abs().max() > 1e-3 and torch.allclose(after[..., 8], before[..., 8])


def test_config_from_hf_reads_every_field():
    c = gpt_config_from_hf(GPT2Config(**CONFIGS["n_inner_eps"], bos_token_id=1, eos_token_id=50256))
    assert (c.vocab_size, c.context_length, c.dim, c.depth, c.heads, c.mlp_dim, c.act, c.eps, c.bos_id, c.eos_id) == \
           (30, 20, 24, 3, 3, 40, "gelu_tanh", 1e-6, 1, None)


def test_from_hf_rejects_other_models_and_configs():
    with pytest.raises(TypeError, match="expected a transformers GPT2LMHeadModel"):
        GPT.from_hf(transformers.GPT2Model(GPT2Config(**CONFIGS["exact_gelu"])))
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx"):
        gpt_config_from_hf(GPT2Config(**CONFIGS["exact_gelu"], scale_attn_by_inverse_layer_idx=True))


# ---- invariants -------------------------------------------------------------------------------------------------------
def test_causal_and_prefix_invariants():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(**SMALL)).eval()
    ids, _ = token_batch(2, 7)
    with torch.no_grad():
        whole = gpt(ids).logits
        later = ids.clone(); later[:, 5] = 9
        assert torch.allclose(gpt(later).logits[:, :5], whole[:, :5], atol=1e-6)
        # the prefix is embedding positions: the first three tokens' embeddings as a prefix = the tokens as ids
        split = gpt(ids[:, 3:], prefix_embeds=gpt.token_embedding(ids[:, :3])).logits
        assert torch.allclose(split, whole[:, 3:], atol=1e-5)


def test_loss_is_next_token_cross_entropy_over_real_tokens():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(**SMALL)).eval()
    ids, mask = token_batch(3)
    with torch.no_grad(): out = gpt(ids, mask, prefix_embeds=torch.randn(3, 2, D), return_loss=True)
    ce = F.cross_entropy(out.logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="none").view(3, -1)
    w = mask[:, 1:].float()
    assert torch.allclose(out.loss, (ce * w).sum() / w.sum(), atol=1e-6)


def test_generate_errors():
    gpt = GPT(GPTConfig(**SMALL)).eval()
    with pytest.raises(ValueError, match="exactly one of"): gpt.generate()
    with pytest.raises(ValueError, match="max_length"): gpt.generate(torch.randn(1, 4, D), max_length=T)
    with pytest.raises(ValueError, match="eos_id"): GPT(GPTConfig(**SMALL, eos_id=None)).generate(batch_size=1)
    out = gpt.generate(torch.randn(2, 4, D), method="beam", num_beams=2)
    assert out["input_ids"].shape[0] == 2 and out["input_ids"].shape[1] <= T - 4
    # a stop token other than eos_id (ClipCap's code stops at "."): decoding ends where it is first written
    ids = gpt.generate(batch_size=3, max_length=8)["input_ids"]
    stop = int(ids[0, 1])
    cut = gpt.generate(batch_size=3, max_length=8, stop_id=stop)
    assert cut["input_ids"].shape[1] == 2 and torch.equal(cut["input_ids"][0], ids[0, :2])
    with pytest.raises(ValueError, match="stop_id"): gpt.generate(batch_size=1, stop_id=V)
