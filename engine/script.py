"""Dialogue scripts: parsing, validation, size limits and a length estimate.

Script rules (the hosted API's, ``shared/seeds/000``, plus Dia's README guidelines):

* Turns are opened by ``[S1]`` / ``[S2]``; a tag may sit anywhere on a line and its turn runs
  until the next tag. A script with no speaker tags at all is one ``[S1]`` monologue.
* The script must open with ``[S1]``: text before the first tag, or opening with ``[S2]``, is
  ``invalid_script``. So are ``[S3]`` and above, ``[S0]`` and malformed tags (``[s1]``, ``[S 1]``,
  ``[S]``, ``[Speaker 1]`` ...). Empty or whitespace-only input is ``missing_input``.
* Dia encodes text as UTF-8 bytes into 1024 positions, ``[S1]``/``[S2]`` one position each;
  more is ``request_too_large`` (Dia would silently cut the end off).
* A ``(`` with no ``)`` before the next ``(`` or the end of its line is an unclosed cue
  (``invalid_script``): where the cue ends would be a guess. Control characters (bytes 0-2 are Dia's padding and speaker tokens)
  and unpaired surrogates are not text and are ``invalid_script`` too.
* Script files are bytes: ``decode_script`` reads UTF-8 (with or without a byte-order mark) and
  UTF-16 by its byte-order mark; anything else is ``invalid_script`` at the first bad byte.
* Warnings, which never block a render: unknown ``( … )`` cues (Dia knows 21; others may be read
  aloud), cues in square brackets, empty turns, and the same speaker twice in a row (the README
  says to alternate). A final empty tag of the other speaker is *not* warned about: the README
  recommends ending with the second-to-last speaker's tag to improve the end of the audio.

Positions: ``line``/``column`` are 1-based and count characters (Python ``str`` indices, i.e.
code points; Qt counts UTF-16 units, so an emoji shifts later columns by one there);
``start``/``end`` are 0-based offsets into the text as given. ``\\n``, ``\\r\\n`` and a lone
``\\r`` all end a line.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from dataclasses import dataclass

from engine.constants import DECODER_OVERHEAD_FRAMES, FRAME_RATE
from engine.errors import (
    DiaStudioError,
    InvalidScriptError,
    MissingInputError,
    RequestTooLargeError,
)
from engine.model.tokenizer import PAD_ID
from engine.params import DEFAULT_MAX_NEW_TOKENS

KNOWN_CUES: tuple[str, ...] = (
    "(laughs)", "(clears throat)", "(sighs)", "(gasps)", "(coughs)", "(singing)", "(sings)",
    "(mumbles)", "(beep)", "(groans)", "(sniffs)", "(claps)", "(screams)", "(inhales)", "(exhales)",
    "(applause)", "(burps)", "(humming)", "(sneezes)", "(chuckle)", "(whistles)",
)
SPEAKER_TAGS: tuple[str, ...] = ("[S1]", "[S2]")

MAX_TEXT_TOKENS = 1024
"""Dia's text encoder length: UTF-8 bytes, with ``[S1]``/``[S2]`` one token each."""

MAX_SCRIPT_BYTES = 1 << 20
"""The largest script file ``decode_script`` accepts: a thousand times what one render reads, so
a real script is never refused for its size while a stray binary or endless stream is."""

FRAMES_PER_SECOND = FRAME_RATE
"""DAC codec frames per second of audio (``engine.constants.FRAME_RATE``: about 86.13)."""

CHARS_PER_SECOND = 14.0
"""Speaking rate for the length estimate. Conversational English runs ~150 words a minute and an
average word is ~4.7 letters plus a space or punctuation, i.e. 150 * 5.6 / 60 ≈ 14 characters a second."""

CUE_SECONDS = 1.0
"""A laugh, sigh or cough typically lasts half a second to a second and a half."""

TURN_GAP_SECONDS = 0.3
"""The pause at a change of speaker."""

SHORT_SECONDS = 5.0
LONG_SECONDS = 20.0
"""Dia's README: under ~5 s of audio sounds unnatural; over ~20 s the speech gets unnaturally fast."""

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, slots=True)
class ScriptIssue:
    """An error or warning at a span of the script.

    ``code`` is the API's error type for errors (``missing_input``, ``invalid_script``,
    ``request_too_large``) or a warning code (``unknown_cue``, ``cue_in_brackets``, ``empty_turn``,
    ``repeated_speaker``).
    """

    severity: str
    code: str
    message: str
    line: int
    column: int
    start: int
    end: int

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


