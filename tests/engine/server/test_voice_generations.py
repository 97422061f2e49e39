"""Seed 000's ``POST /v1/voice/generations`` against a real server (tiny model): the audio, the
history entry, and every error type with its HTTP status."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import soundfile as sf

from engine import GenerationError
from tests.engine.server.conftest import ThreadServer, voice_clip

SCRIPT = "[S1] Hello! Welcome.\n[S2] Thanks."
"""Short: the test server's max_new_tokens (256) holds about 2.8 s."""


def add_voice(client: httpx.Client, name: str, transcript: str = "", clip: bytes | None = None) -> dict:
    response = client.post("/v1/voice/samples", files={"file": (f"{name}.wav", clip or voice_clip(), "audio/wav")},
                           data={"speaker_name": name, "transcript": transcript})
    assert response.status_code == 201, response.text
    return response.json()


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"} and body["error"]["message"]
    return response.status_code, body["error"]["type"]


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


def test_renders_a_dialogue_to_wav_and_keeps_it_in_the_history(client):
    response = client.post("/v1/voice/generations", json={"input": SCRIPT, "seed": 11})
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    samples, rate = sf.read(io.BytesIO(response.content), dtype="float32")
    assert rate == 44100 and samples.size > 0 and np.abs(samples).max() > 0
    assert response.headers["x-dia-seed"] == "11"
    entry = client.get(f"/v1/history/{response.headers['x-dia-history-id']}").json()
    assert entry["script"] == SCRIPT and entry["seed"] == 11 and entry["label"] == "via API"
    stored, _ = sf.read(io.BytesIO(client.get(f"/v1/history/{entry['id']}/audio").content), dtype="float32")
    assert stored.size == samples.size


def test_clones_library_voices_by_id(client):
    ann = add_voice(client, "Ann", "Hello there, this is Ann.")
    response = client.post("/v1/voice/generations",
                           json={"input": "[S1] Hi.", "speakers": {"S1": ann["id"]}, "max_new_tokens": 384})
    assert response.status_code == 200, response.text
    entry = client.get(f"/v1/history/{response.headers['x-dia-history-id']}").json()
    assert entry["cast"]["S1"] == {"voice_id": ann["id"], "name": "Ann"}


@pytest.mark.parametrize("body, expected", [
    ({}, (400, "missing_input")),
    ({"input": "   "}, (400, "missing_input")),
    ({"input": "[S2] I can't open the show."}, (400, "invalid_script")),
    ({"input": "[S1] One. [S3] Three."}, (400, "invalid_script")),
    ({"input": SCRIPT, "speakers": {"S1": 9999}}, (400, "invalid_voice_sample")),
    ({"input": SCRIPT, "model": "someone-elses-model"}, (404, "no_provider")),
    ({"input": SCRIPT, "cfg_scale": 9}, (400, "invalid_parameter")),
    ({"input": SCRIPT, "temperature": "hot"}, (400, "invalid_parameter")),
    ({"input": SCRIPT, "top_p": True}, (400, "invalid_parameter")),
    ({"input": SCRIPT, "max_new_tokens": 100}, (400, "invalid_parameter")),
    ({"input": SCRIPT, "seed": 2**70}, (400, "invalid_parameter")),
    ({"input": SCRIPT, "temprature": 1.0}, (400, "invalid_parameter")),
    ({"input": 42}, (400, "invalid_parameter")),
    ({"input": "x" * 20_001}, (413, "request_too_large")),
])
def test_bad_requests_get_the_seeds_error_and_status(client, body, expected):
    assert error_of(client.post("/v1/voice/generations", json=body)) == expected


def test_sharing_fields_are_accepted(client):
    response = client.post("/v1/voice/generations",
                           json={"input": "[S1] Hi there.", "visibility": "private", "collection": None})
    assert response.status_code == 200


def test_bad_json_is_a_typed_400(client):
    response = client.post("/v1/voice/generations", content=b'{"input": ', headers={"content-type": "application/json"})
    assert error_of(response) == (400, "invalid_json")
    assert error_of(client.post("/v1/voice/generations", json=[SCRIPT])) == (400, "invalid_json")


def test_a_body_over_one_megabyte_is_413(client):
    response = client.post("/v1/voice/generations", json={"input": "[S1] " + "a" * (1 << 20)})
    assert error_of(response) == (413, "request_too_large")


def test_a_voice_without_transcript_is_missing_transcript(client):
    quiet = add_voice(client, "Quiet Bob", clip=voice_clip(seed=2))
    response = client.post("/v1/voice/generations", json={"input": SCRIPT, "speakers": {"S1": quiet["id"]}})
    assert error_of(response) == (400, "missing_transcript")


def test_an_undecodable_voice_is_audio_decode_failed_without_paths(client, server):
    broken = add_voice(client, "Broken", "Words.", clip=voice_clip(seed=3))
    for audio_file in (server.data / "voices" / "samples").glob("*/voice.flac"):
        if '"speaker_name": "Broken"' in (audio_file.parent / "voice.json").read_text(encoding="utf-8"):
            audio_file.write_bytes(b"this is not audio")
    response = client.post("/v1/voice/generations", json={"input": SCRIPT, "speakers": {"S1": broken["id"]}})
    assert error_of(response) == (400, "audio_decode_failed")
    assert str(server.data) not in response.text and "/samples/" not in response.text


def test_a_long_script_on_a_backend_that_cannot_lend_its_engine_is_too_large(tmp_path):
    class OneAtATime:  # renders single requests only: no with_engine for the episode engine
        model_id = "single"
        precision = "fp32"

        def render(self, request, *, on_audio, should_stop):
            raise AssertionError("a long script must not reach the backend")

    server = ThreadServer(OneAtATime(), tmp_path)
    long_script = "\n".join(f"[S1] This is sentence number {i} of a long show. [S2] And I reply to it."
                            for i in range(60))
    try:
        with server.client() as c:
            response = c.post("/v1/voice/generations", json={"input": long_script})
        assert error_of(response) == (413, "request_too_large")
    finally:
        server.stop()


def test_a_failing_model_is_upstream_error(tmp_path):
    class Failing:
        model_id = "failing"
        precision = "fp32"

        def render(self, request, *, on_audio, should_stop):
            raise GenerationError("the model ended the audio immediately")

    server = ThreadServer(Failing(), tmp_path)
    try:
        with server.client() as c:
            assert error_of(c.post("/v1/voice/generations", json={"input": SCRIPT})) == (502, "upstream_error")
    finally:
        server.stop()
