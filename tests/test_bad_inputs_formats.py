"""Bad-input matrix for the real-data readers (vlnotes.data.formats): every reader and helper against wrong types,
NaN/inf, zero/negative/huge sizes, empty values, corrupt and truncated files, missing keys, wrong schemas and path
escapes. Bad variants of the tiny fixture dataset are written into `tmp_path`. `note` records what the code did
before issue 8 (clear / cryptic / silent)."""
import functools, json, pickle, shutil, tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from badinput import Case, case_ids, check_case
from vlnotes.data import formats as F

TE = (TypeError, ValueError)


@functools.cache
def fx() -> Path:
    "The fixture dataset, written once per session."
    root = Path(tempfile.mkdtemp(prefix="vlnotes-fx-"))
    F.write_fixtures(root)
    return root


def edited(rel: str, tmp: Path, change) -> Path:
    "A copy of fixture JSON `rel` in `tmp`, changed in place by `change(data)`."
    data = json.loads((fx() / rel).read_text())
    change(data)
    out = tmp / Path(rel).name
    out.write_text(json.dumps(data))
    return out


def caps(tmp, change, **kw):
    return F.CocoCaptions(fx() / "coco/images", edited("coco/annotations/captions_tiny.json", tmp, change), 16, **kw)


def inst(tmp, change, **kw):
    return F.CocoInstances(fx() / "coco/images", edited("coco/annotations/instances_tiny.json", tmp, change), 16, **kw)


def karpathy(tmp, change, split="train"):
    return F.KarpathyCaptions(fx() / "flickr30k/images", edited("flickr30k/dataset_flickr30k.json", tmp, change),
                              split, 16)


QFILE, AFILE = "vqa/v2_OpenEnded_mscoco_tiny2014_questions.json", "vqa/v2_mscoco_tiny2014_annotations.json"


def vqa(tmp=None, qchange=None, achange=None, **kw):
    q = edited(QFILE, tmp, qchange) if qchange else fx() / QFILE
    a = edited(AFILE, tmp, achange) if achange else fx() / AFILE
    return F.VQAv2(fx() / "vqa/tiny2014", q, a, 16, **kw)


def cifar(tmp, name=None, content=None, verify_md5=False, split="test"):
    "CIFAR10 on a copy of the fixture batches whose file `name` is replaced by `content` (bytes or a picklable)."
    shutil.copytree(fx() / "cifar-10-batches-py", tmp / "cifar-10-batches-py")
    if name is not None:
        raw = content if isinstance(content, bytes) else pickle.dumps(content, protocol=2)
        (tmp / "cifar-10-batches-py" / name).write_bytes(raw)
    return F.CIFAR10(tmp, split, verify_md5=verify_md5)


def batch(n=2, **override):
    b = {"batch_label": "x", "labels": [1] * n, "data": np.zeros((n, 3072), np.uint8), "filenames": ["a.png"] * n}
    b.update(override)
    return b


class Payload:
    "Unpickling this calls `fn(arg)`: a crafted CIFAR batch."
    def __init__(self, fn, arg): self.fn, self.arg = fn, arg
    def __reduce__(self): return (self.fn, (self.arg,))


def marker_payload(tmp):
    import os
    return Payload(os.system, f"touch {tmp / 'pwned'}")


def set_in(path, value):
    "A change that sets `data[k1][k2]...` (keys and indices) to `value`."
    def change(d):
        for k in path[:-1]: d = d[k]
        d[path[-1]] = value
    return change


def drop(path):
    def change(d):
        for k in path[:-1]: d = d[k]
        del d[path[-1]]
    return change


def jpeg(tmp, cut=None, junk=False) -> Path:
    src = next((fx() / "coco/images").glob("*.jpg")).read_bytes()
    p = tmp / "img.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0 junk" if junk else src[:cut])
    return p


def sample(**kw):
    base = dict(source="d", index=0, split="t")
    base.update(kw)
    image = base.pop("image", torch.rand(3, 8, 8))
    return F.make_sample(image, **base)


def imagefolder_with(tmp, make):
    root = tmp / "folder"
    shutil.copytree(fx() / "imagefolder", root)
    make(root)
    return F.ImageFolder(root, 8)


def first_image_of(ds):
    return ds[0]


def symlinked_coco(tmp):
    "A COCO image folder whose first image is a symlink to a file outside it."
    images = tmp / "images"
    shutil.copytree(fx() / "coco/images", images)
    (tmp / "secret.jpg").write_bytes(next(images.glob("*.jpg")).read_bytes())
    first = sorted(images.glob("*.jpg"))[0]
    first.unlink(); first.symlink_to(tmp / "secret.jpg")
    return F.CocoCaptions(images, fx() / "coco/annotations/captions_tiny.json", 16)


def rle_seg(size, counts):
    def change(d):
        d["annotations"][3]["segmentation"] = {"size": size, "counts": counts}
    return change


def idx_copy(tmp, name=None, content=None) -> Path:
    "A copy of the Fashion-MNIST fixture folder whose file `name` is replaced by `content` (bytes)."
    root = tmp / "fm"
    shutil.copytree(fx() / "fashion-mnist", root)
    if name is not None: (root / name).write_bytes(content)
    return root


def idx_bytes(magic: bytes, dims, payload: bytes = b"") -> bytes:
    import struct
    return magic + struct.pack(f">{len(dims)}i", *dims) + payload


IMG = lambda: next((fx() / "coco/images").glob("*.jpg"))
BOX = lambda *rows: torch.tensor(rows, dtype=torch.float)