@dataclass(frozen=True, slots=True)
class Turn:
    """One speaker turn: from its tag (or the first character of a monologue) to its last character."""

    speaker: str
    text: str
    line: int
    column: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Cue:
    """A parenthesised nonverbal cue such as ``(laughs)``; ``known`` if it is one of Dia's 21."""

    text: str
    known: bool
    line: int
    column: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Script:
    """A valid script. Spans refer to ``source``; ``model_text`` is what Dia is given.

    ``model_text`` is ``source`` without its surrounding whitespace; only a script with no speaker
    tags at all becomes ``"[S1] " + source.strip()``. The user's words are never rewritten.
    """

    source: str
    model_text: str
    turns: tuple[Turn, ...]
    cues: tuple[Cue, ...]
    warnings: tuple[ScriptIssue, ...]


@dataclass(frozen=True, slots=True)
class Budget:
    """How a script fits one render, in seconds and in decoder frames (~86.13 a second).

    The voice prompt's audio occupies decoder frames before the new speech, so it is counted in
    ``estimated_frames`` and takes its share of ``frame_budget``; it fits if the first is at most
    the second (and the text is within ``max_text_tokens``)."""

    estimated_seconds: float
    """Estimated length of the new speech (voice prompt not included)."""
    estimated_frames: int
    """Frames the render needs: voice prompt + estimated speech."""
    prompt_frames: int
    frame_budget: int
    """Frames the decoder can hold: ``max_new_tokens`` minus 1 BOS and 15 delay frames."""
    text_tokens: int
    max_text_tokens: int
    fits: bool
    warnings: tuple[str, ...]

    @property
    def available_seconds(self) -> float:
        """Seconds of new speech one render can hold after the voice prompt."""
        return max(0, self.frame_budget - self.prompt_frames) / FRAMES_PER_SECOND


_CUE_PATTERN = r"\([^()\[\]\r\n]*\)"
# One pass finds bracketed tags, cues and unclosed cues (a "(", or a run of them, with no ")"
# before the next "(" or the line end; "( [S2] hi )" is closed). Tags cannot contain parentheses
# and cues cannot contain square brackets, so neither can swallow the other; all stop at line
# ends. Linear time: every scan starts at a bracket and stops at the next bracket or line end, so
# no character is read more than a few times, however long a bracketed run is.
_SCAN_RE = re.compile(r"\[[^\[\]()\r\n]*\]|" + _CUE_PATTERN + r"|\(+(?![^()\r\n]*\))[^()\[\]\r\n]*")
_CUE_RE = re.compile(_CUE_PATTERN)
_SPEAKERISH_RE = re.compile(r"\s*(?:speaker|spk|s)\s*[-_#.]?\s*(\d*)\s*", re.IGNORECASE)
_SPEAKER_TAG_RE = re.compile(r"\[S[12]\]")
_TURN_SPLIT_RE = re.compile(r"\[(S[12])\]")
_NOT_SPOKEN_RE = re.compile(r"\[S[12]\]|" + _CUE_PATTERN)
_NEWLINE_RE = re.compile(r"\r\n|\r|\n")
_LEADING_BLANK_RE = re.compile(r"[\s\ufeff]*")  # a byte-order mark counts as blank
# Not text: C0 controls other than tab, line feed, vertical tab, form feed and carriage return
# (0, 1 and 2 are Dia's padding and speaker tokens), DEL, C1 controls, and unpaired surrogates
# (which cannot be encoded as UTF-8 at all).
_NOT_TEXT_RE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]+|[\ud800-\udfff]+")
_SHOWN_CHARS = 40
"""Longest piece of the script quoted in a message; longer ones are cut with an ellipsis."""

MAX_ISSUES_PER_KIND = 1000
"""At most this many issues of one kind are listed, the first ones in the script: enough for any
editor, and a megabyte of ``(`` cannot make millions of them. The first error is always listed."""


def _shown(token: str) -> str:
    """``token`` for a message: cut to ``_SHOWN_CHARS`` characters."""
    return token if len(token) <= _SHOWN_CHARS else token[:_SHOWN_CHARS - 1] + "…"


def _cue_stem(word: str) -> str:
    """Fold case, spacing and a plural/3rd-person ``s`` so ``( Laugh )`` matches ``(laughs)``."""
    word = " ".join(word.lower().split())
    return word[:-1] if word.endswith("s") else word


