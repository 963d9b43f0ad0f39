"CoOp / CoCoOp (Zhou et al. 2022): the common model tests, the prompt-learner invariants, frozen CLIP, errors."
import pytest
import torch
from torch import nn

from model_testing import BadInput, ModelTesterMixin
from vlnotes.evaluate import zero_shot_classifier
from vlnotes.papers.clip import CLIP, CLIPConfig, CLIPResNetConfig, CLIPTextConfig
from vlnotes.papers.coop import CoOp, CoOpConfig
from vlnotes.prompts import PromptLearnerConfig, layout_prompts
from vlnotes.text import world_tokenizer

TOK = world_tokenizer()
NAMES = ["red circle", "blue star", "green heart", "pink cross", "cyan diamond"]
CLIP_CFG = CLIPConfig(vision=CLIPResNetConfig(image_size=16, depth=8, width=2, heads=1),
                      text=CLIPTextConfig(dim=8, depth=1, heads=2), embed_dim=8)


def build(conditional=False, **prompt):
    return CoOp(CoOpConfig(clip=CLIP_CFG, prompt=PromptLearnerConfig(**prompt), conditional=conditional), TOK, NAMES)


class _CoOpTester(ModelTesterMixin):
    image_size = 16
    conditional = False
    prompt = {}
    def build_model(self): return build(self.conditional, **self.prompt)
    def make_variant_model(self): return build(self.conditional, **{**self.prompt, "n_ctx": 6})
    def build_inputs(self, batch_size): return {"images": torch.rand(batch_size, 3, 16, 16)}
    def outputs(self, model, **inputs):
        out = model(**inputs)   # CoOp's class embeddings do not depend on the batch: compared per example for CoCoOp only
        return {"logits": out.logits, "image_embeds": out.image_embeds,
                **({"text_embeds": out.text_embeds} if self.conditional else {})}
    def expected_output_shapes(self, batch_size):
        text = {"text_embeds": (batch_size, 5, 8)} if self.conditional else {}
        return {"logits": (batch_size, 5), "image_embeds": (batch_size, 8), **text}
    def bad_inputs(self):
        return self.image_bad_inputs("images") + [
            BadInput("image_embeds of the wrong width", {"image_embeds": torch.randn(2, 7)}, ValueError,
                     ("image_embeds",)),
            BadInput("images and image_embeds", {"images": torch.rand(2, 3, 16, 16),
                                                 "image_embeds": torch.randn(2, 8)}, ValueError, ("both",))]


class TestCoOp(_CoOpTester):
    pass


class TestCoOpClassSpecificMiddle(_CoOpTester):
    prompt = {"n_ctx": 3, "class_specific": True, "position": "middle"}


class TestCoCoOp(_CoOpTester):
    conditional = True


@pytest.mark.parametrize("conditional", [False, True])
def test_hand_prompt_start_equals_zero_shot(conditional):
    "Context = the embedded words 'a photo of a' (and a zero meta-net): the zero-shot classifier of that prompt."
    torch.manual_seed(0)
    m = build(conditional, n_ctx=4, init_words="a photo of a").eval()
    if conditional: nn.init.zeros_(m.meta_net.linear2.weight); nn.init.zeros_(m.meta_net.linear2.bias)
    head = zero_shot_classifier(m.clip, TOK, NAMES, ["a photo of a {}."])
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        out = m(x)
        ref = m.clip.scale() * m.clip.encode_image(x, normalize=True) @ head.weight.t()
    torch.testing.assert_close(out.logits, ref, atol=1e-5, rtol=1e-5)


def test_meta_net_shifts_every_context_token_by_the_same_vector():
    m = build(True, n_ctx=4).eval()
    pl = m.prompt_learner
    tokens = m.clip.text.token_embedding(pl.input_ids)
    shift = torch.randn(3, 8)
    with torch.no_grad():
        shifted, plain = pl(tokens, shift), pl(tokens)
    slots = pl.slot >= 0
    for b in range(3):
        torch.testing.assert_close(shifted[b][slots] - plain[slots], shift[b].expand(int(slots.sum()), 8))
        torch.testing.assert_close(shifted[b][~slots], plain[~slots])


@pytest.mark.parametrize("conditional", [False, True])
def test_training_leaves_clip_unchanged(conditional):
    torch.manual_seed(0)
    m = build(conditional)
    before = {k: v.clone() for k, v in m.clip.state_dict().items()}
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=1.0)
    ctx = m.prompt_learner.ctx.detach().clone()
    for _ in range(3):
        loss = nn.functional.cross_entropy(m.train()(torch.rand(4, 3, 16, 16)).logits, torch.tensor([0, 1, 2, 3]))
        opt.zero_grad(); loss.backward(); opt.step()
    assert all(torch.equal(v, m.clip.state_dict()[k]) for k, v in before.items())
    assert not m.clip.training and not any(p.requires_grad for p in m.clip.parameters())
    assert not torch.equal(ctx, m.prompt_learner.ctx)


def test_with_classes_shares_the_context():
    m = build(True)
    new = m.with_classes(["yellow hexagon", "purple square"])
    assert new.prompt_learner.ctx is m.prompt_learner.ctx and new.meta_net is m.meta_net and new.clip is m.clip
    assert new(torch.rand(2, 3, 16, 16)).logits.shape == (2, 2)
    with pytest.raises(ValueError, match="class-specific"):
        build(class_specific=True).with_classes(["yellow hexagon"])


@pytest.mark.parametrize("position,expected", [("end", [-1, 0, 1, -1, -1, -1, -1]), ("front", [-1, -1, -1, 0, 1, -1, -1, -1]),
                                               ("middle", [-1, 0, -1, -1, 1, -1, -1, -1])])
def test_layout_positions(position, expected):
    got = layout_prompts(TOK, ["red circle"], 2, position)["slot"][0].tolist()
    assert got == expected


@pytest.mark.parametrize("kwargs,match", [
    (dict(class_names=[]), "class_names"), (dict(class_names=["a", "a"]), "distinct"),
    (dict(n_ctx=0), "n_ctx"), (dict(position="back"), "position"),
])
def test_bad_arguments(kwargs, match):
    args = dict(class_names=["red circle"], n_ctx=2, position="end") | kwargs
    with pytest.raises(ValueError, match=match):
        layout_prompts(TOK, **args)


def test_bad_configs():
    with pytest.raises(ValueError, match="conditional=True"):
        CoOpConfig(clip=CLIP_CFG, prompt=PromptLearnerConfig(class_specific=True), conditional=True)
    with pytest.raises(TypeError, match="CoOpConfig.clip"):
        CoOpConfig(clip={"embed_dim": 8})
    with pytest.raises(ValueError, match="expected a CLIP built from config.clip"):
        CoOp(CoOpConfig(clip=CLIP_CFG), TOK, NAMES, clip=CLIP(CLIPConfig()))
