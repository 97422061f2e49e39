"""Layering rules: the engine never imports Qt."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def test_engine_sources_have_no_qt_import():
    offenders = []
    for py in (ROOT / "engine").rglob("*.py"):
        for line in py.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith(("import PySide6", "from PySide6", "import PyQt", "from PyQt", "import shiboken")):
                offenders.append(f"{py.relative_to(ROOT)}: {stripped}")
    assert offenders == []


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
