"The image-conditioned caption decoder: the common model tests, bad input, loss and greedy decoding."
import torch

from model_testing import ModelTesterMixin, BadInput
from vlnotes.captioning import Captioner, CaptionerConfig, caption_loss, generate, sequence_log_likelihood

VOCAB, CTX, D_IMG = 20, 10, 12


def tiny_config(**kw) -> CaptionerConfig:
    return CaptionerConfig(**{**dict(vocab_size=VOCAB, context_length=CTX, dim=16, depth=1, heads=2, context_dim=D_IMG), **kw})


def captions(n: int, L: int = 6, seed: int = 0):
    "bos, random words, eos, right padding (lengths 3..L); and the mask."
    g = torch.Generator().manual_seed(seed)
    ids, mask = torch.zeros(n, L, dtype=torch.long), torch.zeros(n, L, dtype=torch.long)
    for i in range(n):
        n_tok = 3 + i % (L - 2)
        ids[i, 0], ids[i, n_tok - 1] = 2, 3
        ids[i, 1:n_tok - 1] = torch.randint(4, VOCAB, (n_tok - 2,), generator=g)
        mask[i, :n_tok] = 1
    return ids, mask


class TestCaptioner(ModelTesterMixin):
    def build_model(self): return Captioner(tiny_config())
    def build_inputs(self, batch_size):
        ids, mask = captions(batch_size)
        return {"image_features": torch.randn(batch_size, 5, D_IMG), "input_ids": ids, "attention_mask": mask}
    def model_config(self, model): return model.config.to_dict()
    def make_variant_model(self): return Captioner(tiny_config(dim=32))
    def expected_output_shapes(self, batch_size): return {"logits": (batch_size, 6, VOCAB)}

    def bad_inputs(self):
        ids, mask = captions(2)
        feats = torch.randn(2, 5, D_IMG)
        nan = feats.clone(); nan[0, 0, 0] = float("nan")
        return [
            BadInput("features of another width", {"image_features": torch.randn(2, 5, 7), "input_ids": ids},
                     ValueError, ("image_features", str(D_IMG), "7")),
            BadInput("NaN feature", {"image_features": nan, "input_ids": ids}, ValueError, ("image_features", "finite")),
            BadInput("mismatched batch", {"image_features": torch.randn(3, 5, D_IMG), "input_ids": ids}, ValueError,
                     ("image_features", "input_ids", "3", "2")),
            BadInput("over-long caption", {"image_features": feats, "input_ids": torch.full((2, CTX + 1), 4)}, ValueError,
                     ("input_ids", str(CTX), str(CTX + 1))),
            BadInput("id out of vocabulary", {"image_features": feats, "input_ids": torch.tensor([[2, VOCAB, 3]] * 2)},
                     ValueError, ("input_ids", str(VOCAB))),
            BadInput("left padding", {"image_features": feats, "input_ids": ids, "attention_mask": mask.flip(1)},
                     ValueError, ("attention_mask", "right padding")),
            BadInput("float ids", {"image_features": feats, "input_ids": torch.rand(2, 4)}, ValueError, ("input_ids", "float")),
        ]


def test_pooled_vector_is_one_token_and_loss_matches():
    torch.manual_seed(0)
    model = Captioner(tiny_config()).eval()
    ids, mask = captions(3)
    v = torch.randn(3, D_IMG)
    out = model(v, ids, mask, return_loss=True)
    assert torch.allclose(out.logits, model(v[:, None], ids, mask).logits)
    assert torch.allclose(out.loss, caption_loss(out.logits, ids, mask))
    # the mean token loss is minus the summed log-likelihood over the number of predicted tokens
    assert torch.allclose(out.loss, -sequence_log_likelihood(out.logits, ids, mask).sum() / (mask[:, 1:].sum()), atol=1e-6)


def test_generate_is_greedy_and_pads_after_eos():
    torch.manual_seed(0)
    model = Captioner(tiny_config()).eval()
    feats = torch.randn(4, 5, D_IMG)
    gen = generate(model, feats, max_length=7)
    ids, mask = gen["input_ids"], gen["attention_mask"]
    assert ids.shape[1] <= 7 and (ids[:, 0] == 2).all() and mask[:, 0].all()
    logits = model(feats, ids, mask).logits
    for b in range(4):   # every generated real token is the argmax given its prefix
        n = int(mask[b].sum())
        assert torch.equal(ids[b, 1:n], logits[b, :n - 1].argmax(-1))
        assert (ids[b, n:] == 0).all()
        assert n == ids.shape[1] or ids[b, n - 1] == 3   # shorter texts stop at eos
