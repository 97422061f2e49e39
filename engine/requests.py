"""The engine's request and result types, free of torch so that building them is instant
(the app creates options and requests on its UI thread; the model loads on a worker)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from engine.errors import InvalidParameterError, InvalidVoiceSampleError, MissingTranscriptError
from engine.model.config import FRAME_RATE, SAMPLE_RATE
from engine.model.hub import DownloadProgress
from engine.params import GenerationParams
from engine.script import check_characters, parse_script, text_token_count
from engine.voice_prompt import VoicePrompt

QUANTIZE_MODES = (None, "", "int8", "int8-dynamic", "int4")


@dataclass(frozen=True)
class EngineOptions:
    """Where the weights are and how to run them."""

    model: str | None = None  # folder, weight file or Hugging Face repo id; None = Dia-1.6B-0626
    codec: str | None = None  # folder, weights.pth or repo id; None = descript/dac_44khz
    device: str = "auto"  # auto | cpu | cuda | mps
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16 (the transformer; DAC runs in float32)
    quantize: str | None = None  # None | "int8" (weight-only) | "int8-dynamic" (fastest on CPUs); see DiaModel.quantize
    offline: bool | None = None  # None: follow HF_HUB_OFFLINE
    cross_attn_rope: bool | None = None  # force the v0.1 graph on/off (default: from config.json)


@dataclass(frozen=True)
class LoadProgress:
    """Loading stages: ``download`` (with bytes), ``model``, ``codec``, ``ready``."""

    stage: str
    message: str
    download: DownloadProgress | None = None


@dataclass(frozen=True)
class RenderRequest:
    """What to render. Wrong types raise at once: ``InvalidParameterError`` for ``script`` and
    ``params``, ``InvalidVoiceSampleError`` for ``voice``. The script's content is checked by
    ``prepare_text`` (and every render)."""

    script: str
    params: GenerationParams = field(default_factory=GenerationParams)
    voice: VoicePrompt | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.script, str):
            hint = (": decode a file's bytes with engine.script.decode_script"
                    if isinstance(self.script, (bytes, bytearray, memoryview)) else "")
            raise InvalidParameterError(f"the script must be text (str), not {type(self.script).__name__}{hint}")
        if not isinstance(self.params, GenerationParams):
            hint = ": build them with GenerationParams.from_dict" if isinstance(self.params, Mapping) else ""
            raise InvalidParameterError(
                f"params must be GenerationParams, not {type(self.params).__name__}{hint}")
        if self.voice is not None and not isinstance(self.voice, VoicePrompt):
            raise InvalidVoiceSampleError(
                f"voice must be a VoicePrompt or None, not {type(self.voice).__name__}")


def prepare_text(request: RenderRequest) -> tuple[str, tuple[str, ...]]:
    """The exact text Dia is given (voice transcript first) and the script's warnings.

    Raises the typed error of a bad script (with line and column), of a voice prompt without a
    transcript, or of a transcript that is not valid text. Needs no model: callers check a request
    with it before loading one.
    """
    voice = request.voice
    prefix_tokens = 0
    if voice is not None:
        transcript = voice.transcript.strip() if isinstance(voice.transcript, str) else ""
        if not transcript:
            raise MissingTranscriptError(
                "the voice prompt has no transcript: Dia needs the words spoken in the sample to clone it")
        _check_transcript(transcript)
        prefix_tokens = text_token_count(transcript + "\n")
    script = parse_script(request.script, prefix_tokens=prefix_tokens)
    warnings = tuple(w.message for w in script.warnings)
    text = voice.text_for(script.model_text) if voice is not None else script.model_text
    return text, warnings


def _check_transcript(transcript: str) -> None:
    """Refuse a transcript holding what is not text (it would crash or confuse Dia's tokenizer)."""
    for issue in check_characters(transcript):
        raise InvalidVoiceSampleError(
            f"the voice prompt's transcript is not usable: {issue.message} (character {issue.start + 1})")


@dataclass(frozen=True)
class RenderProgress:
    """``stage`` is ``prompt`` (encoding the voice), ``generate`` or ``finish`` (decode, tempo)."""

    stage: str
    step: int = 0
    max_steps: int = 0
    frames: int = 0
    frames_per_second: float = 0.0
    elapsed: float = 0.0

    @property
    def audio_seconds(self) -> float:
        return self.frames / FRAME_RATE

    @property
    def eta_seconds(self) -> float | None:
        """Upper bound on the time left (the render may stop earlier at EOS)."""
        if self.frames_per_second <= 0:
            return None
        return (self.max_steps - self.step) / self.frames_per_second


@dataclass(frozen=True)
class AudioChunk:
    """A piece of streamed audio: ``samples`` start at ``start`` samples into the render."""

    samples: np.ndarray
    start: int
    sample_rate: int = SAMPLE_RATE


@dataclass(frozen=True)
class RenderResult:
    audio: np.ndarray  # float32 mono at ``sample_rate``
    sample_rate: int
    seed: int
    params: GenerationParams
    model_text: str
    codes: np.ndarray  # (frames, 9) generated codes, prompt excluded
    stop_reason: str  # "eos" | "max_new_tokens"
    warnings: tuple[str, ...]
    timings: dict[str, float]

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate
