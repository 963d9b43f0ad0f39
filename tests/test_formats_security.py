"""Issue 8's two security holes in vlnotes.data.formats, with tests that would have caught them: a crafted CIFAR-10
pickle must not run, and a path read from a data file must not leave its image folder. Plus the behaviour that
came with the checks (real-format pickles still read; segmentations all or none)."""
import hashlib, json, os, pickle, shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from badinput import raises
from vlnotes.data import formats as F


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fixtures")
    F.write_fixtures(root)
    return root


class Payload:
    def __init__(self, fn, *args): self.fn, self.args = fn, args
    def __reduce__(self): return (self.fn, self.args)


def cifar_copy(fx, tmp):
    shutil.copytree(fx / "cifar-10-batches-py", tmp / "cifar-10-batches-py")
    return tmp / "cifar-10-batches-py"


# ---------------------------------------------------------------- CIFAR-10: no code runs

PAYLOADS = {
    "os.system": lambda marker: Payload(os.system, f"touch {marker}"),
    "builtins.exec": lambda marker: Payload(exec, f"open({str(marker)!r}, 'w').close()"),
    "pathlib.Path.touch": lambda marker: Payload(Path.touch, marker),
}


@pytest.mark.parametrize("verify_md5", [True, False])
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_crafted_cifar_pickle_never_runs(fx, tmp_path, payload, protocol, verify_md5):
    base, marker = cifar_copy(fx, tmp_path), tmp_path / "pwned"
    (base / "test_batch").write_bytes(pickle.dumps({"data": PAYLOADS[payload](marker), "labels": [0]}, protocol))
    with raises(ValueError, "test_batch") as e: F.CIFAR10(tmp_path, "test", verify_md5=verify_md5)
    assert not marker.exists(), f"the crafted pickle ran ({payload}, protocol {protocol})"
    assert ("MD5" if verify_md5 else "refused the global") in str(e.value)


def test_refused_even_when_the_md5_matches(fx, tmp_path, monkeypatch):
    "Defence in depth: a file whose hash is trusted is still read by the restricted unpickler."
    base, marker = cifar_copy(fx, tmp_path), tmp_path / "pwned"
    raw = pickle.dumps({"data": Payload(os.system, f"touch {marker}"), "labels": [0]}, protocol=2)
    (base / "test_batch").write_bytes(raw)
    md5 = dict(F.CIFAR10_MD5, test_batch=hashlib.md5(raw).hexdigest(),
               **{"batches.meta": hashlib.md5((base / "batches.meta").read_bytes()).hexdigest()})
    monkeypatch.setattr(F, "CIFAR10_MD5", md5)
    with raises(ValueError, "refused the global", "system"): F.CIFAR10(tmp_path, "test")
    assert not marker.exists()


def test_cifar_reads_without_pickle_load_or_torchvision(fx, monkeypatch):
    def forbidden(*a, **k): raise AssertionError("the CIFAR reader must not call this")
    monkeypatch.setattr(pickle, "load", forbidden); monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(F.torchvision.datasets, "CIFAR10", forbidden)
    ds = F.CIFAR10(fx, "train", verify_md5=False)
    assert len(ds) == 5 and [ds[i]["label"] for i in range(5)] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("bytes_keys", [False, True])
