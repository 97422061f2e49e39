"""Splitting an episode into blocks: properties of the splitter, and how edits stay local."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.episode.script import parse_episode
from engine.episode.split import SplitSettings, VoiceCost, prompt_cost, split_episode
from engine.errors import InvalidParameterError, RequestTooLargeError
from engine.script import estimate_budget

NAMES = ["Mara", "Theo", "Dr. Lee", "Ann-Sofie", "S1"]
WORDS = ["yes", "no", "well", "tomorrow", "(laughs)", "maybe", "the", "podcast", "Zoë", "really", "okay"]
ENDS = ["", "", "", ",", ".", "!", "?", ";", " —"]


@st.composite
def turn_texts(draw) -> str:
    words = draw(st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(ENDS)), min_size=1, max_size=120))
    return " ".join(w + e for w, e in words).rstrip(" —") or "yes"


@st.composite
def episodes(draw) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 25))):
        marker = draw(st.sampled_from(["", "", "", "", "---", "# A chapter"]))
        if marker:
            lines.append(marker)
        lines.append(f"[{draw(st.sampled_from(NAMES))}] {draw(turn_texts())}")
    return "\n".join(lines)


voices = st.dictionaries(st.sampled_from(NAMES), st.builds(VoiceCost, st.floats(1.0, 8.0),
                                                          st.sampled_from(["Hello there.", "I am the voice."])))
split_settings = st.builds(SplitSettings, st.floats(5.0, 30.0), st.integers(1024, 4096))


def _fits(block, costs, split: SplitSettings) -> bool:
    prompt = [costs[c] for c in block.characters if c in costs]
    seconds, tokens = prompt_cost(prompt)
    return estimate_budget(block.model_text, prompt_seconds=seconds, prefix_tokens=tokens,
                           max_new_tokens=split.max_new_tokens).fits


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(episodes(), voices, split_settings)
def test_every_turn_lands_in_order_and_its_text_is_preserved_exactly(source, costs, split):
    episode = parse_episode(source)
    pieces = [piece for block in split_episode(episode, costs, split) for piece in block.turns]
    assert [p.turn for p in pieces] == sorted(p.turn for p in pieces)
    for index, turn in enumerate(episode.turns):
        own = [p for p in pieces if p.turn == index]
        assert own and "".join(source[p.start:p.end] for p in own) == turn.text
        assert all(a.end == b.start for a, b in zip(own, own[1:]))
        assert all(source[p.end - 1].isspace() for p in own[:-1])  # cut between words, never inside one
        assert all(p.text == source[p.start:p.end].strip() and p.character == turn.character for p in own)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(episodes(), voices, split_settings)
def test_no_block_exceeds_the_budget_with_its_prompt(source, costs, split):
    for block in split_episode(parse_episode(source), costs, split):
        assert _fits(block, costs, split)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(episodes(), voices, split_settings)
def test_no_block_has_more_than_two_characters_and_s1_speaks_first(source, costs, split):
    for block in split_episode(parse_episode(source), costs, split):
        assert 1 <= len(block.characters) <= 2
        assert block.model_text.startswith("[S1] ")
        assert block.characters[0] == block.turns[0].character


def test_blocks_break_at_chapters_and_dashes():
    episode = parse_episode("# One\n[Mara] Hi.\n[Theo] Hi.\n---\n[Mara] Again.\n# Two\n[Theo] Yes.\n")
    blocks = split_episode(episode)
    assert [b.script_text for b in blocks] == ["[Mara] Hi.\n[Theo] Hi.", "[Mara] Again.", "[Theo] Yes."]
    assert [b.chapter for b in blocks] == [0, 0, 1]


def test_a_third_character_starts_a_new_block_and_becomes_its_s1():
    blocks = split_episode(parse_episode("[Mara] Hi.\n[Theo] Hey.\n[Lee] Hello both.\n[Mara] Oh, Lee!\n"))
    assert [b.characters for b in blocks] == [("Mara", "Theo"), ("Lee", "Mara")]
    assert blocks[1].model_text == "[S1] Hello both.\n[S2] Oh, Lee!"


def test_a_long_turn_splits_at_sentences_before_clauses():
    sentence = "This sentence is about four seconds of speech, give or take a little."
    episode = parse_episode("[Mara] " + " ".join([sentence] * 8))
    blocks = split_episode(episode, settings=SplitSettings(10.0))
    assert len(blocks) > 1
    assert all(b.turns[0].text.endswith("little.") for b in blocks)


def test_a_long_sentence_splits_at_clauses():
    clause = "and then we walked along the river for a while"
    episode = parse_episode("[Mara] " + ", ".join([clause] * 10) + ".")
    blocks = split_episode(episode, settings=SplitSettings(8.0))
    assert len(blocks) > 1 and all(b.turns[0].text.endswith(("while,", "while.")) for b in blocks)


def test_voice_prompts_leave_less_room():
    source = "\n".join(f"[{'Mara' if i % 2 else 'Theo'}] A short line, number {i}." for i in range(30))
    bare = split_episode(parse_episode(source), settings=SplitSettings(30.0, 1024))
    voiced = split_episode(parse_episode(source), {"Mara": VoiceCost(5.0, "Hi."), "Theo": VoiceCost(5.0, "Yo.")},
                           SplitSettings(30.0, 1024))
    assert len(voiced) > len(bare)


def test_a_prompt_that_leaves_no_room_is_request_too_large():
    with pytest.raises(RequestTooLargeError) as info:
        split_episode(parse_episode("[Mara] Hi.\n[Theo] Hello there.\n"), {"Theo": VoiceCost(60.0, "Long.")})
    assert info.value.line == 2


def test_block_length_out_of_range_is_refused():
    with pytest.raises(InvalidParameterError):
        SplitSettings(1.0)


def _keys(source: str) -> list[str]:
    return [b.model_text + "|" + "/".join(b.characters) for b in split_episode(parse_episode(source))]


def test_an_edit_changes_only_the_blocks_near_it():
    lines = [f"[{'Mara' if i % 2 else 'Theo'}] This is line {i} of a long talk, and it goes on a bit."
             for i in range(120)]
    before = _keys("\n".join(lines))
    lines[40] = lines[40].replace("goes on a bit", "goes on and on and on for rather longer than it did")
    after = _keys("\n".join(lines))
    assert len(set(after) - set(before)) <= 3  # only the edited block and its neighbours are new
    assert after[-20:] == before[-20:]


def test_inserting_a_chapter_moves_blocks_without_changing_them():
    body = "\n".join(f"[{'Mara' if i % 2 else 'Theo'}] Line {i} is here, more or less." for i in range(40))
    before = _keys("# Part\n" + body)
    after = _keys("# Intro\n[Lee] Welcome to the show.\n# Part\n" + body)
    assert after[1:] == before
