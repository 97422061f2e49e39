"""Turning exceptions into messages a user can act on (never a traceback)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import engine

log = logging.getLogger(__name__)

LOG_FILE_HINT = {"path": ""}
"""Set by ``app.main`` to the log file's path, so unexpected errors can point at it."""

_TITLES = {
    "model_not_found": ("The Dia model isn't available",
                        "Open Model settings (Tools ▸ Model settings…) to download it, or choose the folder that holds it.",
                        "model_settings"),
    "invalid_checkpoint": ("The model files can't be loaded",
                           "The files may be incomplete or not a Dia model. Download them again in Model settings.",
                           "model_settings"),
    "download_failed": ("The download failed",
                        "Check the network connection and try again; the finished files are kept.", "model_settings"),
    "device_unavailable": ("The device isn't available", "", None),
    "missing_transcript": ("A voice has no transcript",
                           "Open the voice library and type the exact words spoken in the sample.", "voice_library"),
    "invalid_script": ("The script can't be rendered", "", "script"),
    "missing_input": ("The script is empty", "Write a dialogue first, e.g. “[S1] Hello! [S2] Hi there.”", "script"),
    "request_too_large": ("The script is too long for one render", "", "script"),
    "invalid_parameter": ("A setting is out of range", "", None),
    "upstream_error": ("Rendering failed", "", None),
    "storage_error": ("Your data can't be read or saved", "", None),
    "audio_decode_failed": ("The audio can't be read", "", None),
    "invalid_voice_sample": ("The audio can't be used as a voice", "", None),
    "missing_dependency": ("This feature isn't installed", "", None),
}


@dataclass(frozen=True)
class UserError:
    title: str
    message: str
    hint: str = ""
    code: str = "internal_error"
    line: int | None = None
    column: int | None = None
    action: str | None = None  # "model_settings" | "voice_library" | "script" | None

    @property
    def text(self) -> str:
        return self.message + (f"\n\n{self.hint}" if self.hint else "")


_PLAIN_WORD = re.compile(r"[a-z]+(?:['’][a-z]+)?(?=[\s,;:!?]|$)")
"""A first word that is an ordinary lower-case word: not a name like cfg_scale, dia-studio or take.wav."""
LOWER_CASE_NAMES = frozenset({"ffmpeg", "ffprobe", "libsndfile", "pip", "torch"})
"""Programs whose names are written in lower case even at the start of a sentence."""


def _sentence(text: str) -> str:
    """An engine message as a sentence: a plain first word capitalised (names, identifiers and file
    names are left as written), and a full stop unless it ends with one."""
    text = text.strip()
    if not text:
        return text
    first = _PLAIN_WORD.match(text)
    if first is not None and first.group() not in LOWER_CASE_NAMES:
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", ")")) else text + "."


def describe(exc: BaseException) -> UserError:
    """A title, message and hint for any exception; unexpected ones are logged with their traceback."""
    if isinstance(exc, engine.DiaStudioError):
        title, hint, action = _TITLES.get(exc.code, ("Something went wrong", "", None))
        where = f" (line {exc.line}, column {exc.column})" if exc.line is not None else ""
        return UserError(title, _sentence(exc.message) + where, hint, exc.code, exc.line, exc.column, action)
    if isinstance(exc, MemoryError):
        return UserError("Out of memory", "The computer ran out of memory while working.",
                         "Close other programs, or use a smaller precision (bfloat16) or int8 in Model settings.",
                         "out_of_memory", action="model_settings")
    if isinstance(exc, PermissionError):
        return UserError("Permission denied", f"Dia Studio may not access {exc.filename or 'the file'}.",
                         "Choose another folder.", "permission_denied")
    if isinstance(exc, OSError) and exc.filename:
        return UserError("A file can't be used", f"{exc.strerror or exc} ({exc.filename}).", "", "os_error")
    log.error("unexpected error", exc_info=exc)
    hint = f"Details were written to the log file: {LOG_FILE_HINT['path']}" if LOG_FILE_HINT["path"] else ""
    return UserError("Something went wrong", f"{type(exc).__name__}: {exc}", hint)
