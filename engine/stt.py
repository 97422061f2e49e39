"""Optional automatic transcription of voice samples (faster-whisper, extra ``dia-studio[stt]``).

``Transcriber`` is the small interface the library, CLI and app use; ``WhisperTranscriber`` is
the faster-whisper implementation. A model is named like faster-whisper's sizes (``tiny.en``,
``base.en``, ``small`` …), a Hugging Face repo id, or a local folder holding a CTranslate2
Whisper model. Named models come from the Hugging Face cache; with ``allow_download`` they are
downloaded (with a tqdm progress bar the caller can replace) when missing.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine import audio
from engine.errors import MissingDependencyError, ModelNotFoundError

WHISPER_RATE = 16000
DEFAULT_MODEL = "base.en"
STT_OFF = "off"
"""The model name that turns automatic transcription off (``dia-studio serve --stt-model off``)."""
_MODEL_FILES = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"]


class Transcriber(Protocol):
    def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        """The words spoken in ``samples`` (mono or ``(n, channels)`` float32)."""


@dataclass(frozen=True)
class TimedWord:
    """One recognised word and where it is: seconds from the start of the audio given."""

    text: str
    start: float
    end: float
    probability: float
    """The recogniser's confidence in the word, 0–1."""


class WordTranscriber(Protocol):
    def transcribe_words(self, samples: np.ndarray, sample_rate: int) -> list[TimedWord]:
        """The words spoken in ``samples``, in order, each with its start and end time."""


def stt_available() -> bool:
    """faster-whisper is installed (the model may still need downloading)."""
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        return False
    return True


INSTALL_HINT = "pip install 'dia-studio[stt]'"


def optional_transcriber(model: str | None = None) -> WhisperTranscriber | None:
    """Whisper for ``model`` (None or empty: ``DEFAULT_MODEL``) where it can run, as the API servers
    fill in the transcripts of uploads: None when ``model`` is ``STT_OFF`` or faster-whisper is not
    installed. The model is never downloaded, and is only looked for and loaded on first use."""
    if model == STT_OFF or not stt_available():
        return None
    return WhisperTranscriber(model=model or DEFAULT_MODEL, allow_download=False)


def require_stt(feature: str = "Automatic transcription") -> None:
    """Raise ``MissingDependencyError`` naming ``feature`` and the install command without faster-whisper."""
    _require_faster_whisper(feature)


def _require_faster_whisper(feature: str = "Automatic transcription"):
    try:
        import faster_whisper
    except ImportError as exc:
        raise MissingDependencyError(f"{feature} needs faster-whisper: {INSTALL_HINT}.") from exc
    return faster_whisper


def _repo_id(name: str) -> str:
    if "/" in name:
        return name
    from faster_whisper.utils import _MODELS  # size name -> Systran/faster-whisper-* repo

    if name not in _MODELS:
        raise ModelNotFoundError(
            f"Unknown Whisper model '{name}'; use one of {', '.join(_MODELS)}, a Hugging Face repo id "
            "or a folder with a CTranslate2 Whisper model.")
    return _MODELS[name]


def locate_model(name: str, *, allow_download: bool = False, tqdm_class: Any = None) -> Path:
    """The folder of a Whisper model: a local folder, the Hugging Face cache, or a download."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ModelNotFoundError(f"{path} holds no CTranslate2 Whisper model (model.bin is missing).")
        return path
    _require_faster_whisper()
    repo_id = _repo_id(name)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=_MODEL_FILES, local_files_only=True))
    except Exception as cached_exc:  # noqa: BLE001 - not in the cache (or a partial download)
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        if not allow_download or offline:
            raise ModelNotFoundError(
                f"The Whisper model '{name}' is not downloaded yet ({repo_id}); "
                + ("downloads are off (HF_HUB_OFFLINE)." if offline else "allow the download first.")
            ) from cached_exc
    try:
        kwargs = {"tqdm_class": tqdm_class} if tqdm_class is not None else {}
        return Path(snapshot_download(repo_id, allow_patterns=_MODEL_FILES, **kwargs))
    except Exception as exc:  # noqa: BLE001
        from engine.errors import DownloadError

        raise DownloadError(f"Downloading the Whisper model '{name}' failed: {exc}") from exc


@dataclass
class WhisperTranscriber:
    """faster-whisper on the CPU (int8) or CUDA; the model loads on first use and stays loaded."""

    model: str = DEFAULT_MODEL
    device: str = "cpu"
    compute_type: str = "int8"
    language: str | None = "en"
    """Dia is English-only, so transcripts are English unless told otherwise."""
    beam_size: int = 5
    allow_download: bool = False
    tqdm_class: Any = None
    cpu_threads: int = 0
    _model: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            faster_whisper = _require_faster_whisper()
            folder = locate_model(self.model, allow_download=self.allow_download, tqdm_class=self.tqdm_class)
            try:
                self._model = faster_whisper.WhisperModel(
                    str(folder), device=self.device, compute_type=self.compute_type,
                    cpu_threads=self.cpu_threads or min(4, os.cpu_count() or 1))
            except Exception as exc:  # noqa: BLE001 - CTranslate2 reports corrupt files variously
                raise ModelNotFoundError(f"Can't load the Whisper model from {folder}: {exc}") from exc

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        return " ".join(seg.text.strip() for seg in self._segments(samples, sample_rate)).strip()

    def transcribe_words(self, samples: np.ndarray, sample_rate: int) -> list[TimedWord]:
        """The words with faster-whisper's word timestamps (seconds into ``samples``)."""
        segments = self._segments(samples, sample_rate, word_timestamps=True)
        return [TimedWord(w.word.strip(), float(w.start), float(w.end), float(w.probability))
                for seg in segments for w in (seg.words or ()) if w.word.strip()]

    def _segments(self, samples: np.ndarray, sample_rate: int, *, word_timestamps: bool = False) -> list:
        self.load()
        mono = audio.resample(audio.to_mono(samples), sample_rate, WHISPER_RATE)
        # No VAD filter: it would drop silences and shift every timestamp after them.
        segments, _info = self._model.transcribe(
            np.ascontiguousarray(mono, dtype=np.float32), language=self.language,
            beam_size=self.beam_size, condition_on_previous_text=False, vad_filter=False,
            word_timestamps=word_timestamps)
        return list(segments)
