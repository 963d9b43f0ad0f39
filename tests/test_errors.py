"""Bad inputs get clear errors: the right exception type, and a message naming what was expected and what was received.

One test per case so a regression names the exact input that lost its clear error."""
from pathlib import Path

import pytest
import torch
from badinput import raises

from vlnotes import core
from vlnotes.papers import resnet


# ---- models (ResNet stands for every image model; the mixin repeats these for each model) -------------
@pytest.fixture(scope="module")
def cifar_model():
    torch.manual_seed(0)
    return resnet.resnet_cifar(8, num_classes=3).eval()


@pytest.fixture(scope="module")
def imagenet_model():
    torch.manual_seed(0)
    return resnet.resnet18(num_classes=3).eval()


def test_model_wrong_rank(cifar_model):
    with raises(ValueError, "images", "expected", "4-d", "3-d", "(3, 32, 32)"):
        cifar_model(torch.rand(3, 32, 32))


def test_model_wrong_channels(cifar_model):
    with raises(ValueError, "images", "expected size 3", "(2, 1, 32, 32)"):
        cifar_model(torch.rand(2, 1, 32, 32))


def test_model_image_too_small(imagenet_model):
    with raises(ValueError, "images", "expected", "32", "16x16"):
        imagenet_model(torch.rand(2, 3, 16, 16))


def test_model_empty_batch(cifar_model):
    with raises(ValueError, "images", "expected", "non-empty", "batch size 0"):
        cifar_model(torch.rand(0, 3, 32, 32))


def test_model_nan_pixels(cifar_model):
    x = torch.rand(2, 3, 32, 32); x[1, 2, 3, 4] = float("nan")
    with raises(ValueError, "images", "expected", "finite", "1 nan"):
        cifar_model(x)


def test_model_inf_pixels(cifar_model):
    x = torch.rand(2, 3, 32, 32); x[0, 0, 0, 0] = float("inf"); x[0, 0, 0, 1] = -float("inf")
    with raises(ValueError, "images", "expected", "finite", "2 inf"):
        cifar_model(x)


def test_model_float64_pixels(cifar_model):
    with raises(ValueError, "images", "expected dtype torch.float32", "got torch.float64"):
        cifar_model(torch.rand(2, 3, 32, 32, dtype=torch.float64))


def test_model_dtype_check_allows_autocast(cifar_model):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert cifar_model.eval()(torch.rand(2, 3, 32, 32)).logits.shape == (2, 3)


# ---- mismatched batch sizes ---------------------------------------------------------------------------
def test_mismatched_image_caption_batch():
    with raises(ValueError, "mismatched", "images", "3", "captions", "2"):
        core.check_same_batch(images=torch.rand(3, 3, 8, 8), captions=["a red circle", "a blue square"])


def test_attention_context_batch_mismatch():
    layers = pytest.importorskip("vlnotes.layers")
    attn = layers.Attention(16, heads=2)
    with raises(ValueError, "context", "expected 2", "got 3"):
        attn(torch.rand(2, 5, 16), context=torch.rand(3, 7, 16))


def test_attention_padding_mask_shape_mismatch():
    layers = pytest.importorskip("vlnotes.layers")
    attn = layers.Attention(16, heads=2)
    with raises(ValueError, "key_padding_mask", "expected 5", "got 4"):
        attn(torch.rand(2, 5, 16), key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))


def test_block_context_padding_mask_batch_mismatch():
    layers = pytest.importorskip("vlnotes.layers")
    block = layers.TransformerBlock(16, heads=2, cross_attention=True)
    with raises(ValueError, "context_padding_mask", "expected 2", "got 3"):
        block(torch.rand(2, 5, 16), context=torch.rand(2, 7, 16),
              context_padding_mask=torch.zeros(3, 7, dtype=torch.bool))


# ---- shapes world ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world_mod():
    return pytest.importorskip("vlnotes.data.world")


def test_world_unknown_split(world_mod):
    with raises(ValueError, "expected one of", "train", "novel_classes", "'trian'"):
        world_mod.ShapesWorld(split="trian")


def test_world_negative_index(world_mod):
    w = world_mod.ShapesWorld(length=10, image_size=16)
    with raises(ValueError, "expected", "[0, 10)", "-1"):
        w[-1]


def test_world_index_too_large(world_mod):
    w = world_mod.ShapesWorld(length=10, image_size=16)
    with raises(ValueError, "expected", "[0, 10)", "10"):
        w[10]


def test_world_batched_index_out_of_range(world_mod):
    w = world_mod.ShapesWorld(length=10, image_size=16)
    with raises(ValueError, "expected", "[0, 10)", "12"):
        w.__getitems__([0, 12])


def test_world_non_int_index(world_mod):
    w = world_mod.ShapesWorld(length=10, image_size=16)
    with raises(TypeError, "expected an int", "float"):
        w[1.5]


def test_world_unknown_class_name(world_mod):
    w = world_mod.ShapesWorld(length=10, image_size=16)
    with raises(ValueError, "expected one of", w.class_names[0], "'dodecahedron'"):
        w.class_index("dodecahedron")


def test_world_image_size_out_of_range(world_mod):
    with raises(ValueError, "image_size", "expected an int", ">= 16", "<= 256", "8"):
        world_mod.ShapesWorld(image_size=8)


def test_world_non_int_image_size(world_mod):
    with raises(TypeError, "image_size", "expected an int", "float", "32.0"):
        world_mod.ShapesWorld(image_size=32.0)


def test_world_min_objects_above_max(world_mod):
    with raises(ValueError, "min_objects", "expected at most max_objects=2", "4"):
        world_mod.ShapesWorld(min_objects=4, max_objects=2)


def test_world_caption_noise_out_of_range(world_mod):
    with raises(ValueError, "caption_noise", ">= 0", "<= 1", "1.5"):
        world_mod.ShapesWorld(caption_noise=1.5)


def test_world_caption_noise_not_a_number(world_mod):
    with raises(TypeError, "caption_noise", "expected a number", "str"):
        world_mod.ShapesWorld(caption_noise="0.1")


def test_caption_corpus_negative_size(world_mod):
    with raises(ValueError, "n", "expected an int", ">= 0", "-1"):
        world_mod.caption_corpus(-1)


def test_collate_empty_list(world_mod):
    with raises(ValueError, "expected", "empty"):
        world_mod.collate([])


def test_collate_mismatched_image_sizes(world_mod):
    a = world_mod.ShapesWorld(length=4, image_size=16)[0]
    b = world_mod.ShapesWorld(length=4, image_size=24)[0]
    with raises(ValueError, "expected", "16", "24"):
        world_mod.collate([a, b])


# ---- real-data readers --------------------------------------------------------------------------------
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"


def test_karpathy_unknown_split():
    formats = pytest.importorskip("vlnotes.data.formats")
    with raises(ValueError, "expected one of", "restval", "'bogus'"):
        formats.KarpathyCaptions(FIXTURES / "flickr30k" / "images", FIXTURES / "flickr30k" / "dataset_flickr30k.json",
                                 split="bogus")


def test_reader_index_out_of_range():
    formats = pytest.importorskip("vlnotes.data.formats")
    ds = formats.KarpathyCaptions(FIXTURES / "flickr30k" / "images", FIXTURES / "flickr30k" / "dataset_flickr30k.json",
                                  split="train", image_size=16)
    with raises(ValueError, "expected", f"[0, {len(ds)})", str(len(ds))):
        ds[len(ds)]


def test_cifar10_unknown_split():
    formats = pytest.importorskip("vlnotes.data.formats")
    with raises(ValueError, "expected one of", "test", "'validation'"):
        formats.CIFAR10(FIXTURES, split="validation")


# ---- text ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer():
    text = pytest.importorskip("vlnotes.text")
    corpus = ["a small red circle left of a large blue square", "two green triangles above a yellow star"] * 20
    return text.Tokenizer.train(corpus, vocab_size=300)


def test_encode_empty_batch(tokenizer):
    with raises(ValueError, "expected", "empty"):
        tokenizer.encode([])


def test_encode_too_long_without_truncation(tokenizer):
    long = "a small red circle left of a large blue square " * 4
    with raises(ValueError, "max_length", "8", "truncation"):
        tokenizer.encode([long], max_length=8, truncation=False)


def test_decode_unknown_token_id(tokenizer):
    bad = tokenizer.vocab_size + 7
    with raises(ValueError, "expected", str(tokenizer.vocab_size), str(bad)):
        tokenizer.decode([1, bad])


def test_decode_negative_token_id(tokenizer):
    with raises(ValueError, "expected", "-3"):
        tokenizer.decode([1, -3])


# ---- checkpoints --------------------------------------------------------------------------------------
def test_checkpoint_from_other_architecture(tmp_path):
    from vlnotes.train import save_model, load_model
    save_model(resnet.resnet_cifar(8, num_classes=3), tmp_path / "cifar.safetensors")
    with raises(ValueError, "cifar.safetensors", "expected (64, 3, 7, 7)", "found (16, 3, 3, 3)"):
        load_model(resnet.resnet18(num_classes=3), tmp_path / "cifar.safetensors")


def test_checkpoint_other_class(tmp_path):
    from vlnotes.train import save_model, load_model
    save_model(torch.nn.Linear(4, 2), tmp_path / "linear.safetensors")
    with raises(ValueError, "ResNet", "Linear"):
        load_model(resnet.resnet_cifar(8, num_classes=3), tmp_path / "linear.safetensors")


def test_checkpoint_wrong_head_shape(tmp_path):
    from vlnotes.train import save_model, load_model
    save_model(resnet.resnet_cifar(8, num_classes=3), tmp_path / "c3.safetensors")
    with raises(ValueError, "fc.weight", "expected (5, 64)", "found (3, 64)"):
        load_model(resnet.resnet_cifar(8, num_classes=5), tmp_path / "c3.safetensors")


def test_checkpoint_truncated(tmp_path):
    from vlnotes.train import save_model, load_model
    path = tmp_path / "model.safetensors"
    save_model(resnet.resnet_cifar(8, num_classes=3), path)
    path.write_bytes(path.read_bytes()[:-100])
    with raises(ValueError, "model.safetensors"):
        load_model(resnet.resnet_cifar(8, num_classes=3), path)
