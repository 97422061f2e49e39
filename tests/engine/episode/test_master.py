"""Joining and mastering an episode: trims, pauses, click-free joins, loudness and true peak.

Speech is espeak-ng's, made on the spot. Loudness and true peak are measured independently of
the code under test: pyloudnorm on the exported file read back, and the true peak of that file
upsampled 4x with SciPy's polyphase resampler (not soxr, which mastering uses).
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.signal import resample_poly

from engine.audio import resample, trim_silence
from engine.episode.export import EpisodeMetadata, export_episode
from engine.episode.master import (
    LOUDNESS_PRESETS,
    MasterSettings,
    join_blocks,
    master_episode,
)
from engine.errors import InvalidParameterError

SR = 44100
LINES = [
    "Welcome back to the show. Today we talk about long episodes, and why they are hard to make.",
    "Thanks for having me. I have wanted to talk about this for a very long time, honestly.",
    "Let us start with the basics. What makes a voice sound the same from one minute to the next?",
    "Mostly the prompt. Without it, every chunk is a new person, and listeners notice at once.",
]
OFF = MasterSettings(loudness="off")


def _speak(path: Path, text: str, voice: str) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is missing (apt-get install espeak-ng)")
    subprocess.run([exe, "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    samples, rate = sf.read(str(path), dtype="float32")
    return resample(samples, rate, SR)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> list[np.ndarray]:
    """Four blocks of two alternating espeak voices at 44.1 kHz, each with its own silent edges."""
    folder = tmp_path_factory.mktemp("speech")
    return [_speak(folder / f"{i}.wav", text, "en" if i % 2 == 0 else "en+f3") for i, text in enumerate(LINES)]


def _true_peak_dbtp(samples: np.ndarray) -> float:
    up = resample_poly(np.asarray(samples, dtype=np.float64), 4, 1, axis=0)
    return 20.0 * math.log10(float(np.max(np.abs(up))))


def _frames(seconds: float) -> int:
    return round(seconds * SR)


# --------------------------------------------------------------------------- joins

def test_a_sine_joined_to_itself_has_no_discontinuity():
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(SR + 123) / SR)).astype(np.float32)
    own_step = 0.5 * 2 * np.pi * 440.0 / SR  # the largest sample-to-sample change of the sine itself
    for pause in (0.0, 0.4):
        episode = master_episode([tone, tone, tone], [], MasterSettings(loudness="off", pause_seconds=pause), SR)
        assert np.abs(np.diff(episode.samples[:, 0])).max() < 1.5 * own_step


def test_a_block_cut_off_mid_sound_joins_without_a_click(speech):
    block = speech[0]
    cut = block[: int(np.argmax(np.abs(block))) + 1]  # ends on its loudest sample
    episode = master_episode([cut, speech[1]], [], OFF, SR)
    out = episode.samples[:, 0]
    content_step = max(np.abs(np.diff(b)).max() for b in (cut, speech[1]))
    for start, end in episode.block_spans:
        for edge in (_frames(start), _frames(end)):
            window = out[max(0, edge - _frames(0.05)): edge + _frames(0.05)]
            assert np.abs(np.diff(window)).max() <= content_step


def test_every_join_of_speech_stays_below_the_speech_own_largest_step(speech):
    episode = master_episode(speech, [2], OFF, SR)
    out = episode.samples[:, 0]
    content_step = max(np.abs(np.diff(b)).max() for b in speech)
    for (_, end), (start, _) in zip(episode.block_spans, episode.block_spans[1:]):
        window = out[_frames(end) - _frames(0.05): _frames(start) + _frames(0.05)]
        assert np.abs(np.diff(window)).max() <= content_step


def test_blocks_are_separated_by_the_pause_less_the_crossfade(speech):
    settings = MasterSettings(loudness="off", pause_seconds=0.5, crossfade_seconds=0.01)
    episode = master_episode(speech[:3], [], settings, SR)
    for (_, end), (start, _) in zip(episode.block_spans, episode.block_spans[1:]):
        assert start - end == pytest.approx(0.49, abs=1.5 / SR)


def test_a_block_opening_a_chapter_follows_the_longer_pause(speech):
    settings = MasterSettings(loudness="off", pause_seconds=0.4, chapter_pause_seconds=1.5, crossfade_seconds=0.0)
    spans = master_episode(speech[:3], [0, 2], settings, SR).block_spans
    assert spans[0][0] == 0.0
    assert spans[1][0] - spans[0][1] == pytest.approx(0.4, abs=1.5 / SR)
    assert spans[2][0] - spans[1][1] == pytest.approx(1.5, abs=1.5 / SR)


def test_edge_silence_is_trimmed_to_what_the_settings_keep(speech):
    sound = trim_silence(speech[0], SR, keep_ms=0.0)
    silence = np.zeros(SR, dtype=np.float32)
    settings = MasterSettings(loudness="off", edge_silence_seconds=0.2)
    start, end = master_episode([np.concatenate([silence, sound, silence])], [], settings, SR).block_spans[0]
    # 0.2 s kept on each side, to the trimmer's 10 ms analysis frame.
    assert end - start == pytest.approx(len(sound) / SR + 0.4, abs=0.011)


def test_a_silent_block_takes_no_time_and_gets_an_empty_span(speech):
    silence = np.zeros(SR, dtype=np.float32)
    spans = master_episode([speech[0], silence, speech[1]], [], MasterSettings(loudness="off", crossfade_seconds=0.0),
                           SR).block_spans
    assert spans[1][0] == spans[1][1] == spans[0][1]
    assert spans[2][0] - spans[0][1] == pytest.approx(0.4, abs=1.5 / SR)


@settings(max_examples=25, deadline=None)
@example(lengths=[1, 0, 1], pause=0.0, fade=0.02, chapters=set())  # a fade longer than a block once reached back
@given(lengths=st.lists(st.integers(0, 3000), min_size=1, max_size=6),
       pause=st.floats(0.0, 0.05), fade=st.floats(0.0, 0.02), chapters=st.sets(st.integers(0, 5)))
def test_block_spans_are_in_order_inside_the_joined_audio(lengths, pause, fade, chapters):
    rng = np.random.default_rng(len(lengths))
    blocks = [(0.3 * rng.standard_normal(n)).astype(np.float32) for n in lengths]
    settings_ = MasterSettings(loudness="off", pause_seconds=pause, chapter_pause_seconds=2 * pause,
                               crossfade_seconds=fade, edge_silence_seconds=0.0)
    joined, spans = join_blocks(blocks, chapters, settings_, 8000)
    assert len(spans) == len(blocks)
    duration = joined.shape[0] / 8000
    for (start, end), block in zip(spans, blocks):
        assert 0.0 <= start <= end <= duration + 1e-9
        assert end - start <= block.shape[0] / 8000 + 1e-9
    starts = [start for start, _ in spans]
    assert starts == sorted(starts)


# --------------------------------------------------------------------------- loudness and peak

@pytest.mark.parametrize("preset, stereo", [("podcast", True), ("podcast", False), ("podcast-mono", False),
                                            ("broadcast", False)])
def test_exported_speech_lands_on_the_loudness_target_under_the_true_peak_ceiling(speech, tmp_path, preset,
                                                                                  stereo):
    episode = master_episode(speech, [2], MasterSettings(loudness=preset, stereo=stereo), SR)
    path = export_episode(tmp_path / "episode.wav", episode, metadata=EpisodeMetadata(), chapters=[])
    samples, rate = sf.read(str(path), dtype="float64")
    assert samples.ndim == (2 if stereo else 1)
    assert pyloudnorm.Meter(rate).integrated_loudness(samples) == pytest.approx(LOUDNESS_PRESETS[preset], abs=0.5)
    assert _true_peak_dbtp(samples) <= -1.0


def test_the_episode_reports_its_own_loudness_and_true_peak(speech):
    episode = master_episode(speech, [], MasterSettings(loudness="podcast", stereo=True), SR)
    measured = pyloudnorm.Meter(SR).integrated_loudness(episode.samples.astype(np.float64))
    assert episode.loudness_lufs == pytest.approx(measured, abs=0.05)
    assert episode.true_peak_dbtp == pytest.approx(_true_peak_dbtp(episode.samples), abs=0.1)


def test_loudness_off_keeps_a_quiet_episode_level(speech):
    quiet = [block * np.float32(0.1) for block in speech]
    joined, _ = join_blocks(quiet, [], OFF, SR)
    episode = master_episode(quiet, [], OFF, SR)
    before = pyloudnorm.Meter(SR).integrated_loudness(joined.astype(np.float64))
    assert episode.loudness_lufs == pytest.approx(before, abs=0.01)


def test_loudness_off_still_limits_a_too_hot_episode_to_the_ceiling(speech):
    hot = [block * np.float32(4.0) for block in speech]  # peaks far above full scale
    episode = master_episode(hot, [], OFF, SR)
    assert _true_peak_dbtp(episode.samples) <= -1.0


def test_stereo_is_dual_mono_with_identical_channels(speech):
    episode = master_episode(speech[:2], [], MasterSettings(stereo=True), SR)
    assert episode.samples.shape[1] == 2
    assert np.array_equal(episode.samples[:, 0], episode.samples[:, 1])


def test_mono_is_one_channel_of_float32_at_the_given_rate(speech):
    episode = master_episode(speech[:2], [], MasterSettings(), SR)
    assert episode.samples.shape == (episode.samples.shape[0], 1)
    assert episode.samples.dtype == np.float32
    assert episode.sample_rate == SR


# --------------------------------------------------------------------------- refusals

def test_an_unknown_loudness_preset_is_refused():
    with pytest.raises(InvalidParameterError, match="podcast-mono"):
        master_episode([np.zeros(10, np.float32)], [], MasterSettings(loudness="loud"), SR)


def test_a_negative_pause_is_refused():
    with pytest.raises(InvalidParameterError, match="pause_seconds"):
        master_episode([np.zeros(10, np.float32)], [], MasterSettings(pause_seconds=-0.1), SR)


def test_a_block_with_nan_samples_is_refused_with_its_number():
    bad = np.array([0.0, np.nan, 0.1], dtype=np.float32)
    with pytest.raises(InvalidParameterError, match="Block 2") as err:
        master_episode([np.zeros(10, np.float32), bad], [], OFF, SR)
    assert err.value.code == "invalid_parameter"
