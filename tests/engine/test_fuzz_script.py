"""Fuzzing the script rules: any bytes or text give a script or a typed error, nothing else.

Bounded: a few hundred examples of a few kilobytes each, no deadline (the machine is shared);
the largest accepted file sizes are checked for memory in a process of their own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import InvalidScriptError, MissingInputError, RequestTooLargeError
from engine.model.tokenizer import encode_text
from engine.script import check_script, decode_script, parse_script

ROOT = Path(__file__).resolve().parents[2]
TYPED = (InvalidScriptError, MissingInputError, RequestTooLargeError)
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MEMORY_LIMIT_KB = 1 << 20  # 1 GB, in kilobytes

# Pieces that reach the interesting paths: tags, brackets, cues, line ends, byte-order marks,
# multi-byte and broken UTF-8/UTF-16, control bytes.
BYTE_PIECES = [
    b"[S1]", b"[S2]", b"[S3]", b"[s1]", b"[S", b"[", b"]", b"(", b")", b"(laughs)", b"(hmm)", b" ", b"\n",
    b"\r\n", b"\r", b"\t", b"0", b"1", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00", b"\x01", b"\x02",
    b"\x7f", "é".encode(), "😀".encode(), b"\xed\xa0\x80", b"\xc3", b"\x80", b"\xff", b"Hello there.",
]
TEXT_PIECES = [piece.decode("utf-8", "surrogateescape") for piece in BYTE_PIECES] + [
    "\ud800", "\udfff", "\ufeff", "\u2028", "\x85", "Speaker 1", "[S" + "0" * 30 + "]", "(" * 30, "[" * 30,
]

script_bytes = st.one_of(
    st.binary(max_size=2048),
    st.lists(st.one_of(st.sampled_from(BYTE_PIECES), st.binary(max_size=6)), max_size=300).map(b"".join),
)
script_text = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=1024),  # surrogates included
    st.lists(st.one_of(st.sampled_from(TEXT_PIECES), st.text(max_size=6)), max_size=300).map("".join),
)


def check_one(text: str) -> None:
    """``parse_script`` gives a usable script or a typed error, in agreement with ``check_script``."""
    issues = check_script(text)
    for issue in issues:
        assert 0 <= issue.start <= issue.end <= len(text) and issue.line >= 1 and issue.column >= 1
    try:
        script = parse_script(text)
    except TYPED as exc:
        assert exc.line is not None and exc.column is not None
        assert any(i.is_error for i in issues)
        return
    assert not any(i.is_error for i in issues)
    ids = encode_text(script.model_text)  # what the tokenizer would be given: never crashes
    assert 0 < len(ids) <= 1024 and 0 not in ids


@FUZZ
@given(script_bytes)
def test_any_bytes_decode_to_a_script_or_a_typed_error(data):
    try:
        text = decode_script(data)
    except TYPED as exc:
        assert isinstance(exc, InvalidScriptError) and exc.line is not None
        return
    check_one(text)


@FUZZ
@given(script_text)
def test_any_text_parses_to_a_script_or_a_typed_error(text):
    check_one(text)


LARGEST = """
from engine.errors import DiaStudioError
from engine.script import MAX_SCRIPT_BYTES, check_script, decode_script, parse_script

# The most issues, the most cues and the most turns a file of the largest accepted size can hold.
for piece in (b"( ", b"(x) ", b"[S1] a "):
    text = decode_script(piece * (MAX_SCRIPT_BYTES // len(piece)))
    check_script(text)
    try:
        parse_script(text, max_text_tokens=10**7)
    except DiaStudioError:
        pass
from tests.peak_memory import peak_rss_bytes
print(peak_rss_bytes() // 1024)
"""


def test_the_largest_script_files_stay_within_memory():
    done = subprocess.run([sys.executable, "-c", LARGEST], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < MEMORY_LIMIT_KB
