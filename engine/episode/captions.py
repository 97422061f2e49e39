"""Captions for an episode: one cue per turn, as WebVTT (with ``<v Character>`` voice spans) or SRT.

With speech-to-text (the ``stt`` extra), each turn is timed by its words as heard: the words
Whisper hears in a block's audio are aligned to the block's turns (``take_voice.align_words``)
and a turn's cue runs from its first heard word to its last. A block where that fails (a turn
with no word heard) falls back to the estimate: the block's span shared among its turns in
proportion to their text length. A WebVTT file says in a NOTE which blocks are estimated; SRT
has no place for comments, so the caller must tell the user instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import InvalidParameterError, StorageError
from engine.files import atomic_write_text

if TYPE_CHECKING:
    from engine.stt import WordTranscriber

CAPTION_FORMATS = (".vtt", ".srt")
CAPTION_TIMINGS = ("auto", "stt", "estimate")
"""``auto``: timed by speech-to-text when it is installed (and its model at hand), else estimated."""

ESTIMATED_NOTE = ("Caption timings are estimated: each block's time is shared among its turns "
                  "in proportion to their text length.")
STT_NOTE = "Caption timings come from speech recognition: each turn runs from its first word heard to its last."


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


def stt_captions(block_turns: Sequence[Sequence[tuple[str, str]]], block_audio: Sequence[np.ndarray],
                 block_spans: Sequence[tuple[float, float]], sample_rate: int,
                 transcriber: WordTranscriber) -> tuple[list[Caption], list[int]]:
    """One caption per turn, timed by the words ``transcriber`` hears in each block's audio.

    ``block_audio[i]`` is the episode's audio inside ``block_spans[i]`` (so a heard word's time
    plus the span's start is its time in the episode). Returns the captions and the indexes of the
    blocks whose timing had to be estimated (``estimate_captions``' rule) because a turn was not heard.
    """
    if not len(block_turns) == len(block_audio) == len(block_spans):
        raise InvalidParameterError(
            f"Got turns for {len(block_turns)} blocks, audio for {len(block_audio)} and spans for "
            f"{len(block_spans)}; they must match.")
    captions: list[Caption] = []
    estimated: list[int] = []
    for index, (turns, samples, (start, end)) in enumerate(zip(block_turns, block_audio, block_spans)):
        timed = _timed_block(turns, samples, sample_rate, float(start), float(end), transcriber)
        if timed is None:
            estimated.append(index)
            timed = _block_captions(turns, float(start), float(end))
        captions.extend(timed)
    return captions, estimated


def _timed_block(turns: Sequence[tuple[str, str]], samples: np.ndarray, sample_rate: int, start: float, end: float,
                 transcriber: WordTranscriber) -> list[Caption] | None:
    """The block's captions from its heard words, or None when a turn was not heard."""
    from engine.episode.take_voice import align_words

    spoken = [(i, character, " ".join(text.split())) for i, (character, text) in enumerate(turns) if text.strip()]
    if end <= start or not spoken:
        return []
    heard: dict[int, tuple[float, float]] = {}
    for word in align_words(transcriber.transcribe_words(samples, sample_rate), turns):
        if word.turn is not None:
            first, last = heard.get(word.turn, (word.heard.start, word.heard.end))
            heard[word.turn] = (min(first, word.heard.start), max(last, word.heard.end))
    captions: list[Caption] = []
    floor = start
    for i, character, text in spoken:
        if i not in heard:
            return None
        cue_start = min(end, max(floor, start + heard[i][0]))
        cue_end = min(end, start + heard[i][1])
        if _millis(cue_end) <= _millis(cue_start):
            return None
        captions.append(Caption(cue_start, cue_end, character, text))
        floor = cue_end
    return captions


def timing_note(estimated_blocks: Sequence[int] | None) -> str:
    """What a WebVTT NOTE says of the timing: ``None`` when every block is estimated, else the
    blocks (indexes, as ``episode status`` numbers them) whose timing is estimated."""
    if estimated_blocks is None:
        return ESTIMATED_NOTE
    if not estimated_blocks:
        return STT_NOTE + " No block is estimated."
    listed = ", ".join(map(str, estimated_blocks))
    return (f"{STT_NOTE} Estimated in block{'s' if len(estimated_blocks) > 1 else ''} {listed} (a turn was not "
            "heard): there each block's time is shared among its turns in proportion to their text length.")


def write_captions(path: str | os.PathLike, captions: Sequence[Caption], *, estimated: bool,
                   note: str | None = None) -> Path:
    """Write ``captions`` as WebVTT (``.vtt``) or SRT (``.srt``) atomically; returns the path.

    ``estimated`` adds a NOTE saying the timings are estimated, ``note`` a NOTE of its own instead
    (``timing_note``); WebVTT only: SRT can't carry one.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CAPTION_FORMATS:
        raise InvalidParameterError(
            f"Unknown caption file type '{suffix or path.name}'; use {' or '.join(CAPTION_FORMATS)}.")
    cues = [c for c in captions if _millis(c.end) > _millis(c.start)]
    text = to_webvtt(cues, estimated=estimated, note=note) if suffix == ".vtt" else to_srt(cues)
    try:
        return atomic_write_text(path, text)
    except OSError as exc:
        raise StorageError(
            f"Could not write {path}: {exc}. Check that the folder exists, is writable and has free space."
        ) from exc


def to_webvtt(captions: Sequence[Caption], *, estimated: bool, note: str | None = None) -> str:
    """WebVTT text: a header, an optional NOTE, then one ``<v Character>`` cue per caption."""
    parts = ["WEBVTT\n"]
    if note or estimated:
        parts.append(f"NOTE {_one_line(note or ESTIMATED_NOTE).replace('-->', '->')}\n")
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
    "CAPTION_TIMINGS",
    "ESTIMATED_NOTE",
    "STT_NOTE",
    "Caption",
    "estimate_captions",
    "stt_captions",
    "timing_note",
    "to_srt",
    "to_webvtt",
    "write_captions",
]
