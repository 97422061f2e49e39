"""Voice prompts: one or two speakers' clips joined into the audio Dia continues, plus the text.

The S1 clip comes first, then a short silence, then the S2 clip; the transcript is
``[S1] <S1's words>`` and ``[S2] <S2's words>`` on separate lines and precedes the script.

Only S2 cloned: Dia binds a voice to the tag it speaks under in the prompt, and its text must
open with [S1] and then alternate. A prompt tagged [S2] would open the text with [S2]; one tagged
[S1] would give the cloned voice to the user's S1. So the clip is tagged ``[S1]`` and the script's
tags are swapped (``swap_speakers``): the model's S1 (the clip's voice) speaks the user's S2
lines, its S2 (a fresh voice) the user's S1 lines, and the audio is the same dialogue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from engine import audio
from engine.errors import (
    InvalidParameterError,
    InvalidVoiceSampleError,
    MissingTranscriptError,
)

GAP_SECONDS = 0.4
_TAG = re.compile(r"\[S([12])\]")


def check_clip(samples: object, sample_rate: object, what: str = "The voice prompt") -> None:
    """Refuse audio that can't be a voice clip, before anything resamples it.

    Samples must be numbers shaped ``(n,)`` or ``(n, channels)``, all finite, at a rate and channel
    count ``engine.audio`` accepts; otherwise ``InvalidVoiceSampleError`` says what is wrong.
    """
    try:
        arr = np.asarray(samples)
    except (TypeError, ValueError):  # ragged lists and the like
        arr = np.asarray(None)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InvalidVoiceSampleError(f"{what} must be an array of audio samples (numbers).")
    if arr.ndim not in (1, 2):
        raise InvalidVoiceSampleError(
            f"{what} must be shaped (samples,) or (samples, channels), not {arr.shape}.")
    problem = audio.layout_problem(sample_rate, arr.shape[1] if arr.ndim == 2 else 1)
    if problem:
        raise InvalidVoiceSampleError(f"{what} can't be used: {problem}.")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise InvalidVoiceSampleError(f"{what} holds invalid (NaN or infinite) samples.")


@dataclass(frozen=True)
class VoicePrompt:
    """Audio for Dia to continue (any rate, mono or (n, channels)) and its tagged transcript."""

    samples: np.ndarray
    sample_rate: int
    transcript: str
    swap_speakers: bool = False

    def __post_init__(self) -> None:
        check_clip(self.samples, self.sample_rate)

    @property
    def duration(self) -> float:
        return audio.duration_of(self.samples, self.sample_rate)

    def text_for(self, script: str) -> str:
        """The full text for Dia: the prompt's transcript, a newline, then the (tag-swapped) script."""
        body = script.strip()
        if self.swap_speakers:
            body = swap_speaker_tags(body if _TAG.search(body) else "[S1] " + body)
        return f"{self.transcript.strip()}\n{body}" if self.transcript.strip() else body


@dataclass(frozen=True)
class PromptPart:
    """One speaker's clip and what is said in it."""

    speaker: str  # "S1" or "S2"
    samples: np.ndarray
    sample_rate: int
    transcript: str
    label: str = ""

    def __post_init__(self) -> None:
        check_clip(self.samples, self.sample_rate, self.label or f"The {self.speaker} voice")


def swap_speaker_tags(text: str) -> str:
    """Exchange every [S1] and [S2]."""
    return _TAG.sub(lambda m: "[S2]" if m.group(1) == "1" else "[S1]", text)


def combine_parts(parts: list[PromptPart], gap_seconds: float = GAP_SECONDS) -> VoicePrompt:
    """Join the clips (S1 first) at 44.1 kHz mono and build the tagged transcript."""
    speakers = [p.speaker for p in parts]
    if not parts or len(set(speakers)) != len(speakers) or not set(speakers) <= {"S1", "S2"}:
        raise InvalidParameterError(f"a voice prompt takes one clip for S1 and/or S2, got {speakers}")
    ordered = sorted(parts, key=lambda p: p.speaker)
    swap = speakers == ["S2"]
    rate = audio.TARGET_SAMPLE_RATE
    pieces, lines = [], []
    for part in ordered:
        words = " ".join((part.transcript or "").split())
        if not words:
            label = part.label or f"the {part.speaker} voice"
            raise MissingTranscriptError(
                f"{label} has no transcript; cloning needs the exact words spoken in the clip.")
        if pieces:
            pieces.append(np.zeros(int(round(gap_seconds * rate)), dtype=np.float32))
        pieces.append(audio.resample(audio.to_mono(part.samples), part.sample_rate, rate).astype(np.float32))
        words = _TAG.sub("", words).strip()  # the tag comes from the part, never from the words
        lines.append(f"[{'S1' if swap else part.speaker}] {words}")
    return VoicePrompt(np.concatenate(pieces), rate, "\n".join(lines), swap)