_CUE_BY_STEM = {_cue_stem(cue[1:-1]): cue for cue in KNOWN_CUES}
_KNOWN_CUE_SET = frozenset(KNOWN_CUES)


class _Lines:
    """Maps offsets to 1-based (line, column)."""

    def __init__(self, text: str) -> None:
        self._starts = [0]
        self._starts.extend(m.end() for m in _NEWLINE_RE.finditer(text))

    def at(self, offset: int) -> tuple[int, int]:
        index = bisect_right(self._starts, offset) - 1
        return index + 1, offset - self._starts[index] + 1


def text_token_count(text: str) -> int:
    """Dia text tokens of ``text``: its UTF-8 bytes, with each ``[S1]``/``[S2]`` counting as one."""
    return len(text.encode("utf-8", "surrogatepass")) - 3 * len(_SPEAKER_TAG_RE.findall(text))


def _speaker_tag_problem(tag: str) -> str:
    """Why a bracketed ``tag`` other than ``[S1]``/``[S2]`` is a bad speaker tag; "" if it is no speaker tag."""
    # Whitespace runs collapsed first: the pattern's adjacent \s* would backtrack quadratically on a
    # long run of spaces, and a tag has no length limit.
    match = _SPEAKERISH_RE.fullmatch(" ".join(tag[1:-1].split()) or " ")
    if match is None:
        return ""
    shown = _shown(tag)
    if not match.group(1):
        return f"speaker tag {shown} has no number: use [S1] or [S2]"
    # int() of thousands of digits is slow, and refused past 4300 of them: any long number is >= 3.
    digits = match.group(1).lstrip("0") or "0"
    number = int(digits) if len(digits) < 3 else 3
    if number >= 3:
        return f"{shown}: Dia supports only two speakers, [S1] and [S2]"
    if number == 0:
        return f"{shown} is not a speaker: use [S1] or [S2]"
    return f"malformed speaker tag {shown}: write [S{number}]"


def _not_text_message(run: str) -> str:
    """Why a run of control characters or unpaired surrogates is refused."""
    code = ord(run[0])
    if 0xD800 <= code <= 0xDFFF:
        return (f"unpaired surrogate U+{code:04X}: it is not a character and cannot be encoded as "
                "UTF-8; remove it or re-type the text around it")
    tokens = f" (byte {code} is Dia's {'padding' if code == PAD_ID else 'speaker'} token)" if code <= 2 else ""
    return f"control character U+{code:04X}{tokens}: it is not text (a binary file?); remove it"


def check_characters(text: str) -> list[ScriptIssue]:
    """Only the character check of ``check_script``: runs of control characters and unpaired
    surrogates, as ``invalid_script`` errors. For text Dia reads besides the script (transcripts)."""
    lines = _Lines(text)
    return [ScriptIssue(ERROR, "invalid_script", _not_text_message(m.group()), *lines.at(m.start()), *m.span())
            for m in _NOT_TEXT_RE.finditer(text)]


