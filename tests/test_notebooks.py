"Every notebook in nbs/ runs top to bottom in quick mode (`VLNOTES_QUICK=1`)."
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NBS = Path(__file__).resolve().parents[1] / "nbs"
SKIP_DIRS = {"guides"}   # prose guides: rendered by the docs, not run here


def _runnable(path: Path) -> bool:
    "Notebooks anywhere under nbs/, except names starting with '_' or '.' (at any level) and the skipped folders."
    parts = path.relative_to(NBS).parts
    return not any(p.startswith(("_", ".")) for p in parts) and parts[0] not in SKIP_DIRS


NOTEBOOKS = sorted(p for p in NBS.rglob("*.ipynb") if _runnable(p))
IDS = [p.relative_to(NBS).with_suffix("").as_posix() for p in NOTEBOOKS]   # e.g. "foundations/02_convert"

def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2, f"expected notebooks in {NBS}, found {NOTEBOOKS}"

@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("VLNOTES_QUICK", "1")
    monkeypatch.setenv("VLNOTES_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    print(f"{path.name}: {time.perf_counter() - start:.1f}s")
