"""Errors as the seeds' API answers them: ``{"error": {"type", "message"}}`` with their HTTP status.

Engine errors keep their ``code`` as the ``type`` where the seeds name it; failures of the model
itself become ``upstream_error`` (502). Messages never carry file-system paths: every path-like
run in a message is cut down to its last component.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from engine import DiaStudioError, data_dir

log = logging.getLogger(__name__)

STATUS_BY_TYPE: dict[str, int] = {
    "missing_input": 400,
    "invalid_script": 400,
    "invalid_parameter": 400,
    "invalid_json": 400,
    "invalid_voice_sample": 400,
    "missing_transcript": 400,
    "audio_decode_failed": 400,
    "missing_dependency": 400,
    "invalid_host": 400,
    "unauthorized": 401,
    "not_found": 404,
    "no_provider": 404,
    "method_not_allowed": 405,
    "cancelled": 409,
    "request_too_large": 413,
    "unsupported_media_type": 415,
    "queue_full": 429,
    "internal_error": 500,
    "upstream_error": 502,
    "storage_error": 503,
}

# Engine failures that mean "the Dia server failed" to an API client (seed 000's upstream_error).
UPSTREAM_CODES = frozenset({"upstream_error", "model_not_found", "invalid_checkpoint", "download_failed",
                            "device_unavailable"})

# An absolute POSIX path, a home-relative path or a Windows drive path, up to the next quote or space;
# the API's own routes (/v1/..., /health) are not file paths.
_PATH = re.compile(r"""(?:[A-Za-z]:[\\/]|[~…][\\/]|(?<![\w.])/(?!v1/|health\b|openapi\.json))"""
                   r"""(?:[^\s'"`]*[\\/])+([^\s'"`\\/]*)""")


class ApiError(Exception):
    """An error the API answers with ``status`` and ``{"error": {"type", "message"}}``."""

    def __init__(self, type_: str, message: str, *, status: int | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.type = type_
        self.message = scrub_paths(message)
        self.status = status or STATUS_BY_TYPE.get(type_, 400)
        self.headers = dict(headers or {})

    def body(self) -> dict:
        return {"error": {"type": self.type, "message": self.message}}


def _known_roots() -> list[str]:
    """Folders whose names may hold spaces (the data folder, home): replaced before the pattern runs."""
    roots = [str(data_dir(create=False)), str(Path.home()), tempfile.gettempdir()]
    return sorted({root for root in roots if len(root) > 1}, key=len, reverse=True)


def scrub_paths(message: str) -> str:
    """``message`` with every file-system path reduced to its last component (``…/name``)."""
    for root in _known_roots():
        message = message.replace(root, "…")
    return _PATH.sub(lambda m: "…/" + m.group(1) if m.group(1) else "…", message)


def from_engine(exc: DiaStudioError) -> ApiError:
    """The API error for an engine error (its code kept, model failures as upstream_error)."""
    code = exc.code
    message = str(exc)
    if code in UPSTREAM_CODES:
        return ApiError("upstream_error", f"the Dia model failed: {message}")
    if code not in STATUS_BY_TYPE:
        log.warning("unmapped engine error code %s", code)
        return ApiError("upstream_error", f"the Dia model failed: {message}")
    return ApiError(code, message)
