"""The `vlnotes` CLI: papers found from their folders, `reproduce` with progress on throwaway notebooks (one passes,
one raises), and the house rule that each paper notebook records its claims under its own id."""
import json, re
from pathlib import Path

import nbformat
import pytest
from vlnotes.tools.cli import GROUPS, PaperLayoutError, main, paper_notebooks

NBS = Path(__file__).resolve().parents[1] / "nbs"
CLAIM_CELL = """from vlnotes.core import ClaimRegistry
ClaimRegistry("toy").check("C1", "two is more than one", {"a": 2, "b": 1}, "a > b")"""


def _write_nb(path, *sources, title="Toy paper"):
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {title}\n> a test")] +
                                  [nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)


@pytest.fixture
def nbs(tmp_path):
    d = tmp_path / "nbs"
    _write_nb(d / "foundations/00_found.ipynb", "#| default_exp found")              # foundations are not papers
    _write_nb(d / "papers/_template.ipynb", "#| default_exp papers.mypaper")        # skipped: leading underscore
    _write_nb(d / "papers/.ipynb_checkpoints/10_toy-checkpoint.ipynb", "x = 1")     # skipped: hidden folder
    _write_nb(d / "papers/10_backbones/10_toy.ipynb", "#| default_exp papers.toy", CLAIM_CELL, title="Toy net")
    _write_nb(d / "papers/20_contrastive/20_broken.ipynb", "#| default_exp papers.broken", "raise RuntimeError('boom')")
    return d


def test_papers_found_from_their_folders(nbs):
    papers = paper_notebooks(nbs)
    assert list(papers) == ["toy", "broken"]
    toy = papers["toy"]
    assert (toy.group, toy.group_title, toy.title) == (10, GROUPS[10], "Toy net")
    assert toy.path == nbs / "papers/10_backbones/10_toy.ipynb"


@pytest.mark.parametrize("rel, source, message", [
    ("papers/10_backbones/11_nodexp.ipynb", "x = 1", "expected a `#| default_exp papers.<id>` cell, got none"),
    ("papers/10_backbones/11_other.ipynb", "#| default_exp papers.thing", "must be named `<NN>_thing.ipynb`"),
    ("papers/10_backbones/thing.ipynb", "#| default_exp papers.thing", "must be named `<NN>_thing.ipynb`"),
    ("papers/10_backbones/11_core.ipynb", "#| default_exp core", "got `#| default_exp core`"),
    ("papers/15_misc/15_x.ipynb", "#| default_exp papers.x", "with NN one of [10, 20"),
    ("papers/backbones/10_x.ipynb", "#| default_exp papers.x", "got 'backbones'"),
    ("papers/20_contrastive/21_toy.ipynb", "#| default_exp papers.toy", "paper id 'toy' is used twice"),
    ("papers/10_x.ipynb", "#| default_exp papers.x", "directly in a group folder"),
])
def test_layout_errors_say_what_was_expected(nbs, rel, source, message, capsys):
    _write_nb(nbs / rel, source)
    with pytest.raises(PaperLayoutError, match=re.escape(message)): paper_notebooks(nbs)
    assert main(["--nbs-dir", str(nbs), "list"]) == 2
    assert message in capsys.readouterr().err


