"Shared pytest configuration: quick mode, results in a temp dir, a fixed thread count."
import os
import pytest
import torch

os.environ.setdefault("VLNOTES_QUICK", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path, monkeypatch):
    "Never let a test overwrite the committed full-mode claim results."
    monkeypatch.setenv("VLNOTES_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("VLNOTES_QUICK", "1")
