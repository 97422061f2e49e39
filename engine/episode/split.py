"""Splitting an episode into blocks that each fit one render, voice prompts included.

Rules:

* Blocks break at turn boundaries, at every ``---`` and chapter heading, and before a third
  character would join: a block has **at most two characters**, its first speaker is S1.
* A block holds about ``target_seconds`` of speech (estimated as the editor does,
  ``engine.script.estimate_budget``) and always fits one render with its characters' voice
  prompts (the decoder frames of the prompt audio, the text tokens of its transcripts).
* A turn too long for that splits at sentence boundaries, then at clause boundaries, and only
  when a clause alone cannot fit one render, between words; never inside a word or a cue.
* **Edits stay local.** A greedy packer would shift every later block after an edit (and
  re-render them all). Here the script is first cut at turn boundaries chosen by content: a
  boundary is cut when a hash of the turn before it out-ranks every boundary less than half the
  target away. That choice depends only on the neighbourhood, so an edit moves only nearby cuts;
  each segment between cuts is then packed greedily, so the blocks away from the edit keep their
  identity and their takes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from engine.episode.script import EpisodeScript, EpisodeTurn
from engine.errors import InvalidParameterError, RequestTooLargeError
from engine.params import DEFAULT_MAX_NEW_TOKENS
from engine.script import LONG_SECONDS, SHORT_SECONDS, estimate_budget, text_token_count
from engine.voice_prompt import GAP_SECONDS

DEFAULT_BLOCK_SECONDS = 15.0
"""Nari's guidance is 5-20 s of audio per generation; 15 s leaves room for the voice prompts."""
MIN_BLOCK_SECONDS = SHORT_SECONDS
MAX_BLOCK_SECONDS = LONG_SECONDS * 3
"""Past Dia's ~20 s advice the speech hurries; three times that is clearly a mistake."""
MIN_FILL = 0.5
"""Cuts are at least this share of the target apart (before the greedy packing)."""
BALANCE_SLACK = (1.05, 1.15, 1.3)
"""Block lengths tried, relative to an even share, when evening out a segment's blocks."""

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+")
_CLAUSE_END = re.compile(r"(?:[,;:]|\s[—–-])[\"'”’]*\s+")
_WORD_END = re.compile(r"\s+")
_LEVELS = (_SENTENCE_END, _CLAUSE_END, _WORD_END)
_WORD_LEVEL = 2


@dataclass(frozen=True)
class VoiceCost:
    """What a character's voice prompt costs a render: its audio and its transcript."""

    seconds: float
    transcript: str


@dataclass(frozen=True)
class SplitSettings:
    target_seconds: float = DEFAULT_BLOCK_SECONDS
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    def __post_init__(self) -> None:
        if not MIN_BLOCK_SECONDS <= self.target_seconds <= MAX_BLOCK_SECONDS:
            raise InvalidParameterError(f"the block length must be between {MIN_BLOCK_SECONDS:g} and "
                                        f"{MAX_BLOCK_SECONDS:g} seconds (got {self.target_seconds:g})")


@dataclass(frozen=True)
class BlockTurn:
    """A turn, or the piece of a long turn, in a block. ``source[start:end]`` of all the pieces
    of a turn, in order, is exactly the turn's text; ``text`` is the piece stripped."""

    character: str
    text: str
    turn: int
    start: int
    end: int


@dataclass(frozen=True)
class Block:
    index: int
    chapter: int
    turns: tuple[BlockTurn, ...]
    line: int

    @property
    def characters(self) -> tuple[str, ...]:
        """The block's characters: the first speaker (S1) first."""
        return tuple(dict.fromkeys(t.character for t in self.turns))

    @property
    def model_text(self) -> str:
        """The render script: each turn tagged [S1]/[S2] by its character's place."""
        return block_text(self.turns)

    @property
    def script_text(self) -> str:
        """The block as the user wrote it, with character names."""
        return "\n".join(f"[{t.character}] {t.text}" for t in self.turns)


def block_text(turns: Sequence[BlockTurn]) -> str:
    tags = {c: f"[S{i + 1}]" for i, c in enumerate(dict.fromkeys(t.character for t in turns))}
    return "\n".join(f"{tags[t.character]} {t.text}" for t in turns)


