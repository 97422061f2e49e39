"""Script rules: tags, turns, cues, positions, size limits and the length estimate."""

from __future__ import annotations

import math

import pytest

from engine.errors import InvalidScriptError, MissingInputError, RequestTooLargeError
from engine.script import (
    FRAMES_PER_SECOND,
    KNOWN_CUES,
    MAX_ISSUES_PER_KIND,
    MAX_SCRIPT_BYTES,
    MAX_TEXT_TOKENS,
    SPEAKER_TAGS,
    Script,
    ScriptIssue,
    check_characters,
    check_script,
    decode_script,
    estimate_budget,
    parse_script,
    text_token_count,
)


def issues(text: str, **kwargs) -> list[tuple[str, str, int, int]]:
    """(severity, code, line, column) of every issue, in order."""
    return [(i.severity, i.code, i.line, i.column) for i in check_script(text, **kwargs)]


def only_issue(text: str, **kwargs) -> ScriptIssue:
    found = check_script(text, **kwargs)
    assert len(found) == 1, found
    return found[0]


# --- constants ---------------------------------------------------------------------------------

def test_known_cues_are_the_21_from_dias_readme():
    assert len(KNOWN_CUES) == 21 == len(set(KNOWN_CUES))
    assert KNOWN_CUES[0] == "(laughs)" and KNOWN_CUES[-1] == "(whistles)"
    assert "(clears throat)" in KNOWN_CUES and "(chuckle)" in KNOWN_CUES
    assert SPEAKER_TAGS == ("[S1]", "[S2]")


# --- valid scripts -----------------------------------------------------------------------------

def test_dialogue_one_turn_per_line():
    text = "[S1] Hello! Welcome to the show.\n[S2] Thanks for having me.\n[S1] So, tell me."
    script = parse_script(text)
    assert script.model_text == text
    assert [(t.speaker, t.text, t.line, t.column) for t in script.turns] == [
        ("S1", "Hello! Welcome to the show.", 1, 1),
        ("S2", "Thanks for having me.", 2, 1),
        ("S1", "So, tell me.", 3, 1),
    ]
    second = script.turns[1]
    assert (second.start, second.end) == (33, 59)
    assert text[second.start:second.end] == "[S2] Thanks for having me."
    assert script.warnings == ()
    assert check_script(text) == []


def test_several_turns_on_one_line_as_in_dias_examples():
    text = "[S1] Dia is open. [S2] You get control. [S1] Wow. (laughs) [S2] Try it."
    script = parse_script(text)
    assert [(t.speaker, t.text, t.column) for t in script.turns] == [
        ("S1", "Dia is open.", 1), ("S2", "You get control.", 19),
        ("S1", "Wow. (laughs)", 41), ("S2", "Try it.", 60),
    ]
    assert [(c.text, c.known, c.line, c.column, c.start, c.end) for c in script.cues] == [
        ("(laughs)", True, 1, 51, 50, 58)
    ]


def test_untagged_text_is_one_s1_monologue():
    script = parse_script("  \n  Just me, talking (sighs) to myself.  \n")
    assert script.model_text == "[S1] Just me, talking (sighs) to myself."
    assert len(script.turns) == 1
    turn = script.turns[0]
    assert (turn.speaker, turn.text, turn.line, turn.column) == ("S1", "Just me, talking (sighs) to myself.", 2, 3)
    assert script.source[turn.start:turn.end] == turn.text
    assert script.cues[0].line == 2 and script.cues[0].column == 20


def test_model_text_keeps_the_users_words_and_only_drops_outer_whitespace():
    text = "\n  [S1] Hi  there (laughs) \n\n [S2] Yo!\n"
    assert parse_script(text).model_text == "[S1] Hi  there (laughs) \n\n [S2] Yo!"
    assert parse_script(text).source == text


def test_byte_order_mark_is_not_text_before_the_first_tag():
    script = parse_script("\ufeff[S1] Hello.")
    assert script.model_text == "[S1] Hello."


