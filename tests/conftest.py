"Shared pytest configuration: quick mode, results in a temp dir, a fixed thread count."
import atexit, os, shutil, tempfile

# Idle OpenMP threads spin by default; with several processes on 2 cores (notebook kernels, gloo workers)
# that spinning made the suite ~6x slower. Set before torch is imported; kernels and workers inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Under pytest-xdist (`make test` runs one worker per core) each worker and the notebook kernels it starts get one
# thread: two workers with two threads each would oversubscribe the cores.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER: os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
os.environ.setdefault("VLNOTES_QUICK", "1")
# Pretrained checkpoints (quick recipes) and the world tokenizer are cached per test session, never in the user's cache
# (and inherited by the notebook kernels the tests start).
# xdist workers share the controller's cache (builds are locked per file), so each checkpoint is built once.
if XDIST_WORKER and os.environ.get("VLNOTES_TEST_CACHE_DIR"):
    os.environ["VLNOTES_CACHE_DIR"] = os.environ["VLNOTES_TEST_CACHE_DIR"]
else:
    os.environ["VLNOTES_CACHE_DIR"] = os.environ["VLNOTES_TEST_CACHE_DIR"] = tempfile.mkdtemp(prefix="vlnotes-test-cache-")
    atexit.register(shutil.rmtree, os.environ["VLNOTES_CACHE_DIR"], ignore_errors=True)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1 if XDIST_WORKER else max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path, monkeypatch):
    "Never let a test overwrite the committed full-mode claim results."
    monkeypatch.setenv("VLNOTES_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("VLNOTES_QUICK", "1")
