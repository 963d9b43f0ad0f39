"The `vlnotes` CLI on throwaway paper notebooks: results saved, claims printed, failures give a non-zero exit."
import json
import nbformat
import pytest
from vlnotes.cli import main

CLAIM_CELL = """from vlnotes.core import ClaimRegistry
ClaimRegistry("toy").check("C1", "two is more than one", {"a": 2, "b": 1}, "a > b", holds=2 > 1)"""

def _write_nb(path, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Toy paper\n> a test")] +
                                  [nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)

@pytest.fixture
def nbs(tmp_path):
    d = tmp_path / "nbs"; d.mkdir()
    _write_nb(d / "00_found.ipynb", "x = 1")          # foundations are not papers
    _write_nb(d / "10_toy.ipynb", CLAIM_CELL)
    _write_nb(d / "11_broken.ipynb", "raise RuntimeError('boom')")
    return d

def test_list_shows_only_papers(nbs, capsys):
    assert main(["--nbs-dir", str(nbs), "list"]) == 0
    out = capsys.readouterr().out
    assert "toy" in out and "broken" in out and "found" not in out

def test_reproduce_saves_notebook_and_claims(nbs, tmp_path, capsys):
    res = tmp_path / "res"
    assert main(["--nbs-dir", str(nbs), "reproduce", "toy", "--quick", "--results-dir", str(res)]) == 0
    out = capsys.readouterr().out
    assert "two is more than one" in out and "reproduced" in out
    claims = json.loads((res / "claims" / "toy.json").read_text())
    assert claims[0]["verdict"] == "reproduced" and claims[0]["mode"] == "quick"
    executed = nbformat.read(res / "runs" / "10_toy.ipynb", as_version=4)
    assert executed.cells[1].outputs, "the executed notebook keeps its outputs"

def test_reproduce_fails_nonzero_and_keeps_going(nbs, tmp_path, capsys):
    res = tmp_path / "res"
    assert main(["--nbs-dir", str(nbs), "reproduce", "all", "--quick", "--results-dir", str(res)]) == 1
    err = capsys.readouterr().err
    assert "broken" in err and "boom" in err
    assert (res / "claims" / "toy.json").exists(), "a failing paper does not stop the others"

def test_unknown_paper_is_an_error(nbs, capsys):
    assert main(["--nbs-dir", str(nbs), "reproduce", "nope"]) == 2
    assert "unknown paper" in capsys.readouterr().err
