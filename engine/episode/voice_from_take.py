"""A voice from a take: cut a character's clearest 3–10 s out of a rendered take to clone it later.

A character with no voice sample gets one from a take the user likes. Whisper's words (with their
timestamps) are aligned to the block's script words, so each heard word knows its turn and so its
character; the best span of whole words of that character, inside one turn or consecutive turns of
it, is cut at quiet points between words, faded, and prepared by the voice library's own clip
rules. Its transcript is the script's text for the words the alignment maps, Whisper's otherwise.

    voice = voice_from_take(take, 44100, block.turns, "Mara", transcriber=WhisperTranscriber())
    save_to_library(library, voice, "Mara")      # optional: also a library voice

Needs the ``stt`` extra (faster-whisper) for the word timestamps.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine import audio, stt, voices
from engine.errors import InvalidParameterError, InvalidVoiceSampleError
from engine.stt import TimedWord, WordTranscriber
from engine.voice_prompt import check_clip

MIN_SECONDS, MAX_SECONDS = voices.RECOMMENDED_SECONDS
PREFERRED_SECONDS = (6.0, 8.0)
"""Spans of this length score best; shorter and longer ones lose a little (see ``_length_fit``)."""
FRAME_SECONDS = 0.01
QUIET_BELOW_PEAK_DB = 40.0
"""A 10 ms frame this far below the take's loudest frame counts as silence (as ``trim_silence``)."""
EDGE_MARGIN_SECONDS = 0.15
"""At most this much silence is kept before the first word and after the last."""
EDGE_SLACK_SECONDS = 0.05
"""Whisper's word edges may be this far off inside the word: the quiet point is searched past them."""
EDGE_SEARCH_SECONDS = 0.3
"""With no neighbouring word, how far outside the word to look for a quiet point."""
FADE_SECONDS = 0.01
UNANCHORED_EDGE_FACTOR = 0.8
"""A span whose first or last word is not the script's word scores this much less (its edges and
transcript are less certain)."""
MAX_CLIP_TRIES = 20

_TOKEN = re.compile(r"\([^)]*\)|\S+")  # a (cue) as one token, else whitespace-separated words
_NOT_WORD = re.compile(r"[^\w']|_")


@dataclass(frozen=True)
class TakeVoice:
    """A character's voice cut from a take, ready to be a voice prompt."""

    character: str
    samples: np.ndarray
    """44.1 kHz mono float32, trimmed and loudness-normalised like a library voice."""
    sample_rate: int
    transcript: str
    """The exact words of the cut: the script's where the alignment maps them, else Whisper's."""
    start: float
    end: float
    """Where the cut lies in the take, in seconds."""
    score: float
    """0–1: alignment confidence × recogniser confidence × length fit × share of sound."""

    @property
    def duration(self) -> float:
        return audio.duration_of(self.samples, self.sample_rate)


@dataclass(frozen=True)
class AlignedWord:
    """A heard word with the turn the script places it in (``None`` where that is uncertain)."""

    heard: TimedWord
    turn: int | None
    script_index: int | None
    """Index into the block's script words when the word is the script's word exactly."""


@dataclass(frozen=True)
class ScriptWord:
    text: str
    """As written, with its punctuation."""
    key: str
    """Normalised for matching; empty for cues such as ``(laughs)`` and bare punctuation."""
    turn: int


def word_key(text: str) -> str:
    """A word normalised for matching: case-folded, letters, digits and inner apostrophes only."""
    return _NOT_WORD.sub("", text.casefold()).strip("'")


def script_words(turns: Sequence[tuple[str, str]]) -> list[ScriptWord]:
    """Every token of the turns in order, each with its turn index."""
    return [ScriptWord(token, "" if token.startswith("(") else word_key(token), t)
            for t, (_character, text) in enumerate(turns) for token in _TOKEN.findall(text)]


def align_words(heard: Sequence[TimedWord], turns: Sequence[tuple[str, str]]) -> list[AlignedWord]:
    """Give each heard word its turn by aligning the heard words to the script's (difflib).

    Exact matches carry their script word. A misheard word takes the turn of the script words it
    replaces, an extra word the turn around it, in both cases only when that is one turn; words
    with nothing to match (bare punctuation) are dropped.
    """
    script = script_words(turns)
    keyed = [i for i, w in enumerate(script) if w.key]
    heard = [w for w in heard if word_key(w.text)]
    matcher = difflib.SequenceMatcher(None, [script[i].key for i in keyed],
                                      [word_key(w.text) for w in heard], autojunk=False)
    out: list[AlignedWord] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out += [AlignedWord(heard[j1 + k], script[keyed[i1 + k]].turn, keyed[i1 + k]) for k in range(j2 - j1)]
        elif op in ("replace", "insert"):
            around = keyed[max(i1 - 1, 0):i2 + 1] if op == "insert" else keyed[i1:i2]
            turns_there = {script[i].turn for i in around}
            turn = turns_there.pop() if len(turns_there) == 1 else None
            out += [AlignedWord(heard[j], turn, None) for j in range(j1, j2)]
    return out