class _Analysis:
    """Everything found in one pass over a script. With ``collect`` False (the editor's
    per-keystroke check) only issues are built, no ``Turn``/``Cue`` objects."""

    def __init__(self, text: object, prefix_tokens: int, max_text_tokens: int, collect: bool) -> None:
        self.text = text if isinstance(text, str) else ""
        self.collect = collect
        self.lines = _Lines(self.text)
        self.issues: list[ScriptIssue] = []
        self.counts: dict[str, int] = {}
        self.turns: list[Turn] = []
        self.cues: list[Cue] = []
        self.model_text = ""
        self.monologue = False
        if text is not None and not isinstance(text, str):
            hint = ": decode a file's bytes with decode_script" if isinstance(text, (bytes, bytearray)) else ""
            self._add(ERROR, "invalid_script", f"the script must be text, not {type(text).__name__}{hint}", 0, 0)
            return
        text = self.text

        content_start = _LEADING_BLANK_RE.match(text).end()
        content_end = len(text.rstrip())
        if content_start >= content_end:
            self._add(ERROR, "missing_input", "the script is empty", 0, 0)
            return
        for match in _NOT_TEXT_RE.finditer(text):
            self._add(ERROR, "invalid_script", _not_text_message(match.group()), *match.span(), kind="not_text")

        # (start, end, speaker or None); speaker-ish malformed tags still delimit turns.
        tags: list[tuple[int, int, str | None]] = []
        for match in _SCAN_RE.finditer(text):
            token = match.group()
            if token[0] == "(" and token[-1] != ")":
                self._add(ERROR, "invalid_script",
                          f"unclosed cue {_shown(token.rstrip())}: end it with ')' on the same line, "
                          "or remove the '('", *match.span(), kind="unclosed_cue")
            elif token[0] == "(":
                if collect or token not in _KNOWN_CUE_SET:
                    self._add_cue(token, *match.span())
            elif token in SPEAKER_TAGS:
                tags.append((*match.span(), token[1:-1]))
            else:
                self._other_bracket(token, tags, *match.span())

        if tags:
            self.model_text = text[content_start:content_end]
            self._check_turns(tags, content_start, content_end)
        else:
            self.monologue = True
            self.model_text = "[S1] " + text[content_start:content_end]
            if collect:
                self.turns.append(Turn("S1", text[content_start:content_end],
                                       *self.lines.at(content_start), content_start, content_end))

        self._check_size(content_start, content_end, prefix_tokens, max_text_tokens)
        self.issues.sort(key=lambda issue: (issue.start, issue.severity != ERROR))

    def _add(self, severity: str, code: str, message: str, start: int, end: int, kind: str = "") -> None:
        """Record an issue, unless ``MAX_ISSUES_PER_KIND`` of its ``kind`` (default: its code) are
        listed already. Each kind is found in document order, so its first ones are kept."""
        kind = kind or code
        count = self.counts.get(kind, 0)
        if count >= MAX_ISSUES_PER_KIND:
            return
        self.counts[kind] = count + 1
        self.issues.append(ScriptIssue(severity, code, message, *self.lines.at(start), start, end))

    def _add_cue(self, cue: str, start: int, end: int) -> None:
        known = cue in _KNOWN_CUE_SET
        if self.collect:
            self.cues.append(Cue(cue, known, *self.lines.at(start), start, end))
        if not known:
            suggestion = _CUE_BY_STEM.get(_cue_stem(cue[1:-1]))
            hint = f"did you mean {suggestion}?" if suggestion else "Dia may read it aloud"
            self._add(WARNING, "unknown_cue", f"unknown cue {_shown(cue)}: {hint}", start, end)

    def _other_bracket(self, token: str, tags: list[tuple[int, int, str | None]], start: int,
                       end: int) -> None:
        """A ``[...]`` that is not a valid tag: a malformed speaker tag, a cue in the wrong brackets
        or ordinary text."""
        problem = _speaker_tag_problem(token)
        if problem:
            tags.append((start, end, None))
            self._add(ERROR, "invalid_script", problem, start, end, kind="bad_tag")
        elif _cue_stem(token[1:-1]) in _CUE_BY_STEM:
            self._add(WARNING, "cue_in_brackets",
                      f"Dia reads cues in round brackets: write {_CUE_BY_STEM[_cue_stem(token[1:-1])]}",
                      start, end)

    def _check_turns(self, tags: list[tuple[int, int, str | None]], content_start: int,
                     content_end: int) -> None:
        text = self.text
        first_start, first_end, first_speaker = tags[0]
        has_words = False
        lead = text[content_start:first_start].rstrip()
        if lead:
            has_words = True
            self._add(ERROR, "invalid_script",
                      "text before the first speaker tag: the script must open with [S1]",
                      content_start, content_start + len(lead))
        elif first_speaker == "S2":
            self._add(ERROR, "invalid_script", "the script must open with [S1], not [S2]",
                      first_start, first_end)

        empty: list[tuple[int, int, str]] = []
        previous: str | None = None  # speaker of the previous turn; None after a malformed tag
        last = len(tags) - 1
        for index, (start, end, speaker) in enumerate(tags):
            segment = text[end:tags[index + 1][0] if index < last else content_end]
            spoken = bool(segment) and not segment.isspace()
            has_words = has_words or spoken
            if speaker is None:
                previous = None
                continue
            if not spoken:
                # Ending on the other speaker's empty tag is the README's trick for a cleaner ending.
                if not (index == last and previous not in (None, speaker)):
                    empty.append((start, end, speaker))
            elif previous == speaker:
                self._add(WARNING, "repeated_speaker",
                          f"[{speaker}] speaks twice in a row: Dia works best when [S1] and [S2] alternate",
                          start, end)
            if self.collect:
                words = segment.rstrip()
                self.turns.append(Turn(speaker, words.lstrip(), *self.lines.at(start), start,
                                       end + len(words)))
            previous = speaker

        if not has_words:
            self._add(ERROR, "missing_input", "the script has speaker tags but no text to speak",
                      first_start, first_end)
            return
        for start, end, speaker in empty:
            self._add(WARNING, "empty_turn", f"[{speaker}] has no text", start, end)

    def _check_size(self, content_start: int, content_end: int, prefix_tokens: int,
                    max_text_tokens: int) -> None:
        total = prefix_tokens + text_token_count(self.model_text)
        if total <= max_text_tokens:
            return
        used = prefix_tokens + (2 if self.monologue else 0)  # "[S1] " of a monologue
        pos = _overflow_offset(self.text, content_start, content_end, used, max_text_tokens)
        over = total - max_text_tokens
        detail = f", {prefix_tokens} of them for the voice-prompt transcripts" if prefix_tokens else ""
        self._add(ERROR, "request_too_large",
                  f"the script is {over} text token{'s' if over != 1 else ''} too long: Dia reads at "
                  f"most {max_text_tokens} and this needs {total}{detail}; shorten it or split it "
                  "into several renders", pos, content_end)


