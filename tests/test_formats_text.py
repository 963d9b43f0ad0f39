"Real-data readers (vlnotes.data.formats) on fixtures in the real formats, and the tokenizer (vlnotes.text)."
import gzip, json, os, pickle, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlnotes.core import find_project_root
from vlnotes.data import formats as F
from vlnotes.text import (BOS_ID, CLS_ID, EOS_ID, MASK_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID, HFTokenizer, Tokenizer,
                          mlm_mask, world_tokenizer)

SCHEMA = {"image", "captions", "label", "boxes", "labels", "masks", "semantic", "depth", "questions", "answers", "meta"}

# ---------------------------------------------------------------- formats

@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fixtures")
    F.write_fixtures(root)
    return root

def readers(fx: Path, size=24):
    return {
        "coco_captions": F.CocoCaptions(fx / "coco/images", fx / "coco/annotations/captions_tiny.json", size),
        "coco_instances": F.CocoInstances(fx / "coco/images", fx / "coco/annotations/instances_tiny.json", size,
                                          captions_file=fx / "coco/annotations/captions_tiny.json"),
        "flickr30k": F.KarpathyCaptions(fx / "flickr30k/images", fx / "flickr30k/dataset_flickr30k.json", "train",
                                        size),
        "vqa": F.VQAv2(fx / "vqa/tiny2014", fx / "vqa/v2_OpenEnded_mscoco_tiny2014_questions.json",
                       fx / "vqa/v2_mscoco_tiny2014_annotations.json", size, answer_vocab=3),
        "imagefolder": F.ImageFolder(fx / "imagefolder", size),
        "cifar10": F.CIFAR10(fx, "test", size, verify_md5=False),
    }

def check_sample(s: dict, size: int, n_classes: int):
    assert set(s) == SCHEMA
    img = s["image"]
    assert img.dtype == torch.float32 and img.shape == (3, size, size) and 0 <= img.min() and img.max() <= 1
    assert isinstance(s["captions"], list) and all(isinstance(c, str) and c for c in s["captions"])
    assert isinstance(s["label"], int) and -1 <= s["label"] < max(n_classes, 1)
    n = s["boxes"].shape[0]
    assert s["boxes"].dtype == torch.float32 and s["boxes"].shape == (n, 4)
    assert s["labels"].dtype == torch.long and s["labels"].shape == (n,)
    assert s["masks"] is None or (s["masks"].dtype == torch.bool and s["masks"].shape == (n, size, size))
    assert s["semantic"] is None or (s["semantic"].dtype == torch.long and s["semantic"].shape == (size, size))
    assert s["depth"] is None
    assert isinstance(s["questions"], list) and isinstance(s["answers"], list)
    assert len(s["answers"]) in (0, len(s["questions"]))
    assert {"source", "index", "split"} <= set(s["meta"])

def test_schema_of_every_reader(fx):
    for name, ds in readers(fx).items():
        assert len(ds) > 0, name
        for i in range(len(ds)): check_sample(ds[i], 24, len(ds.class_names))
        batch = next(iter(ds.loader(batch_size=2)))
        assert batch["images"].shape == (min(2, len(ds)), 3, 24, 24) and batch["label"].dtype == torch.long, name

def test_sources_without_a_field_give_none_or_empty(fx):
    r = readers(fx)
    assert r["coco_captions"][0]["masks"] is None and r["coco_captions"][0]["boxes"].shape == (0, 4)
    assert r["vqa"][0]["captions"] == [] and r["cifar10"][0]["questions"] == []
    assert r["coco_instances"][0]["masks"] is not None and r["coco_instances"][0]["captions"]

