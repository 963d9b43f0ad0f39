"Shared pytest configuration: quick mode, results in a temp dir, a fixed thread count."
import os

# Idle OpenMP threads spin by default; with several processes on 2 cores (notebook kernels, gloo workers)
# that spinning made the suite ~6x slower. Set before torch is imported; kernels and workers inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("VLNOTES_QUICK", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path, monkeypatch):
    "Never let a test overwrite the committed full-mode claim results."
    monkeypatch.setenv("VLNOTES_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("VLNOTES_QUICK", "1")
