"""A voice from a take: cut a character's clearest 3–10 s out of a rendered take to clone it later.

A character with no voice sample gets one from a take the user likes. Whisper's words (with their
timestamps) are aligned to the block's script words, so each heard word knows its turn and so its
character; the best span of whole words of that character, inside one turn or consecutive turns of
it, is cut at quiet points between words, faded, and prepared by the voice library's own clip
rules. Its transcript is the script's text for the words the alignment maps, Whisper's otherwise.

    voice = voice_from_take(take, 44100, block.turns, "Mara", transcriber=WhisperTranscriber())
    save_to_library(library, voice, "Mara")      # optional: also a library voice

    # or, on a project: cut from block 3's chosen take, lock that block on it, cast Mara with it
    cast_voice_from_take(project, 3, "Mara", library=library)

Needs the ``stt`` extra (faster-whisper) for the word timestamps.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine import audio, stt, voices
from engine.errors import InvalidParameterError, InvalidVoiceSampleError
from engine.stt import TimedWord, WordTranscriber
from engine.voice_prompt import check_clip

if TYPE_CHECKING:
    from engine.episode.project import EpisodeProject

MIN_SECONDS, MAX_SECONDS = voices.RECOMMENDED_SECONDS
PREFERRED_SECONDS = (6.0, 8.0)
"""Spans of this length score best; shorter and longer ones lose a little (see ``_length_fit``)."""
FRAME_SECONDS = 0.01
QUIET_BELOW_PEAK_DB = 40.0
"""A 10 ms frame this far below the take's loudest frame counts as silence (as ``trim_silence``)."""
EDGE_MARGIN_SECONDS = 0.15
"""At most this much silence is kept before the first word and after the last."""
EDGE_SLACK_SECONDS = 0.05
"""Whisper's word edges may be this far off inside a word: the quiet point between two words of the
character is searched this far past them (never into another character's word)."""
EDGE_SEARCH_SECONDS = 0.3
"""With no neighbouring word, how far outside the word to look for a quiet point."""
FADE_SECONDS = 0.01
UNANCHORED_EDGE_FACTOR = 0.8
"""A span whose first or last word is not the script's word scores this much less (its edges and
transcript are less certain)."""
MID_SENTENCE_EDGE_FACTOR = 0.9
"""A span that starts or ends mid-sentence scores this much less per such edge: a prompt of whole
sentences reads naturally before the next block's text."""
MAX_CLIP_TRIES = 20

_TOKEN = re.compile(r"\([^)]*\)|\S+")  # a (cue) as one token, else whitespace-separated words
_NOT_WORD = re.compile(r"[^\w']|_")
_SENTENCE_END = re.compile(r"[.!?…][\"')\]”’]*$")


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
    """0–1: alignment and recogniser confidence × length fit × share of sound × whole sentences."""

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
    frame = max(1, round(sr * FRAME_SECONDS))
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
        """The frame holding the instant ``seconds``."""
        return int(np.clip(np.floor(seconds * self.sr / self.frame), 0, len(self.levels) - 1))

    def index_after(self, seconds: float) -> int:
        """The first frame that starts at or after ``seconds``."""
        return int(np.clip(np.ceil(seconds * self.sr / self.frame), 0, len(self.levels) - 1))

    def seconds(self, frame_index: int) -> float:
        return frame_index * self.frame / self.sr

    def silence_ratio(self, start: float, end: float) -> float:
        a, b = self.index(start), self.index(end)
        return float(self.quiet[a:b + 1].mean())


def _start_cut(take: _Take, words: Sequence[AlignedWord], k: int, after_own: bool) -> float:
    """Where a span starting at word ``k`` begins: in the silence just before it, with some of it kept.

    ``after_own``: the word before is the same character's, so the boundary may lie a little inside it.
    """
    first = words[k].heard
    if k:
        lo = words[k - 1].heard.end - (EDGE_SLACK_SECONDS if after_own else 0.0)
    else:
        lo = first.start - EDGE_SEARCH_SECONDS
    lo, hi = take.index(min(lo, first.start)), take.index(first.start + EDGE_SLACK_SECONDS)
    quiet = np.flatnonzero(take.quiet[lo:hi + 1])
    # The silence nearest the word (Whisper's edges are approximate), else the quietest frame.
    q = lo + (int(quiet[-1]) if quiet.size else int(np.argmin(take.levels[lo:hi + 1])))
    floor = take.index_after(words[k - 1].heard.end) if k else 0  # never reach into the word before
    floor = max(floor, q - round(EDGE_MARGIN_SECONDS / FRAME_SECONDS))
    while q > floor and take.quiet[q - 1]:
        q -= 1
    return take.seconds(q)


def _end_cut(take: _Take, words: Sequence[AlignedWord], k: int, before_own: bool) -> float:
    """Where a span ending at word ``k`` ends: in the silence just after it, with some of it kept."""
    last = words[k].heard
    if k + 1 < len(words):
        hi = words[k + 1].heard.start + (EDGE_SLACK_SECONDS if before_own else 0.0)
    else:
        hi = last.end + EDGE_SEARCH_SECONDS
    lo, hi = take.index(last.end - EDGE_SLACK_SECONDS), take.index(max(hi, last.end))
    quiet = np.flatnonzero(take.quiet[lo:hi + 1])
    q = lo + (int(quiet[0]) if quiet.size else int(np.argmin(take.levels[lo:hi + 1])))
    ceiling = take.index(words[k + 1].heard.start) - 1 if k + 1 < len(words) else len(take.levels) - 1
    ceiling = min(ceiling, q + round(EDGE_MARGIN_SECONDS / FRAME_SECONDS))
    while q < ceiling and take.quiet[q + 1]:
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


