"""Episode scripts: the dialogue syntax of ``engine.script`` plus named characters, chapters and breaks.

* A line may open with ``[S1]``/``[S2]`` as in a render script, **or with a character name**:
  ``[Mara]``, ``[Dr. Lee]``. Names are letters, digits, spaces, ``.``, ``-`` and ``_``, at most
  ``NAME_MAX_CHARS`` characters, and not ``S`` + digits (``[S3]`` stays ``invalid_script``).
  ``[S1]``/``[S2]`` may also sit anywhere on a line, as today; a name only opens a line.
* ``# Title`` on its own line starts a chapter; ``---`` on its own line forces a block break.
* Everything else (cues, control characters, malformed tags ...) is checked by
  ``engine.script.check_script`` on each turn, with line and column mapped back to the episode.
* A script with no tags at all is an ``S1`` monologue, as a render script is.

An episode may have any number of characters; the splitter gives each block at most two.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from engine.errors import (
    DiaStudioError,
    InvalidScriptError,
    MissingInputError,
    RequestTooLargeError,
)
from engine.script import ERROR, WARNING, ScriptIssue, check_script

NAME_MAX_CHARS = 32
MONOLOGUE_CHARACTER = "S1"
"""Who speaks a script without any tag (as in a render script)."""

_NAME_RE = re.compile(r"[\w .\-]+")
_RESERVED_RE = re.compile(r"s\d+", re.IGNORECASE)
_LINE_TAG_RE = re.compile(r"[ \t]*\[([^\[\]()\r\n]*)\]")
_INLINE_TAG_RE = re.compile(r"\[(S[12])\]")
_HEADING_RE = re.compile(r"[ \t]*#[ \t]+(\S.*?)[ \t]*$")
_BREAK_RE = re.compile(r"[ \t]*-{3,}[ \t]*$")
_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)?")
_TURN_PREFIX = "[S1] "
_NO_SIZE_LIMIT = 1 << 40
"""Turns are checked without the size limit: the splitter cuts long turns into blocks that fit."""

_ERROR_TYPES: dict[str, type[DiaStudioError]] = {
    "missing_input": MissingInputError,
    "invalid_script": InvalidScriptError,
    "request_too_large": RequestTooLargeError,
}


@dataclass(frozen=True, slots=True)
class EpisodeTurn:
    """One character's turn. ``text == source[start:end]``: the words as written, stripped."""

    character: str
    text: str
    line: int
    column: int
    start: int
    end: int
    chapter: int
    """Index into ``EpisodeScript.chapters``, or -1 before the first heading."""
    break_before: bool
    """A heading or a ``---`` line comes between this turn and the previous one."""


@dataclass(frozen=True, slots=True)
class EpisodeChapter:
    title: str
    line: int
    first_turn: int
    """Index of the chapter's first turn (``len(turns)`` for an empty chapter at the end)."""


@dataclass(frozen=True, slots=True)
class EpisodeScript:
    source: str
    turns: tuple[EpisodeTurn, ...]
    chapters: tuple[EpisodeChapter, ...]
    warnings: tuple[ScriptIssue, ...]

    @property
    def characters(self) -> tuple[str, ...]:
        """Every character, in order of first appearance."""
        return tuple(dict.fromkeys(turn.character for turn in self.turns))


def clean_name(name: str) -> str:
    """A character name with its whitespace runs collapsed (``[ Dr.  Lee ]`` is ``Dr. Lee``)."""
    return " ".join(name.split())


def is_character_name(name: str) -> bool:
    """True for a valid character name (``S1``/``S2`` included, ``S3`` and up not)."""
    name = clean_name(name)
    if name in ("S1", "S2"):
        return True
    return (0 < len(name) <= NAME_MAX_CHARS and _NAME_RE.fullmatch(name) is not None
            and _RESERVED_RE.fullmatch(name) is None and any(c.isalnum() for c in name))


