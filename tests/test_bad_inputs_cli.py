"""Bad-input matrix of the `vlnotes` command line (`vlnotes.tools.cli`): every command and option, the notebook
readers behind them and the progress display, each in a throwaway checkout under `tmp_path`.

A command-line case runs `main` twice. With `--debug` the error it reports propagates, and the kit checks its type
and message (argument, what was expected, what came). Without, it must be one line on stderr,
`vlnotes <command>: error: ...`, with the exit status 2 (bad arguments or inputs) or 1 (the command ran and failed),
and no traceback. The console script itself is run once per command at the end."""
import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from unittest import mock

import nbformat
import pytest
from badinput import Case, case_ids, check_case
from vlnotes import core
from vlnotes.tools import cli
from vlnotes.tools.cli import CommandFailed, PaperLayoutError, UsageError

COMMANDS = ("list", "reproduce", "readme", "docs")


def _nb(path: Path, *sources: str, title: str = "Toy"):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {title}\n> a test")] +
                                           [nbformat.v4.new_code_cell(s) for s in sources]), path)


def _checkout(root: Path) -> Path:
    "A throwaway vlnotes checkout: pyproject.toml, nbs/index.ipynb and one paper, `toy`; returns nbs/."
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "vlnotes"\n')
    nbs = root / "nbs"
    _nb(nbs / "index.ipynb", "print(1)")
    _nb(nbs / "papers/10_backbones/10_toy.ipynb", "#| default_exp papers.toy", "x = 1")
    return nbs


@dataclass
class Cli:
    "A `vlnotes` command line run in a throwaway checkout; `{root}` and `{nbs}` in `argv` are filled in."
    argv: list[str]
    setup: Callable[[Path], object] | None = None    # breaks something in the checkout before the run
    env: dict = field(default_factory=dict)
    patches: tuple = ()                               # (object, attribute, value) set during the run
    cwd: str | None = None                            # run in this folder (relative to tmp_path) instead
    multiline: bool = False                           # the message may span lines (a docs build log)
    debug_flag: bool = True                           # with --debug when called by the kit

    def run(self, tmp_path: Path, debug: bool) -> tuple[int, str, str]:
        root = tmp_path / "repo"
        nbs = _checkout(root)
        if self.setup: self.setup(root)
        argv = [a.format(root=root, nbs=nbs) for a in self.argv]
        env = {"VLNOTES_RESULTS_DIR": str(root / "results"), **self.env}
        out, err = io.StringIO(), io.StringIO()
        with contextlib.ExitStack() as stack:
            stack.enter_context(mock.patch.dict(os.environ, env))
            if "VLNOTES_DEBUG" not in self.env: os.environ.pop("VLNOTES_DEBUG", None)
            for obj, attr, value in self.patches: stack.enter_context(mock.patch.object(obj, attr, value))
            if self.cwd: stack.enter_context(contextlib.chdir(tmp_path / self.cwd))
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
            rc = cli.main((["--debug"] if debug and self.debug_flag else []) + argv)
        return rc, out.getvalue(), err.getvalue()

    def __call__(self, tmp_path):
        "With --debug: the error propagates for the kit to check."
        rc, _, err = self.run(tmp_path, debug=True)
        if not self.debug_flag: raise AssertionError(f"exit status {rc}: {err}") if rc == 0 else ValueError(err)
        return rc

    @property
    def command(self) -> str:
        return next((f"vlnotes {a}" for a in self.argv if a in COMMANDS), "vlnotes")


NBS = ["--nbs-dir", "{nbs}"]
PAPER = "nbs/papers/10_backbones/11_bad.ipynb"


def _write(rel: str, text: str | bytes):
    "A setup that writes `text` at `rel` in the checkout."
    def setup(root):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(text) if isinstance(text, bytes) else (root / rel).write_text(text)
    return setup


def _mkdir(rel: str):
    return lambda root: (root / rel).mkdir(parents=True)


def _claims(text: str):
    return _write("results/claims/toy.json", text)


def _no(*names):
    "A `find_spec` that does not find `names` (a docs dependency not installed)."
    real = importlib.util.find_spec
    return lambda name, *a, **k: None if name in names else real(name, *a, **k)