def test_unicode_columns_count_characters():
    text = "[S1] Ça va? 😀 Très bien (hmm)\n[S2] Ünïcödé (laughs)"
    script = parse_script(text)
    unknown = script.warnings[0]
    assert (unknown.code, unknown.line, unknown.column) == ("unknown_cue", 1, 25)
    assert text[unknown.start:unknown.end] == "(hmm)"
    laughs = script.cues[1]
    assert (laughs.line, laughs.column) == (2, 14)
    assert text[laughs.start:laughs.end] == "(laughs)"


def test_crlf_and_lone_cr_line_endings():
    text = "[S1] Hi there.\r\n[S2] Hello (hmm).\r[S1] Bye (hmm)."
    found = check_script(text)
    assert [(i.code, i.line, i.column) for i in found] == [("unknown_cue", 2, 12), ("unknown_cue", 3, 10)]
    assert [text[i.start:i.end] for i in found] == ["(hmm)", "(hmm)"]
    script = parse_script(text)
    assert [t.text for t in script.turns] == ["Hi there.", "Hello (hmm).", "Bye (hmm)."]
    assert [(t.line, t.column) for t in script.turns] == [(1, 1), (2, 1), (3, 1)]


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "   ", "\n\t \r\n", "\ufeff", None])
def test_empty_input_is_missing_input(text):
    assert issues(text) == [("error", "missing_input", 1, 1)]
    with pytest.raises(MissingInputError) as caught:
        parse_script(text)
    assert caught.value.code == "missing_input"
    assert (caught.value.line, caught.value.column) == (1, 1)


@pytest.mark.parametrize("text", ["[S1]", "[S1]  [S2]\n", "[S1] [S2] [S1]"])
def test_tags_without_words_are_missing_input(text):
    assert issues(text) == [("error", "missing_input", 1, 1)]
    with pytest.raises(MissingInputError):
        parse_script(text)


def test_opening_with_s2_is_invalid():
    issue = only_issue("\n  [S2] Hi.\n[S1] Hello.")
    assert (issue.severity, issue.code, issue.line, issue.column, issue.start, issue.end) == (
        "error", "invalid_script", 2, 3, 3, 7)
    with pytest.raises(InvalidScriptError) as caught:
        parse_script("[S2] Hi. [S1] Hello.")
    assert caught.value.code == "invalid_script"
    assert (caught.value.line, caught.value.column) == (1, 1)
    assert "[S1]" in caught.value.message


def test_text_before_the_first_tag_is_invalid():
    text = "\nIntro words\n  here [S1] Hello. [S2] Hi."
    issue = only_issue(text)
    assert (issue.code, issue.line, issue.column) == ("invalid_script", 2, 1)
    assert text[issue.start:issue.end] == "Intro words\n  here"
    with pytest.raises(InvalidScriptError, match="must open with"):
        parse_script(text)


@pytest.mark.parametrize(
    ("tag", "fragment"),
    [
        ("[S3]", "only two speakers"),
        ("[S12]", "only two speakers"),
        ("[S0]", "not a speaker"),
        ("[s1]", "write [S1]"),
        ("[s2]", "write [S2]"),
        ("[S 1]", "write [S1]"),
        ("[S01]", "write [S1]"),
        ("[ S2 ]", "write [S2]"),
        ("[Speaker 1]", "write [S1]"),
        ("[speaker2]", "write [S2]"),
        ("[Speaker 3]", "only two speakers"),
        ("[S]", "no number"),
        ("[Speaker]", "no number"),
    ],
)
def test_bad_speaker_tags_are_invalid_with_their_position(tag, fragment):
    text = f"[S1] Hello there.\n[S2] Fine, {tag} thanks."
    issue = only_issue(text)
    column = len("[S2] Fine, ") + 1
    assert (issue.severity, issue.code, issue.line, issue.column) == ("error", "invalid_script", 2, column)
    assert text[issue.start:issue.end] == tag
    assert fragment in issue.message
    with pytest.raises(InvalidScriptError) as caught:
        parse_script(text)
    assert (caught.value.line, caught.value.column) == (2, column)


def test_a_malformed_first_tag_is_reported_once():
    assert issues("[s1] Hello. [S2] Hi.") == [("error", "invalid_script", 1, 1)]