def test_real_format_batches_read(fx, tmp_path, protocol, bytes_keys):
    "Python-2-style batches (bytes keys, protocol 2) and newer protocols read the same."
    base = cifar_copy(fx, tmp_path)
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    batch = {"batch_label": "testing batch 1 of 1", "labels": [3, 7], "data": data, "filenames": ["a", "b"]}
    if bytes_keys: batch = {k.encode(): v for k, v in batch.items()}
    (base / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
    ds = F.CIFAR10(tmp_path, "test", verify_md5=False)
    assert [ds[i]["label"] for i in range(2)] == [3, 7]
    want = torch.from_numpy(data[1].reshape(3, 32, 32).astype(np.float32) / 255)
    assert torch.allclose(ds[1]["image"], want)


def test_truncated_and_missing_batches_name_the_path(fx, tmp_path):
    base = cifar_copy(fx, tmp_path)
    (base / "data_batch_3").write_bytes((base / "data_batch_3").read_bytes()[:1000])
    with raises(ValueError, str(base / "data_batch_3"), "truncated"): F.CIFAR10(tmp_path, "train", verify_md5=False)
    (base / "data_batch_3").unlink()
    with raises(FileNotFoundError, "data_batch_3"): F.CIFAR10(tmp_path, "train", verify_md5=False)
    assert len(F.CIFAR10(tmp_path, "test", verify_md5=False)) == 2   # the test split does not need it


def test_md5_message_is_not_a_casual_recommendation(fx):
    with pytest.raises(ValueError) as e: F.CIFAR10(fx, "test")
    msg = str(e.value)
    assert "MD5" in msg and "Re-extract" in msg and "pass verify_md5=False to read" not in msg


# ---------------------------------------------------------------- paths stay inside the image folder

def write_json(tmp, name, data) -> Path:
    p = tmp / name; p.write_text(json.dumps(data)); return p


def coco_with(fx, tmp, file_name):
    d = json.loads((fx / "coco/annotations/captions_tiny.json").read_text())
    d["images"][0]["file_name"] = file_name
    return write_json(tmp, "captions_x.json", d)


@pytest.mark.parametrize("name", ["/etc/hostname", "../../../../../../etc/hostname", "../images/000000000001.jpg",
                                  "a/../../x.jpg"])
def test_coco_file_name_escape_refused_at_construction(fx, tmp_path, name):
    for reader in (F.CocoCaptions, F.CocoInstances):
        ann = coco_with(fx, tmp_path, name) if reader is F.CocoCaptions else None
        if ann is None:
            d = json.loads((fx / "coco/annotations/instances_tiny.json").read_text())
            d["images"][0]["file_name"] = name
            ann = write_json(tmp_path, "instances_x.json", d)
        with raises(ValueError, "images[0] (id 1).file_name", "inside the image folder", repr(name)):
            reader(fx / "coco/images", ann, 16)


def test_symlink_out_of_the_folder_refused_at_read(fx, tmp_path):
    images = tmp_path / "images"; shutil.copytree(fx / "coco/images", images)
    outside = tmp_path / "outside.jpg"; shutil.copy(images / "000000000001.jpg", outside)
    (images / "000000000001.jpg").unlink(); (images / "000000000001.jpg").symlink_to(outside)
    (images / "inside.jpg").symlink_to(images / "000000000002.jpg")          # a link that stays inside is fine
    ds = F.CocoCaptions(images, fx / "coco/annotations/captions_tiny.json", 16)
    with raises(ValueError, "image id 1 file_name", str(images), "resolves to", str(outside)): ds[0]
    assert ds[1]["image"].shape == (3, 16, 16)
    assert F.path_inside(images, "inside.jpg", "x") == (images / "000000000002.jpg").resolve()


def test_subfolders_inside_are_allowed(fx, tmp_path):
    images = tmp_path / "images"; (images / "sub").mkdir(parents=True)
    shutil.copy(fx / "coco/images/000000000001.jpg", images / "sub/a.jpg")
    ds = F.CocoCaptions(images, coco_with(fx, tmp_path, "sub/../sub/a.jpg"), 16)
    assert ds[0]["meta"]["file_name"] == "sub/../sub/a.jpg" and ds[0]["image"].shape == (3, 16, 16)


@pytest.mark.parametrize("key,value", [("filename", "/etc/hostname"), ("filename", "../../etc/hostname"),
                                       ("filepath", "/etc"), ("filepath", "../..")])
def test_karpathy_path_escape_refused(fx, tmp_path, key, value):
    d = json.loads((fx / "flickr30k/dataset_flickr30k.json").read_text())
    d["images"][1][key] = value
    with raises(ValueError, f"images[1].{key}", "inside the image folder", repr(value)):
        F.KarpathyCaptions(fx / "flickr30k/images", write_json(tmp_path, "k.json", d), "val")   # even another split


@pytest.mark.parametrize("template", ["{image_id.__class__}", "{image_id.__class__.__init__.__globals__}",
                                      "{data_subtype[0]}", "{0}", "{}", "{image_id:{data_subtype}}", "{foo}",
                                      "{image_id:999999999d}"])
def test_vqa_template_accepts_only_the_placeholders(fx, template):
    with raises(ValueError, "image_name", "only the placeholders"):
        F.VQAv2(fx / "vqa/tiny2014", fx / "vqa/v2_OpenEnded_mscoco_tiny2014_questions.json", image_name=template)


def test_vqa_template_result_stays_inside(fx, tmp_path):
    qfile = fx / "vqa/v2_OpenEnded_mscoco_tiny2014_questions.json"
    for template in ("/etc/{image_id}", "../{data_subtype}/{image_id}.jpg"):
        with raises(ValueError, "image_name", "inside the image folder"):
            F.VQAv2(fx / "vqa/tiny2014", qfile, image_name=template)
    d = json.loads(qfile.read_text()); d["data_subtype"] = "../../../etc"
    with raises(ValueError, "image_name", "inside the image folder", "../../../etc"):
        F.VQAv2(fx / "vqa/tiny2014", write_json(tmp_path, "q.json", d), image_name="{data_subtype}/{image_id}")
    ok = F.VQAv2(fx / "vqa/tiny2014", qfile, image_name="COCO_{data_subtype!s}_{image_id:012d}.jpg", image_size=8)
    assert ok[0]["meta"]["file_name"] == "COCO_tiny2014_000000000001.jpg"


# ---------------------------------------------------------------- behaviour that came with the checks

def test_segmentations_all_or_none(fx, tmp_path):
    d = json.loads((fx / "coco/annotations/instances_tiny.json").read_text())
    for a in d["annotations"]: del a["segmentation"]
    boxes_only = F.CocoInstances(fx / "coco/images", write_json(tmp_path, "instances_a.json", d), 16)
    assert not boxes_only.has_masks and boxes_only[0]["masks"] is None and boxes_only[0]["boxes"].shape == (2, 4)
    d = json.loads((fx / "coco/annotations/instances_tiny.json").read_text())
    del d["annotations"][2]["segmentation"]
    with raises(ValueError, "annotations[2]", "'segmentation'", "other 3"):
        F.CocoInstances(fx / "coco/images", write_json(tmp_path, "instances_b.json", d), 16)


def test_errors_come_at_construction_not_at_getitem(fx, tmp_path):
    "Every bad record of the issue fails when the file is read, before any sample is drawn."
    d = json.loads((fx / "coco/annotations/instances_tiny.json").read_text())
    d["annotations"][3]["segmentation"]["size"] = "ab"
    with raises(ValueError, "annotations[3] (id 4).segmentation.size", "'ab'"):
        F.CocoInstances(fx / "coco/images", write_json(tmp_path, "instances_c.json", d), 16)


def test_corrupt_image_names_the_path(fx, tmp_path):
    images = tmp_path / "images"; shutil.copytree(fx / "coco/images", images)
    p = images / "000000000002.jpg"; p.write_bytes(p.read_bytes()[:200])
    ds = F.CocoCaptions(images, fx / "coco/annotations/captions_tiny.json", 16)
    with raises(ValueError, str(p.resolve()), "corrupt, truncated"): ds[1]