def _raise(error: BaseException):
    def fail(*args, **kwargs): raise error
    return fail


def _docs():
    from vlnotes.tools import docs
    return docs


_ONE_CLAIM = json.dumps([{"paper": "toy", "claim_id": "C1", "statement": "s", "measured": {"x": 1},
                          "expectation": "x > 0"}])
_NO_KATEX = ((_docs(), "_require_docs_deps", lambda: None), (_docs().shutil, "which", lambda name: None))


def _zero_cells(tmp_path):
    _nb(tmp_path / "z.ipynb")
    return tmp_path / "z.ipynb"


def _progress(total, desc="x"):
    with cli.progress(total, desc, io.StringIO()): pass


def _run_nb(tmp_path, path=None, out=None, results=None, **kw):
    "`run_notebook` on a zero-cell notebook with one argument broken; every case fails before a kernel starts."
    (tmp_path / "afile").write_text("x")
    path = _zero_cells(tmp_path) if path is None else path
    return cli.run_notebook(path, out or tmp_path / "out/z.ipynb", kw.pop("quick", True),
                            results or tmp_path / "res", **kw)


def _corrupt_nb(tmp_path, text='{"cells": ['):
    (tmp_path / "bad.ipynb").write_text(text)
    return tmp_path / "bad.ipynb"


