"""Layering rules: the engine never imports Qt or the app; the app uses the engine's public names.

The source checks read every file with ``ast`` (imports inside functions count too), so they hold
for code paths no test happens to run.
"""

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QT = {"PySide6", "PyQt5", "PyQt6", "shiboken6"}
# The only engine submodules the app may import directly, and why:
APP_MAY_IMPORT = {
    "engine.files": "the project's one atomic-write helper, for the app's own files (settings, draft)",
    "engine.cli": "the launcher hands `dia-studio <subcommand>` to the command line, which is engine code",
    "engine.server": "Tools → Local API server serves the engine's HTTP API package (its public names)",
}


def sources(package: str) -> Iterator[tuple[str, ast.AST]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        yield str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8"), str(path))


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, names) of every absolute import: ``import a.b`` gives ("a.b", [])."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module, [alias.name for alias in node.names]


def engine_attributes(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every ``engine.<name>`` read in the module (``engine`` being the imported package)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "engine":
            yield node.lineno, node.attr


def test_engine_never_imports_the_app_or_qt():
    offenders = [f"{name}:{line}: {module}" for name, tree in sources("engine")
                 for line, module, _ in imported_modules(tree)
                 if module.split(".")[0] in QT | {"app", "resources"}]
    assert offenders == []


def test_the_app_uses_only_the_engines_public_names():
    import engine

    public = set(engine.__all__) | {"__version__"}
    offenders = []
    for name, tree in sources("app"):
        for line, module, names in imported_modules(tree):
            if module == "engine":
                offenders += [f"{name}:{line}: from engine import {n}" for n in names if n not in public]
            elif module.startswith("engine.") and module not in APP_MAY_IMPORT:
                offenders.append(f"{name}:{line}: {module}")
        offenders += [f"{name}:{line}: engine.{attr}" for line, attr in engine_attributes(tree) if attr not in public]
    assert offenders == []


def test_importing_engine_never_loads_qt():
    code = (
        "import sys, importlib, pkgutil, engine\n"
        "for m in pkgutil.walk_packages(engine.__path__, 'engine.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in {'PySide6', 'PyQt5', 'PyQt6', 'shiboken6'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"engine imported Qt modules: {out.stdout}"


def test_every_public_name_resolves():
    import engine

    for name in engine.__all__:
        assert getattr(engine, name) is not None, name


def test_request_types_do_not_import_torch():
    """The app builds options and requests on its UI thread: that must not pay torch's import."""
    code = ("import sys, engine\n"
            "engine.EngineOptions(); engine.RenderRequest('[S1] Hi.'); engine.GenerationParams(); engine.check_script('x')\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_import_contracts_hold():
    """pyproject.toml's [tool.importlinter] contracts (engine never imports the app or Qt; the app
    imports no engine submodule but the allowed ones; controllers never import the window), checked
    by import-linter on the whole import graph."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    out = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_the_allowed_engine_submodules_are_the_same_in_both_checks():
    """The import-linter allow-list and APP_MAY_IMPORT name the same submodules."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["source_modules"] == ["app"])
    allowed = {rule.split("->")[1].strip() for rule in contract["ignore_imports"]}
    assert allowed == set(APP_MAY_IMPORT)


def test_the_app_never_spells_out_the_engines_numbers():
    """Sample rate, codec frame rate and decoder overhead come from ``engine``: no 44100, no 44100 / 512."""
    offenders = [f"{name}:{node.lineno}: {node.value}" for name, tree in sources("app") for node in ast.walk(tree)
                 if isinstance(node, ast.Constant) and type(node.value) in (int, float)
                 and (node.value == 44100 or abs(node.value - 44100 / 512) < 0.01)]
    assert offenders == []
