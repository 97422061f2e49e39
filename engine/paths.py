"""Where Dia Studio keeps the user's data (voice library, render history).

``DIA_STUDIO_DATA_DIR`` overrides the location (tests, portable installs); otherwise it is the
platform's user data directory for "Dia Studio" (on Linux ``$XDG_DATA_HOME/Dia Studio``, usually
``~/.local/share/Dia Studio``; ``%LOCALAPPDATA%\\Dia Studio`` on Windows;
``~/Library/Application Support/Dia Studio`` on macOS). The folders are private (0700).
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import StorageError
from engine.files import ensure_private_dir

APP_NAME = "Dia Studio"
DATA_DIR_ENV = "DIA_STUDIO_DATA_DIR"


def data_dir(*, create: bool = True) -> Path:
    """The user data directory, read afresh on every call so the override can change at runtime."""
    override = os.environ.get(DATA_DIR_ENV, "").strip()
    if override:
        path = Path(override).expanduser()
    else:
        import platformdirs

        # appauthor=False: no "<author>\<app>" nesting on Windows.
        path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False, roaming=False))
    if create:
        _create(path)
    return path


def voices_dir(*, create: bool = True) -> Path:
    """The voice library's folder inside the data directory."""
    path = data_dir(create=create) / "voices"
    if create:
        _create(path)
    return path


def _create(path: Path) -> None:
    """Create a private folder; an existing one on a read-only medium is used as it is."""
    if path.is_dir() and not os.access(path, os.W_OK):
        return
    try:
        ensure_private_dir(path)
    except OSError as exc:
        raise StorageError(f"Can't create the data folder {path}: {exc}. Set {DATA_DIR_ENV} to a writable "
                           "folder, or fix the permissions.") from exc