CASES = [
    # --- the command line itself (argparse, --debug) ---
    Case("cli.main", "empty", Cli([]), UsageError,
         arg="command", expected="required", got="following arguments", note="was clear"),
    Case("cli.main", "value", Cli(["frob"]), UsageError,
         arg="command", expected="choose from", got="'frob'", note="was clear"),
    Case("cli.main", "value", Cli(NBS + ["list", "--frob"]), UsageError,
         arg="--frob", expected="unrecognized arguments", got="--frob", note="was clear"),
    Case("cli.main", "value", Cli(NBS + ["list"], env={"VLNOTES_DEBUG": "maybe"}, debug_flag=False), ValueError,
         arg="VLNOTES_DEBUG", expected="expected one of", got="'maybe'", note="new option"),
    Case("cli.main", "value", Cli(NBS + ["list"], env={"VLNOTES_SEED": "abc"}), ValueError,
         arg="VLNOTES_SEED", expected="integer", got="'abc'", note="was cryptic (traceback)"),
    Case("cli.main", "path", Cli(["list"], cwd="."), FileNotFoundError,
         arg="vlnotes notebooks not found", expected="clone of the vlnotes", got="got /", note="was clear"),

    # --- list ---
    Case("cli.list", "truncated", Cli(NBS + ["list"], _claims('[{"paper": "to')), ValueError,
         arg="toy.json", expected="json", got="line 1", note="was cryptic (traceback)"),
    Case("cli.list", "schema", Cli(NBS + ["list"], _claims(_ONE_CLAIM)), ValueError,
         arg="toy.json", expected="claim", got="verdict", note="was cryptic (traceback)"),
    Case("cli.list", "schema", Cli(NBS + ["list"], _claims('{"paper": "toy"}')), ValueError,
         arg="toy.json", expected="list", got="dict", note="was cryptic (traceback)"),
    Case("cli.list", "path", Cli(NBS + ["list", "--results-dir", "{root}/afile"], _write("afile", "x")), ValueError,
         arg="--results-dir", expected="a folder", got="which is a file", note="was silent"),
    Case("cli.list", "empty", Cli(NBS + ["list", "--results-dir", ""]), ValueError,
         arg="--results-dir", expected="a non-empty path", got="''", note="was silent (the default folder)"),
    Case("cli.list", "path", Cli(["--nbs-dir", "{root}/nope", "list"]), FileNotFoundError,
         arg="--nbs-dir", expected="a folder", got="does not exist", note="was silent (no papers)"),
    Case("cli.list", "path", Cli(["--nbs-dir", "{root}/pyproject.toml", "list"]), ValueError,
         arg="--nbs-dir", expected="a folder", got="which is a file", note="was silent (no papers)"),
    Case("cli.list", "empty", Cli(["--nbs-dir", "", "list"]), ValueError,
         arg="--nbs-dir", expected="a non-empty path", got="''", note="was silent (the current folder)"),
    Case("cli.list", "truncated", Cli(NBS + ["list"], _write(PAPER, '{"cells": [')), ValueError,
         arg="11_bad.ipynb", expected="a notebook", got="invalid JSON", note="was cryptic (JSONDecodeError)"),
    Case("cli.list", "missing-key", Cli(NBS + ["list"], _write(PAPER, '{"x": 1}')), ValueError,
         arg="11_bad.ipynb", expected="`cells` list", got="no `cells` key", note="was cryptic (KeyError)"),
    Case("cli.list", "schema", Cli(NBS + ["list"], _write(PAPER, '{"cells": 3}')), ValueError,
         arg="11_bad.ipynb", expected="`cells` list", got="`cells` = 3", note="was cryptic (TypeError)"),
    Case("cli.list", "schema", Cli(NBS + ["list"], _write(PAPER, '[1, 2]')), ValueError,
         arg="11_bad.ipynb", expected="JSON object", got="a JSON list", note="was cryptic (TypeError)"),
    Case("cli.list", "missing-key", Cli(NBS + ["list"], _write(PAPER, '{"cells": [{"source": "x"}]}')), ValueError,
         arg="cell 0", expected="`cell_type` string", got="`cell_type` = None", note="was cryptic (KeyError)"),
    Case("cli.list", "schema", Cli(NBS + ["list"], _write(PAPER, '{"cells": [{"cell_type": "code", "source": 5}]}')),
         ValueError, arg="cell 0", expected="`source` string", got="`source` = 5", note="was cryptic (TypeError)"),
    Case("cli.list", "path", Cli(NBS + ["list"], _mkdir(PAPER)), ValueError,
         arg="11_bad.ipynb", expected="notebook file", got="a folder", note="was cryptic (IsADirectoryError)"),
    Case("cli.list", "corrupt", Cli(NBS + ["list"], _write(PAPER, b"\xff\xfe\x00")), ValueError,
         arg="11_bad.ipynb", expected="UTF-8", got="not UTF-8", note="was cryptic (UnicodeDecodeError)"),
    Case("cli.list", "schema", Cli(NBS + ["list"], lambda root: _nb(root / PAPER, "x = 1")), PaperLayoutError,
         arg="11_bad.ipynb", expected="default_exp papers.<id>", got="got none", note="was clear"),
    Case("cli.list", "schema", Cli(NBS + ["list"], lambda root: _nb(root / "nbs/papers/10_x.ipynb",
                                                                     "#| default_exp papers.x")),
         PaperLayoutError, arg="10_x.ipynb", expected="directly in a group folder", got="got nbs/papers/10_x.ipynb",
         note="was clear"),
    Case("cli.list", "schema", Cli(NBS + ["list"], lambda root: _nb(root / "nbs/papers/15_misc/15_x.ipynb",
                                                                     "#| default_exp papers.x")),
         PaperLayoutError, arg="15_misc", expected="NN one of", got="'15_misc'", note="was clear"),

    # --- reproduce (every case fails before any notebook runs) ---
    Case("cli.reproduce", "value", Cli(NBS + ["reproduce", "all", "resnet"]), ValueError,
         arg="papers", expected="'all' alone", got="['all', 'resnet']", note="was cryptic (contradicted itself)"),
    Case("cli.reproduce", "value", Cli(NBS + ["reproduce", "all", "all"]), ValueError,
         arg="papers", expected="'all' alone", got="['all', 'all']", note="was cryptic (contradicted itself)"),
    Case("cli.reproduce", "value", Cli(NBS + ["reproduce", "toy", "toy"]), ValueError,
         arg="papers", expected="each paper id once", got="['toy']", note="was silent (deduplicated)"),
    Case("cli.reproduce", "security", Cli(NBS + ["reproduce", "../x"]), ValueError,
         arg="paper", expected="identifier", got="'../x'", note="was clear (unknown paper)"),
    Case("cli.reproduce", "security", Cli(NBS + ["reproduce", "/etc/passwd"]), ValueError,
         arg="paper", expected="identifier", got="'/etc/passwd'", note="was clear (unknown paper)"),
    Case("cli.reproduce", "empty", Cli(NBS + ["reproduce", ""]), ValueError,
         arg="paper", expected="identifier", got="''", note="was clear (unknown paper)"),
    Case("cli.reproduce", "value", Cli(NBS + ["reproduce", "nope"]), ValueError,
         arg="papers", expected="ids listed by `vlnotes list` (toy)", got="['nope']", note="was clear"),
    Case("cli.reproduce", "empty", Cli(NBS + ["reproduce"]), UsageError,
         arg="papers", expected="required", got="following arguments", note="was clear"),
    Case("cli.reproduce", "negative", Cli(NBS + ["reproduce", "toy", "--timeout", "-5"]), ValueError,
         arg="--timeout", expected="int >= 1", got="-5", note="was silent"),
    Case("cli.reproduce", "zero", Cli(NBS + ["reproduce", "toy", "--timeout", "0"]), ValueError,
         arg="--timeout", expected="int >= 1", got="0", note="was silent"),
    Case("cli.reproduce", "nan", Cli(NBS + ["reproduce", "toy", "--timeout", "nan"]), UsageError,
         arg="--timeout", expected="int", got="'nan'", note="was clear"),
    Case("cli.reproduce", "inf", Cli(NBS + ["reproduce", "toy", "--timeout", "inf"]), UsageError,
         arg="--timeout", expected="int", got="'inf'", note="was clear"),
    Case("cli.reproduce", "type", Cli(NBS + ["reproduce", "toy", "--timeout", "1.5"]), UsageError,
         arg="--timeout", expected="int", got="'1.5'", note="was clear"),
    Case("cli.reproduce", "unwritable", Cli(NBS + ["reproduce", "toy", "--quick", "--results-dir", "{root}/afile/r"],
                                            _write("afile", "x")), ValueError,
         arg="--results-dir", expected="a folder to write into", got="below the file",
         note="was cryptic (NotADirectoryError traceback)"),
    Case("cli.reproduce", "unwritable", Cli(NBS + ["reproduce", "toy", "--quick"], _write("results/quick/runs", "x")),
         ValueError, arg="--results-dir", expected="a folder to write into", got="runs, which is a file",
         note="was cryptic (FileExistsError; named a notebook that was never written)"),
    Case("cli.reproduce", "unwritable", Cli(NBS + ["reproduce", "toy", "--quick"], _write("results/quick/claims", "x")),
         ValueError, arg="--results-dir", expected="a folder to write into", got="claims, which is a file",
         note="was cryptic (NotADirectoryError traceback)"),
    Case("cli.reproduce", "unwritable", Cli(NBS + ["reproduce", "toy", "--quick"],
                                            patches=((core.tempfile, "TemporaryFile",
                                                      _raise(PermissionError(13, "Permission denied"))),)),
         PermissionError, arg="--results-dir", expected="writable folder", got="Permission denied",
         note="was cryptic (the notebook ran first, then failed)"),
    Case("cli.reproduce", "path", Cli(["--nbs-dir", "{root}/nope", "reproduce", "all"]), FileNotFoundError,
         arg="--nbs-dir", expected="a folder", got="does not exist", note="was silent (0 papers, exit 0)"),
    Case("cli.reproduce", "empty", Cli(["--nbs-dir", "{root}", "reproduce", "all"]), FileNotFoundError,
         arg="papers", expected="paper notebooks under", got="got none", note="was silent (0 papers, exit 0)"),
    Case("cli.reproduce", "schema", Cli(NBS + ["reproduce", "toy"], lambda root: _nb(root / PAPER, "x = 1")),
         PaperLayoutError, arg="11_bad.ipynb", expected="default_exp papers.<id>", got="got none", note="was clear"),
    Case("cli.reproduce", "schema", Cli(NBS + ["reproduce", "toy"],
                                        lambda root: _nb(root / PAPER, "#| default_exp papers.other")),
         PaperLayoutError, arg="11_bad.ipynb", expected="must be named `<NN>_other.ipynb`", got="got '11_bad.ipynb'",
         note="was clear"),
    Case("cli.reproduce", "truncated", Cli(NBS + ["reproduce", "toy"], _write(PAPER, '{"cells": [')), ValueError,
         arg="11_bad.ipynb", expected="a notebook", got="invalid JSON", note="was cryptic (JSONDecodeError)"),

    # --- readme ---
    Case("cli.readme", "path", Cli(NBS + ["readme", "--check"]), CommandFailed,
         arg="README.md", expected="rendering of nbs/index.ipynb", got="no such file",
         note="was clear (said out of date)"),
    Case("cli.readme", "value", Cli(NBS + ["readme", "--check"], _write("README.md", "old\n")), CommandFailed,
         arg="README.md", expected="rendering of nbs/index.ipynb", got="differs from line 1", note="was clear"),
    Case("cli.readme", "path", Cli(NBS + ["readme", "--check"], _mkdir("README.md")), CommandFailed,
         arg="README.md", expected="rendering of nbs/index.ipynb", got="a folder",
         note="was cryptic (IsADirectoryError)"),
    Case("cli.readme", "unwritable", Cli(NBS + ["readme"], _mkdir("README.md")), PermissionError,
         arg="README.md", expected="writable file", got="Is a directory", note="was cryptic (IsADirectoryError)"),
    Case("cli.readme", "unwritable", Cli(NBS + ["readme"], patches=((Path, "write_text", _raise(
        PermissionError(13, "Permission denied"))),)), PermissionError,
         arg="README.md", expected="writable file", got="Permission denied", note="was cryptic (traceback)"),
    Case("cli.readme", "path", Cli(NBS + ["readme"], lambda root: (root / "nbs/index.ipynb").unlink()),
         FileNotFoundError, arg="index.ipynb", expected="notebook file", got="no such file", note="was clear"),
    Case("cli.readme", "truncated", Cli(NBS + ["readme"], _write("nbs/index.ipynb", "{")), ValueError,
         arg="index.ipynb", expected="a notebook", got="invalid JSON", note="was cryptic (NotJSONError)"),
    Case("cli.readme", "schema", Cli(NBS + ["readme"], _write("nbs/index.ipynb", json.dumps(
        {"cells": [{"cell_type": "code", "source": "1", "outputs": 7}]}))), ValueError,
         arg="cell 0", expected="`outputs` list", got="`outputs` = 7", note="was silent (dropped)"),

    # --- docs (no site is built: every case stops before mkdocs runs) ---
    Case("cli.docs", "unwritable", Cli(NBS + ["docs", "--out", "{root}/afile"], _write("afile", "x")),
         ValueError, arg="--out", expected="a folder to write into", got="afile, which is a file",
         note="was cryptic (NotADirectoryError)"),
    Case("cli.docs", "path", Cli(NBS + ["docs", "--out", "{root}/site"], _write("site/x.txt", "x"),
                                 patches=_NO_KATEX[:1]), CommandFailed,
         arg="site", expected="choose an empty or new folder", got="is not empty", note="was clear"),
    Case("cli.docs", "missing-key", Cli(NBS + ["docs"], patches=((importlib.util, "find_spec", _no("mkdocs")),)),
         CommandFailed,
         arg="mkdocs", expected="pip install", got="missing", note="was clear"),
    Case("cli.docs", "path", Cli(NBS + ["docs"], env={"VLNOTES_KATEX_DIR": "/nonexistent/katex",
                                                      "HOME": "/nonexistent/home"},
                                 patches=_NO_KATEX, multiline=True), CommandFailed,
         arg="KaTeX", expected="Install it with", got="not found", note="was clear"),
    Case("cli.docs", "path", Cli(["--nbs-dir", "{root}/nope", "docs"]), FileNotFoundError,
         arg="--nbs-dir", expected="a folder", got="does not exist", note="was silent (built the parent's site)"),

    # --- the functions behind the commands ---
    Case("cli.progress", "zero", lambda: _progress(-1), ValueError,
         arg="total", expected="int >= 0", got="-1", note="was silent"),
    Case("cli.progress", "type", lambda: _progress(2.5), TypeError,
         arg="total", expected="int", got="2.5", note="was silent"),
    Case("cli.progress", "nan", lambda: _progress(float("nan")), TypeError,
         arg="total", expected="int", got="nan", note="was silent"),
    Case("cli.progress", "type", lambda: _progress("3"), TypeError,
         arg="total", expected="int", got="'3'", note="was cryptic"),
    Case("cli.progress", "type", lambda: _progress(True), TypeError,
         arg="total", expected="int", got="True", note="was silent"),
    Case("cli.progress", "type", lambda: _progress(2, desc=3), TypeError,
         arg="desc", expected="str", got="int 3", note="was cryptic"),
    Case("cli.run_notebook", "zero", lambda tmp_path: _run_nb(tmp_path, timeout=0), ValueError,
         arg="timeout", expected="int >= 1", got="0", note="was silent"),
    Case("cli.run_notebook", "negative", lambda tmp_path: _run_nb(tmp_path, timeout=-5), ValueError,
         arg="timeout", expected="int >= 1", got="-5", note="was silent"),
    Case("cli.run_notebook", "type", lambda tmp_path: _run_nb(tmp_path, timeout="x"), TypeError,
         arg="timeout", expected="int", got="'x'", note="was cryptic (TraitError)"),
    Case("cli.run_notebook", "inf", lambda tmp_path: _run_nb(tmp_path, timeout=float("inf")), TypeError,
         arg="timeout", expected="int", got="inf", note="was cryptic (TraitError)"),
    Case("cli.run_notebook", "type", lambda tmp_path: _run_nb(tmp_path, quick="yes"), TypeError,
         arg="quick", expected="True or False", got="'yes'", note="was silent"),
    Case("cli.run_notebook", "type", lambda tmp_path: _run_nb(tmp_path, path=3), TypeError,
         arg="path", expected="a path", got="int 3", note="was cryptic"),
    Case("cli.run_notebook", "path", lambda tmp_path: _run_nb(tmp_path, path=tmp_path / "nope.ipynb"),
         FileNotFoundError, arg="nope.ipynb", expected="notebook file", got="no such file", note="was clear"),
    Case("cli.run_notebook", "truncated", lambda tmp_path: _run_nb(tmp_path, path=_corrupt_nb(tmp_path)), ValueError,
         arg="bad.ipynb", expected="a notebook", got="invalid JSON", note="was cryptic (no file named)"),
    Case("cli.run_notebook", "unwritable", lambda tmp_path: _run_nb(tmp_path, out=tmp_path / "afile/z.ipynb"),
         ValueError, arg="out_path", expected="a folder to write into", got="afile, which is a file",
         note="was cryptic (FileExistsError)"),
    Case("cli.run_notebook", "unwritable", lambda tmp_path: _run_nb(tmp_path, results=tmp_path / "afile/res"),
         ValueError, arg="results_dir", expected="a folder to write into", got="below the file", note="was silent"),
    Case("cli.read_paper", "type", lambda: cli.read_paper(3), TypeError,
         arg="path", expected="a path", got="int 3", note="was cryptic"),
    Case("cli.read_paper", "path", lambda tmp_path: cli.read_paper(tmp_path / "10_x.ipynb"), FileNotFoundError,
         arg="10_x.ipynb", expected="notebook file", got="no such file", note="was clear"),
    Case("cli.read_paper", "corrupt", lambda tmp_path: cli.read_paper(_corrupt_nb(tmp_path, "null")), ValueError,
         arg="bad.ipynb", expected="JSON object with a `cells` list", got="a JSON NoneType",
         note="was cryptic (TypeError)"),
    Case("cli.paper_group", "type", lambda: cli.paper_group(3), TypeError,
         arg="folder", expected="a path", got="int 3", note="was cryptic"),
    Case("cli.paper_group", "value", lambda: cli.paper_group("15_misc"), PaperLayoutError,
         arg="15_misc", expected="NN one of", got="'15_misc'", note="was clear"),
    Case("cli.paper_notebooks", "path", lambda tmp_path: cli.paper_notebooks(tmp_path / "nope"), FileNotFoundError,
         arg="nbs", expected="a folder", got="does not exist", note="was silent"),
    Case("cli.paper_notebooks", "type", lambda: cli.paper_notebooks(5), TypeError,
         arg="nbs", expected="a path", got="int 5", note="was cryptic"),
    Case("cli.papers_markdown", "path", lambda tmp_path: cli.papers_markdown(tmp_path / "r", tmp_path / "nope"),
         FileNotFoundError, arg="nbs", expected="a folder", got="does not exist", note="was silent"),
    Case("cli.nbs_dir", "path", lambda tmp_path: cli.nbs_dir(tmp_path), FileNotFoundError,
         arg="vlnotes notebooks not found", expected="clone of the vlnotes", got="got /", note="was clear"),
    Case("cli.nbs_dir", "type", lambda: cli.nbs_dir(3), TypeError,
         arg="root", expected="a path", got="int 3", note="was cryptic"),
    Case("cli.notebook_markdown", "path", lambda tmp_path: cli.notebook_markdown(tmp_path / "nope.ipynb"),
         FileNotFoundError, arg="nope.ipynb", expected="notebook file", got="no such file", note="was clear"),
    Case("cli.notebook_markdown", "truncated", lambda tmp_path: cli.notebook_markdown(_corrupt_nb(tmp_path)),
         ValueError, arg="bad.ipynb", expected="a notebook", got="invalid JSON", note="was cryptic (NotJSONError)"),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, tmp_path):
    check_case(case, tmp_path)