def test_ordinary_square_brackets_are_just_text():
    assert check_script("[S1] See [note 4] and [Sarah]. [S2] Ok.") == []
    assert check_script("[S1] The array [" + "x" * 40 + "] is long. [S2] Ok.") == []


def test_parse_raises_the_first_error_in_document_order():
    with pytest.raises(InvalidScriptError) as caught:
        parse_script("[S1] Hi.\n[S2] Yo [S3] x\n[s1] y")
    assert (caught.value.line, caught.value.column) == (2, 9)
    assert issues("[S1] Hi.\n[S2] Yo [S3] x\n[s1] y") == [
        ("error", "invalid_script", 2, 9), ("error", "invalid_script", 3, 1)]


def test_errors_to_dict_carry_the_position():
    with pytest.raises(InvalidScriptError) as caught:
        parse_script("[S1] a\n[S3] b")
    assert caught.value.to_dict()["type"] == "invalid_script"
    assert (caught.value.to_dict()["line"], caught.value.to_dict()["column"]) == (2, 1)


def test_tag_like_text_of_any_length_is_checked():
    tag = "[S" + "0" * 28 + "3]"  # 31 characters: past any fixed look-ahead
    text = f"[S1] Hello {tag} there."
    issue = only_issue(text)
    assert (issue.code, issue.column) == ("invalid_script", 12)
    assert text[issue.start:issue.end] == tag
    assert "only two speakers" in issue.message and len(issue.message) < 120  # the tag is shortened
    with pytest.raises(InvalidScriptError):
        parse_script(text)


@pytest.mark.parametrize("digits", ["0" * 29 + "1", "9" * 29, "1" * 5000])
def test_speaker_tags_with_long_numbers_are_invalid(digits):
    issue = only_issue(f"[S1] Hi. [S2] Fine [S{digits}] ok.", max_text_tokens=10**6)
    assert issue.code == "invalid_script" and issue.column == 20
    assert ("write [S1]" if digits.endswith("01") else "only two speakers") in issue.message


def test_long_bracketed_text_is_still_text_and_cues_in_long_brackets_are_seen():
    assert check_script("[S1] See [" + "a long editorial note, " * 10 + "]. [S2] Ok.") == []
    issue = only_issue("[S1] Ha [   clears      throat   ] ok. [S2] Yes.")
    assert issue.code == "cue_in_brackets" and "(clears throat)" in issue.message


@pytest.mark.parametrize(("text", "line", "column", "span"), [
    ("[S1] Hi (laughs. [S2] Ok.", 1, 9, "(laughs. "),
    ("[S1] Hi.\n[S2] Well (sighs\n[S1] Ok.", 2, 11, "(sighs"),
    ("[S1] Ends with (", 1, 16, "("),
    ("[S1] Two ((laughs) here", 1, 10, "("),
    ("[S1] A (cue [S2] across a tag.", 1, 8, "(cue "),
])
def test_unclosed_cue_is_invalid_with_its_position(text, line, column, span):
    issue = only_issue(text)
    assert (issue.severity, issue.code, issue.line, issue.column) == ("error", "invalid_script", line, column)
    assert text[issue.start:issue.end] == span
    assert "unclosed cue" in issue.message
    with pytest.raises(InvalidScriptError) as caught:
        parse_script(text)
    assert (caught.value.line, caught.value.column) == (line, column)


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x02", "\x07", "\x1b", "\x7f", "\x85"])
def test_control_characters_are_invalid(char):
    text = f"[S1] Hello{char}{char} there.\n[S2] Hi."
    issue = only_issue(text)
    assert (issue.code, issue.line, issue.column) == ("invalid_script", 1, 11)
    assert text[issue.start:issue.end] == char * 2  # one issue per run
    assert f"U+{ord(char):04X}" in issue.message
    with pytest.raises(InvalidScriptError):
        parse_script(text)


def test_tabs_and_line_breaks_are_text():
    assert check_script("[S1]\tHello\x0bthere.\x0c\r\n[S2] Hi.") == []


