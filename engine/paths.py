"""Where Dia Studio keeps the user's data (voice library, render history).

``DIA_STUDIO_DATA_DIR`` overrides the location (tests, portable installs); otherwise it is the
platform's user data directory for "Dia Studio" (on Linux ``$XDG_DATA_HOME/Dia Studio``, usually
``~/.local/share/Dia Studio``; ``%LOCALAPPDATA%\\Dia Studio`` on Windows;
``~/Library/Application Support/Dia Studio`` on macOS).
"""

from __future__ import annotations

import os
from pathlib import Path

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
        path.mkdir(parents=True, exist_ok=True)
    return path


def voices_dir(*, create: bool = True) -> Path:
    """The voice library's folder inside the data directory."""
    path = data_dir(create=create) / "voices"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
