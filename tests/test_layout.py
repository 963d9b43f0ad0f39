"""The house rules of the library's layout: imports point down (tools -> zoo -> papers -> foundations), paper modules use
other papers' models only, every module is pyflakes-clean, exported code lines stay within 120 characters, and the
short paper imports (`from vlnotes.clip import CLIP`) keep working."""
import ast, importlib, inspect, json, subprocess, sys
from pathlib import Path

import pytest
from torch import nn

from vlnotes.core import Config, ModelOutput

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "vlnotes"
GENERATED = {"_modidx"}


def modules() -> dict[str, Path]:
    "Dotted module name -> file, for every generated module of the library."
    out = {}
    for p in sorted(LIB.rglob("*.py")):
        if p.stem in GENERATED or p.name == "__init__.py": continue
        out[".".join(p.relative_to(ROOT).with_suffix("").parts)] = p
    return out


def role(mod: str) -> str:
    parts = mod.split(".") + [""]       # `vlnotes` itself (its __version__): a foundation
    if parts[1] in ("papers", "tools"): return parts[1]
    if parts[1] == "zoo": return "zoo"    # the pretrained registry's recipes: they train paper models on the world
    return "foundations"


def vlnotes_imports(path: Path, mod: str) -> list[tuple[str, list[str]]]:
    "(imported vlnotes module, names) for every import of a vlnotes module in `path`, relative ones resolved."
    tree, out = ast.parse(path.read_text()), []
    package = mod.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else: target = node.module or ""
            if target.split(".")[0] == "vlnotes": out.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.split(".")[0] == "vlnotes"]
    return out


@pytest.mark.parametrize("mod", [m for m in modules() if role(m) == "foundations"])
def test_foundations_never_import_papers_or_tools(mod):
    bad = [t for t, _ in vlnotes_imports(modules()[mod], mod) if role(t) in ("papers", "tools", "zoo")]
    assert not bad, f"{mod} (a foundation) imports {bad}: imports must point from papers down to foundations"


@pytest.mark.parametrize("mod", [m for m in modules() if role(m) == "papers"])
def test_papers_import_foundations_and_other_papers_models_only(mod):
    for target, names in vlnotes_imports(modules()[mod], mod):
        assert not target.startswith(("vlnotes.data", "vlnotes.train", "vlnotes.experiment", "vlnotes.tools",
                                      "vlnotes.zoo", "vlnotes.pretrained")), \
            f"{mod} imports {target}: a paper module may not import the dataset, the trainer or the scaffolding"
        if role(target) == "papers" and target != mod:
            other = importlib.import_module(target)
            bad = [n for n in names if not is_model_api(other, getattr(other, n))]
            assert not bad, (f"{mod} imports {bad} from {target}: only another paper's models, configs, outputs and "
                             f"model factories may be shared (move helpers to a foundation module)")


@pytest.mark.parametrize("mod", [m for m in modules() if role(m) == "zoo"])
def test_zoo_never_imports_tools(mod):
    bad = [t for t, _ in vlnotes_imports(modules()[mod], mod) if role(t) == "tools"]
    assert not bad, f"{mod} (the recipes) imports {bad}: the command line sits above the recipes, not below"


def is_model_api(module, obj) -> bool:
    "A model/config/output class, or a factory function annotated to return a model class."
    if inspect.isclass(obj): return issubclass(obj, (nn.Module, Config, ModelOutput))
    ret = getattr(obj, "__annotations__", {}).get("return")
    cls = getattr(module, ret, None) if isinstance(ret, str) else ret
    return inspect.isclass(cls) and issubclass(cls, nn.Module)


def test_paper_short_imports_are_the_paper_modules():
    "`from vlnotes.clip import CLIP` works for every paper, as the very module `vlnotes.papers.clip` (no copy)."
    papers = [p.stem for p in sorted((LIB / "papers").glob("*.py")) if p.name != "__init__.py"]
    assert papers, "no paper modules in vlnotes/papers"
    for pid in papers:
        assert not (LIB / f"{pid}.py").exists(), f"vlnotes/{pid}.py would shadow the short import of vlnotes.papers.{pid}"
        assert importlib.import_module(f"vlnotes.{pid}") is importlib.import_module(f"vlnotes.papers.{pid}")
    with pytest.raises(ModuleNotFoundError): importlib.import_module("vlnotes.no_such_paper")


def test_pyflakes_clean():
    pytest.importorskip("pyflakes", reason="pyflakes is a dev dependency")
    files = [str(p) for p in modules().values()]
    r = subprocess.run([sys.executable, "-m", "pyflakes", *files], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_exported_code_lines_within_120_characters():
    long = []
    for nb in sorted((ROOT / "nbs").rglob("*.ipynb")):
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            src = "".join(cell["source"])
            if cell["cell_type"] != "code" or not src.lstrip().startswith("#| export"): continue
            long += [f"{nb.relative_to(ROOT)} cell {i}: {len(l)} chars" for l in src.splitlines() if len(l) > 120]
    assert not long, "exported lines over 120 characters:\n" + "\n".join(long[:20])