@pytest.mark.parametrize("text", ["[S1] Hi \ud800 there.", "\udfff", "[S1] a\udc80\ud83d"])
def test_a_lone_surrogate_is_refused_by_parse_script(text):
    with pytest.raises(InvalidScriptError, match="surrogate"):
        parse_script(text)
    assert any(i.is_error and "surrogate" in i.message for i in check_script(text))


def test_a_paired_surrogate_from_a_real_emoji_is_fine():
    assert parse_script("[S1] Hi 😀 there.").model_text == "[S1] Hi 😀 there."


def test_check_characters_checks_only_characters():
    assert check_characters("[S3] (unclosed") == []
    [issue] = check_characters("ok\n a\x01b")
    assert (issue.line, issue.column, issue.start, issue.end) == (2, 3, 5, 6)


@pytest.mark.parametrize("value", [b"[S1] Hi.", bytearray(b"[S1] Hi."), 42])
def test_a_script_that_is_not_text_is_invalid(value):
    with pytest.raises(InvalidScriptError, match="must be text"):
        parse_script(value)
    assert [i.code for i in check_script(value)] == ["invalid_script"]


def test_issues_of_one_kind_are_capped_but_the_first_error_is_kept():
    text = "[S1] " + "(x) " * (MAX_ISSUES_PER_KIND + 50) + "( " * (MAX_ISSUES_PER_KIND + 50) + "[S3]"
    found = check_script(text, max_text_tokens=10**6)
    assert [i.code for i in found].count("unknown_cue") == MAX_ISSUES_PER_KIND
    assert sum("unclosed" in i.message for i in found) == MAX_ISSUES_PER_KIND
    assert found[-1].message.startswith("[S3]")  # another kind: still listed
    with pytest.raises(InvalidScriptError, match="unclosed cue") as caught:
        parse_script(text, max_text_tokens=10**6)
    assert caught.value.column == len("[S1] " + "(x) " * (MAX_ISSUES_PER_KIND + 50)) + 1


# --- decoding script files ---------------------------------------------------------------------

TEXT = "[S1] Ça va? 😀\n[S2] Très bien."


@pytest.mark.parametrize("data", [
    TEXT.encode("utf-8"),
    b"\xef\xbb\xbf" + TEXT.encode("utf-8"),
    TEXT.encode("utf-16"),  # with Python's byte-order mark
    b"\xff\xfe" + TEXT.encode("utf-16-le"),
    b"\xfe\xff" + TEXT.encode("utf-16-be"),
])
def test_decode_reads_utf8_with_or_without_bom_and_utf16_by_its_bom(data):
    assert decode_script(data) == TEXT


def test_decode_reports_latin1_at_the_first_bad_byte():
    data = "[S1] Hello.\n[S2] Très bien.".encode("latin-1")
    with pytest.raises(InvalidScriptError) as caught:
        decode_script(data)
    assert (caught.value.line, caught.value.column) == (2, 8)
    assert "0xE8 at byte 19" in caught.value.message and "UTF-8" in caught.value.message


def test_decode_counts_columns_in_characters_after_a_bom():
    data = b"\xef\xbb\xbf[S1] \xc3\xa9t\xc3\xa9 \xff"
    with pytest.raises(InvalidScriptError) as caught:
        decode_script(data)
    assert (caught.value.line, caught.value.column) == (1, 10)
    assert "byte 14" in caught.value.message


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",       # binary
    b"[S1] \xed\xa0\x80 surrogate in UTF-8",     # an encoded lone surrogate
    b"\xff\xfe" + "[S1] hi".encode("utf-16-le") + b"\x00",  # odd length
    b"\xff\xfe[\x00S\x00\x00\xd8",             # lone surrogate in UTF-16
    b"\xff\xfe\x00\x00[\x00\x00\x00",          # UTF-32
])
def test_decode_refuses_what_is_not_utf8_or_utf16(data):
    with pytest.raises(InvalidScriptError) as caught:
        decode_script(data)
    assert caught.value.line is not None and caught.value.column is not None


def test_decoded_binary_that_happens_to_be_utf8_is_refused_by_parse():
    with pytest.raises(InvalidScriptError, match="U\\+0000"):
        parse_script(decode_script(b"\x00" * 64))


