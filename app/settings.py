"""Typed options over QSettings (INI format): values written by an earlier run come back from the
INI file as strings, so every read converts them back to the option's type. Integers are parsed
in Python: Qt's own string-to-int conversion goes through a float and rounds large numbers (a
seed of 3000982715 came back as 3000982784).

The INI file holds the user's settings (recent files, folders): it is private (0600, in a 0700
folder), like the rest of the user's data.

    settings = Settings()
    settings.get(MODEL_PATH)            # -> str
    settings.set(THEME, "dark")
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QByteArray, QSettings

from engine.files import PRIVATE_FILE_MODE, ensure_private_dir, make_private

log = logging.getLogger(__name__)

ORGANIZATION = "Dia Studio"
APPLICATION = "Dia Studio"

T = TypeVar("T")


@dataclass(frozen=True)
class Option(Generic[T]):
    """One setting: its key, default and Python type (``str``, ``int``, ``float``, ``bool``,
    ``list`` of strings, ``bytes`` for Qt state blobs, or ``dict`` stored as JSON)."""

    key: str
    default: T
    kind: type


# -- the model
MODEL_PATH = Option("model/model", "", str)  # folder, weight file or repo id; "" = Dia-1.6B-0626
CODEC_PATH = Option("model/codec", "", str)
DEVICE = Option("model/device", "auto", str)
DTYPE = Option("model/dtype", "auto", str)
QUANTIZE = Option("model/quantize_int8", False, bool)  # before 0.4: the int8 checkbox (read when QUANTIZE_MODE is unset)
QUANTIZE_MODE = Option("model/quantize_mode", "unset", str)  # "" = exact, else one of engine.QUANTIZE_MODES
OFFLINE = Option("model/offline", False, bool)
# -- rendering
PARAMS = Option("render/params", {}, dict)  # GenerationParams.to_dict() of the panel
LAST_SEED = Option("render/last_seed", -1, int)  # exact up to 2**63 - 1 (see _to_int)
USER_PRESETS = Option("render/user_presets", {}, dict)  # name -> params dict
PLAY_WHILE_RENDERING = Option("render/play_while_rendering", True, bool)
CAST_S1 = Option("cast/s1", -2, int)  # voice id; -1 = random voice; -2 = not chosen yet (use default)
CAST_S2 = Option("cast/s2", -1, int)
# -- interface
THEME = Option("ui/theme", "system", str)  # system | light | dark
GEOMETRY = Option("ui/geometry", b"", bytes)
WINDOW_STATE = Option("ui/window_state", b"", bytes)
MAIN_SPLITTER = Option("ui/main_splitter", b"", bytes)
EDITOR_SPLITTER = Option("ui/editor_splitter", b"", bytes)
LIBRARY_GEOMETRY = Option("ui/library_geometry", b"", bytes)
BOTTOM_TAB = Option("ui/bottom_tab", 0, int)
EDITOR_FONT_SIZE = Option("editor/font_size", 0, int)  # 0 = the system's fixed font size
RECENT_FILES = Option("files/recent", [], list)
LAST_DIR = Option("files/last_dir", "", str)
EXPORT_FORMAT = Option("files/export_format", "wav", str)
# -- audio devices
OUTPUT_DEVICE = Option("audio/output_device", "", str)  # "" = system default
INPUT_DEVICE = Option("audio/input_device", "", str)
RECORD_SECONDS = Option("recorder/seconds", 8.0, float)
RECORD_COUNTDOWN = Option("recorder/countdown", 3, int)
STT_MODEL = Option("stt/model", "base.en", str)


class Settings:
    """Typed access to the app's QSettings; a bad stored value falls back to the default."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings or QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                                        ORGANIZATION, APPLICATION)
        self._make_file_private()

    def get(self, option: Option[T]) -> T:
        if not self.q.contains(option.key):
            return _copy(option.default)
        try:
            if option.kind is dict:
                value = json.loads(self.q.value(option.key, "{}", type=str) or "{}")
                return value if isinstance(value, dict) else _copy(option.default)
            if option.kind is bytes:
                value = self.q.value(option.key, QByteArray(), type=QByteArray)
                return bytes(value.data()) if isinstance(value, QByteArray) else bytes(value or b"")
            if option.kind is list:
                value = self.q.value(option.key, [], type=list)
                return [str(v) for v in (value or [])]
            if option.kind is int:
                return _to_int(self.q.value(option.key, option.default))
            return self.q.value(option.key, option.default, type=option.kind)
        except (TypeError, ValueError) as exc:
            log.warning("setting %s is unreadable (%s); using the default", option.key, exc)
            return _copy(option.default)

    def set(self, option: Option[T], value: T) -> None:
        if option.kind is dict:
            self.q.setValue(option.key, json.dumps(value, sort_keys=True))
        elif option.kind is bytes:
            self.q.setValue(option.key, QByteArray(bytes(value)))
        elif option.kind is list:
            self.q.setValue(option.key, [str(v) for v in value])
        elif option.kind is int:
            self.q.setValue(option.key, str(_to_int(value)))  # the INI text either way; never a float
        else:
            self.q.setValue(option.key, option.kind(value))

    def remove(self, option: Option[Any]) -> None:
        self.q.remove(option.key)

    def sync(self) -> None:
        self.q.sync()
        self._make_file_private()

    def _make_file_private(self) -> None:
        """Create the INI file as 0600 in a 0700 folder before Qt writes it (Qt keeps an existing
        file's mode when it rewrites it), or tighten one that an earlier version left readable."""
        if self.q.format() != QSettings.Format.IniFormat or not self.q.fileName():
            return
        path = self.q.fileName()
        try:
            ensure_private_dir(os.path.dirname(path))
            if not os.path.exists(path):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
        except OSError as exc:  # a read-only config folder must not stop the app; Qt reports it on sync
            log.warning("can't create the settings file %s: %s", path, exc)
            return
        make_private(path)

    @property
    def file_name(self) -> str:
        return self.q.fileName()


def _to_int(value: Any) -> int:
    """An int from a stored value (an int, or the INI file's text), exactly; bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, str, bytes)):
        raise TypeError(f"not an integer: {value!r}")
    return int(value.strip() if isinstance(value, (str, bytes)) else value)


def _copy(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return type(value)(value)
    return value


MAX_RECENT = 8
"""Scripts and projects in File ▸ Open recent (one list for both)."""


def recent_files(settings: Settings) -> list[str]:
    """Recently opened or saved files that still exist, newest first."""
    return [p for p in settings.get(RECENT_FILES) if Path(p).is_file()]


def remember_file(settings: Settings, path: str) -> None:
    """Put ``path`` first in the recent files and make its folder the one dialogs open in."""
    settings.set(LAST_DIR, str(Path(path).parent))
    recent = [p for p in settings.get(RECENT_FILES) if p != path]
    settings.set(RECENT_FILES, [path, *recent][:MAX_RECENT])