def test_coco_bbox_conversion_and_labels(fx):
    raw = json.loads((fx / "coco/annotations/instances_tiny.json").read_text())
    ds = F.CocoInstances(fx / "coco/images", fx / "coco/annotations/instances_tiny.json", image_size=(40, 50))
    assert ds.class_names == ["person", "car", "dog"] and ds.category_ids == [1, 3, 18]   # sorted, contiguous
    sizes = {im["id"]: (im["height"], im["width"]) for im in raw["images"]}
    for a in raw["annotations"]:
        i = ds.image_ids.index(a["image_id"]); s = ds[i]
        k = [x["id"] for x in ds._anns[a["image_id"]]].index(a["id"])
        h, w = sizes[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        expected = torch.tensor([x * 50 / w, y * 40 / h, (x + bw) * 50 / w, (y + bh) * 40 / h])
        assert torch.allclose(s["boxes"][k], expected), (a["id"], s["boxes"][k], expected)
        assert s["labels"][k] == ds.category_ids.index(a["category_id"])
        assert s["image"].shape == (3, 40, 50) and s["masks"].shape[1:] == (40, 50)

def test_polygon_mask_area_matches_polygon(fx):
    raw = json.loads((fx / "coco/annotations/instances_tiny.json").read_text())
    ds = F.CocoInstances(fx / "coco/images", fx / "coco/annotations/instances_tiny.json", image_size=128)
    sizes = {im["id"]: (im["height"], im["width"]) for im in raw["images"]}
    for a in raw["annotations"]:
        if a["iscrowd"]: continue
        s = ds[ds.image_ids.index(a["image_id"])]
        k = [x["id"] for x in ds._anns[a["image_id"]]].index(a["id"])
        h, w = sizes[a["image_id"]]
        expected = F._shoelace(a["segmentation"][0]) * (128 / w) * (128 / h)
        assert abs(s["masks"][k].sum().item() / expected - 1) < 0.05
        # the mask lies inside its box
        ys, xs = torch.nonzero(s["masks"][k], as_tuple=True)
        x0, y0, x1, y1 = s["boxes"][k].tolist()
        assert xs.min() >= x0 - 1 and xs.max() <= x1 and ys.min() >= y0 - 1 and ys.max() <= y1

def test_polygon_rasteriser_exact_square():
    m = F.polygons_to_mask([[2, 1, 6, 1, 6, 5, 2, 5]], (8, 8))
    assert m.sum() == 16 and m[1:5, 2:6].all()
    m2 = F.polygons_to_mask([[2, 1, 6, 1, 6, 5, 2, 5]], (16, 16), (2.0, 2.0))
    assert m2.sum() == 64

def test_rle_decoding_matches_pycocotools_format():
    # hand-derived from pycocotools' rleToString: counts [1, 5, 1, 2] -> "151M" (negative delta -3 -> 'M')
    assert F._rle_counts_to_string([1, 5, 1, 2]) == "151M"
    assert F._rle_counts_from_string("151M") == [1, 5, 1, 2]
    m = F.rle_decode(dict(size=[3, 3], counts=[1, 5, 1, 2]))
    # column-major: column 0 = [0, 1, 1], column 1 = [1, 1, 1], column 2 = [0, 1, 1]
    flat = np.concatenate([[0] * 1, [1] * 5, [0] * 1, [1] * 2])
    assert torch.equal(m, torch.from_numpy(flat.reshape(3, 3).T.astype(bool)))
    g = torch.Generator().manual_seed(0)
    for shape in [(7, 5), (1, 9), (16, 16)]:
        mk = torch.rand(shape, generator=g) > 0.6
        for compressed in (True, False):
            assert torch.equal(F.rle_decode(F.rle_encode(mk, compressed)), mk)
    with pytest.raises(ValueError, match="h \\* w"): F.rle_decode(dict(size=[2, 2], counts=[1, 1]))

def test_crowd_rle_annotation(fx):
    ds = F.CocoInstances(fx / "coco/images", fx / "coco/annotations/instances_tiny.json", image_size=16)
    s = ds[ds.image_ids.index(2)]
    assert s["meta"]["iscrowd"] == [False, True]
    assert s["masks"][1].sum() == 6 * 8 and s["masks"][1][0:8, 10:16].all()
    assert s["label"] == ds.class_names.index("person")
    no_crowd = F.CocoInstances(fx / "coco/images", fx / "coco/annotations/instances_tiny.json", 16, include_crowd=False)
    assert no_crowd[1]["meta"]["iscrowd"] == [False]

def test_vqa_soft_score_and_vocab(fx):
    assert F.vqa_score("two", ["two"] * 2 + ["2"] * 8) == pytest.approx(2 / 3)
    assert F.vqa_score("yes", ["yes"] * 3) == 1.0 and F.vqa_score("Yes.", ["yes"] * 10) == 1.0
    assert F.vqa_score("no", ["yes"] * 10) == 0.0
    ds = F.VQAv2(fx / "vqa/tiny2014", fx / "vqa/v2_OpenEnded_mscoco_tiny2014_questions.json",
                 fx / "vqa/v2_mscoco_tiny2014_annotations.json", 16)
    assert ds.top_answers(2) == ["1", "red"] and ds.class_names == []
    s = ds[3]
    assert s["questions"] == ["What color is the background?"] and s["answers"] == ["yellow"]
    scores = s["meta"]["answer_scores"]
    assert scores["white"] == pytest.approx(2 / 3) and scores["red"] == pytest.approx(1 / 3)
    t = F.vqa_targets([s["meta"]], ["white", "yellow", "blue"])
    assert torch.allclose(t, torch.tensor([[2 / 3, 1.0, 0.0]]))
    with pytest.raises(ValueError, match="k: expected an int >= 1, got 0"): ds.top_answers(0)
    with pytest.raises(TypeError, match="k: expected an int"): ds.top_answers(2.0)

def test_karpathy_split_filtering(fx):
    make = lambda split: F.KarpathyCaptions(fx / "flickr30k/images", fx / "flickr30k/dataset_flickr30k.json", split, 16)
    raw = json.loads((fx / "flickr30k/dataset_flickr30k.json").read_text())["images"]
    for split in F.KARPATHY_SPLITS:
        ds = make(split)
        assert len(ds) == sum(im["split"] == split for im in raw)
        assert all(ds[i]["meta"]["split"] == split for i in range(len(ds)))
    assert len(make(["train", "val"])) == 3
    assert make("val")[0]["captions"] == [s["raw"] for s in raw[2]["sentences"]]
    with pytest.raises(ValueError, match="split"): make("dev")
    with pytest.raises(ValueError, match="split"): make([])

def test_cifar_pickle_reader(fx):
    batch = pickle.loads((fx / "cifar-10-batches-py/test_batch").read_bytes(), encoding="latin1")
    ds = F.CIFAR10(fx, "test", verify_md5=False)
    assert len(ds) == len(batch["labels"]) == 2 and ds.class_names[8] == "ship"
    for i in range(2):
        s = ds[i]
        assert s["label"] == batch["labels"][i]
        want = torch.from_numpy(batch["data"][i].reshape(3, 32, 32).astype(np.float32) / 255)
        assert torch.allclose(s["image"], want)
    assert len(F.CIFAR10(fx, "train", verify_md5=False)) == 5
    with pytest.raises(ValueError, match="MD5"): F.CIFAR10(fx, "train")
    with pytest.raises(FileNotFoundError, match="data_batch_1"): F.CIFAR10(fx / "missing")
    with pytest.raises(ValueError, match="split"): F.CIFAR10(fx, "val", verify_md5=False)

def test_imagefolder(fx):
    ds = F.ImageFolder(fx / "imagefolder", 8)
    assert ds.class_names == ["circle", "square"]
    assert [ds[i]["label"] for i in range(len(ds))] == [0, 0, 1, 1]
    pix = np.asarray(Image.open(fx / "imagefolder/square/0.png").convert("RGB"), dtype=np.float32) / 255
    assert torch.allclose(ds[2]["image"], torch.from_numpy(pix).permute(2, 0, 1))
    with pytest.raises(FileNotFoundError, match="no such directory"): F.ImageFolder(fx / "nope")
    empty = fx / "empty_folder"; empty.mkdir(exist_ok=True)
    with pytest.raises(FileNotFoundError, match="class sub-directories"): F.ImageFolder(empty)

def test_clear_errors(fx, tmp_path):
    imgs = fx / "coco/images"
    with pytest.raises(FileNotFoundError, match="captions_train2017.json"):
        F.CocoCaptions(imgs, tmp_path / "captions_train2017.json")
    bad = tmp_path / "instances_bad.json"
    bad.write_text(json.dumps({"images": [{"id": 1}], "annotations": [], "categories": []}))
    with pytest.raises(ValueError, match="'file_name'.*images\\[0\\]") as e: F.CocoInstances(imgs, bad)
    assert str(bad) in str(e.value)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"): F.CocoInstances(imgs, bad)
    bad.write_text(json.dumps({"questions": [{"image_id": 1, "question": "?"}]}))
    with pytest.raises(ValueError, match="'question_id'"): F.VQAv2(fx / "vqa/tiny2014", bad)
    bad.write_text(json.dumps({"images": [{"filename": "a.jpg", "split": "train"}]}))
    with pytest.raises(ValueError, match="'sentences'"): F.KarpathyCaptions(imgs, bad)
    ds = F.CocoCaptions(imgs, fx / "coco/annotations/captions_tiny.json", 16)
    for i in (len(ds), -1):
        with pytest.raises(ValueError, match="index"): ds[i]
    with pytest.raises(ValueError, match="image_size: expected a positive int or a pair"):
        F.CocoCaptions(imgs, fx / "coco/annotations/captions_tiny.json", 0)

def test_fixture_writer_is_deterministic(fx, tmp_path):
    F.write_fixtures(tmp_path)
    for p in sorted(q for q in fx.rglob("*") if q.is_file() and q.suffix in (".json", ".png")):
        assert (tmp_path / p.relative_to(fx)).read_bytes() == p.read_bytes(), p

def test_shipped_fixtures_are_current(fx):
    root = find_project_root(Path(__file__).parent)
    shipped = root / "data" / "fixtures" if root else None
    if shipped is None or not (shipped / "coco").exists(): pytest.skip("no shipped fixtures")
    files = sorted(p.relative_to(fx) for p in fx.rglob("*")
                   if p.is_file() and "bad" not in p.name and "empty" not in str(p))
    for rel in files:
        a, b = fx / rel, shipped / rel
        assert b.exists(), f"missing shipped fixture {b}"
        if a.suffix in (".jpg", ".png"):
            assert np.abs(np.asarray(Image.open(a), int) - np.asarray(Image.open(b), int)).max() <= 2, rel
        elif a.suffix == ".json":
            assert json.loads(a.read_text()) == json.loads(b.read_text()), rel
        elif a.suffix == ".gz":                                     # IDX files (Fashion-MNIST): compare the content
            assert gzip.decompress(a.read_bytes()) == gzip.decompress(b.read_bytes()), rel
        else:
            oa, ob = (pickle.loads(p.read_bytes()) for p in (a, b))
            assert oa.keys() == ob.keys() and all(np.array_equal(np.asarray(oa[k]), np.asarray(ob[k])) for k in oa), rel
    size = sum(p.stat().st_size for p in shipped.rglob("*") if p.is_file())
    assert size < 64_000, f"fixtures should stay tiny, got {size} bytes"

# ---------------------------------------------------------------- text

@pytest.fixture(scope="module")
def corpus():
    from vlnotes.data.world import caption_corpus
    return caption_corpus(1000, seed=0)

@pytest.fixture(scope="module")
def tok(corpus):
    return Tokenizer.train(corpus, vocab_size=350)

EXTRA = ["A zebra, 3 giraffes and an xylophone!", "Ünïcode text"]

def test_special_ids_and_vocab(tok):
    assert [tok.id_to_token(i) for i in range(6)] == list(SPECIAL_TOKENS)
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id, tok.mask_id, tok.cls_id) == (0, 1, 2, 3, 4, 5)
    assert 262 < tok.vocab_size <= 350

