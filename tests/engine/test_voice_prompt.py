"""A voice prompt (or one speaker's part of it) refuses audio that can't be a voice clip, with
``InvalidVoiceSampleError``, before anything resamples it (issue 9, item 8)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InvalidVoiceSampleError
from engine.voice_prompt import PromptPart, VoicePrompt, combine_parts

SR = 44100
CLIP = (0.1 * np.sin(np.linspace(0, 2000, SR))).astype(np.float32)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_prompt_with_nan_or_inf_samples_is_refused(bad):
    samples = CLIP.copy()
    samples[100] = bad
    with pytest.raises(InvalidVoiceSampleError, match="NaN or infinite") as info:
        VoicePrompt(samples, SR, "[S1] Hello.")
    assert info.value.code == "invalid_voice_sample"


@pytest.mark.parametrize("rate", [0, 1, -44100, 7999, 384_001, 10 ** 12, float("nan"), float("inf"), 44100.5])
def test_a_prompt_at_an_absurd_rate_is_refused(rate):
    with pytest.raises(InvalidVoiceSampleError, match="sample rate"):
        VoicePrompt(CLIP, rate, "[S1] Hello.")


@pytest.mark.parametrize("rate", ["44100", None, True])
def test_a_prompt_rate_that_is_not_a_number_is_refused(rate):
    with pytest.raises(InvalidVoiceSampleError, match="not a number"):
        VoicePrompt(CLIP, rate, "[S1] Hello.")


def test_a_3d_prompt_is_refused():
    with pytest.raises(InvalidVoiceSampleError, match=r"\(samples,\) or \(samples, channels\)"):
        VoicePrompt(CLIP.reshape(-1, 1, 1), SR, "[S1] Hello.")


def test_a_prompt_shaped_channels_first_is_refused_with_its_channel_count():
    with pytest.raises(InvalidVoiceSampleError, match=f"{SR} channels"):
        VoicePrompt(np.stack([CLIP, CLIP]), SR, "[S1] Hello.")


@pytest.mark.parametrize("samples", [np.array(["a", "b"]), np.zeros(10, bool), np.zeros(10, complex), "audio"])
def test_a_prompt_of_non_numbers_is_refused(samples):
    with pytest.raises(InvalidVoiceSampleError, match="array of audio samples"):
        VoicePrompt(samples, SR, "[S1] Hello.")


@pytest.mark.parametrize("samples", [CLIP, np.stack([CLIP, CLIP], axis=1), (CLIP * 32767).astype(np.int16)])
def test_mono_stereo_and_integer_prompts_are_accepted(samples):
    assert VoicePrompt(samples, 22050, "[S1] Hello.").duration == pytest.approx(2.0)


def test_a_prompt_part_is_checked_too_and_named_in_the_message():
    with pytest.raises(InvalidVoiceSampleError, match="--s1-voice me.wav.*1 Hz"):
        PromptPart("S1", CLIP, 1, "Hello.", "--s1-voice me.wav")


def test_combining_good_parts_still_works():
    prompt = combine_parts([PromptPart("S1", CLIP, 22050, "Hello."), PromptPart("S2", CLIP, SR, "Hi.")])
    assert prompt.sample_rate == SR and prompt.transcript == "[S1] Hello.\n[S2] Hi."