CLI_CASES = [c for c in CASES if isinstance(c.call, Cli)]


@pytest.mark.parametrize("case", CLI_CASES, ids=case_ids(CLI_CASES))
def test_cli_reports_one_line_and_an_exit_status(case, tmp_path):
    rc, _, err = case.call.run(tmp_path, debug=False)
    assert rc == (1 if case.error is CommandFailed else 2), err
    assert "Traceback" not in err, err
    assert err.startswith(f"{case.call.command}: error: "), err
    assert case.arg.lower() in err.lower() and case.got.lower() in err.lower(), err
    if not case.call.multiline: assert len(err.strip().splitlines()) == 1, err


def test_matrix_size():
    assert len(CASES) >= 30 and len(CLI_CASES) >= 30
    assert {c.call.command for c in CLI_CASES} >= {f"vlnotes {c}" for c in COMMANDS}


# --- the console script: one bad command line per command, and --debug / VLNOTES_DEBUG ---

def _script(tmp_path, *argv, **env):
    script = Path(sys.executable).with_name("vlnotes")
    assert script.exists(), f"the console script is not installed next to {sys.executable}"
    return subprocess.run([str(script), *argv], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**{k: v for k, v in os.environ.items() if k != "VLNOTES_DEBUG"},
                               "VLNOTES_RESULTS_DIR": str(tmp_path / "res"), **env})