class _Positions:
    """Offsets to 1-based (line, column)."""

    def __init__(self, text: str) -> None:
        self.starts = [m.start() for m in _LINE_RE.finditer(text) if m.end() > m.start() or m.start() == 0]

    def at(self, offset: int) -> tuple[int, int]:
        index = bisect_right(self.starts, offset) - 1
        return index + 1, offset - self.starts[index] + 1


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = _Positions(text)
        self.issues: list[ScriptIssue] = []
        self.turns: list[EpisodeTurn] = []
        self.chapters: list[EpisodeChapter] = []
        self.open: tuple[str, int, int] | None = None  # character, tag offset, body start
        self.loose: list[tuple[int, int]] = []  # untagged text spans
        self.tagged = False
        self.pending_break = False
        self.previous_character: str | None = None
        self._scan()

    def _scan(self) -> None:
        for match in _LINE_RE.finditer(self.text):
            if match.end() == match.start():
                break
            start, line = match.start(), match.group().rstrip("\r\n")
            heading = _HEADING_RE.fullmatch(line)
            if heading or _BREAK_RE.fullmatch(line):
                self._close(start)
                if heading:
                    self.chapters.append(EpisodeChapter(heading.group(1), self.pos.at(start)[0], -1))
                self.pending_break = True
                continue
            self._scan_line(start, line)
        self._close(len(self.text))
        self._finish()

    def _scan_line(self, start: int, line: str) -> None:
        tag = _LINE_TAG_RE.match(line)
        body = start
        if tag and is_character_name(tag.group(1)):
            self._open(clean_name(tag.group(1)), start + tag.start(1) - 1, start + tag.end())
            body = start + tag.end()
        for inline in _INLINE_TAG_RE.finditer(self.text, body, start + len(line)):
            if self.open is None:
                self._loose_until(body, inline.start())
            self._open(inline.group(1), inline.start(), inline.end())
            body = inline.end()
        if self.open is None:
            self._loose_until(body, start + len(line))

    def _loose_until(self, start: int, end: int) -> None:
        if self.text[start:end].strip():
            self.loose.append((start, end))

    def _open(self, character: str, tag_start: int, body_start: int) -> None:
        self._close(tag_start)
        self.tagged = True
        self.open = (character, tag_start, body_start)

    def _close(self, end: int) -> None:
        if self.open is None:
            return
        character, tag_start, body_start = self.open
        self.open = None
        self._add_turn(character, tag_start, body_start, end)

    def _add_turn(self, character: str, tag_start: int, body_start: int, end: int) -> None:
        raw = self.text[body_start:end]
        start = body_start + len(raw) - len(raw.lstrip())
        stop = body_start + len(raw.rstrip())
        if stop <= start:
            self._issue(WARNING, "empty_turn", f"[{character}] has no text", tag_start, body_start)
            return
        self._check_words(start, stop)
        if character == self.previous_character and not self.pending_break:
            self._issue(WARNING, "repeated_speaker", f"[{character}] speaks twice in a row: Dia works best "
                        "when the speakers of a block alternate", tag_start, body_start)
        self.turns.append(EpisodeTurn(character, self.text[start:stop], *self.pos.at(tag_start), start, stop,
                                      len(self.chapters) - 1, self.pending_break and bool(self.turns)))
        self.pending_break = False
        self.previous_character = character

    def _check_words(self, start: int, stop: int) -> None:
        """The render-script rules on one turn's words, positions mapped back to the episode."""
        shift = start - len(_TURN_PREFIX)
        for issue in check_script(_TURN_PREFIX + self.text[start:stop], max_text_tokens=_NO_SIZE_LIMIT):
            self._issue(issue.severity, issue.code, issue.message, issue.start + shift, issue.end + shift)

    def _issue(self, severity: str, code: str, message: str, start: int, end: int) -> None:
        self.issues.append(ScriptIssue(severity, code, message, *self.pos.at(start), start, end))

    def _finish(self) -> None:
        if not self.tagged:
            self._monologue()
        else:
            for start, end in self.loose:
                self._loose_error(start, end)
                break  # one is enough: the rest follow from the first
        if not self.turns and not any(i.severity == ERROR for i in self.issues):
            self._issue(ERROR, "missing_input", "the script has no text to speak" if self.text.strip()
                        else "the script is empty", 0, 0)
        self._number_chapters()
        self.issues.sort(key=lambda issue: (issue.start, issue.severity != ERROR))

    def _loose_error(self, start: int, end: int) -> None:
        lead = self.text[start:end]
        first, stop = start + len(lead) - len(lead.lstrip()), start + len(lead.rstrip())
        before = len(self.issues)
        self._check_words(first, stop)
        if any(i.severity == ERROR for i in self.issues[before:]):
            return
        where = ("after a chapter heading or ---" if any(t.start < first for t in self.turns)
                 else "before the first speaker tag")
        self._issue(ERROR, "invalid_script", f"text {where}: open the line with a character such as "
                    "[Mara] or [S1]", first, stop)

    def _monologue(self) -> None:
        """No tags at all: every stretch of text between headings and breaks is an S1 turn."""
        heads = [(c.line, i) for i, c in enumerate(self.chapters)]
        for start, end in self.loose:
            line = self.pos.at(start)[0]
            chapter = max((i for head_line, i in heads if head_line < line), default=-1)
            self._monologue_turn(start, end, chapter)

    def _monologue_turn(self, start: int, end: int, chapter: int) -> None:
        # Consecutive loose lines of one stretch join into one turn.
        broken = bool(self.turns)
        if self.turns and self.turns[-1].chapter == chapter and not self._separated(self.turns[-1].end, start):
            last = self.turns.pop()
            start, broken = last.start, last.break_before
        raw = self.text[start:end]
        first = start + len(raw) - len(raw.lstrip())
        stop = start + len(raw.rstrip())
        self._check_words(first, stop)
        self.turns.append(EpisodeTurn(MONOLOGUE_CHARACTER, self.text[first:stop], *self.pos.at(first), first, stop,
                                      chapter, broken))

    def _separated(self, end: int, start: int) -> bool:
        """A heading or break line lies between two offsets."""
        between = self.text[end:start]
        return any(_HEADING_RE.fullmatch(line) or _BREAK_RE.fullmatch(line) for line in between.splitlines())

    def _number_chapters(self) -> None:
        firsts = []
        for index, chapter in enumerate(self.chapters):
            first = next((i for i, t in enumerate(self.turns) if t.chapter >= index), len(self.turns))
            firsts.append(EpisodeChapter(chapter.title, chapter.line, first))
        self.chapters = firsts


def check_episode(text: str) -> list[ScriptIssue]:
    """Every error and warning of an episode script, in document order. Never raises."""
    return _Parser(text if isinstance(text, str) else "").issues


def parse_episode(text: str) -> EpisodeScript:
    """Parse an episode script, raising its first error (``InvalidScriptError``, ``MissingInputError``)
    with the line and column in the episode."""
    if not isinstance(text, str):
        raise InvalidScriptError(f"the script must be text, not {type(text).__name__}")
    parser = _Parser(text)
    for issue in parser.issues:
        if issue.severity == ERROR:
            raise _ERROR_TYPES.get(issue.code, InvalidScriptError)(issue.message, line=issue.line,
                                                                    column=issue.column)
    return EpisodeScript(text, tuple(parser.turns), tuple(parser.chapters),
                         tuple(i for i in parser.issues if i.severity == WARNING))


__all__ = [
    "NAME_MAX_CHARS",
    "EpisodeChapter",
    "EpisodeScript",
    "EpisodeTurn",
    "check_episode",
    "clean_name",
    "is_character_name",
    "parse_episode",
]
