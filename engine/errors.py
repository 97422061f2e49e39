"""Typed errors of the engine.

Every error carries a stable machine-readable ``code`` (the hosted API's error types, see
``shared/seeds/000``), a human-readable message and, where it concerns a script, the 1-based
line and column it points at, so an editor can underline it.
"""

from __future__ import annotations


class DiaStudioError(Exception):
    """Base class of every error the engine raises on purpose."""

    code = "internal_error"

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        where = f" (line {self.line}, column {self.column})" if self.line is not None else ""
        return f"{self.message}{where}"

    def to_dict(self) -> dict:
        """A JSON-friendly form: ``{"type", "message", "line", "column"}``."""
        return {"type": self.code, "message": self.message, "line": self.line, "column": self.column}


class MissingInputError(DiaStudioError):
    code = "missing_input"


class InvalidScriptError(DiaStudioError):
    code = "invalid_script"


class RequestTooLargeError(DiaStudioError):
    code = "request_too_large"


class InvalidParameterError(DiaStudioError):
    code = "invalid_parameter"


class InvalidVoiceSampleError(DiaStudioError):
    code = "invalid_voice_sample"


class MissingTranscriptError(DiaStudioError):
    code = "missing_transcript"


class AudioDecodeFailedError(DiaStudioError):
    code = "audio_decode_failed"


class ModelNotFoundError(DiaStudioError):
    """No model/codec files where we looked (folder, Hugging Face cache, offline mode)."""

    code = "model_not_found"


class CheckpointError(DiaStudioError):
    """A checkpoint exists but is truncated, corrupt or does not match the expected layout."""

    code = "invalid_checkpoint"


class DownloadError(DiaStudioError):
    code = "download_failed"


class DeviceUnavailableError(DiaStudioError):
    code = "device_unavailable"


class CancelledError(DiaStudioError):
    """The caller asked to stop a long job; not a failure."""

    code = "cancelled"


class GenerationError(DiaStudioError):
    """The model failed while rendering (the local counterpart of ``upstream_error``)."""

    code = "upstream_error"


class StorageError(DiaStudioError):
    """A local database can't be used: corrupt, unreadable, or written by a newer Dia Studio."""

    code = "storage_error"


class MissingDependencyError(DiaStudioError):
    """An optional feature's package is not installed (e.g. ``pip install dia-studio[stt]``)."""

    code = "missing_dependency"


class ProjectCorruptError(DiaStudioError):
    """An episode project file is damaged, truncated or not a project at all (it is left untouched)."""

    code = "project_corrupt"
