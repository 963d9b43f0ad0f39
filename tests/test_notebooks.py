"Every notebook in nbs/ runs top to bottom in quick mode (`VLNOTES_QUICK=1`)."
import os, time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NBS = Path(__file__).resolve().parents[1] / "nbs"
NOTEBOOKS = sorted(p for p in NBS.glob("*.ipynb") if not p.name.startswith("_"))

def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2, f"expected notebooks in {NBS}, found {NOTEBOOKS}"

@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("VLNOTES_QUICK", "1")
    monkeypatch.setenv("VLNOTES_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NBS)}})
    start = time.perf_counter()
    client.execute()
    print(f"{path.name}: {time.perf_counter() - start:.1f}s")
