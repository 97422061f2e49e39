"""``engine.optional_transcriber``: the Whisper both API servers (``dia-studio serve`` and the app's)
fill in the transcripts of uploads with. Building it reads no file: the model is only looked for when
the first upload needs it."""

from __future__ import annotations

import sys

import pytest

import engine


@pytest.fixture
def faster_whisper():
    return pytest.importorskip("faster_whisper")


def test_without_a_model_named_it_is_the_default_whisper(faster_whisper):
    for model in (None, ""):
        whisper = engine.optional_transcriber(model)
        assert isinstance(whisper, engine.WhisperTranscriber)
        assert whisper.model == "base.en"


def test_a_named_model_is_used_and_never_downloaded(faster_whisper, tmp_path):
    folder = str(tmp_path / "not-there-yet")  # nothing is looked up while building
    whisper = engine.optional_transcriber(folder)
    assert whisper.model == folder and whisper.allow_download is False


def test_off_turns_transcription_off(faster_whisper):
    assert engine.STT_OFF == "off"
    assert engine.optional_transcriber(engine.STT_OFF) is None


def test_without_faster_whisper_there_is_none(monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # as in an install without the stt extra
    assert engine.optional_transcriber("base.en") is None
    assert engine.optional_transcriber(None) is None
