"""Render requests refuse wrong inputs when they are built, and are checked without a model."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import (
    InvalidParameterError,
    InvalidScriptError,
    InvalidVoiceSampleError,
    MissingTranscriptError,
    RequestTooLargeError,
)
from engine.params import GenerationParams
from engine.requests import RenderRequest, prepare_text
from engine.script import MAX_TEXT_TOKENS
from engine.voice_prompt import VoicePrompt


def voice(transcript: str) -> VoicePrompt:
    tone = (0.3 * np.sin(np.arange(44100) / 44100 * 2 * np.pi * 200)).astype(np.float32)
    return VoicePrompt(tone, 44100, transcript)


@pytest.mark.parametrize("script", [b"[S1] Hi.", bytearray(b"[S1] Hi."), None, 42, ["[S1] Hi."]])
def test_a_script_that_is_not_text_is_refused(script):
    with pytest.raises(InvalidParameterError, match="script must be text"):
        RenderRequest(script)


def test_bytes_are_pointed_at_decode_script():
    with pytest.raises(InvalidParameterError, match="decode_script"):
        RenderRequest(b"[S1] Hi.")


@pytest.mark.parametrize("params", [None, {"seed": 3}, 3.0, "defaults"])
def test_params_must_be_generation_params(params):
    with pytest.raises(InvalidParameterError, match="params must be GenerationParams"):
        RenderRequest("[S1] Hi.", params)


def test_a_dict_of_params_is_pointed_at_from_dict():
    with pytest.raises(InvalidParameterError, match="from_dict"):
        RenderRequest("[S1] Hi.", {"seed": 3})


@pytest.mark.parametrize("value", [b"RIFF....WAVE", "me.wav", np.zeros(10, np.float32), {"samples": []}])
def test_voice_must_be_a_voice_prompt(value):
    with pytest.raises(InvalidVoiceSampleError, match="VoicePrompt"):
        RenderRequest("[S1] Hi.", GenerationParams(), value)


def test_a_good_request_is_built_with_defaults():
    request = RenderRequest("[S1] Hi. [S2] Hello!")
    assert request.params == GenerationParams() and request.voice is None


def test_prepare_text_gives_the_model_text_and_warnings_without_a_model():
    text, warnings = prepare_text(RenderRequest("  Just me (hmm).  "))
    assert text == "[S1] Just me (hmm)."
    assert len(warnings) == 1 and "unknown cue (hmm)" in warnings[0]


def test_prepare_text_puts_the_transcript_first():
    text, _ = prepare_text(RenderRequest("[S1] Go on. [S2] Sure.", voice=voice("[S1] This is me.")))
    assert text == "[S1] This is me.\n[S1] Go on. [S2] Sure."


@pytest.mark.parametrize("script", ["[S2] I cannot open.", "[S1] Hi (laughs.", "[S1] a \ud800 b", "[S1] \x01"])
def test_prepare_text_raises_typed_script_errors(script):
    with pytest.raises(InvalidScriptError) as caught:
        prepare_text(RenderRequest(script))
    assert caught.value.line == 1


def test_the_transcript_counts_against_the_text_limit():
    script = "[S1] " + "a" * (MAX_TEXT_TOKENS - 10)
    prepare_text(RenderRequest(script))
    with pytest.raises(RequestTooLargeError, match="voice-prompt transcripts"):
        prepare_text(RenderRequest(script, voice=voice("[S1] These words are spoken in the sample.")))


def test_a_voice_without_transcript_is_missing_transcript():
    with pytest.raises(MissingTranscriptError):
        prepare_text(RenderRequest("[S1] Hi.", voice=voice("   ")))


@pytest.mark.parametrize("transcript", ["[S1] It is \ud800 me.", "[S1] It is\x00 me.", "[S1] It\x02 is me."])
def test_a_transcript_that_is_not_text_is_refused(transcript):
    with pytest.raises(InvalidVoiceSampleError, match="transcript"):
        prepare_text(RenderRequest("[S1] Hi.", voice=voice(transcript)))