def prompt_transcript(costs: Sequence[VoiceCost]) -> str:
    """The tagged transcript of a prompt made of these voices in order (as ``combine_parts`` tags it)."""
    return "\n".join(f"[S{i + 1}] {' '.join(c.transcript.split())}" for i, c in enumerate(costs))


def prompt_cost(costs: Sequence[VoiceCost]) -> tuple[float, int]:
    """Seconds of prompt audio (clips and the gap between them) and text tokens of its transcript."""
    if not costs:
        return 0.0, 0
    seconds = sum(c.seconds for c in costs) + GAP_SECONDS * (len(costs) - 1)
    return seconds, text_token_count(prompt_transcript(costs) + "\n")


class _Budget:
    """Does a list of pieces fit one render, and how long is it?"""

    def __init__(self, voices: Mapping[str, VoiceCost | None], settings: SplitSettings) -> None:
        self.voices = voices
        self.settings = settings

    def check(self, turns: Sequence[BlockTurn]) -> tuple[bool, float]:
        characters = dict.fromkeys(t.character for t in turns)
        costs = [c for c in (self.voices.get(name) for name in characters) if c is not None]
        seconds, tokens = prompt_cost(costs)
        budget = estimate_budget(block_text(turns), prompt_seconds=seconds, prefix_tokens=tokens,
                                 max_new_tokens=self.settings.max_new_tokens)
        return budget.fits, budget.estimated_seconds


def _cut_points(text: str, pattern: re.Pattern[str]) -> list[int]:
    """Offsets in ``text`` after a boundary's whitespace, never inside ( ) or [ ]."""
    points = []
    for match in pattern.finditer(text):
        end = match.end()
        if 0 < end < len(text) and _outside_brackets(text, end):
            points.append(end)
    return points


def _outside_brackets(text: str, offset: int) -> bool:
    before = text[:offset]
    return before.count("(") <= before.count(")") and before.count("[") <= before.count("]")


