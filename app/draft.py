"""Autosaved script drafts and script files (atomic writes, so a crash never leaves half a file).

The draft is the user's private data (0600); a script saved with Save As is an export and gets the
usual permissions of the user's umask, like any other application's files.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import engine
from engine.files import atomic_write_text

log = logging.getLogger(__name__)

DRAFT_FILE = "draft.json"


@dataclass(frozen=True)
class Draft:
    """What the editor held: its text, the file it belongs to ("" = untitled), unsaved changes."""

    text: str
    path: str = ""
    modified: bool = False


def draft_path() -> Path:
    return engine.data_dir() / DRAFT_FILE


def save_draft(draft: Draft) -> None:
    """Write the autosaved draft (private: mode 0600)."""
    atomic_write_text(draft_path(), json.dumps(asdict(draft), ensure_ascii=False), private=True)


def save_script(path: str | os.PathLike, text: str) -> Path:
    """Write a script the user saves (an export: the umask's usual mode), atomically."""
    return atomic_write_text(path, text)


def load_draft() -> Draft | None:
    path = draft_path()
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Draft(str(data.get("text", "")), str(data.get("path", "")), bool(data.get("modified", False)))
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("the autosaved draft is unreadable: %s", exc)
        return None


def read_script(path: str | os.PathLike) -> str:
    """A script file's text: UTF-8 (with or without BOM), else Windows-1252 so nothing is refused."""
    data = Path(path).read_bytes()
    if len(data) > 5 * 1024 * 1024:
        raise engine.DiaStudioError(f"{Path(path).name} is {len(data) / 1e6:.0f} MB; a script is plain text of a few KB.",
                                    code="invalid_script")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding).replace("\r\n", "\n").replace("\r", "\n")
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")
