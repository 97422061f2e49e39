"""The guard against PySide6 releases that over-release None (app/compat.py)."""

from __future__ import annotations

import subprocess
import sys

from app.compat import needs_none_guard


def test_only_the_broken_release_on_mortal_none_pythons_needs_the_guard():
    assert needs_none_guard("6.12.0", (3, 11))
    assert needs_none_guard("6.12.0", (3, 10))
    assert not needs_none_guard("6.12.0", (3, 12))
    assert not needs_none_guard("6.11.3", (3, 11))
    assert not needs_none_guard("6.12.1", (3, 11))


def test_reserving_references_survives_a_simulated_over_release():
    # In a child process: drop far more references to None than it holds, as the broken PySide6
    # would over a long session; with the reserve the interpreter lives and exits cleanly.
    code = (
        "import ctypes, sys\n"
        "from app.compat import reserve_none_references\n"
        "before = sys.getrefcount(None)\n"
        "reserve_none_references()\n"
        "assert sys.getrefcount(None) - before > (1 << 40) - 1000\n"
        "ctypes.c_ssize_t.from_address(id(None)).value -= 10 * before\n"
        "import gc; gc.collect()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
