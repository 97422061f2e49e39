"""Workarounds for known-broken library versions, applied before any Qt object is created.

PySide6 6.12.0 drops one reference to ``None`` on every call of a method that returns nothing
(``label.setText(...)``, ``widget.update()`` ...) when it runs on Python < 3.12, where ``None``
is not yet immortal. After enough calls the interpreter deallocates ``None`` and aborts
("Fatal Python error: none_dealloc"). ``pyproject.toml`` excludes that release; if it is
installed anyway (a distro package, an old lock file), ``guard_none_refcount`` gives ``None`` a
reference count no app session can exhaust, which is what Python 3.12 does for every immortal
object.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

BROKEN_PYSIDE = ("6.12.0",)
NONE_RESERVE = 1 << 40  # ~10**12 spurious releases before trouble: far beyond any session


def needs_none_guard(pyside_version: str, python_version: tuple[int, int]) -> bool:
    """True for the PySide6 releases that over-release None, on Pythons where None is mortal."""
    return tuple(python_version) < (3, 12) and pyside_version.split("+")[0] in BROKEN_PYSIDE


def reserve_none_references(amount: int = NONE_RESERVE) -> None:
    """Add ``amount`` references to None (CPython: ob_refcnt is the object's first field)."""
    refcount = ctypes.c_ssize_t.from_address(id(None))
    refcount.value += amount


def guard_none_refcount() -> bool:
    """Apply the None guard if this PySide6/Python pair needs it; True when applied."""
    try:
        import PySide6
    except ImportError:
        return False
    version = getattr(PySide6, "__version__", "")
    if sys.implementation.name != "cpython" or not needs_none_guard(version, sys.version_info[:2]):
        return False
    reserve_none_references()
    log.warning("PySide6 %s on Python %d.%d over-releases None; applied the guard (install another "
                "PySide6 version to remove this warning)", version, *sys.version_info[:2])
    return True