def test_decode_refuses_a_script_file_over_the_size_limit():
    with pytest.raises(RequestTooLargeError, match="MB"):
        decode_script(b"a" * (MAX_SCRIPT_BYTES + 1))
    assert len(decode_script(b"a" * MAX_SCRIPT_BYTES)) == MAX_SCRIPT_BYTES


# --- warnings ----------------------------------------------------------------------------------

def test_all_known_cues_are_recognised():
    text = "[S1] " + " word ".join(KNOWN_CUES)
    script = parse_script(text)
    assert [c.text for c in script.cues] == list(KNOWN_CUES)
    assert all(c.known for c in script.cues)
    assert script.warnings == ()


def test_unknown_cue_is_a_warning_not_an_error():
    text = "[S1] Well (whispers) okay.\n[S2] Sure (Laughs) and (chuckles) and ( sigh )."
    script = parse_script(text)
    assert [(w.severity, w.code, w.line, w.column) for w in script.warnings] == [
        ("warning", "unknown_cue", 1, 11), ("warning", "unknown_cue", 2, 11),
        ("warning", "unknown_cue", 2, 24), ("warning", "unknown_cue", 2, 39)]
    messages = [w.message for w in script.warnings]
    assert "may read it aloud" in messages[0]
    assert "did you mean (laughs)?" in messages[1]
    assert "did you mean (chuckle)?" in messages[2]
    assert "did you mean (sighs)?" in messages[3]
    assert [c.known for c in script.cues] == [False, False, False, False]


def test_cue_in_square_brackets_is_a_warning():
    issue = only_issue("[S1] Ha [laughs] ok. [S2] Yes.")
    assert (issue.severity, issue.code, issue.column) == ("warning", "cue_in_brackets", 9)
    assert "(laughs)" in issue.message


def test_tag_inside_parentheses_is_still_a_tag():
    script = parse_script("[S1] Hello ( [S2] hi )")
    assert [t.speaker for t in script.turns] == ["S1", "S2"]
    assert script.cues == ()


def test_empty_turn_in_the_middle_is_a_warning():
    text = "[S1] Hello.\n[S2]\n[S1] Anyone?"
    issue = only_issue(text)
    assert (issue.severity, issue.code, issue.line, issue.column) == ("warning", "empty_turn", 2, 1)
    assert text[issue.start:issue.end] == "[S2]"
    script = parse_script(text)
    assert [t.text for t in script.turns] == ["Hello.", "", "Anyone?"]
    assert script.warnings == (issue,)


def test_empty_first_turn_is_a_warning():
    assert issues("[S1]   [S2] Hi.") == [("warning", "empty_turn", 1, 1)]


def test_trailing_tag_of_the_other_speaker_is_the_readme_ending_trick():
    script = parse_script("[S1] Hi. [S2] Hello. [S1]")
    assert script.warnings == ()
    assert script.turns[-1].speaker == "S1" and script.turns[-1].text == ""


def test_trailing_tag_of_the_same_speaker_is_an_empty_turn():
    assert issues("[S1] Hi. [S2] Hello. [S2]") == [("warning", "empty_turn", 1, 22)]
    assert issues("[S1] Hi. [S1]") == [("warning", "empty_turn", 1, 10)]


def test_same_speaker_twice_in_a_row_is_a_warning():
    text = "[S1] One.\n[S1] Two.\n[S2] Three."
    issue = only_issue(text)
    assert (issue.severity, issue.code, issue.line, issue.column) == ("warning", "repeated_speaker", 2, 1)


def test_issues_come_in_document_order():
    text = "[S1] a (x)\n[S2]\n[S1] b [S3] (y)"
    assert issues(text) == [
        ("warning", "unknown_cue", 1, 8),
        ("warning", "empty_turn", 2, 1),
        ("error", "invalid_script", 3, 8),
        ("warning", "unknown_cue", 3, 13),
    ]


# --- size limits -------------------------------------------------------------------------------

