"""The pretrained registry end to end on the real recipes (quick variants): deterministic builds across processes,
one build when two processes ask at once, bad files rebuilt with a message, clear errors, and the command line."""
import json, os, subprocess, sys, warnings
from pathlib import Path

import pytest
import torch

from vlnotes.pretrained import (Recipe, _RECIPES, check_checkpoint, checkpoint_path, get_recipe, list_pretrained,
                                load_pretrained, read_metadata)

EXPECTED = {"clip-shapes", "clip-shapes-heldout", "vit-shapes", "resnet-shapes"}
BUILD = ("import sys, torch; torch.set_num_threads(1); from vlnotes.pretrained import load_pretrained; "
         "p = load_pretrained(sys.argv[1], quick=True, progress=False, cache_dir=sys.argv[2]); "
         "print('DIGEST', p.info['weights_sha256'])")


def build_in_process(name: str, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", BUILD, name, str(cache)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_registry_holds_the_shapes_world_checkpoints():
    assert EXPECTED <= set(list_pretrained())
    for name in EXPECTED:
        r = get_recipe(name)
        assert r.targets and r.eval_seed not in {r.data["seed"]}, name     # measured on a seed never trained on
        assert r.resolved(True).digest() != r.resolved(False).digest()


@pytest.mark.parametrize("name", ["resnet-shapes", "clip-shapes-heldout"])
def test_builds_are_deterministic_across_processes(name, tmp_path):
    procs = [build_in_process(name, tmp_path / f"cache{i}") for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs): assert p.returncode == 0, err[-2000:]
    digests = [next(l.split()[1] for l in out.splitlines() if l.startswith("DIGEST")) for out, _ in outs]
    assert digests[0] == digests[1]


def test_two_processes_asking_at_once_train_once(tmp_path):
    procs = [build_in_process("resnet-shapes", tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs): assert p.returncode == 0, err[-2000:]
    assert sum(out.count("building pretrained checkpoint") for out, _ in outs) == 1, outs
    assert len({next(l for l in out.splitlines() if l.startswith("DIGEST")) for out, _ in outs}) == 1
    assert sorted(p.name for p in (tmp_path / "pretrained").iterdir()) == [
        "resnet-shapes.quick.safetensors", "resnet-shapes.quick.safetensors.lock"]   # no temporary file left


def _load(name, cache, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        p = load_pretrained(name, quick=True, progress=False, cache_dir=cache, **kw)
    return p, [str(x.message) for x in w if issubclass(x.category, RuntimeWarning)]


def test_bad_files_are_detected_and_rebuilt(tmp_path, monkeypatch):
    p, msgs = _load("resnet-shapes", tmp_path)
    assert not msgs and not p.model.training and p.tokenizer is None
    digest = p.info["weights_sha256"]
    meta = read_metadata(p.path)
    assert meta["recipe"]["variant"] == "quick" and set(meta["quality"]) == {"test_acc", "all_acc"}
    assert meta["vlnotes_version"] and meta["recipe_digest"] == get_recipe("resnet-shapes").resolved(True).digest()

    p.path.write_bytes(p.path.read_bytes()[: len(p.path.read_bytes()) // 2])            # truncated
    q, msgs = _load("resnet-shapes", tmp_path)
    assert len(msgs) == 1 and "is corrupt" in msgs[0] and q.info["weights_sha256"] == digest

    raw = bytearray(p.path.read_bytes()); raw[-5] ^= 0x01; p.path.write_bytes(bytes(raw))   # one flipped bit
    assert "weights do not match" in check_checkpoint(p.path, get_recipe("resnet-shapes").resolved(True))
    q, msgs = _load("resnet-shapes", tmp_path)
    assert "weights do not match" in msgs[0] and q.info["weights_sha256"] == digest

    p.path.write_text("not a checkpoint")                                                  # overwritten
    with pytest.raises(ValueError, match="is corrupt.*vlnotes pretrain resnet-shapes"):
        load_pretrained("resnet-shapes", quick=True, cache_dir=tmp_path, build=False)

    r = get_recipe("resnet-shapes")
    monkeypatch.setitem(_RECIPES, "resnet-shapes", r.replace(train={**r.train, "lr": 1e-3}))   # the recipe changed
    _load("resnet-shapes", tmp_path)                                                     # rebuilt from the new recipe
    monkeypatch.setitem(_RECIPES, "resnet-shapes", r)
    q, msgs = _load("resnet-shapes", tmp_path)
    assert "is stale: it was built from another recipe" in msgs[0] and q.info["weights_sha256"] == digest


def test_clip_checkpoint_carries_its_tokenizer(tmp_path):
    p, _ = _load("clip-shapes-heldout", tmp_path)
    model, tok = p
    enc = tok.encode(["a red star"], max_length=model.context_length, padding="max_length")
    with torch.no_grad(): z = model.encode_text(enc["input_ids"], enc["attention_mask"], normalize=True)
    assert z.shape == (1, model.config.embed_dim) and torch.isfinite(z).all()


@pytest.mark.parametrize("call, exc, message", [
    (lambda d: load_pretrained("clip-shape", cache_dir=d), ValueError, "did you mean 'clip-shapes'"),
    (lambda d: load_pretrained(3, cache_dir=d), TypeError, "name: expected a str"),
    (lambda d: load_pretrained("vit-shapes", quick="yes", cache_dir=d), TypeError, "quick: expected True or False"),
    (lambda d: load_pretrained("vit-shapes", build=1, cache_dir=d), TypeError, "build: expected True or False"),
    (lambda d: load_pretrained("vit-shapes", quick=True, build=False, cache_dir=d), FileNotFoundError,
     "is missing; call load_pretrained"),
])
def test_clear_errors(call, exc, message, tmp_path):
    with pytest.raises(exc, match=message): call(tmp_path)


def test_cache_dir_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("VLNOTES_CACHE_DIR", str(tmp_path / "c"))
    assert checkpoint_path("vit-shapes", quick=True) == tmp_path / "c" / "pretrained" / "vit-shapes.quick.safetensors"
    monkeypatch.setenv("VLNOTES_CACHE_DIR", " ")
    with pytest.raises(ValueError, match="VLNOTES_CACHE_DIR: expected a directory path"):
        checkpoint_path("vit-shapes")


def _cli(*args, env=None):
    return subprocess.run([str(Path(sys.executable).parent / "vlnotes"), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def test_cli_pretrain(tmp_path):
    r = _cli("pretrain", "--list")
    assert r.returncode == 0 and all(n in r.stdout for n in EXPECTED), r.stderr
    for bad, message in ((["nope"], "did you mean") , (["all", "vit-shapes"], "'all' alone"), ([], "expected checkpoint names")):
        r = _cli("pretrain", *bad)
        assert r.returncode == 2 and "vlnotes pretrain: error:" in r.stderr and (message in r.stderr or bad == ["nope"]), r.stderr
    r = _cli("pretrain", "resnet-shapes", "--quick", "--no-progress", "--results-dir", str(tmp_path / "res"),
             env={"VLNOTES_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "res" / "pretrained" / "resnet-shapes.json").read_text())
    assert rec["quick"] is True and set(rec["quality"]) == {"test_acc", "all_acc"} and "| `resnet-shapes` |" in r.stdout