def test_list_shows_group_id_notebook_verdicts_title(nbs, capsys):
    assert main(["--nbs-dir", str(nbs), "list", "--results-dir", str(nbs.parent / "res")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["group", "id", "notebook", "claims", "title"]
    assert re.match(r"10 Backbones\s+toy\s+papers/10_backbones/10_toy.ipynb\s+not run\s+Toy net$", lines[1]), lines
    assert lines[2].startswith(f"20 {GROUPS[20]}") and "broken" in lines[2]
    assert len(lines) == 3, "foundations, the template and checkpoints are not papers"


def test_reproduce_shows_progress_and_saves_notebook_and_claims(nbs, tmp_path, capsys):
    res = tmp_path / "res"
    (res / "claims").mkdir(parents=True)
    (res / "claims/toy.json").write_text(json.dumps([{"paper": "toy", "claim_id": "C9", "statement": "stale",
                                                       "measured": {"x": 1}, "expectation": "x > 0",
                                                       "verdict": "reproduced"}]))
    assert main(["--nbs-dir", str(nbs), "reproduce", "toy", "--quick", "--results-dir", str(res)]) == 0
    cap = capsys.readouterr()
    assert "two is more than one" in cap.out and "reproduced" in cap.out
    assert "stale" not in cap.out, "claims of an earlier run are dropped"
    assert re.search(r"^toy\s+ok\s+0m\d\d\.\ds\s+\S*runs/toy.ipynb$", cap.out, re.M), cap.out
    assert re.search(r"^total\s+0m\d\d\.\ds", cap.out, re.M)
    last = cap.err.splitlines()[-1].split("\r")[-1]
    assert re.match(r"paper 1/1 toy \|[^|]+\| cell 2/2 done \[00:\d\d elapsed\]", last), cap.err
    claims = json.loads((res / "claims/toy.json").read_text())
    assert [(c["claim_id"], c["verdict"], c["mode"]) for c in claims] == [("C1", "reproduced", "quick")]
    executed = nbformat.read(res / "runs/toy.ipynb", as_version=4)
    assert executed.cells[2].execution_count == 2, "the executed notebook is saved"


def test_reproduce_keeps_failed_notebook_goes_on_and_exits_1(nbs, tmp_path, capsys):
    res = tmp_path / "res"
    assert main(["--nbs-dir", str(nbs), "reproduce", "all", "--quick", "--results-dir", str(res)]) == 1
    cap = capsys.readouterr()
    assert ("broken FAILED: cell 2/2 (`raise RuntimeError('boom')`) raised RuntimeError: boom\n"
            f"  the executed notebook, up to the failing cell, is kept at {res / 'runs/broken.ipynb'}") in cap.err
    failed = nbformat.read(res / "runs/broken.ipynb", as_version=4)
    assert failed.cells[-1].outputs[0]["ename"] == "RuntimeError", "the kept notebook shows the error"
    assert (res / "claims/toy.json").exists(), "a failing paper does not stop the others"
    assert re.search(r"^toy\s+ok\s", cap.out, re.M) and re.search(r"^broken\s+FAILED\s", cap.out, re.M)
    assert "paper 1/2 toy" in cap.err and "paper 2/2 broken" in cap.err


def test_unknown_paper_is_an_error(nbs, capsys):
    assert main(["--nbs-dir", str(nbs), "reproduce", "nope"]) == 2
    assert "unknown paper(s) ['nope']" in capsys.readouterr().err


def test_repository_papers_record_claims_under_their_id():
    papers = paper_notebooks(NBS)
    assert papers, "no paper notebooks found under nbs/papers"
    wrong = {}
    for pid, p in papers.items():
        source = "\n".join("".join(c["source"]) for c in json.loads(p.path.read_text())["cells"])
        names = set(re.findall(r"""ClaimRegistry\(\s*["']([^"']+)["']""", source))
        if names != {pid}: wrong[p.path.relative_to(NBS).as_posix()] = sorted(names)
    assert not wrong, f"each paper notebook must use ClaimRegistry(<its id>) (and only that): {wrong}"


# --- issue 8: checks before anything runs, one-line errors, --debug ---

def _no_run(*args, **kwargs): raise AssertionError("a notebook ran although the arguments were wrong")


@pytest.mark.parametrize("setup, argv", [
    (lambda res: (res.parent / "afile").write_text("x"), ["--results-dir", "{res}/../afile/r"]),
    (lambda res: (res.mkdir(), (res / "runs").write_text("x")), ["--results-dir", "{res}"]),
    (lambda res: (res.mkdir(), (res / "claims").write_text("x")), ["--results-dir", "{res}"]),
])
def test_reproduce_checks_the_results_folder_before_running_anything(nbs, tmp_path, capsys, monkeypatch,
                                                                     setup, argv):
    import vlnotes.tools.cli as cli
    monkeypatch.setattr(cli, "run_notebook", _no_run)
    res = tmp_path / "res"
    setup(res)
    argv = [a.format(res=res) for a in argv]
    assert main(["--nbs-dir", str(nbs), "reproduce", "toy", "--quick", *argv]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "kept at" not in cap.err, "nothing ran, so no notebook is mentioned"
    assert re.fullmatch(r"vlnotes reproduce: error: --results-dir: expected a (writable folder|folder to write into), "
                        r"got \S+(, which is a file| \(.+\))\n", cap.err), cap.err


def test_a_run_that_fails_before_its_notebook_is_written_says_so(nbs, tmp_path, capsys, monkeypatch):
    import vlnotes.tools.cli as cli
    res = tmp_path / "res"
    (res / "runs").mkdir(parents=True)
    (res / "runs/toy.ipynb").write_text("an executed notebook of an earlier run")
    monkeypatch.setattr(cli, "run_notebook", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left")))
    assert main(["--nbs-dir", str(nbs), "reproduce", "toy", "--quick", "--results-dir", str(res)]) == 1
    err = capsys.readouterr().err
    assert "toy FAILED: OSError: [Errno 28] No space left\n  no executed notebook was written" in err, err
    assert "kept at" not in err and not (res / "runs/toy.ipynb").exists(), "the earlier run's notebook is not kept"
    assert err.splitlines()[-1] == "vlnotes reproduce: error: 1 of 1 paper(s) failed: ['toy'] (see the messages above)"


def test_progress_of_a_notebook_without_code_cells(tmp_path):
    import io
    from vlnotes.tools.cli import run_notebook
    _write_nb(tmp_path / "empty.ipynb")
    bar = io.StringIO()
    run_notebook(tmp_path / "empty.ipynb", tmp_path / "out/empty.ipynb", True, tmp_path / "res", file=bar)
    assert "cell 0/0 done" in bar.getvalue().split("\r")[-1]
    assert nbformat.read(tmp_path / "out/empty.ipynb", as_version=4).cells[0].cell_type == "markdown"


@pytest.mark.parametrize("argv, env", [(["--debug"], {}), ([], {"VLNOTES_DEBUG": "1"}),
                                       (["--debug"], {"VLNOTES_DEBUG": "0"})])
def test_debug_reraises_the_error(nbs, monkeypatch, argv, env):
    for k, v in env.items(): monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match="'all' alone"): main([*argv, "--nbs-dir", str(nbs), "reproduce", "all", "toy"])


def test_debug_also_after_the_command(nbs):
    with pytest.raises(ValueError, match="'all' alone"):
        main(["--nbs-dir", str(nbs), "reproduce", "all", "toy", "--debug"])


def test_interrupt_is_one_line_and_status_130(nbs, capsys, monkeypatch):
    import vlnotes.tools.cli as cli
    monkeypatch.setattr(cli, "paper_notebooks", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert main(["--nbs-dir", str(nbs), "list"]) == 130
    assert capsys.readouterr().err == "vlnotes list: error: interrupted\n"


def test_an_unexpected_error_is_a_bug_and_keeps_its_traceback(nbs, monkeypatch):
    import vlnotes.tools.cli as cli
    monkeypatch.setattr(cli, "paper_notebooks", lambda *a: (_ for _ in ()).throw(ZeroDivisionError("a bug")))
    with pytest.raises(ZeroDivisionError): main(["--nbs-dir", str(nbs), "list"])


def test_readme_check_passes_after_readme(nbs, capsys):
    _write_nb(nbs / "index.ipynb", "print('hi')")
    assert main(["--nbs-dir", str(nbs), "readme"]) == 0
    assert main(["--nbs-dir", str(nbs), "readme", "--check"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "README.md is up to date"
    (nbs.parent / "README.md").write_text((nbs.parent / "README.md").read_text().replace("hi", "ho"))
    assert main(["--nbs-dir", str(nbs), "readme", "--check"]) == 1
    assert "differs from line" in capsys.readouterr().err