def test_text_token_count_counts_utf8_bytes_and_tags_as_one():
    assert text_token_count("") == 0
    assert text_token_count("[S1] Hi") == 4
    assert text_token_count("[S1][S2]") == 2
    assert text_token_count("[S3]") == 4
    assert text_token_count("é😀") == 2 + 4


def test_tagged_script_exactly_at_the_limit_passes_and_one_over_fails():
    at_limit = "[S1] " + "a" * (MAX_TEXT_TOKENS - 2)
    assert text_token_count(at_limit) == MAX_TEXT_TOKENS
    assert parse_script(at_limit).model_text == at_limit

    over = at_limit + "b"
    issue = only_issue(over)
    assert (issue.code, issue.line, issue.column) == ("request_too_large", 1, len(at_limit) + 1)
    assert over[issue.start:issue.end] == "b"
    with pytest.raises(RequestTooLargeError) as caught:
        parse_script(over)
    assert caught.value.code == "request_too_large"
    assert "1 text token too long" in caught.value.message
    assert "1025" in caught.value.message


def test_monologue_limit_counts_the_added_s1_tag():
    at_limit = "a" * (MAX_TEXT_TOKENS - 2)  # "[S1] " adds 2 tokens
    assert text_token_count(parse_script(at_limit).model_text) == MAX_TEXT_TOKENS
    issue = only_issue(at_limit + "bc")
    assert (issue.code, issue.column) == ("request_too_large", MAX_TEXT_TOKENS - 1)
    with pytest.raises(RequestTooLargeError, match="2 text tokens too long"):
        parse_script(at_limit + "bc")