CASES = [
    # ---------------------------------------------------------------- need_file / need_dir / read_json / get_key
    Case("formats.need_file", "type", lambda: F.need_file(None, "a file"), TypeError,
         arg="path", expected="expected a path", got="NoneType", note="was cryptic"),
    Case("formats.need_file", "path", lambda tmp: F.need_file(tmp / "nope.json", "a COCO file"), FileNotFoundError,
         arg="path", expected="expected a COCO file", got="no such file", note="was clear"),
    Case("formats.need_file", "empty", lambda: F.need_file("", "a file"), ValueError,
         arg="path", expected="non-empty path", got="''", note="was cryptic"),
    Case("formats.need_dir", "empty", lambda: F.need_dir("", "a folder"), ValueError,
         arg="path", expected="non-empty path", got="''", note="was silent"),
    Case("formats.need_dir", "path", lambda: F.need_dir(IMG(), "a folder"), FileNotFoundError,
         arg="path", expected="expected a folder", got="no such directory", note="was clear"),
    Case("formats.read_json", "corrupt", lambda tmp: F.read_json(jpeg(tmp), "a JSON file"), ValueError,
         arg="path", expected="expected a JSON file", got="not valid JSON", note="was cryptic"),
    Case("formats.read_json", "truncated",
         lambda tmp: (tmp / "t.json").write_text((fx() / QFILE).read_text()[:50]) and F.read_json(tmp / "t.json", "q"),
         ValueError, arg="path", expected="expected q", got="not valid JSON", note="was clear"),
    Case("formats.get_key", "schema", lambda: F.get_key([], "images", "f.json"), ValueError,
         arg="f.json", expected="JSON object", got="got list", note="was clear"),
    Case("formats.get_key", "missing-key", lambda: F.get_key({"a": 1}, "images", "f.json"), ValueError,
         arg="f.json", expected="'images'", got="found keys ['a']", note="was clear"),
    # ---------------------------------------------------------------- load_image
    Case("formats.load_image", "zero", lambda: F.load_image(IMG(), 0), ValueError,
         arg="image_size", expected="positive int", got="got 0", note="was clear"),
    Case("formats.load_image", "nan", lambda: F.load_image(IMG(), float("nan")), ValueError,
         arg="image_size", expected="positive int", got="nan", note="was clear"),
    Case("formats.load_image", "negative", lambda: F.load_image(IMG(), (8, -2)), ValueError,
         arg="image_size", expected="positive int", got="(8, -2)", note="was clear"),
    Case("formats.load_image", "huge", lambda: F.load_image(IMG(), 100_000), ValueError,
         arg="image_size", expected="at most 16384", got="100000", note="was silent"),
    Case("formats.load_image", "type", lambda: F.load_image(123, 8), TypeError,
         arg="path", expected="expected a path", got="int", note="was cryptic"),
    Case("formats.load_image", "corrupt", lambda tmp: F.load_image(jpeg(tmp, junk=True), 8), ValueError,
         arg="img.jpg", expected="image file PIL can decode", got="corrupt, truncated", note="was cryptic"),
    Case("formats.load_image", "truncated", lambda tmp: F.load_image(jpeg(tmp, cut=300), 8), ValueError,
         arg="img.jpg", expected="image file PIL can decode", got="truncated", note="was cryptic"),
    # ---------------------------------------------------------------- make_sample / SampleDataset
    Case("formats.make_sample", "type", lambda: sample(captions="a cat"), TypeError,
         arg="captions", expected="list of strings", got="str", note="was silent"),
    Case("formats.make_sample", "type", lambda: sample(captions=[None]), TypeError,
         arg="captions[0]", expected="string", got="NoneType", note="was silent"),
    Case("formats.make_sample", "value", lambda: sample(label=2.7), TypeError,
         arg="label", expected="int", got="2.7", note="was silent"),
    Case("formats.make_sample", "negative", lambda: sample(label=-5), ValueError,
         arg="label", expected=">= -1", got="-5", note="was silent"),
    Case("formats.make_sample", "shape", lambda: sample(boxes=torch.zeros(3), labels=torch.zeros(3).long()),
         ValueError, arg="boxes", expected="shape (N, 4)", got="shape (3,)", note="was silent"),
    Case("formats.make_sample", "nan",
         lambda: sample(boxes=BOX([float("nan"), 0, 1, 1]), labels=torch.zeros(1).long()), ValueError,
         arg="boxes", expected="finite", got="1 NaN", note="was silent"),
    Case("formats.make_sample", "shape", lambda: sample(boxes=torch.zeros(2, 4), labels=torch.zeros(3).long()),
         ValueError, arg="labels", expected="expected 2", got="got 3", note="was silent"),
    Case("formats.make_sample", "shape", lambda: sample(image=torch.rand(1, 8, 8)), ValueError,
         arg="image", expected="expected size 3", got="got 1", note="was silent"),
    Case("formats.make_sample", "type", lambda: sample(image=np.zeros((3, 8, 8))), TypeError,
         arg="image", expected="torch.Tensor", got="ndarray", note="was silent"),
    Case("formats.make_sample", "dtype", lambda: sample(boxes=torch.zeros(1, 4), labels=torch.zeros(1).long(),
                                                        masks=torch.zeros(1, 8, 8)), ValueError,
         arg="masks", expected="dtype bool", got="torch.float32", note="was silent"),
    Case("formats.make_sample", "shape", lambda: sample(questions=["q1", "q2"], answers=["a"]), ValueError,
         arg="answers", expected="one answer per question", got="got 1", note="was clear"),
    Case("formats.make_sample", "negative", lambda: sample(index=-1), ValueError,
         arg="index", expected=">= 0", got="-1", note="was silent"),
    Case("formats.SampleDataset", "type", lambda: F.SampleDataset(8, 3), TypeError,
         arg="split", expected="string", got="int", note="was silent"),
    Case("formats.SampleDataset.loader", "zero", lambda: F.SampleDataset(8, "t").loader(batch_size=0), ValueError,
         arg="batch_size", expected=">= 1", got="0", note="was clear"),
    Case("formats.SampleDataset.loader", "type", lambda: F.SampleDataset(8, "t").loader(shuffle="yes"), TypeError,
         arg="shuffle", expected="True or False", got="'yes'", note="was cryptic"),
    Case("formats.SampleDataset.__getitem__", "type", lambda: vqa()[1.0], TypeError,
         arg="index", expected="int", got="float", note="was clear"),
    Case("formats.SampleDataset.__getitem__", "huge", lambda: vqa()[99], ValueError,
         arg="index", expected="[0, 4)", got="99", note="was clear"),
    # ---------------------------------------------------------------- CocoCaptions
    Case("formats.CocoCaptions", "type", lambda tmp: caps(tmp, set_in(["images", 0, "file_name"], 17)), TypeError,
         arg="images[0] (id 1).file_name", expected="string", got="int 17", note="was silent"),
    Case("formats.CocoCaptions", "type", lambda tmp: caps(tmp, set_in(["images", 0, "id"], [1])), TypeError,
         arg="images[0].id", expected="int", got="[1]", note="was cryptic"),
    Case("formats.CocoCaptions", "value", lambda tmp: caps(tmp, set_in(["images", 1, "id"], 1)), ValueError,
         arg="images[1].id", expected="unique image id", got="1 again", note="was cryptic"),
    Case("formats.CocoCaptions", "type", lambda tmp: caps(tmp, set_in(["annotations", 0, "caption"], None)),
         TypeError, arg="annotations[0].caption", expected="string", got="NoneType", note="was silent"),
    Case("formats.CocoCaptions", "type", lambda tmp: caps(tmp, set_in(["annotations", 0, "caption"], 123)),
         TypeError, arg="annotations[0].caption", expected="string", got="int 123", note="was silent"),
    Case("formats.CocoCaptions", "empty", lambda tmp: caps(tmp, set_in(["annotations", 0, "caption"], " ")),
         ValueError, arg="annotations[0].caption", expected="non-empty string", got="' '", note="was silent"),
    Case("formats.CocoCaptions", "value", lambda tmp: caps(tmp, set_in(["annotations", 0, "image_id"], 99)),
         ValueError, arg="annotations[0].image_id", expected="listed in 'images'", got="99", note="was clear"),
    Case("formats.CocoCaptions", "security",
         lambda tmp: caps(tmp, set_in(["images", 0, "file_name"], "/etc/hostname")), ValueError,
         arg="file_name", expected="relative path inside the image folder", got="/etc/hostname", note="was silent"),
    Case("formats.CocoCaptions", "security",
         lambda tmp: caps(tmp, set_in(["images", 0, "file_name"], "../../../etc/hostname")), ValueError,
         arg="file_name", expected="relative path inside the image folder", got="../../../etc/hostname",
         note="was silent"),
    Case("formats.CocoCaptions", "security", lambda tmp: first_image_of(symlinked_coco(tmp)), ValueError,
         arg="file_name", expected="inside the image folder", got="resolves to", note="was silent"),
    Case("formats.CocoCaptions", "schema", lambda tmp: caps(tmp, set_in(["images"], 5)), TypeError,
         arg="images", expected="JSON list", got="int 5", note="was cryptic"),
    Case("formats.CocoCaptions", "schema",
         lambda tmp: (tmp / "c.json").write_text("[1, 2]") and F.CocoCaptions(fx() / "coco/images", tmp / "c.json"),
         ValueError, arg="c.json", expected="JSON object", got="got list", note="was clear"),
    Case("formats.CocoCaptions", "type", lambda tmp: caps(tmp, lambda d: None, split=5), TypeError,
         arg="split", expected="string", got="int", note="was silent"),
    Case("formats.CocoCaptions", "type", lambda: F.CocoCaptions(fx() / "coco/images", None), TypeError,
         arg="annotation_file", expected="expected a path", got="NoneType", note="was cryptic"),
    Case("formats.CocoCaptions", "path",
         lambda tmp: F.CocoCaptions(tmp / "none", fx() / "coco/annotations/captions_tiny.json"), FileNotFoundError,
         arg="image_dir", expected="COCO image directory", got="no such directory", note="was clear"),
    Case("formats.CocoCaptions", "zero", lambda tmp: caps(tmp, set_in(["images", 0, "height"], 0)), ValueError,
         arg="images[0].height", expected=">= 1", got="0", note="was silent"),
    Case("formats.CocoCaptions", "missing-key", lambda tmp: caps(tmp, drop(["images", 0, "file_name"])), ValueError,
         arg="'file_name'", expected="images[0]", got="found keys", note="was clear"),
    # ---------------------------------------------------------------- CocoInstances
    Case("formats.CocoInstances", "schema", lambda tmp: inst(tmp, set_in(["annotations", 0, "bbox"], "abcd")),
         ValueError, arg="annotations[0] (id 1).bbox", expected="[x, y, w, h]", got="'abcd'", note="was silent"),
    Case("formats.CocoInstances", "nan",
         lambda tmp: inst(tmp, set_in(["annotations", 0, "bbox"], [float("nan"), 0, 5, 5])), ValueError,
         arg="bbox[0]", expected="finite number", got="nan", note="was silent"),
    Case("formats.CocoInstances", "negative", lambda tmp: inst(tmp, set_in(["annotations", 0, "bbox"], [0, 0, -5, 5])),
         ValueError, arg="bbox[2]", expected=">= 0", got="-5", note="was silent"),
    Case("formats.CocoInstances", "shape", lambda tmp: inst(tmp, set_in(["annotations", 0, "bbox"], [0, 0, 5])),
         ValueError, arg="bbox", expected="[x, y, w, h]", got="[0, 0, 5]", note="was clear"),
    Case("formats.CocoInstances", "missing-key", lambda tmp: inst(tmp, drop(["annotations", 1, "segmentation"])),
         ValueError, arg="annotations[1]", expected="'segmentation' as in the other 3", got="got none",
         note="was silent"),
    Case("formats.CocoInstances", "schema", lambda tmp: inst(tmp, rle_seg("ab", [256])), ValueError,
         arg="segmentation.size", expected="[h, w]", got="'ab'", note="was silent"),
    Case("formats.CocoInstances", "schema", lambda tmp: inst(tmp, rle_seg([16, 16], [10, 20])), ValueError,
         arg="segmentation.counts", expected="summing to h * w = 16 * 16 = 256", got="summing to 30",
         note="was silent"),
    Case("formats.CocoInstances", "schema",
         lambda tmp: inst(tmp, set_in(["annotations", 0, "segmentation"], [[1, 2, 3, 4, 5, 6, 7]])), ValueError,
         arg="polygon 0", expected="even number (>= 6)", got="got 7 coordinates", note="was silent"),
    Case("formats.CocoInstances", "nan",
         lambda tmp: inst(tmp, set_in(["annotations", 0, "segmentation"], [[1, 2, 3, float("nan"), 5, 6]])),
         ValueError, arg="polygon 0 coordinate 3", expected="finite number", got="nan", note="was silent"),
    Case("formats.CocoInstances", "type", lambda tmp: inst(tmp, set_in(["annotations", 0, "segmentation"], "abc")),
         TypeError, arg="segmentation", expected="list of polygons or an RLE dict", got="str", note="was silent"),
    Case("formats.CocoInstances", "value", lambda tmp: inst(tmp, set_in(["annotations", 0, "iscrowd"], 2)),
         ValueError, arg="iscrowd", expected="one of [0, 1]", got="2", note="was silent"),
    Case("formats.CocoInstances", "value", lambda tmp: inst(tmp, set_in(["annotations", 0, "category_id"], 99)),
         ValueError, arg="category_id", expected="one of the categories", got="99", note="was clear"),
    Case("formats.CocoInstances", "value", lambda tmp: inst(tmp, set_in(["categories", 1, "id"], 1)), ValueError,
         arg="categories[1].id", expected="unique category id", got="1 again", note="was cryptic"),
    Case("formats.CocoInstances", "type", lambda tmp: inst(tmp, set_in(["categories", 0, "name"], 5)), TypeError,
         arg="categories[0].name", expected="string", got="int 5", note="was silent"),
    Case("formats.CocoInstances", "type", lambda tmp: inst(tmp, lambda d: None, include_crowd="no"), TypeError,
         arg="include_crowd", expected="True or False", got="'no'", note="was silent"),
    Case("formats.CocoInstances", "shape", lambda tmp: inst(tmp, rle_seg([8, 32], [256]))[1], ValueError,
         arg="segmentation", expected="RLE of the image's size (16, 16)", got="got size (8, 32)", note="was cryptic"),
    Case("formats.CocoInstances", "missing-key", lambda tmp: inst(tmp, drop(["categories"])), ValueError,
         arg="'categories'", expected="the top level", got="found keys", note="was clear"),
    # ---------------------------------------------------------------- KarpathyCaptions
    Case("formats.KarpathyCaptions", "missing-key", lambda tmp: karpathy(tmp, drop(["images", 0, "filename"])),
         ValueError, arg="'filename'", expected="images[0]", got="found keys", note="was clear"),
    Case("formats.KarpathyCaptions", "value", lambda tmp: karpathy(tmp, set_in(["images", 2, "split"], "training")),
         ValueError, arg="images[2].split", expected="one of ['train', 'val', 'test', 'restval']", got="'training'",
         note="was silent"),
    Case("formats.KarpathyCaptions", "security",
         lambda tmp: karpathy(tmp, set_in(["images", 0, "filename"], "/etc/hostname")), ValueError,
         arg="images[0].filename", expected="relative path inside", got="/etc/hostname", note="was silent"),
    Case("formats.KarpathyCaptions", "security",
         lambda tmp: karpathy(tmp, set_in(["images", 0, "filepath"], "../../..")), ValueError,
         arg="images[0].filepath", expected="relative path inside", got="'../../..'", note="was silent"),
    Case("formats.KarpathyCaptions", "type",
         lambda tmp: karpathy(tmp, set_in(["images", 0, "sentences", 0, "raw"], None)), TypeError,
         arg="images[0].sentences[0].raw", expected="string", got="NoneType", note="was silent"),
    Case("formats.KarpathyCaptions", "schema",
         lambda tmp: karpathy(tmp, set_in(["images", 0, "sentences"], "abc")), TypeError,
         arg="images[0].sentences", expected="JSON list", got="str", note="was clear"),
    Case("formats.KarpathyCaptions", "type", lambda tmp: karpathy(tmp, lambda d: None, split=5), TypeError,
         arg="split", expected="non-empty list", got="5", note="was cryptic"),
    Case("formats.KarpathyCaptions", "empty", lambda tmp: karpathy(tmp, lambda d: None, split=[]), ValueError,
         arg="split", expected="non-empty list", got="[]", note="was clear"),
    Case("formats.KarpathyCaptions", "type", lambda tmp: karpathy(tmp, set_in(["images", 0, "imgid"], "x")),
         TypeError, arg="images[0].imgid", expected="int", got="'x'", note="was silent"),
    Case("formats.KarpathyCaptions", "type", lambda tmp: karpathy(tmp, set_in(["dataset"], 5)), TypeError,
         arg="dataset", expected="string", got="int 5", note="was silent"),
    # ---------------------------------------------------------------- VQAv2
    Case("formats.VQAv2", "type", lambda tmp: vqa(tmp, achange=set_in(["annotations", 0, "answers"], None)),
         TypeError, arg="annotations[0].answers", expected="JSON list", got="NoneType", note="was cryptic"),
    Case("formats.VQAv2", "shape",
         lambda tmp: vqa(tmp, achange=lambda d: d["annotations"][0]["answers"].pop()), ValueError,
         arg="annotations[0].answers", expected="10 human answers", got="got 9", note="was silent"),
    Case("formats.VQAv2", "value",
         lambda tmp: vqa(tmp, qchange=lambda d: d["questions"].append(dict(d["questions"][0]))), ValueError,
         arg="questions[4].question_id", expected="unique id", got="1000 again", note="was silent"),
    Case("formats.VQAv2", "value",
         lambda tmp: vqa(tmp, achange=lambda d: d["annotations"].append(dict(d["annotations"][0]))), ValueError,
         arg="annotations[4].question_id", expected="unique id", got="1000 again", note="was silent"),
    Case("formats.VQAv2", "security", lambda: vqa(image_name="{image_id.__class__}.jpg"), ValueError,
         arg="image_name", expected="only the placeholders", got="{image_id.__class__}", note="was silent"),
    Case("formats.VQAv2", "security", lambda: vqa(image_name="{image_id.real.__class__}{data_subtype[0]}.jpg"),
         ValueError, arg="image_name", expected="only the placeholders", got="image_id.real", note="was silent"),
    Case("formats.VQAv2", "schema", lambda: vqa(image_name="{foo}.jpg"), ValueError,
         arg="image_name", expected="only the placeholders", got="{foo}", note="was silent"),
    Case("formats.VQAv2", "security", lambda: vqa(image_name="/etc/{image_id}"), ValueError,
         arg="image_name", expected="relative path inside", got="/etc/1", note="was silent"),
    Case("formats.VQAv2", "security",
         lambda tmp: vqa(tmp, qchange=set_in(["data_subtype"], "../../x"), image_name="{data_subtype}{image_id}.jpg"),
         ValueError, arg="image_name", expected="relative path inside", got="'../../x1.jpg'", note="was silent"),
    Case("formats.VQAv2", "type", lambda: vqa(image_name=5), TypeError,
         arg="image_name", expected="str.format template", got="int", note="was silent"),
    Case("formats.VQAv2", "type", lambda tmp: vqa(tmp, qchange=set_in(["questions", 0, "question"], 5)), TypeError,
         arg="questions[0].question", expected="string", got="int 5", note="was silent"),
    Case("formats.VQAv2", "type", lambda tmp: vqa(tmp, qchange=set_in(["questions", 0, "image_id"], "1")), TypeError,
         arg="questions[0].image_id", expected="int", got="'1'", note="was silent"),
    Case("formats.VQAv2", "type",
         lambda tmp: vqa(tmp, achange=set_in(["annotations", 0, "multiple_choice_answer"], 5)), TypeError,
         arg="multiple_choice_answer", expected="string", got="int 5", note="was silent"),
    Case("formats.VQAv2", "type", lambda: vqa(answer_vocab="abc"), TypeError,
         arg="answer_vocab", expected="list of answers", got="str", note="was silent"),
    Case("formats.VQAv2", "zero", lambda: vqa(answer_vocab=0), ValueError,
         arg="answer_vocab", expected=">= 1", got="0", note="was cryptic"),
    Case("formats.VQAv2", "value", lambda: F.VQAv2(fx() / "vqa/tiny2014", fx() / QFILE, answer_vocab=3), ValueError,
         arg="answer_vocab", expected="list of answers when no annotations_file", got="3", note="was clear"),
    Case("formats.VQAv2", "value", lambda: vqa(answer_vocab=["red", "Red."]), ValueError,
         arg="answer_vocab", expected="distinct", got="'red'", note="was silent"),
    Case("formats.VQAv2", "missing-key", lambda tmp: vqa(tmp, achange=lambda d: d["annotations"].pop()), ValueError,
         arg="annotations.json", expected="annotation for", got="1 question ids", note="was clear"),
    Case("formats.VQAv2", "schema",
         lambda tmp: (tmp / "q.json").write_text("[]") and F.VQAv2(fx() / "vqa/tiny2014", tmp / "q.json"),
         ValueError, arg="q.json", expected="JSON object", got="got list", note="was clear"),
    Case("formats.VQAv2", "type", lambda: F.VQAv2(fx() / "vqa/tiny2014", 5), TypeError,
         arg="questions_file", expected="expected a path", got="int", note="was cryptic"),
    Case("formats.VQAv2.top_answers", "type", lambda: vqa().top_answers("3"), TypeError,
         arg="k", expected="int", got="'3'", note="was clear"),
    Case("formats.VQAv2.soft_targets", "huge", lambda: vqa().soft_targets(99), ValueError,
         arg="index", expected="[0, 4)", got="99", note="was clear"),
    # ---------------------------------------------------------------- ImageFolder
    Case("formats.ImageFolder", "empty", lambda tmp: imagefolder_with(tmp, lambda r: (r / "empty").mkdir()),
         FileNotFoundError, arg="root", expected="class sub-directories with images", got="no valid file",
         note="was clear"),
    Case("formats.ImageFolder", "empty", lambda tmp: (tmp / "e").mkdir() or F.ImageFolder(tmp / "e"),
         FileNotFoundError, arg="root", expected="class sub-directories with images", got="find any class folder",
         note="was clear"),
    Case("formats.ImageFolder", "truncated",
         lambda tmp: imagefolder_with(tmp, lambda r: (r / "circle/0.png").write_bytes(
             (r / "circle/0.png").read_bytes()[:60]))[0], ValueError,
         arg="0.png", expected="image file PIL can decode", got="truncated", note="was cryptic"),
    Case("formats.ImageFolder", "type", lambda: F.ImageFolder(None), TypeError,
         arg="root", expected="expected a path", got="NoneType", note="was cryptic"),
    # ---------------------------------------------------------------- CIFAR10
    Case("formats.CIFAR10", "security", lambda tmp: cifar(tmp, "test_batch", marker_payload(tmp)), ValueError,
         arg="test_batch", expected="CIFAR-10 python pickle", got="refused the global", note="was silent"),
    Case("formats.CIFAR10", "security", lambda tmp: cifar(tmp, "test_batch", marker_payload(tmp), verify_md5=True),
         ValueError, arg="verify_md5", expected="official CIFAR-10 file", got="got MD5", note="was clear"),
    Case("formats.CIFAR10", "security", lambda tmp: cifar(tmp, "batches.meta", Payload(eval, "1 + 1")),
         ValueError, arg="batches.meta", expected="CIFAR-10 python pickle", got="__builtin__.eval",
         note="was silent"),   # the eval ran before a TypeError
    Case("formats.CIFAR10", "truncated",
         lambda tmp: cifar(tmp, "test_batch", (fx() / "cifar-10-batches-py/test_batch").read_bytes()[:700]),
         ValueError, arg="test_batch", expected="CIFAR-10 python pickle", got="truncated", note="was cryptic"),
    Case("formats.CIFAR10", "dtype", lambda tmp: cifar(tmp, "test_batch", batch(data=np.zeros((2, 3072)))),
         ValueError, arg="'data'", expected="uint8 array of shape (N, 3072)", got="float64", note="was silent"),
    Case("formats.CIFAR10", "shape", lambda tmp: cifar(tmp, "test_batch", batch(data=np.zeros((2, 100), np.uint8))),
         ValueError, arg="'data'", expected="uint8 array of shape (N, 3072)", got="(2, 100)", note="was cryptic"),
    Case("formats.CIFAR10", "value", lambda tmp: cifar(tmp, "test_batch", batch(labels=[10, 1])), ValueError,
         arg="'labels'[0]", expected="<= 9", got="10", note="was silent"),
    Case("formats.CIFAR10", "shape", lambda tmp: cifar(tmp, "test_batch", batch(labels=[1])), ValueError,
         arg="'labels'", expected="list of 2 ints", got="1 labels", note="was silent"),
    Case("formats.CIFAR10", "missing-key",
         lambda tmp: cifar(tmp, "test_batch", {k: v for k, v in batch().items() if k != "labels"}), ValueError,
         arg="'labels'", expected="test_batch", got="found keys", note="was cryptic"),
    Case("formats.CIFAR10", "schema", lambda tmp: cifar(tmp, "test_batch", [1, 2, 3]), ValueError,
         arg="test_batch", expected="dict with 'data' and 'labels'", got="list", note="was cryptic"),
    Case("formats.CIFAR10", "schema", lambda tmp: cifar(tmp, "batches.meta", {"label_names": ["a"] * 9}), ValueError,
         arg="'label_names'", expected="10 class names", got="9", note="was silent"),
    Case("formats.CIFAR10", "type", lambda: F.CIFAR10(fx(), "test", verify_md5="no"), TypeError,
         arg="verify_md5", expected="True or False", got="'no'", note="was silent"),
    Case("formats.CIFAR10", "value", lambda: F.CIFAR10(fx(), "val", verify_md5=False), ValueError,
         arg="split", expected="['train', 'test']", got="'val'", note="was clear"),
    Case("formats.CIFAR10", "path", lambda tmp: F.CIFAR10(tmp), FileNotFoundError,
         arg="root", expected="CIFAR-10 python batches", got="missing ['data_batch_1'", note="was clear"),
    # ---------------------------------------------------------------- box, polygon and RLE helpers
    Case("formats.xywh_to_xyxy", "shape", lambda: F.xywh_to_xyxy(torch.zeros(2, 3)), ValueError,
         arg="boxes", expected="(*, 4)", got="(2, 3)", note="was cryptic"),
    Case("formats.xywh_to_xyxy", "nan", lambda: F.xywh_to_xyxy(BOX([0, float("nan"), 1, 1])), ValueError,
         arg="boxes", expected="finite", got="1 NaN", note="was silent"),
    Case("formats.xywh_to_xyxy", "inf", lambda: F.xywh_to_xyxy(BOX([0, 0, float("inf"), 1])), ValueError,
         arg="boxes", expected="finite", got="1 inf", note="was silent"),
    Case("formats.xywh_to_xyxy", "negative", lambda: F.xywh_to_xyxy(BOX([0, 0, 1, 1], [0, 0, -1, 1])), ValueError,
         arg="boxes", expected="w, h >= 0", got="at row 1", note="was silent"),
    Case("formats.xywh_to_xyxy", "type", lambda: F.xywh_to_xyxy([[0, 0, 1, 1]]), TypeError,
         arg="boxes", expected="torch.Tensor", got="list", note="was cryptic"),
    Case("formats.polygons_to_mask", "shape", lambda: F.polygons_to_mask([[1, 2, 3, 4]], (8, 8)), ValueError,
         arg="polygon 0", expected="even number (>= 6)", got="got 4 coordinates", note="was clear"),
    Case("formats.polygons_to_mask", "zero", lambda: F.polygons_to_mask([], (0, 8)), ValueError,
         arg="size_hw", expected="positive int", got="(0, 8)", note="was silent"),
    Case("formats.polygons_to_mask", "type", lambda: F.polygons_to_mask("abcdef", (8, 8)), TypeError,
         arg="polygons", expected="list of polygons", got="str", note="was cryptic"),
    Case("formats.polygons_to_mask", "nan", lambda: F.polygons_to_mask([[1, 1, 5, float("nan"), 5, 5]], (8, 8)),
         ValueError, arg="polygon 0 coordinate 3", expected="finite number", got="nan", note="was silent"),
    Case("formats.polygons_to_mask", "zero", lambda: F.polygons_to_mask([[1, 1, 5, 1, 5, 5]], (8, 8), (0, 1)),
         ValueError, arg="scale_xy", expected="> 0", got="0", note="was silent"),
    Case("formats.polygons_to_mask", "huge", lambda: F.polygons_to_mask([], 100_000), ValueError,
         arg="size_hw", expected="at most 16384", got="100000", note="was silent"),
    Case("formats.rle_decode", "schema", lambda: F.rle_decode({"size": "ab", "counts": [1]}), ValueError,
         arg="rle.size", expected="[h, w]", got="'ab'", note="was cryptic"),
    Case("formats.rle_decode", "type", lambda: F.rle_decode({"size": [2.5, 2], "counts": [5]}), TypeError,
         arg="rle.size", expected="int", got="2.5", note="was silent"),
    Case("formats.rle_decode", "shape", lambda: F.rle_decode({"size": [3, 4], "counts": [3, 2]}), ValueError,
         arg="rle.counts", expected="summing to h * w = 3 * 4 = 12", got="summing to 5", note="was clear"),
    Case("formats.rle_decode", "corrupt", lambda: F.rle_decode({"size": [3, 4], "counts": "1\x01"}), ValueError,
         arg="rle.counts", expected="compressed RLE string", got="position 1", note="was cryptic"),
    Case("formats.rle_decode", "truncated", lambda: F.rle_decode({"size": [3, 4], "counts": "1P"}), ValueError,
         arg="rle.counts", expected="compressed RLE string", got="ends inside a number", note="was cryptic"),
    Case("formats.rle_decode", "type", lambda: F.rle_decode({"size": [3, 4], "counts": None}), TypeError,
         arg="rle.counts", expected="list of run lengths", got="NoneType", note="was cryptic"),
    Case("formats.rle_decode", "type", lambda: F.rle_decode("abc"), TypeError,
         arg="rle", expected="RLE dict", got="str", note="was cryptic"),
    Case("formats.rle_decode", "type", lambda: F.rle_decode({"size": [3, 4], "counts": [1.5, 10.5]}), TypeError,
         arg="rle.counts[0]", expected="int", got="1.5", note="was cryptic"),
    Case("formats.rle_decode", "missing-key", lambda: F.rle_decode({"size": [3, 4]}), ValueError,
         arg="rle", expected="'size' and 'counts'", got="['size']", note="was clear"),
    Case("formats.rle_decode", "huge", lambda: F.rle_decode({"size": [10**6, 10**6], "counts": [10**12]}), ValueError,
         arg="rle.size", expected="<= 16384", got="1000000", note="was silent"),
    Case("formats.rle_encode", "shape", lambda: F.rle_encode(torch.zeros(2, 3, 4, dtype=torch.bool)), ValueError,
         arg="mask", expected="2-d", got="3-d", note="was cryptic"),
    Case("formats.rle_encode", "dtype", lambda: F.rle_encode(torch.rand(3, 4)), ValueError,
         arg="mask", expected="dtype bool", got="torch.float32", note="was silent"),
    Case("formats.rle_encode", "type", lambda: F.rle_encode(torch.zeros(3, 4, dtype=torch.bool), compressed="yes"),
         TypeError, arg="compressed", expected="True or False", got="'yes'", note="was silent"),
    Case("formats.rle_encode", "empty", lambda: F.rle_encode(torch.zeros(0, 4, dtype=torch.bool)), ValueError,
         arg="mask", expected="non-empty", got="(0, 4)", note="was silent"),
    Case("formats.segmentation_to_mask", "type", lambda: F.segmentation_to_mask(5, (4, 4), (4, 4)), TypeError,
         arg="segmentation", expected="list of polygons or an RLE dict", got="int", note="was clear"),
    Case("formats.segmentation_to_mask", "zero", lambda: F.segmentation_to_mask([[1, 1, 3, 1, 3, 3]], (0, 4), (4, 4)),
         ValueError, arg="orig_hw", expected="positive int", got="(0, 4)", note="was cryptic"),
    Case("formats.segmentation_to_mask", "shape",
         lambda: F.segmentation_to_mask({"size": [2, 2], "counts": [4]}, (3, 3), (3, 3)), ValueError,
         arg="segmentation", expected="image's size (3, 3)", got="size (2, 2)", note="was clear"),
    # ---------------------------------------------------------------- VQA helpers
    Case("formats.normalize_answer", "type", lambda: F.normalize_answer(None), TypeError,
         arg="answer", expected="string", got="NoneType", note="was silent"),
    Case("formats.normalize_answer", "type", lambda: F.normalize_answer(123), TypeError,
         arg="answer", expected="string", got="int 123", note="was silent"),
    Case("formats.vqa_score", "type", lambda: F.vqa_score("red", "red"), TypeError,
         arg="human_answers", expected="list of strings", got="str", note="was silent"),
    Case("formats.vqa_score", "empty", lambda: F.vqa_score("red", []), ValueError,
         arg="human_answers", expected="non-empty", got="[]", note="was silent"),
    Case("formats.vqa_targets", "type", lambda: F.vqa_targets("abc", ["red"]), TypeError,
         arg="metas", expected="list of meta dicts", got="str", note="was cryptic"),
    Case("formats.vqa_targets", "type", lambda: F.vqa_targets([5], ["red"]), TypeError,
         arg="metas[0]", expected="meta dict", got="int", note="was cryptic"),
    Case("formats.vqa_targets", "nan", lambda: F.vqa_targets([{"answer_scores": {"red": float("nan")}}], ["red"]),
         ValueError, arg="answer_scores", expected="finite number", got="nan", note="was silent"),
    Case("formats.vqa_targets", "huge", lambda: F.vqa_targets([{"answer_scores": {"red": 3.0}}], ["red"]),
         ValueError, arg="answer_scores", expected="<= 1", got="3.0", note="was silent"),
    Case("formats.vqa_targets", "value", lambda: F.vqa_targets([{}], ["red", "red"]), ValueError,
         arg="answer_vocab", expected="distinct", got="'red'", note="was silent"),
    Case("formats.vqa_targets", "type", lambda: F.vqa_targets([{}], "red"), TypeError,
         arg="answer_vocab", expected="list of strings", got="str", note="was silent"),
    # ---------------------------------------------------------------- IDX (MNIST / Fashion-MNIST)
    Case("formats.read_idx", "missing-key", lambda tmp: F.read_idx(tmp / "none.idx"), FileNotFoundError,
         arg="path", expected="an IDX file", got="none.idx", note="new"),
    Case("formats.read_idx", "corrupt", lambda tmp: (tmp / "a.idx").write_bytes(b"\x01\x02\x08\x01xxxx") and
         F.read_idx(tmp / "a.idx"), ValueError, arg="a.idx", expected="IDX magic number", got="01 02 08 01", note="new"),
    Case("formats.read_idx", "truncated", lambda tmp: (tmp / "a.idx").write_bytes(idx_bytes(b"\0\0\x08\x02", (3, 4),
         bytes(11))) and F.read_idx(tmp / "a.idx"), ValueError, arg="a.idx", expected="12 bytes", got="got 11",
         note="new"),
    Case("formats.read_idx", "truncated", lambda tmp: (tmp / "a.idx").write_bytes(b"\0\0\x08\x03\0\0") and
         F.read_idx(tmp / "a.idx"), ValueError, arg="a.idx", expected="3 dimensions", got="6-byte file", note="new"),
    Case("formats.read_idx", "huge", lambda tmp: (tmp / "a.idx").write_bytes(idx_bytes(b"\0\0\x08\x03",
         (2**15, 2**15, 2**15))) and F.read_idx(tmp / "a.idx"), ValueError, arg="a.idx", expected="at most",
         got="(32768, 32768, 32768)", note="new"),
    Case("formats.read_idx", "corrupt", lambda tmp: (tmp / "a.gz").write_bytes(b"\x1f\x8b garbage") and
         F.read_idx(tmp / "a.gz"), ValueError, arg="a.gz", expected="gzip-compressed IDX", got="does not decompress",
         note="new"),
    Case("formats.write_idx", "type", lambda tmp: F.write_idx([1, 2], tmp / "a.idx"), TypeError,
         arg="array", expected="NumPy array", got="list", note="new"),
    Case("formats.write_idx", "dtype", lambda tmp: F.write_idx(np.zeros(3, np.uint16), tmp / "a.idx"), ValueError,
         arg="array", expected="1-4 dims of", got="uint16", note="new"),
    Case("formats.FashionMNIST", "path", lambda tmp: F.FashionMNIST(tmp / "nowhere"), FileNotFoundError,
         arg="root", expected="four Fashion-MNIST IDX files", got="nowhere", note="new"),
    Case("formats.FashionMNIST", "value", lambda tmp: F.FashionMNIST(fx() / "fashion-mnist", "validation"),
         ValueError, arg="split", expected="one of ['train', 'test']", got="'validation'", note="new"),
    Case("formats.FashionMNIST", "schema", lambda tmp: F.FashionMNIST(idx_copy(
         tmp, "train-labels-idx1-ubyte.gz", __import__("gzip").compress(idx_bytes(b"\0\0\x08\x01", (5,), bytes(5)))),
         "train"), ValueError, arg="train-labels-idx1-ubyte.gz", expected="6 uint8 labels", got="(5,)", note="new"),
    Case("formats.FashionMNIST", "value", lambda tmp: F.FashionMNIST(idx_copy(
         tmp, "train-labels-idx1-ubyte.gz", __import__("gzip").compress(idx_bytes(b"\0\0\x08\x01", (6,), bytes([0, 1, 2, 3, 4, 12]))))),
         ValueError, arg="labels", expected="below the 10 class names", got="12", note="new"),
    Case("formats.IDXClassification.tensors", "huge", lambda tmp: F.FashionMNIST(fx() / "fashion-mnist").tensors(99),
         ValueError, arg="n", expected="<= 6", got="99", note="new"),
    Case("formats.IDXClassification.tensors", "value",
         lambda tmp: F.FashionMNIST(fx() / "fashion-mnist").tensors(channels=2), ValueError,
         arg="channels", expected="one of", got="2", note="new"),
    Case("formats.IDXClassification", "type", lambda tmp: F.MNIST(fx() / "fashion-mnist", class_names="0123456789"),
         TypeError, arg="class_names", expected="list", got="str", note="new"),
    # ---------------------------------------------------------------- fixtures and paths
    Case("formats.write_fixtures", "path", lambda tmp: (tmp / "f").write_text("x") and F.write_fixtures(tmp / "f/sub"),
         ValueError, arg="root", expected="a folder to write into", got="below the file", note="was cryptic"),
    Case("formats.write_fixtures", "type", lambda: F.write_fixtures(None), TypeError,
         arg="root", expected="expected a path", got="NoneType", note="was cryptic"),
    Case("formats.path_inside", "security", lambda tmp: F.path_inside(tmp, "../x.jpg", "file_name"), ValueError,
         arg="file_name", expected="inside the image folder", got="'../x.jpg'", note="new"),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, tmp_path):
    check_case(case, tmp_path)
    assert not (tmp_path / "pwned").exists(), "a crafted CIFAR pickle ran its payload"
