"""Captions: timings estimated within each block in proportion to its text, written as WebVTT and SRT.

WebVTT files are read back with webvtt-py, an independent parser.
"""

from __future__ import annotations

import html
import itertools
import re

import pytest
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.episode.captions import Caption, estimate_captions, write_captions
from engine.errors import InvalidParameterError

TURNS = [[("Mara", "Hi Theo."), ("Theo", "Hello Mara, good to see you again.")],
         [("Dr. Lee", "Welcome to the second part.")]]
SPANS = [(0.0, 4.2), (5.0, 8.0)]

_SRT_CUE = re.compile(r"^(\d+)\n(\d\d:\d\d:\d\d,\d\d\d) --> (\d\d:\d\d:\d\d,\d\d\d)\n(.+)$")


def test_a_block_is_shared_among_its_turns_in_proportion_to_their_text():
    captions = estimate_captions([[("Mara", "abcd"), ("Theo", "abcdefghijkl")]], [(10.0, 14.0)])
    assert captions == [Caption(10.0, 11.0, "Mara", "abcd"), Caption(11.0, 14.0, "Theo", "abcdefghijkl")]


def test_a_block_without_sound_or_text_gives_no_caption():
    captions = estimate_captions([[("Mara", "Hello.")], [("Theo", "   ")], [("Mara", "Again.")]],
                                 [(0.0, 0.0), (0.0, 2.0), (2.0, 3.0)])
    assert captions == [Caption(2.0, 3.0, "Mara", "Again.")]


def test_turns_and_spans_of_different_lengths_are_refused():
    with pytest.raises(InvalidParameterError, match="must match"):
        estimate_captions(TURNS, SPANS[:1])


@settings(max_examples=50, deadline=None)
@given(blocks=st.lists(st.lists(st.tuples(st.sampled_from(["Mara", "Theo"]), st.text("ab .", min_size=1,
                                                                                     max_size=40)),
                                max_size=4), min_size=1, max_size=5),
       lengths=st.lists(st.floats(0.1, 20.0), min_size=5, max_size=5))
def test_each_block_is_covered_exactly_by_its_captions_in_order(blocks, lengths):
    spans, start = [], 0.0
    for block, length in zip(blocks, lengths):
        spans.append((start, start + length))
        start += length + 0.5
    captions = estimate_captions(blocks, spans)
    spoken = [(c, " ".join(t.split())) for block in blocks for c, t in block if t.split()]
    assert [(c.character, c.text) for c in captions] == spoken
    for (start, end), block in zip(spans, blocks):
        inside = [c for c in captions if start <= c.start < end]
        if inside:
            assert inside[0].start == start and inside[-1].end == pytest.approx(end)
            assert all(a.end == b.start for a, b in itertools.pairwise(inside))


def test_webvtt_has_one_voice_span_per_turn_read_back_by_a_parser(tmp_path):
    path = write_captions(tmp_path / "episode.vtt", estimate_captions(TURNS, SPANS), estimated=True)
    cues = list(webvtt.read(str(path)))
    assert [(c.voice, c.text) for c in cues] == [("Mara", "Hi Theo."), ("Theo", "Hello Mara, good to see you again."),
                                                 ("Dr. Lee", "Welcome to the second part.")]
    assert (cues[0].start, cues[0].end) == ("00:00:00.000", "00:00:00.800")
    assert cues[-1].end == "00:00:08.000"


def test_estimated_webvtt_says_so_in_a_note(tmp_path):
    estimated = write_captions(tmp_path / "a.vtt", estimate_captions(TURNS, SPANS), estimated=True).read_text()
    aligned = write_captions(tmp_path / "b.vtt", estimate_captions(TURNS, SPANS), estimated=False).read_text()
    assert re.search(r"^NOTE .*estimated", estimated, re.MULTILINE)
    assert "NOTE" not in aligned


def test_markup_in_the_text_is_escaped_and_parses_back_to_the_same_words(tmp_path):
    text = "Fish & chips <loudly> --> tomorrow."
    path = write_captions(tmp_path / "episode.vtt", [Caption(0.0, 2.0, "Mara", text)], estimated=False)
    (cue,) = webvtt.read(str(path))
    assert html.unescape(cue.text) == text


def test_a_turn_over_several_lines_becomes_one_cue_line(tmp_path):
    path = write_captions(tmp_path / "episode.vtt", [Caption(0.0, 2.0, "Mara", "One.\n\nTwo.")], estimated=False)
    (cue,) = webvtt.read(str(path))
    assert cue.text == "One. Two."


def test_srt_numbers_its_cues_with_comma_timestamps_and_names_the_speaker(tmp_path):
    path = write_captions(tmp_path / "episode.srt", estimate_captions(TURNS, SPANS), estimated=True)
    cues = [_SRT_CUE.match(block) for block in path.read_text(encoding="utf-8").strip().split("\n\n")]
    assert all(cues)
    assert [c.groups() for c in cues] == [
        ("1", "00:00:00,000", "00:00:00,800", "Mara: Hi Theo."),
        ("2", "00:00:00,800", "00:00:04,200", "Theo: Hello Mara, good to see you again."),
        ("3", "00:00:05,000", "00:00:08,000", "Dr. Lee: Welcome to the second part."),
    ]


def test_times_past_an_hour_keep_hours(tmp_path):
    path = write_captions(tmp_path / "episode.srt", [Caption(3725.5, 3726.0, "Mara", "Late.")], estimated=False)
    assert "01:02:05,500 --> 01:02:06,000" in path.read_text()


def test_an_unknown_caption_suffix_is_refused(tmp_path):
    with pytest.raises(InvalidParameterError, match=r"\.vtt or \.srt"):
        write_captions(tmp_path / "episode.txt", [], estimated=True)