def test_deterministic_training(corpus, tok, tmp_path):
    assert Tokenizer.train(corpus, vocab_size=350).to_str() == tok.to_str()
    assert Tokenizer.train(corpus, vocab_size=300).to_str() != tok.to_str()
    (tmp_path / "c.txt").write_text("\n".join(corpus))
    code = ("from vlnotes.text import Tokenizer; import pathlib, sys; "
            "t = pathlib.Path(sys.argv[1]).read_text().splitlines(); "
            "Tokenizer.train(t, vocab_size=350).save(sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.txt"), str(tmp_path / "t.json")], check=True,
                   env={**os.environ, "PYTHONHASHSEED": "123"})
    assert (tmp_path / "t.json").read_text() == tok.to_str()

def test_round_trip_and_save_load(corpus, tok, tmp_path):
    for text in corpus[:100] + EXTRA:
        e = tok.encode(text)
        assert e["input_ids"][0, 0] == BOS_ID and e["input_ids"][0, -1] == EOS_ID
        assert tok.decode(e["input_ids"][0]) == tok.normalize(text)
        assert UNK_ID not in e["input_ids"]
    back = Tokenizer.from_file(tok.save(tmp_path / "tokenizer.json"))
    assert back.to_str() == tok.to_str()
    assert back.encode(corpus[:5])["input_ids"].equal(tok.encode(corpus[:5])["input_ids"])

