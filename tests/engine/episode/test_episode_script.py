"""The episode script syntax: named characters, chapters, breaks; render-script rules per turn."""

from __future__ import annotations

import pytest

from engine.episode.script import check_episode, is_character_name, parse_episode
from engine.errors import InvalidScriptError, MissingInputError


def test_lines_open_with_character_names_or_speaker_tags():
    episode = parse_episode("[Mara] Hello there.\n[Dr. Lee] Hi, Mara.\n[S2] And me.\n")
    assert [(t.character, t.text) for t in episode.turns] == [
        ("Mara", "Hello there."), ("Dr. Lee", "Hi, Mara."), ("S2", "And me.")]
    assert episode.characters == ("Mara", "Dr. Lee", "S2")


def test_an_episode_may_have_any_number_of_characters():
    names = [f"Guest {chr(65 + i)}" for i in range(12)]
    episode = parse_episode("".join(f"[{name}] Hello.\n" for name in names))
    assert episode.characters == tuple(names)


@pytest.mark.parametrize("name", ["Mara", "Dr. Lee", "Anne-Marie", "R2_D2", "Zoë", "X" * 32, "Speaker 1"])
def test_valid_names(name):
    assert is_character_name(name)


@pytest.mark.parametrize("name", ["S3", "S12", "s4", "X" * 33, "", "...", "Mara!", "a/b"])
def test_invalid_names(name):
    assert not is_character_name(name)


def test_s3_stays_invalid_script_with_its_position():
    with pytest.raises(InvalidScriptError) as info:
        parse_episode("[Mara] Hi.\n[S3] Who am I?\n")
    assert "only two speakers" in info.value.message
    assert (info.value.line, info.value.column) == (2, 1)


def test_a_heading_starts_a_chapter_and_dashes_force_a_break():
    episode = parse_episode("# Opening\n[Mara] One.\n[Theo] Two.\n---\n[Mara] Three.\n# Second part\n[Theo] Four.\n")
    assert [(c.title, c.first_turn) for c in episode.chapters] == [("Opening", 0), ("Second part", 3)]
    assert [t.chapter for t in episode.turns] == [0, 0, 0, 1]
    assert [t.break_before for t in episode.turns] == [False, False, True, True]


def test_turn_spans_point_into_the_source():
    source = "# C\n[Mara]   Hello (laughs),\n  still me.\n[Theo] Yes."
    for turn in parse_episode(source).turns:
        assert source[turn.start:turn.end] == turn.text
    assert parse_episode(source).turns[0].text == "Hello (laughs),\n  still me."


def test_render_script_errors_are_mapped_to_episode_lines_and_columns():
    source = "[Mara] Fine.\n[Theo] Well (laughs\n"
    errors = [i for i in check_episode(source) if i.is_error]
    assert [(e.code, e.line, e.column) for e in errors] == [("invalid_script", 2, 13)]
    with pytest.raises(InvalidScriptError) as info:
        parse_episode(source)
    assert (info.value.line, info.value.column) == (2, 13)


def test_warnings_keep_their_episode_positions():
    issues = check_episode("[Mara] Hi.\n[Theo] Oh (laugh) no.\n")
    assert [(i.code, i.line, i.column) for i in issues] == [("unknown_cue", 2, 11)]


def test_text_before_the_first_tag_is_refused():
    with pytest.raises(InvalidScriptError) as info:
        parse_episode("Hello.\n[Mara] Hi.\n")
    assert "before the first speaker tag" in info.value.message and info.value.line == 1


def test_an_untagged_script_is_an_s1_monologue():
    episode = parse_episode("Once upon a time.\nThe end.\n")
    assert [(t.character, t.text) for t in episode.turns] == [("S1", "Once upon a time.\nThe end.")]


def test_empty_scripts_are_missing_input():
    with pytest.raises(MissingInputError):
        parse_episode("  \n")
    with pytest.raises(MissingInputError):
        parse_episode("# Only a title\n")


def test_a_long_turn_is_not_refused_by_the_parser():
    parse_episode("[Mara] " + "All work and no play. " * 400)  # the splitter cuts it into blocks
