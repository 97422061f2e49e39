"""Assembling a voice prompt from one or two speakers' clips: audio joined S1 → S2, tagged transcript."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from engine import audio
from engine.errors import MissingTranscriptError

GAP_SECONDS = 0.3
_TAG = re.compile(r"\[S[12]\]")


@dataclass(frozen=True)
class PromptPart:
    """One speaker's clip and what is said in it."""

    speaker: str  # "S1" or "S2"
    samples: np.ndarray
    sample_rate: int
    transcript: str
    name: str = ""


@dataclass(frozen=True)
class AssembledPrompt:
    samples: np.ndarray  # float32 mono at 44.1 kHz
    sample_rate: int
    transcript: str  # tagged: "[S1] … [S2] …"
    speakers: tuple[str, ...]


def tag_transcript(speaker: str, transcript: str) -> str:
    """The transcript with its speaker tag in front, unless it carries [S1]/[S2] tags already."""
    text = " ".join(transcript.split())
    return text if _TAG.search(text) else f"[{speaker}] {text}"


def combine_parts(parts: list[PromptPart], gap_seconds: float = GAP_SECONDS) -> AssembledPrompt:
    """S1's clip, a short silence, then S2's clip, at 44.1 kHz mono, with the joined tagged transcript."""
    ordered = sorted(parts, key=lambda p: p.speaker)
    rate = audio.TARGET_SAMPLE_RATE
    pieces, texts = [], []
    for i, part in enumerate(ordered):
        if not part.transcript or not part.transcript.strip():
            label = part.name or f"the {part.speaker} voice"
            raise MissingTranscriptError(f"{label} has no transcript: Dia needs the words spoken in a sample to clone it")
        if i:
            pieces.append(np.zeros(int(gap_seconds * rate), dtype=np.float32))
        pieces.append(audio.resample(audio.to_mono(part.samples), part.sample_rate, rate).astype(np.float32))
        texts.append(tag_transcript(part.speaker, part.transcript))
    samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    return AssembledPrompt(samples, rate, " ".join(texts), tuple(p.speaker for p in ordered))