def test_encode_shapes_padding_templates(corpus, tok):
    e = tok.encode(corpus[:4] + EXTRA)
    B, L = e["input_ids"].shape
    assert B == 6 and all(v.dtype == torch.long and v.shape == (B, L) for v in e.values())
    assert ((e["input_ids"] == PAD_ID) == (e["attention_mask"] == 0)).all()
    assert (e["word_ids"][e["attention_mask"] == 0] == -1).all() and (e["word_ids"][:, 0] == -1).all()
    assert tok.encode(corpus[:3], max_length=40, padding="max_length")["input_ids"].shape == (3, 40)
    assert (tok.encode(corpus[:3], template="cls_eos")["input_ids"][:, 0] == CLS_ID).all()
    n = tok.encode(corpus[0], template=None)["input_ids"]
    assert n.shape[1] == tok.encode(corpus[0])["input_ids"].shape[1] - 2

def test_truncation_is_explicit(tok):
    long = "a large red circle " * 20
    with pytest.raises(ValueError, match="max_length=10") as e: tok.encode(long, max_length=10)
    assert "a large red circle" in str(e.value) and "truncation=True" in str(e.value)
    t = tok.encode([long, "a red circle"], max_length=10, truncation=True)
    assert t["input_ids"].shape == (2, 10) and t["input_ids"][0, -1] == EOS_ID and t["input_ids"][0, 0] == BOS_ID
    with pytest.raises(ValueError, match="padding"): tok.encode([long, "a red circle"], padding=False)
    with pytest.raises(ValueError, match="max_length"): tok.encode("a", padding="max_length")
    with pytest.raises(ValueError, match="max_length: expected an int >= 3, got 2"):
        tok.encode("a red circle", max_length=2)
    with pytest.raises(TypeError, match="max_length: expected an int"): tok.encode("a red circle", max_length=8.0)
    with pytest.raises(ValueError, match="padding"): tok.encode("a", padding="left")
    with pytest.raises(ValueError, match="template"): tok.encode("a", template="bert")

def test_empty_inputs_raise(tok):
    for bad in ("", "   ", [], ["a", ""]):
        with pytest.raises(ValueError): tok.encode(bad)
    with pytest.raises(TypeError): tok.encode([1, 2])
    with pytest.raises(ValueError): Tokenizer.train([], vocab_size=300)
    with pytest.raises(ValueError, match="vocab_size: expected an int >= 262, got 100"):
        Tokenizer.train(["a b"], vocab_size=100)
    with pytest.raises(TypeError, match="vocab_size: expected an int"): Tokenizer.train(["a b"], vocab_size=300.0)

def test_decode_rejects_unknown_ids(tok):
    with pytest.raises(ValueError, match=f"\\[0, {tok.vocab_size}\\)"): tok.decode([2, tok.vocab_size])
    with pytest.raises(ValueError): tok.decode([-1])
    with pytest.raises(TypeError): tok.decode(torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="ids\\[1\\]: expected an int"): tok.decode([2, 1.5])
    assert tok.decode(torch.tensor([[BOS_ID, EOS_ID, PAD_ID]])) == [""]
    assert tok.decode([BOS_ID, EOS_ID], skip_special_tokens=False) == "<bos><eos>"

def test_from_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"): Tokenizer.from_file(tmp_path / "tokenizer.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError): Tokenizer.from_file(tmp_path / "bad.json")