# --------------------------------------------------------------------------- cutting

def _frame_levels(mono: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    """dB level of each 10 ms frame, and the frame length in samples."""
    frame = max(1, int(round(sr * FRAME_SECONDS)))
    n = -(-mono.shape[0] // frame)
    padded = np.zeros(n * frame, dtype=np.float64)
    padded[:mono.shape[0]] = mono
    rms = np.sqrt(np.mean(padded.reshape(n, frame) ** 2, axis=1))
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(rms), frame


@dataclass(frozen=True)
class _Take:
    mono: np.ndarray
    sr: int
    levels: np.ndarray
    frame: int
    quiet: np.ndarray

    @classmethod
    def of(cls, mono: np.ndarray, sr: int) -> _Take:
        levels, frame = _frame_levels(mono, sr)
        return cls(mono, sr, levels, frame, levels < levels.max() - QUIET_BELOW_PEAK_DB)

    def index(self, seconds: float) -> int:
        return int(np.clip(round(seconds / FRAME_SECONDS), 0, len(self.levels) - 1))

    def seconds(self, frame_index: int) -> float:
        return frame_index * self.frame / self.sr

    def silence_ratio(self, start: float, end: float) -> float:
        a, b = self.index(start), self.index(end)
        return float(self.quiet[a:b + 1].mean())


def _start_cut(take: _Take, words: Sequence[AlignedWord], k: int) -> float:
    """Where a span starting at word ``k`` begins: the quietest point before it, plus some silence."""
    first = words[k].heard
    lo = words[k - 1].heard.end - EDGE_SLACK_SECONDS if k else first.start - EDGE_SEARCH_SECONDS
    lo, hi = take.index(min(lo, first.start)), take.index(first.start + EDGE_SLACK_SECONDS)
    window = take.levels[lo:hi + 1]
    q = hi - int(np.argmin(window[::-1]))  # the quietest frame, the latest of equals
    # Keep some of the silence before the word, but never reach into the word before it.
    floor = max(take.index(words[k - 1].heard.end) if k else 0, q - round(EDGE_MARGIN_SECONDS / FRAME_SECONDS))
    while q > floor and take.quiet[q] and take.quiet[q - 1]:
        q -= 1
    return take.seconds(q)


def _end_cut(take: _Take, words: Sequence[AlignedWord], k: int) -> float:
    """Where a span ending at word ``k`` ends: the quietest point after it, plus some silence."""
    last = words[k].heard
    hi = words[k + 1].heard.start + EDGE_SLACK_SECONDS if k + 1 < len(words) else last.end + EDGE_SEARCH_SECONDS
    lo, hi = take.index(last.end - EDGE_SLACK_SECONDS), take.index(max(hi, last.end))
    q = lo + int(np.argmin(take.levels[lo:hi + 1]))  # the quietest frame, the earliest of equals
    # Keep some of the silence after the word, but never reach into the word after it.
    following = take.index(words[k + 1].heard.start) - 1 if k + 1 < len(words) else len(take.levels) - 1
    ceiling = min(following, q + round(EDGE_MARGIN_SECONDS / FRAME_SECONDS))
    while q < ceiling and take.quiet[q] and take.quiet[q + 1]:
        q += 1
    return min(take.seconds(q + 1), audio.duration_of(take.mono, take.sr))


def _runs(words: Sequence[AlignedWord], turns: Sequence[tuple[str, str]], character: str) -> list[list[int]]:
    """Stretches of consecutive heard words all in the character's turns, one turn or consecutive ones."""
    runs: list[list[int]] = []
    previous: int | None = None
    for k, word in enumerate(words):
        mine = word.turn is not None and turns[word.turn][0] == character
        if not mine:
            previous = None
            continue
        if previous is None or word.turn - previous not in (0, 1):
            runs.append([])
        runs[-1].append(k)
        previous = word.turn
    return runs


def _length_fit(seconds: float) -> float:
    low, high = PREFERRED_SECONDS
    if seconds < low:
        return 0.6 + 0.4 * (seconds - MIN_SECONDS) / (low - MIN_SECONDS)
    if seconds > high:
        return 1.0 - 0.2 * (seconds - high) / (MAX_SECONDS - high)
    return 1.0


@dataclass(frozen=True)
class _Span:
    first: int
    last: int
    start: float
    end: float
    score: float


def _spans(take: _Take, words: Sequence[AlignedWord], runs: list[list[int]]) -> list[_Span]:
    """Every span of whole words inside a run whose cut is 3–10 s, best first."""
    spans = []
    for run in runs:
        starts = {k: _start_cut(take, words, k) for k in run}
        ends = {k: _end_cut(take, words, k) for k in run}
        for a_pos, a in enumerate(run):
            for b in run[a_pos:]:
                seconds = ends[b] - starts[a]
                if seconds > MAX_SECONDS:
                    break
                if seconds >= MIN_SECONDS:
                    spans.append(_Span(a, b, starts[a], ends[b], _score(take, words[a:b + 1], seconds)))
    return sorted(spans, key=lambda s: (-s.score, s.start))


def _score(take: _Take, span: Sequence[AlignedWord], seconds: float) -> float:
    matched = sum(w.script_index is not None for w in span) / len(span)
    confidence = float(np.mean([w.heard.probability for w in span]))
    anchored = span[0].script_index is not None and span[-1].script_index is not None
    sound = 1.0 - take.silence_ratio(span[0].heard.start, span[-1].heard.end)
    return matched * confidence * _length_fit(seconds) * sound * (1.0 if anchored else UNANCHORED_EDGE_FACTOR)


def _transcript(span: Sequence[AlignedWord], script: Sequence[ScriptWord]) -> str:
    """The script's words between the first and last matched word, Whisper's outside them."""
    anchors = [k for k, w in enumerate(span) if w.script_index is not None]
    if not anchors:
        return " ".join(w.heard.text for w in span)
    first, last = anchors[0], anchors[-1]
    said = [w.text for w in script[span[first].script_index:span[last].script_index + 1]]
    return " ".join([w.heard.text for w in span[:first]] + said + [w.heard.text for w in span[last + 1:]])


def _faded(clip: np.ndarray, sr: int) -> np.ndarray:
    n = min(int(sr * FADE_SECONDS), clip.shape[0] // 2)
    out = clip.astype(np.float32, copy=True)
    if n:
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))).astype(np.float32)
        out[:n] *= ramp
        out[-n:] *= ramp[::-1]
    return out


