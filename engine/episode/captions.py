"""Captions for an episode: one cue per turn, as WebVTT (with ``<v Character>`` voice spans) or SRT.

Without word timestamps from speech-to-text, a turn's timing is estimated: each block's span is
shared among its turns in proportion to their text length. A WebVTT file says so in a NOTE; SRT
has no place for comments, so the caller must tell the user instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InvalidParameterError, StorageError
from engine.files import atomic_write_text

CAPTION_FORMATS = (".vtt", ".srt")

ESTIMATED_NOTE = ("Caption timings are estimated: each block's time is shared among its turns "
                  "in proportion to their text length.")


@dataclass(frozen=True)
class Caption:
    """One cue: who speaks what, from ``start`` to ``end`` seconds."""

    start: float
    end: float
    character: str
    text: str


def estimate_captions(block_turns: Sequence[Sequence[tuple[str, str]]],
                      block_spans: Sequence[tuple[float, float]]) -> list[Caption]:
    """One caption per turn; each block's span is shared by its turns in proportion to their text.

    ``block_turns[i]`` lists block ``i``'s ``(character, spoken text)`` turns and
    ``block_spans[i]`` its ``(start, end)`` seconds in the episode. Turns without text, and
    blocks with an empty span (no sound), give no caption.
    """
    if len(block_turns) != len(block_spans):
        raise InvalidParameterError(
            f"Got turns for {len(block_turns)} blocks but spans for {len(block_spans)}; they must match.")
    captions: list[Caption] = []
    for turns, (start, end) in zip(block_turns, block_spans):
        captions.extend(_block_captions(turns, float(start), float(end)))
    return captions


def _block_captions(turns: Sequence[tuple[str, str]], start: float, end: float) -> list[Caption]:
    spoken = [(character, " ".join(text.split())) for character, text in turns]
    spoken = [(character, text) for character, text in spoken if text]
    total = sum(len(text) for _, text in spoken)
    if end <= start or total == 0:
        return []
    captions, done = [], 0
    for character, text in spoken:
        cue_start = start + (end - start) * done / total
        done += len(text)
        cue_end = start + (end - start) * done / total
        captions.append(Caption(cue_start, cue_end, character, text))
    return captions


def write_captions(path: str | os.PathLike, captions: Sequence[Caption], *, estimated: bool) -> Path:
    """Write ``captions`` as WebVTT (``.vtt``) or SRT (``.srt``) atomically; returns the path.

    ``estimated`` adds a NOTE saying the timings are estimated (WebVTT only: SRT can't carry one).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CAPTION_FORMATS:
        raise InvalidParameterError(
            f"Unknown caption file type '{suffix or path.name}'; use {' or '.join(CAPTION_FORMATS)}.")
    cues = [c for c in captions if _millis(c.end) > _millis(c.start)]
    text = to_webvtt(cues, estimated=estimated) if suffix == ".vtt" else to_srt(cues)
    try:
        return atomic_write_text(path, text)
    except OSError as exc:
        raise StorageError(
            f"Could not write {path}: {exc}. Check that the folder exists, is writable and has free space."
        ) from exc


def to_webvtt(captions: Sequence[Caption], *, estimated: bool) -> str:
    """WebVTT text: a header, an optional NOTE, then one ``<v Character>`` cue per caption."""
    parts = ["WEBVTT\n"]
    if estimated:
        parts.append(f"NOTE {ESTIMATED_NOTE}\n")
    for caption in captions:
        voice = _vtt_escape(" ".join(caption.character.split()))
        parts.append(f"{_timestamp(caption.start, '.')} --> {_timestamp(caption.end, '.')}\n"
                     f"<v {voice}>{_vtt_escape(_one_line(caption.text))}</v>\n")
    return "\n".join(parts)


def to_srt(captions: Sequence[Caption]) -> str:
    """SRT text: numbered cues, the speaker's name before each line."""
    parts = []
    for number, caption in enumerate(captions, start=1):
        speaker = " ".join(caption.character.split())
        line = f"{speaker}: {_one_line(caption.text)}" if speaker else _one_line(caption.text)
        parts.append(f"{number}\n{_timestamp(caption.start, ',')} --> {_timestamp(caption.end, ',')}\n"
                     f"{line.replace('-->', '->')}\n")
    return "\n".join(parts)


def _one_line(text: str) -> str:
    # A blank line ends a cue in both formats, so a turn's text becomes one line.
    return " ".join(text.split())


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _millis(seconds: float) -> int:
    return max(0, round(float(seconds) * 1000.0))


def _timestamp(seconds: float, decimal: str) -> str:
    millis = _millis(seconds)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{decimal}{rest % 1000:03d}"


__all__ = [
    "CAPTION_FORMATS",
    "ESTIMATED_NOTE",
    "Caption",
    "estimate_captions",
    "to_srt",
    "to_webvtt",
    "write_captions",
]
