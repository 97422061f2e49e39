"""The server is another caller of the engine: it imports ``engine`` itself, never its submodules."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[3] / "engine" / "server"


def _engine_imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [name for name in found if name == "engine" or name.startswith("engine.")]


def test_server_modules_import_only_engine_and_engine_server():
    offenders = []
    for py in sorted(SERVER.glob("*.py")):
        for name in _engine_imports(ast.parse(py.read_text(encoding="utf-8"))):
            if name != "engine" and name != "engine.server" and not name.startswith("engine.server."):
                offenders.append(f"{py.name}: {name}")
    assert offenders == []