def _overflow_offset(text: str, start: int, end: int, used: int, limit: int) -> int:
    """Offset of the first character of ``text[start:end]`` past the token ``limit``, given
    ``used`` tokens before ``start``: the place the editor marks as "does not fit"."""
    for tag in _SPEAKER_TAG_RE.finditer(text, start, end):
        cost = len(text[start:tag.start()].encode("utf-8", "surrogatepass"))
        if used + cost >= limit:
            end = tag.start()
            break
        used += cost + 1
        start = tag.end()
    # The run text[start:end] has no tags: count how many whole characters fit its remaining bytes.
    room = max(0, limit - used)
    fitting = text[start:end].encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore")
    return start + len(fitting)


def check_script(text: str, *, prefix_tokens: int = 0,
                 max_text_tokens: int = MAX_TEXT_TOKENS) -> list[ScriptIssue]:
    """Every error and warning in ``text``, in document order. Never raises; fast enough to run
    on every keystroke (one regex pass, linear time).

    ``prefix_tokens`` are text tokens prepended at render time (voice-prompt transcripts).
    """
    return _Analysis(text or "", prefix_tokens, max_text_tokens, collect=False).issues


_ERROR_TYPES: dict[str, type[DiaStudioError]] = {
    "missing_input": MissingInputError,
    "invalid_script": InvalidScriptError,
    "request_too_large": RequestTooLargeError,
}


def parse_script(text: str, *, prefix_tokens: int = 0,
                 max_text_tokens: int = MAX_TEXT_TOKENS) -> Script:
    """Parse ``text`` into a ``Script``, raising its first error (in document order) as
    ``MissingInputError``, ``InvalidScriptError`` or ``RequestTooLargeError`` with line and column.

    ``prefix_tokens`` are the text tokens of voice-prompt transcripts that will be prepended; they
    count against ``max_text_tokens``.
    """
    analysis = _Analysis(text or "", prefix_tokens, max_text_tokens, collect=True)
    for issue in analysis.issues:
        if issue.severity == ERROR:
            raise _ERROR_TYPES[issue.code](issue.message, line=issue.line, column=issue.column)
    return Script(
        source=analysis.text,
        model_text=analysis.model_text,
        turns=tuple(analysis.turns),
        cues=tuple(analysis.cues),
        warnings=tuple(analysis.issues),
    )


# Checked in this order: a UTF-32 mark starts with the UTF-16 little-endian one.
_UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
_BOMS = ((b"\xef\xbb\xbf", "utf-8", "UTF-8"), (b"\xff\xfe", "utf-16-le", "UTF-16"),
         (b"\xfe\xff", "utf-16-be", "UTF-16"))