def test_multibyte_characters_count_bytes_and_overflow_is_marked_on_a_whole_character():
    at_limit = "[S1] " + "é" * ((MAX_TEXT_TOKENS - 2) // 2)
    parse_script(at_limit)
    over = at_limit + "é"
    issue = only_issue(over)
    assert issue.start == len(at_limit) and over[issue.start:] == "é"


def test_overflow_position_after_many_tags():
    turn = "[S1] " + "x" * 45 + " [S2] " + "y" * 44 + "\n"  # 1+1+45+1+1+1+44+1 = 95 tokens
    text = turn * 11  # 1045 tokens
    assert text_token_count(text.strip()) == 11 * 95 - 1
    issue = only_issue(text)
    assert issue.code == "request_too_large"
    assert text_token_count(text[:issue.start]) <= MAX_TEXT_TOKENS
    assert text_token_count(text[:issue.start + 1]) > MAX_TEXT_TOKENS
    assert (issue.line, issue.column) == (11, issue.start - 10 * len(turn) + 1)


def test_prefix_tokens_of_voice_prompt_transcripts_count_against_the_limit():
    text = "[S1] " + "a" * 898  # 900 tokens
    parse_script(text, prefix_tokens=124)
    with pytest.raises(RequestTooLargeError) as caught:
        parse_script(text, prefix_tokens=125)
    assert "1025" in caught.value.message and "125 of them" in caught.value.message
    assert issues(text, prefix_tokens=2000) == [("error", "request_too_large", 1, 1)]


def test_custom_limit():
    assert check_script("[S1] abcdef", max_text_tokens=8) == []  # 1 + 1 + 6 tokens
    assert issues("[S1] abcdef", max_text_tokens=7) == [("error", "request_too_large", 1, 11)]


# --- budget ------------------------------------------------------------------------------------

def test_budget_of_plain_speech():
    budget = estimate_budget("[S1] " + "a" * 140)  # 140 chars at 14/s = 10 s
    assert budget.estimated_seconds == pytest.approx(10.0)
    assert budget.estimated_frames == math.ceil(10.0 * 44100 / 512) == 862
    assert budget.prompt_frames == 0
    assert budget.frame_budget == 3072 - 16
    assert budget.text_tokens == 142 and budget.max_text_tokens == 1024
    assert budget.fits and budget.warnings == ()
    assert budget.available_seconds == pytest.approx(3056 / FRAMES_PER_SECOND)


def test_budget_counts_cues_turn_changes_and_collapses_whitespace():
    text = "[S1] " + "a" * 70 + "   (laughs)\n\n[S2]  " + "b" * 69 + " [S2] (sighs)\n[S1] "
    # spoken: 70 a + space + 69 b = 140 chars = 10 s; 2 cues = 2 s; S1->S2 = one change (0.3 s).
    assert estimate_budget(text).estimated_seconds == pytest.approx(12.3)


def test_budget_includes_the_voice_prompt_and_accepts_a_parsed_script():
    script = parse_script("[S1] " + "a" * 140)
    budget = estimate_budget(script, prompt_seconds=5.0, max_new_tokens=2048, prefix_tokens=60)
    assert budget.prompt_frames == math.ceil(5.0 * FRAMES_PER_SECOND) == 431
    assert budget.estimated_frames == 431 + 862
    assert budget.frame_budget == 2048 - 16
    assert budget.text_tokens == 142 + 60
    assert budget.available_seconds == pytest.approx((2032 - 431) / FRAMES_PER_SECOND)
    assert budget.fits


def test_budget_too_long_for_one_render():
    budget = estimate_budget("[S1] " + "a" * 14 * 40)  # 40 s > ~35 s
    assert not budget.fits
    assert any("longer than one render can hold (~35 s)" in w for w in budget.warnings)
    roomy = estimate_budget("[S1] " + "a" * 14 * 40, max_new_tokens=4096)
    assert roomy.fits
    assert any("unnaturally fast" in w for w in roomy.warnings)


def test_budget_exactly_at_the_frame_budget_fits():
    budget = estimate_budget("[S1] " + "a" * 140, max_new_tokens=862 + 16)
    assert budget.estimated_frames == budget.frame_budget and budget.fits
    assert not estimate_budget("[S1] " + "a" * 140, max_new_tokens=861 + 16).fits


def test_budget_prompt_can_use_up_the_room():
    budget = estimate_budget("[S1] " + "a" * 140, prompt_seconds=30.0)
    assert not budget.fits and budget.available_seconds < 10


def test_budget_flags_too_many_text_tokens():
    budget = estimate_budget("[S1] " + "a" * 1100, max_new_tokens=4096)
    assert budget.text_tokens == 1102 and not budget.fits
    assert any("78 tokens over" in w for w in budget.warnings)


def test_budget_warns_about_very_short_scripts():
    budget = estimate_budget("Hi there.")
    assert budget.fits and budget.estimated_seconds < 5
    assert any("very short" in w for w in budget.warnings)
    assert estimate_budget("").warnings == ()


# --- linear time -------------------------------------------------------------------------------

def _long_script(target_bytes: int = 20_000) -> str:
    lines = []
    size = 0
    index = 0
    while size < target_bytes:
        speaker = "S1" if index % 2 == 0 else "S2"
        line = f"[{speaker}] Line {index}: well, naïve café talk (laughs) and (hmm) more words here."
        lines.append(line)
        size += len(line.encode("utf-8")) + 1
        index += 1
    return "\n".join(lines)


def test_check_script_handles_a_20kb_script():
    text = _long_script()
    assert len(text.encode("utf-8")) >= 20_000
    found = check_script(text, max_text_tokens=10**6)
    assert {i.code for i in found} == {"unknown_cue"}
    assert len(found) == text.count("(hmm)")
    assert found[-1].line == text.count("\n") + 1
    too_large = check_script(text)
    assert [i.code for i in too_large].count("request_too_large") == 1


@pytest.mark.parametrize("text", [
    "(" * 20_000,
    "( " * 20_000,
    "[S1] (" + "x" * 20_000,
    "[S1] [s" + " " * 20_000 + "1]",
    "[S1] [S" + " " * 20_000 + "x]",
    "[S1] [" + "a" * 20_000 + "]",
    "[" * 20_000,
    "[S" * 10_000,
    "(x[" * 7_000,
    "[S1] " + "( " * 10_000,
    "[S1] " + "[s1 " * 5_000,
])
def test_pathological_inputs_stay_linear(text):
    # No timing assertion: a quadratic or backtracking scanner would make these crawl.
    assert isinstance(check_script(text, max_text_tokens=10**6), list)