@pytest.mark.parametrize("argv, status, message", [
    (["list"], 2, "vlnotes list: error: claims file"),
    (["reproduce", "all", "toy"], 2, "vlnotes reproduce: error: papers: expected 'all' alone"),
    (["reproduce", "toy", "--timeout", "-5"], 2, "vlnotes reproduce: error: --timeout: expected an int >= 1"),
    (["readme", "--check"], 1, "vlnotes readme: error: README.md: expected"),
    (["docs", "--out", "{root}/afile"], 2, "vlnotes docs: error: --out: expected a folder to write into"),
    ([], 2, "vlnotes: error: the following arguments are required: command"),
])
def test_console_script_exit_status_and_one_line(tmp_path, argv, status, message):
    root = tmp_path / "repo"
    nbs = _checkout(root)
    (root / "afile").write_text("x")
    (tmp_path / "res/claims").mkdir(parents=True)
    (tmp_path / "res/claims/toy.json").write_text('[{"paper": "to')
    r = _script(tmp_path, "--nbs-dir", str(nbs), *[a.format(root=root) for a in argv])
    assert r.returncode == status, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith(message), r.stderr


@pytest.mark.parametrize("flag, env", [(["--debug"], {}), ([], {"VLNOTES_DEBUG": "1"})])
def test_console_script_debug_shows_the_traceback(tmp_path, flag, env):
    nbs = _checkout(tmp_path / "repo")
    r = _script(tmp_path, *flag, "--nbs-dir", str(nbs), "reproduce", "all", "toy", **env)
    assert r.returncode == 1 and "Traceback" in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("ValueError: papers: expected 'all' alone"), r.stderr