def decode_script(data: bytes) -> str:
    """The text of a script file's bytes: UTF-8 with or without a byte-order mark, or UTF-16 by its
    byte-order mark (the mark is dropped).

    Anything else raises ``InvalidScriptError`` with the line and column of the first byte that is
    not valid (its byte offset is in the message); more than ``MAX_SCRIPT_BYTES`` raises
    ``RequestTooLargeError``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidScriptError(f"a script file's content must be bytes, not {type(data).__name__}")
    if memoryview(data).nbytes > MAX_SCRIPT_BYTES:
        raise RequestTooLargeError(
            f"the script file is over {MAX_SCRIPT_BYTES // (1 << 20)} MB: Dia reads at most "
            f"{MAX_TEXT_TOKENS} text tokens (about {MAX_TEXT_TOKENS // 1024} KB) per render; is it the right file?")
    data = bytes(data)
    if data.startswith(_UTF32_BOMS):
        raise InvalidScriptError("the script file is UTF-32 text: save it as UTF-8", line=1, column=1)
    bom, encoding, name = next(((b, e, n) for b, e, n in _BOMS if data.startswith(b)), (b"", "utf-8", "UTF-8"))
    body = data[len(bom):]
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        before = body[:exc.start].decode(encoding, "replace")
        line, column = _Lines(before).at(len(before))
        bad = " ".join(f"0x{byte:02X}" for byte in body[exc.start:min(exc.end, exc.start + 4)])
        raise InvalidScriptError(
            f"the script file is not valid {name} text: {bad} at byte {len(bom) + exc.start} cannot be "
            "decoded; save it as UTF-8 (or UTF-16 with a byte-order mark)", line=line, column=column) from None


def estimate_budget(script_or_text: Script | str, *, prompt_seconds: float = 0.0,
                    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, prefix_tokens: int = 0) -> Budget:
    """Estimate whether a script fits one render (never raises on a bad script).

    Speech length: spoken characters (tags and cues removed, whitespace collapsed) at
    ``CHARS_PER_SECOND``, plus ``CUE_SECONDS`` per cue and ``TURN_GAP_SECONDS`` per change of speaker.
    ``prompt_seconds`` is the voice-prompt audio, which occupies decoder frames before the speech.
    """
    if isinstance(script_or_text, Script):
        model_text = script_or_text.model_text
    else:
        model_text = _Analysis(script_or_text or "", 0, MAX_TEXT_TOKENS, collect=False).model_text

    spoken = " ".join(_NOT_SPOKEN_RE.sub(" ", model_text).split())
    cue_count = len(_CUE_RE.findall(model_text))
    pieces = _TURN_SPLIT_RE.split(model_text)  # [lead, speaker, words, speaker, words, ...]
    speakers = [speaker for speaker, words in zip(pieces[1::2], pieces[2::2])
                if words and not words.isspace()]
    changes = sum(1 for a, b in zip(speakers, speakers[1:]) if a != b)
    seconds = len(spoken) / CHARS_PER_SECOND + cue_count * CUE_SECONDS + changes * TURN_GAP_SECONDS

    prompt_frames = math.ceil(max(0.0, prompt_seconds) * FRAMES_PER_SECOND)
    estimated_frames = prompt_frames + math.ceil(seconds * FRAMES_PER_SECOND)
    frame_budget = max_new_tokens - DECODER_OVERHEAD_FRAMES
    text_tokens = prefix_tokens + text_token_count(model_text)
    fits_text = text_tokens <= MAX_TEXT_TOKENS
    fits_frames = estimated_frames <= frame_budget
    available = max(0, frame_budget - prompt_frames) / FRAMES_PER_SECOND

    warnings: list[str] = []
    if not fits_text:
        over = text_tokens - MAX_TEXT_TOKENS
        warnings.append(f"the text is {over} token{'s' if over != 1 else ''} over Dia's "
                        f"{MAX_TEXT_TOKENS}-token limit; shorten it or split it into several renders")
    if not fits_frames:
        warnings.append(f"the script is likely longer than one render can hold (~{available:.0f} s); "
                        "split it")
    elif seconds > LONG_SECONDS:
        warnings.append(f"about {seconds:.0f} s of speech: past ~{LONG_SECONDS:.0f} s Dia tends to speak "
                        "unnaturally fast (Dia's README); consider splitting it")
    if 0 < seconds < SHORT_SECONDS:
        warnings.append(f"very short scripts (< ~{SHORT_SECONDS:.0f} s of audio) often come out garbled; "
                        "Dia's README advises more text")

    return Budget(
        estimated_seconds=seconds,
        estimated_frames=estimated_frames,
        prompt_frames=prompt_frames,
        frame_budget=frame_budget,
        text_tokens=text_tokens,
        max_text_tokens=MAX_TEXT_TOKENS,
        fits=fits_text and fits_frames,
        warnings=tuple(warnings),
    )