def _ends_sentence(words: Sequence[AlignedWord], k: int, script: Sequence[ScriptWord]) -> bool:
    """Word ``k`` ends a sentence or its turn (by the script where it maps there, else by Whisper)."""
    i = words[k].script_index
    if i is None:
        return bool(_SENTENCE_END.search(words[k].heard.text)) or k + 1 == len(words)
    return bool(_SENTENCE_END.search(script[i].text)) or i + 1 == len(script) or script[i + 1].turn != script[i].turn


def _spans(take: _Take, words: Sequence[AlignedWord], runs: list[list[int]],
           script: Sequence[ScriptWord]) -> list[_Span]:
    """Every span of whole words inside a run whose cut is 3–10 s, best first."""
    spans = []
    for run in runs:
        starts = {k: _start_cut(take, words, k, after_own=k != run[0]) for k in run}
        ends = {k: _end_cut(take, words, k, before_own=k != run[-1]) for k in run}
        whole = {k: _ends_sentence(words, k, script) for k in run}
        for a_pos, a in enumerate(run):
            for b in run[a_pos:]:
                seconds = ends[b] - starts[a]
                if seconds > MAX_SECONDS:
                    break
                if seconds >= MIN_SECONDS:
                    edges = (a == run[0] or whole[a - 1]) + whole[b]
                    score = _score(take, words[a:b + 1], seconds) * MID_SENTENCE_EDGE_FACTOR ** (2 - edges)
                    spans.append(_Span(a, b, starts[a], ends[b], score))
    return sorted(spans, key=lambda s: (-s.score, s.start))


def _score(take: _Take, span: Sequence[AlignedWord], seconds: float) -> float:
    """Alignment and recogniser confidence, length fit and share of sound, each 0–1, multiplied."""
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
    if transcriber is None:
        transcriber = stt.WhisperTranscriber()
    mono = audio.to_mono(samples)
    sr = int(sample_rate)
    words = align_words(transcriber.transcribe_words(mono, sr), turns)
    take = _Take.of(mono, sr)
    runs = _runs(words, turns, character)
    script = script_words(turns)
    label = f"{character}'s cut from the take"
    for span in _spans(take, words, runs, script)[:MAX_CLIP_TRIES]:
        cut = _faded(mono[int(span.start * sr):int(np.ceil(span.end * sr))], sr)
        try:
            clip = voices.prepare_clip(audio.DecodedAudio(cut[:, None], sr, "take", "float"), label)
        except InvalidVoiceSampleError:  # e.g. words Whisper heard in silence: try the next span
            continue
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


def cast_voice_from_take(project: EpisodeProject, block_index: int, character: str, *, take_id: int | None = None,
                         transcriber: WordTranscriber | None = None, library: voices.VoiceLibrary | None = None,
                         library_name: str | None = None, lock: bool = True) -> TakeVoice:
    """Give ``character`` a project voice cut from a take of block ``block_index`` (its chosen take by default).

    The voice is copied into the project (source ``take``, with the take's id), so every block of the character is
    conditioned on it from now on; with ``library`` it is also kept there as ``library_name`` (default:
    the character). ``lock`` chooses and locks the block on that take, so the take the voice came
    from is kept while the blocks around it re-render with the new voice.
    """
    from engine.episode.project import SAMPLE_RATE

    block = project.block(block_index)
    take_id = block.chosen if take_id is None else take_id
    if take_id is None:
        raise InvalidParameterError(f"block {block_index} has no take yet: render it and choose the take to cut from")
    if take_id not in {t.id for t in block.takes}:
        raise InvalidParameterError(f"take {take_id} is not a take of block {block_index}")
    voice = voice_from_take(project.take_audio(take_id), SAMPLE_RATE, block.turns, character, transcriber=transcriber)
    uid = save_to_library(library, voice, library_name or character).uid if library is not None else None
    cast_kept_voice(project, block_index, character, voice, take_id, library_uid=uid, name=library_name, lock=lock)
    return voice


def cast_kept_voice(project: EpisodeProject, block_index: int, character: str, voice: TakeVoice, take_id: int, *,
                    library_uid: str | None = None, name: str | None = None, lock: bool = True) -> None:
    """The quick half of ``cast_voice_from_take``, for a ``voice`` already cut from take ``take_id`` of
    block ``block_index`` (and kept in the library as ``library_uid``): cast ``character`` with it and,
    with ``lock``, choose and lock the block on that take."""
    from engine.episode.project import VoiceInput

    if lock:
        project.choose(block_index, take_id)
        project.lock(block_index)
    project.update(cast={character: VoiceInput(name or character, voice.samples, voice.transcript,
                                               source="take", library_uid=library_uid, take_id=take_id)})
