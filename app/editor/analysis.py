"""The engine's script issues in Qt document positions (Qt counts UTF-16 units, Python code points)."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import replace

import engine

EditorIssue = engine.ScriptIssue
"""The engine's issue, with ``start``/``end`` converted to Qt document positions by ``check``."""


class Utf16Offsets:
    """Converts Python string offsets to UTF-16 positions (each astral character counts twice)."""

    def __init__(self, text: str) -> None:
        self._astral = [i for i, ch in enumerate(text) if ord(ch) > 0xFFFF] if not text.isascii() else []

    def __call__(self, offset: int) -> int:
        return offset + bisect_left(self._astral, offset)


def check(text: str, *, prefix_tokens: int = 0) -> list[EditorIssue]:
    """Every error and warning of ``text`` (as the editor holds it) in document positions."""
    to_qt = Utf16Offsets(text)
    return [replace(i, start=to_qt(i.start), end=to_qt(i.end))
            for i in engine.check_script(text, prefix_tokens=prefix_tokens)]


def summary(issues: list[EditorIssue]) -> str:
    errors = sum(1 for i in issues if i.is_error)
    warnings = len(issues) - errors
    if not issues:
        return "Script OK"
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return ", ".join(parts)