# --------------------------------------------------------------------------- the seam

def _check_request(samples: np.ndarray, sample_rate: int, turns: Sequence[tuple[str, str]], character: str) -> None:
    check_clip(samples, sample_rate, "The take")
    if np.asarray(samples).shape[0] == 0:
        raise InvalidVoiceSampleError("The take is empty: it holds no audio to cut a voice from.")
    characters = list(dict.fromkeys(c for c, _text in turns))
    if character not in characters:
        known = ", ".join(characters) or "none"
        raise InvalidParameterError(
            f"'{character}' has no turn in this block, so its take holds no voice of theirs "
            f"(the block's characters: {known}). Choose a take of a block where {character} speaks.")


def _too_little(character: str, words: Sequence[AlignedWord], runs: list[list[int]]
                ) -> InvalidVoiceSampleError:
    stretches = [words[r[-1]].heard.end - words[r[0]].heard.start for r in runs]
    found, longest = sum(stretches), max(stretches, default=0.0)
    todo = f"Choose a take where {character} says more, or give {character} a voice sample."
    if found < MIN_SECONDS:
        return InvalidVoiceSampleError(
            f"{character} says only {found:.1f} s in this take; a voice needs at least {MIN_SECONDS:g} s "
            f"of their speech. {todo}")
    return InvalidVoiceSampleError(
        f"{character} never speaks {MIN_SECONDS:g} s at a stretch in this take ({found:.1f} s in all, "
        f"the longest stretch {longest:.1f} s). {todo}")


def voice_from_take(samples: np.ndarray, sample_rate: int, turns: Sequence[tuple[str, str]], character: str,
                    *, transcriber: WordTranscriber | None = None) -> TakeVoice:
    """Cut ``character``'s clearest 3–10 s from a take of the block whose ``turns`` are given.

    ``turns`` are the block's ``(character, text)`` pairs in order; ``transcriber`` gives word
    timestamps (default: ``stt.WhisperTranscriber()``). Raises ``InvalidVoiceSampleError`` when the
    character says too little in the take, ``InvalidParameterError`` when they have no turn in it,
    and ``MissingDependencyError`` (with the install command) without faster-whisper.
    """
    _check_request(samples, sample_rate, turns, character)
    if transcriber is None or isinstance(transcriber, stt.WhisperTranscriber):
        stt.require_stt("Making a voice from a take")
    transcriber = transcriber or stt.WhisperTranscriber()
    mono = audio.to_mono(samples)
    sr = int(sample_rate)
    words = align_words(transcriber.transcribe_words(mono, sr), turns)
    take = _Take.of(mono, sr)
    runs = _runs(words, turns, character)
    script = script_words(turns)
    label = f"{character}'s cut from the take"
    for span in _spans(take, words, runs)[:MAX_CLIP_TRIES]:
        cut = _faded(mono[int(span.start * sr):int(np.ceil(span.end * sr))], sr)
        clip = voices.prepare_clip(audio.DecodedAudio(cut[:, None], sr, "take", "float"), label)
        if MIN_SECONDS <= clip.duration <= MAX_SECONDS:
            return TakeVoice(character, clip.samples, voices.SAMPLE_RATE,
                             _transcript(words[span.first:span.last + 1], script),
                             span.start, span.end, span.score)
    raise _too_little(character, words, runs)


def save_to_library(library: voices.VoiceLibrary, take_voice: TakeVoice, name: str) -> voices.VoiceSample:
    """Also keep a voice from a take in the voice library, with its transcript, as ``name``."""
    return library.add(take_voice.samples, speaker_name=name, transcript=take_voice.transcript,
                       sample_rate=take_voice.sample_rate,
                       original_filename=f"{voices.clean_speaker_name(name)} (from a take).flac")
