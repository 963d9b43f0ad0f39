"""vlnotes.evaluate: accuracy, zero-shot classification, linear probes, few-shot sampling, recall@k.

The zero-shot tools are tested on a small dual encoder defined here (not CLIP): they must work with any model that
offers `encode_image`, `encode_text` and `context_length`."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vlnotes.evaluate import (ZeroShotClassifier, accuracy, encode_texts, few_shot_indices, fit_linear_probe,
                              linear_probe, recall_at_k, zero_shot_classifier, zero_shot_predict)
from vlnotes.text import fix_articles, world_tokenizer


class TinyDualEncoder(nn.Module):
    "Mean-pooled token embeddings and a linear map of the mean colour, with dropout (so eval mode matters)."
    def __init__(self, vocab_size: int, dim: int = 8, context_length: int = 20):
        super().__init__()
        self.context_length = context_length
        self.tok, self.img, self.drop = nn.Embedding(vocab_size, dim), nn.Linear(3, dim), nn.Dropout(0.5)
        self.calls = []
    def encode_image(self, images, normalize=False):
        self.calls.append(("image", self.training))
        z = self.drop(self.img(images.mean((2, 3))))
        return F.normalize(z, dim=-1) if normalize else z
    def encode_text(self, input_ids, attention_mask, normalize=False):
        self.calls.append(("text", self.training))
        m = attention_mask[..., None].float()
        z = self.drop((self.tok(input_ids) * m).sum(1) / m.sum(1))
        return F.normalize(z, dim=-1) if normalize else z


@pytest.fixture(scope="module")
def tok():
    return world_tokenizer(corpus_size=2_000)


@pytest.fixture()
def model(tok):
    torch.manual_seed(0)
    return TinyDualEncoder(tok.vocab_size).train()      # in training mode: the tools must switch to eval and back


# ---- accuracy -----------------------------------------------------------------------------------------
def test_accuracy_from_scores_and_predictions():
    scores = torch.tensor([[0.1, 2.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 5.0, 0.0]])
    assert accuracy(scores, torch.tensor([1, 0, 2, 2])) == 0.75
    assert accuracy(torch.tensor([1, 0, 2, 1]), [1, 0, 2, 2]) == 0.75
    assert accuracy([0, 1, 1], [0, 1, 1]) == 1.0
    assert accuracy(scores.double().numpy(), [1, 0, 2, 1]) == 1.0


@pytest.mark.parametrize("x,y,words", [
    (torch.zeros(4, 3), [0, 1, 2], "same batch size, got 4 and 3"),
    (torch.zeros(2, 3), [0, 3], "labels: expected indices < C=3"),
    (torch.tensor([0.0, 1.0]), [0, 1], "(B,) integer predictions"),
    (torch.zeros(2, 3, 4), [0, 1], "(B, C) scores"),
    ([0, 1], [0.0, 1.0], "labels: expected a 1-d tensor of integer class indices"),
    ([0, 1], [[0, 1]], "labels: expected a 1-d tensor"),
    ([0, 1], [0, -100], "labels: expected class indices >= 0, got -100"),
    (torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), "empty batch"),
    (torch.tensor([[float("nan"), 0.0]]), [0], "logits_or_preds"),
])
def test_accuracy_bad_input(x, y, words):
    with pytest.raises(ValueError) as e: accuracy(x, y)
    assert words in str(e.value), str(e.value)


# ---- zero-shot ----------------------------------------------------------------------------------------
def test_zero_shot_ensembling_is_renormalised_mean(model, tok):
    temps = ["a {}.", "a photo of a {}."]
    head = zero_shot_classifier(model, tok, ["circle", "orange square"], temps)
    e = encode_texts(model, tok, ["a circle.", "a photo of a circle."])
    assert torch.allclose(head.weight[0], F.normalize(e.mean(0), dim=0), atol=1e-6)
    e = encode_texts(model, tok, [fix_articles(t.format("orange square")) for t in temps])   # "an orange square."
    assert torch.allclose(head.weight[1], F.normalize(e.mean(0), dim=0), atol=1e-6)
    assert torch.allclose(head.weight.norm(dim=1), torch.ones(2), atol=1e-6)
    assert model.training and all(not training for _, training in model.calls)   # ran in eval mode, mode restored


def test_zero_shot_predict_is_argmax_of_scaled_cosine(model, tok):
    names = ["circle", "square", "triangle"]
    head = zero_shot_classifier(model, tok, names, ["a {}."])
    assert head.scale == 100.0                                  # the model has no scale(): CLIP's ceiling
    imgs = torch.rand(7, 3, 8, 8)
    pred, logits = zero_shot_predict(model, imgs, head, batch_size=3, return_logits=True)
    model.eval()
    emb = model.encode_image(imgs, normalize=True)
    assert torch.allclose(logits, 100.0 * emb @ head.weight.t(), atol=1e-4)
    assert torch.equal(pred, logits.argmax(1))
    sub = zero_shot_predict(model, imgs, head, class_names=["triangle", "circle"], return_logits=True)[1]
    assert torch.allclose(sub, logits[:, [2, 0]], atol=1e-4)
    unscaled = zero_shot_classifier(model, tok, names, ["a {}."], scale=1.0)
    assert torch.equal(zero_shot_predict(model, imgs, unscaled), pred)      # the argmax does not depend on the scale


def test_zero_shot_takes_the_models_scale(model, tok):
    model.scale = lambda: torch.tensor(42.0)
    assert zero_shot_classifier(model, tok, ["circle"]).scale == 42.0
    assert zero_shot_classifier(model, tok, ["circle"], scale=3.0).scale == 3.0


@pytest.mark.parametrize("case", ["unknown class", "empty templates", "template without placeholder",
                                  "empty class list", "prompt too long", "string instead of list", "duplicate class",
                                  "no images", "not a dual encoder", "images not a tensor"])
def test_zero_shot_bad_input(model, tok, case):
    head = zero_shot_classifier(model, tok, ["circle", "square"], ["a {}."])
    imgs = torch.rand(2, 3, 8, 8)
    call, err, words = {
        "unknown class": (lambda: zero_shot_predict(model, imgs, head, class_names=["circle", "blob"]), ValueError,
                          ("blob", "circle")),
        "empty templates": (lambda: zero_shot_classifier(model, tok, ["circle"], []), ValueError,
                            ("templates", "empty")),
        "template without placeholder": (lambda: zero_shot_classifier(model, tok, ["circle"], ["a photo"]), ValueError,
                                         ("{}", "a photo")),
        "empty class list": (lambda: zero_shot_classifier(model, tok, [], ["a {}."]), ValueError,
                             ("class_names", "empty")),
        "prompt too long": (lambda: zero_shot_classifier(model, tok, ["circle " * 30], ["a {}."]), ValueError,
                            ("max_length=20",)),
        "string instead of list": (lambda: zero_shot_classifier(model, tok, "circle", ["a {}."]), TypeError,
                                   ("class_names", "str")),
        "duplicate class": (lambda: zero_shot_classifier(model, tok, ["circle", "circle"], ["a {}."]), ValueError,
                            ("distinct entries", "'circle'")),
        "no images": (lambda: zero_shot_predict(model, imgs[:0], head), ValueError, ("images", "non-empty")),
        "not a dual encoder": (lambda: zero_shot_classifier(nn.Linear(2, 2), tok, ["circle"]), TypeError,
                               ("encode_text", "context_length", "Linear")),
        "images not a tensor": (lambda: zero_shot_predict(model, [imgs], head), TypeError, ("images", "tensor")),
    }[case]
    with pytest.raises(err) as e: call()
    assert all(w.lower() in str(e.value).lower() for w in words), str(e.value)


def test_zero_shot_classifier_module():
    w = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    head = ZeroShotClassifier(w, ["a", "b", "c"], scale=10.0)
    assert torch.allclose(head(torch.tensor([[2.0, 0.0]])), torch.tensor([[10.0, 0.0, 10 / 2 ** 0.5]]))
    assert head.indices(["c", "a"]) == [2, 0] and torch.allclose(head.subset(["c", "a"]).weight, head.weight[[2, 0]])
    with pytest.raises(ValueError, match="weight"): ZeroShotClassifier(w, ["a", "b"])
    with pytest.raises(ValueError, match="image_embeds"): head(torch.zeros(1, 3))


# ---- linear probe and few-shot ------------------------------------------------------------------------
def gaussians(seed=0, n=30, scale=4.0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, 8, generator=g) * scale
    x = torch.cat([c + torch.randn(n, 8, generator=g) for c in centres]) + offset
    return x, torch.arange(3).repeat_interleave(n)


def test_linear_probe_and_few_shot():
    x, y = gaussians()
    idx = few_shot_indices(y, 5, seed=0)
    assert torch.equal(torch.bincount(y[idx]), torch.tensor([5, 5, 5]))
    assert torch.equal(idx, few_shot_indices(y, 5, seed=0)) and not torch.equal(idx, few_shot_indices(y, 5, seed=1))
    assert accuracy(linear_probe(x[idx], y[idx], x), y) > 0.9
    only2 = few_shot_indices(y, 2, classes=[2])
    assert len(only2) == 2 and (y[only2] == 2).all()
    with pytest.raises(ValueError, match="at least k=31"): few_shot_indices(y, 31)
    with pytest.raises(ValueError, match="k: expected an int >= 1, got 0"): few_shot_indices(y, 0)


def test_linear_probe_standardisation_is_folded_in():
    x, y = gaussians(offset=100.0)
    head = fit_linear_probe(x * 50, y)                       # raw features of a large scale and offset
    assert not head.weight.requires_grad and accuracy(head(x * 50), y) > 0.95
    small, big = [fit_linear_probe(x, y, l2=l, standardize=False).weight.norm() for l in (1e-4, 1.0)]
    assert big < small


@pytest.mark.parametrize("kw,words", [
    (dict(labels=torch.tensor([0, 1])), "labels"),
    (dict(num_classes=2), "labels: expected indices < num_classes=2"),
    (dict(l2=-1.0), "l2: expected a finite number >= 0"),
    (dict(feats=torch.full((90, 8), float("nan"))), "feats"),
])
def test_fit_linear_probe_bad_input(kw, words):
    x, y = gaussians()
    args = dict(feats=x, labels=y) | kw
    with pytest.raises(ValueError, match=words):
        fit_linear_probe(args.pop("feats"), args.pop("labels"), **args)


# ---- recall@k -----------------------------------------------------------------------------------------
def test_recall_at_k_hand_case_and_ties():
    sim = torch.tensor([[0.9, 0.1, 0.8, 0.2], [0.3, 0.4, 0.5, 0.6]])
    assert recall_at_k(sim, 1, [0, 0, 1, 1]) == {"image_to_text": 1.0, "text_to_image": 0.5}
    assert recall_at_k(sim, 2, [0, 0, 1, 1]) == {"image_to_text": 1.0, "text_to_image": 1.0}
    assert recall_at_k(torch.eye(3), 1) == {"image_to_text": 1.0, "text_to_image": 1.0}
    assert recall_at_k(torch.zeros(3, 3), 1) == {"image_to_text": 0.0, "text_to_image": 0.0}     # ties count against
    assert recall_at_k(torch.zeros(3, 3), 3) == {"image_to_text": 1.0, "text_to_image": 1.0}


@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_recall_at_k_matches_sorting(k):
    torch.manual_seed(k)
    pos = torch.arange(12).repeat_interleave(5)[torch.randperm(60)]     # 5 captions per image, shuffled
    sim = torch.randn(12, 60) + 1.5 * F.one_hot(pos, 12).t()
    top_t = sim.argsort(1, descending=True)[:, :k]
    i2t = sum(bool((pos[top_t[i]] == i).any()) for i in range(12)) / 12
    t2i = (sim.argsort(0, descending=True)[:k] == pos[None]).any(0).double().mean().item()
    r = recall_at_k(sim, k, pos)
    assert r["image_to_text"] == pytest.approx(i2t) and r["text_to_image"] == pytest.approx(t2i)


@pytest.mark.parametrize("args,words", [
    ((torch.zeros(2, 3), 1), "positives: needed when N_img != N_txt"),
    ((torch.zeros(2, 3), 0, [0, 1, 1]), "k: expected an int >= 1 and <= 2, got 0"),
    ((torch.zeros(2, 3), 1, [0, 1]), "one image index per caption (3), got 2"),
    ((torch.zeros(2, 3), 1, [0, 0, 0]), "images [1] have none"),
    ((torch.zeros(2, 3), 1, [0, 1, 2]), "image indices < N_img=2, got 2"),
    ((torch.zeros(2, 3), 1, [0, 1, -1]), "positives: expected class indices >= 0"),
    ((torch.zeros(3), 1), "similarity"),
    ((torch.zeros(2, 2, dtype=torch.long), 1), "similarity"),
    ((torch.tensor([[0.0, float("nan")], [0.0, 0.0]]), 1), "similarity"),
])
def test_recall_at_k_bad_input(args, words):
    with pytest.raises(ValueError) as e: recall_at_k(*args)
    assert words in str(e.value), str(e.value)