def test_word_ids_and_whole_word_masking(tok):
    e = tok.encode(EXTRA * 16)
    w = e["word_ids"]
    pieces_per_word = torch.bincount(w[0][w[0] >= 0])
    assert (pieces_per_word > 1).any(), "expected some words split into pieces"
    for whole in (True, False):
        m = mlm_mask(w, 0.5, whole_word=whole, generator=torch.Generator().manual_seed(0))
        assert m.dtype == torch.bool and m.shape == w.shape and not m[w < 0].any()
        partial = sum(int(m[b][w[b] == k].any() and not m[b][w[b] == k].all())
                      for b in range(len(w)) for k in w[b].unique().tolist() if k >= 0)
        assert (partial == 0) == whole
    with pytest.raises(ValueError, match="mask_prob"): mlm_mask(w, 1.5)
    with pytest.raises(TypeError, match="mask_prob"): mlm_mask(w, "0.5")

def test_world_tokenizer_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("VLNOTES_CACHE_DIR", str(tmp_path))
    a = world_tokenizer(vocab_size=300, corpus_size=500)
    files = list(tmp_path.rglob("*.json"))
    assert len(files) == 1 and "300" in files[0].name
    b = world_tokenizer(vocab_size=300, corpus_size=500)
    assert a.to_str() == b.to_str()
    world_tokenizer(vocab_size=320, corpus_size=500)
    assert len(list(tmp_path.rglob("*.json"))) == 2

def test_hf_adapter_parity(corpus, tok, tmp_path):
    from transformers import PreTrainedTokenizerFast
    path = tok.save(tmp_path / "tokenizer.json")
    specials = dict(pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>", mask_token="<mask>",
                    cls_token="<cls>")
    hf = HFTokenizer(PreTrainedTokenizerFast(tokenizer_file=str(path), **specials))
    assert (hf.pad_id, hf.bos_id, hf.eos_id, hf.mask_id, hf.cls_id, hf.vocab_size) == \
           (PAD_ID, BOS_ID, EOS_ID, MASK_ID, CLS_ID, tok.vocab_size)
    texts = corpus[:10] + EXTRA
    for kw in [{}, dict(template="cls_eos"), dict(max_length=6, truncation=True, padding="max_length")]:
        a, b = tok.encode(texts, **kw), hf.encode(texts, **kw)
        for k in a: assert a[k].equal(b[k]), (kw, k)
    ids = tok.encode(texts)["input_ids"]
    assert tok.decode(ids) == hf.decode(ids)
    with pytest.raises(ValueError, match="max_length"): hf.encode("a large red circle " * 10, max_length=5)
    with pytest.raises(ValueError): hf.decode([tok.vocab_size + 1])
    with pytest.raises(TypeError, match="fast"): HFTokenizer(object())

def test_hf_adapter_without_bos_uses_cls(tmp_path, tok):
    "A BERT-style tokenizer ([CLS] ... [SEP], no bos/eos) maps bos->cls and eos->sep."
    from transformers import PreTrainedTokenizerFast
    path = tok.save(tmp_path / "tokenizer.json")
    bert_like = PreTrainedTokenizerFast(tokenizer_file=str(path), pad_token="<pad>", cls_token="<cls>",
                                        sep_token="<eos>")
    hf = HFTokenizer(bert_like)
    assert hf.bos_id == CLS_ID and hf.eos_id == EOS_ID and hf.mask_id is None
    e = hf.encode("a red circle")
    assert e["input_ids"][0, 0] == CLS_ID and e["input_ids"][0, -1] == EOS_ID