class _TurnSplitter:
    """Cuts one turn into pieces: sentences, then clauses, then words."""

    def __init__(self, turn: EpisodeTurn, index: int, budget: _Budget, target: float) -> None:
        self.turn, self.index, self.budget, self.target = turn, index, budget, target

    def piece(self, a: int, b: int) -> BlockTurn:
        return BlockTurn(self.turn.character, self.turn.text[a:b].strip(), self.index, self.turn.start + a,
                         self.turn.start + b)

    def measure(self, a: int, b: int) -> tuple[bool, float]:
        return self.budget.check([self.piece(a, b)])

    def split(self) -> list[BlockTurn]:
        return [self.piece(a, b) for a, b in self._split(0, len(self.turn.text), 0)]

    def _split(self, a: int, b: int, level: int) -> list[tuple[int, int]]:
        """Pieces of ``text[a:b]`` cut at ``_LEVELS[level]`` and finer. Sentences and clauses are cut
        to the target; a clause that fits one render stays whole; words are the last resort."""
        fits, seconds = self.measure(a, b)
        if fits and (seconds <= self.target or level >= _WORD_LEVEL):
            return [(a, b)]
        if level > _WORD_LEVEL:
            raise self._too_large()
        points = [a + p for p in _cut_points(self.turn.text[a:b], _LEVELS[level])]
        if not points:
            return self._split(a, b, level + 1)
        out: list[tuple[int, int]] = []
        for x, y in self._pack(_pieces_between(a, b, points)):
            out.extend(self._split(x, y, level + 1))
        return out

    def _pack(self, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Join neighbouring pieces while the result stays within the target and fits one render."""
        packed: list[tuple[int, int]] = []
        for x, y in spans:
            if packed:
                px, _ = packed[-1]
                ok, secs = self.measure(px, y)
                if ok and secs <= self.target:
                    packed[-1] = (px, y)
                    continue
            packed.append((x, y))
        return packed

    def _too_large(self) -> RequestTooLargeError:
        name = self.turn.character
        return RequestTooLargeError(
            f"[{name}]'s turn cannot fit one render, even a word at a time, next to the voice prompt: "
            f"use a shorter voice sample for {name} or a larger max_new_tokens",
            line=self.turn.line, column=self.turn.column)


def _pieces_between(a: int, b: int, points: list[int]) -> list[tuple[int, int]]:
    bounds = [a, *points, b]
    return [(x, y) for x, y in zip(bounds, bounds[1:]) if y > x]


def _rank(piece: BlockTurn) -> int:
    """A boundary's rank: a hash of the piece before it, so it moves with that piece."""
    digest = hashlib.sha256(f"{piece.character}\0{piece.text}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big")


def _sections(script: EpisodeScript, pieces: list[list[BlockTurn]]) -> list[tuple[int, list[BlockTurn]]]:
    """Runs of pieces between chapter headings and ``---`` breaks, with their chapter."""
    sections: list[tuple[int, list[BlockTurn]]] = []
    for turn, own in zip(script.turns, pieces):
        if not sections or turn.break_before or turn.chapter != sections[-1][0]:
            sections.append((turn.chapter, []))
        sections[-1][1].extend(own)
    return sections


def _segments(section: list[BlockTurn], budget: _Budget, target: float) -> list[list[BlockTurn]]:
    """Cut a section where a boundary out-ranks every other boundary closer than half the target.

    Whether a boundary is cut depends only on the pieces around it, so an edit moves at most the
    cuts within that distance of it."""
    window = target * MIN_FILL
    ends = np.cumsum([budget.check([piece])[1] for piece in section]) if section else np.zeros(0)
    ranks = [(_rank(piece), i) for i, piece in enumerate(section)]
    total = ends[-1] if len(ends) else 0.0
    # The section's own edges out-rank every boundary: none is cut closer than the window to them.
    cuts = [i for i in range(len(section) - 1)
            if window <= ends[i] <= total - window
            and all(ranks[i] < ranks[j] for j in _neighbours(ends, i, window))]
    bounds = [0, *(i + 1 for i in cuts), len(section)]
    return [section[a:b] for a, b in pairwise(bounds) if b > a]


def _neighbours(ends, i: int, window: float):
    """Boundaries (after pieces ``j``) closer than ``window`` seconds to the one after piece ``i``."""
    last = len(ends) - 1
    for step in (-1, 1):
        j = i + step
        while 0 <= j < last and abs(ends[j] - ends[i]) < window:
            yield j
            j += step


def _pack(segment: list[BlockTurn], budget: _Budget, target: float) -> list[list[BlockTurn]]:
    """Blocks within a segment: at most two characters, the target length, one render; as even in
    length as the same number of blocks allows (no short leftover at the end)."""
    groups = _greedy(segment, budget, target)
    if len(groups) > 1:
        even = sum(budget.check(group)[1] for group in groups) / len(groups)
        for slack in BALANCE_SLACK:
            balanced = _greedy(segment, budget, min(target, even * slack))
            if len(balanced) == len(groups):
                return balanced
    return groups


def _greedy(segment: list[BlockTurn], budget: _Budget, target: float) -> list[list[BlockTurn]]:
    groups: list[list[BlockTurn]] = []
    for piece in segment:
        if groups and _joins(groups[-1], piece, budget, target):
            groups[-1].append(piece)
        else:
            groups.append([piece])
    return groups


def split_episode(script: EpisodeScript, voices: Mapping[str, VoiceCost | None] | None = None,
                  settings: SplitSettings = SplitSettings()) -> list[Block]:
    """The blocks of an episode, in order. ``voices`` maps a character to its prompt's cost (absent or
    None: no prompt). Raises ``RequestTooLargeError`` (with line and column) when a voice prompt
    leaves no room for even one word."""
    budget = _Budget(voices or {}, settings)
    target = settings.target_seconds
    pieces = [_TurnSplitter(turn, i, budget, target).split() for i, turn in enumerate(script.turns)]
    blocks: list[Block] = []
    for chapter, section in _sections(script, pieces):
        for segment in _segments(section, budget, target):
            for group in _pack(segment, budget, target):
                blocks.append(Block(len(blocks), chapter, tuple(group), script.turns[group[0].turn].line))
    return blocks


def _joins(current: list[BlockTurn], piece: BlockTurn, budget: _Budget, target: float) -> bool:
    if len({t.character for t in current} | {piece.character}) > 2:
        return False
    fits, seconds = budget.check([*current, piece])
    return fits and seconds <= target


__all__ = [
    "DEFAULT_BLOCK_SECONDS",
    "Block",
    "BlockTurn",
    "SplitSettings",
    "VoiceCost",
    "block_text",
    "prompt_cost",
    "prompt_transcript",
    "split_episode",
]
