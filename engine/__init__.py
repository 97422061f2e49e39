"""Dia Studio engine: the Qt-free core (model, codec, generation, script rules, audio, voices).

The app and the CLI use only what this module re-exports.
"""

from engine.errors import (  # noqa: F401
    AudioDecodeFailedError,
    CancelledError,
    CheckpointError,
    DeviceUnavailableError,
    DiaStudioError,
    DownloadError,
    GenerationError,
    InvalidParameterError,
    InvalidScriptError,
    InvalidVoiceSampleError,
    MissingInputError,
    MissingTranscriptError,
    ModelNotFoundError,
    RequestTooLargeError,
)

__version__ = "0.1.0"
