"""OpenAI's official Python SDK against a real server (tiny model): every response format, streaming
that starts before the render ends, server-sent events, speed, voices."""

from __future__ import annotations

import base64
import io
import json

import av
import httpx
import openai
import pytest
import soundfile as sf

from tests.engine.server.conftest import voice_clip

TEXT = "Hello there, friend."
SAMPLE_RATES = {"wav": 44100, "flac": 44100, "mp3": 44100, "aac": 44100, "opus": 48000}


@pytest.fixture(scope="module")
def sdk(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=server.token, max_retries=0)


def decoded_seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(audio=0))
    return sum(f.samples for f in frames) / frames[0].sample_rate


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "aac", "flac", "pcm"])
def test_speech_create_in_every_format(sdk, fmt):
    audio = sdk.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format=fmt,
                                    extra_body={"seed": 4}).content
    if fmt == "pcm":  # raw 24 kHz 16-bit mono, as OpenAI sends it
        assert len(audio) % 2 == 0 and len(audio) > 24000 // 10
        return
    with av.open(io.BytesIO(audio)) as container:
        assert container.streams.audio[0].sample_rate == SAMPLE_RATES[fmt]
    assert decoded_seconds(audio) > 0.1


def test_default_format_is_wav(sdk):
    audio = sdk.audio.speech.create(model="gpt-4o-mini-tts", voice="nova", input=TEXT, instructions="Cheerful.").content
    assert audio[:4] == b"RIFF" and sf.read(io.BytesIO(audio))[1] == 44100


def test_streaming_sends_audio_before_the_render_ends(sdk, server):
    with sdk.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input=TEXT,
                                                         extra_body={"max_new_tokens": 512}) as response:
        chunks = response.iter_bytes()
        first = next(chunks)
        state = httpx.get(server.url + "/health").json()["queue"]
        rest = b"".join(chunks)
    assert first[:4] == b"RIFF"
    assert state["rendering"] == 1  # the model was still generating when the first bytes arrived
    samples, _ = sf.read(io.BytesIO(first + rest), dtype="float32")
    assert samples.size > 0


def test_server_sent_events(sdk):
    with sdk.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input=TEXT,
                                                         response_format="pcm", stream_format="sse") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[len("data: "):]) for line in response.iter_lines() if line.startswith("data: ")]
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1) and len(events) > 1
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["input_tokens"] > 0
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert len(pcm) % 2 == 0 and len(pcm) > 0


@pytest.mark.parametrize("speed", [0.25, 4.0])
def test_speed_changes_the_length(sdk, speed):
    normal = sdk.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, extra_body={"seed": 9}).content
    changed = sdk.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, speed=speed,
                                      extra_body={"seed": 9}).content
    ratio = sf.info(io.BytesIO(normal)).frames / sf.info(io.BytesIO(changed)).frames
    assert ratio == pytest.approx(speed, rel=0.05)


def test_out_of_range_speed_is_400(sdk):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, speed=5.0)
    assert caught.value.body["type"] == "invalid_parameter"


def test_unknown_model_is_404_no_provider(sdk):
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.audio.speech.create(model="whisper-1", voice="alloy", input=TEXT)
    assert caught.value.body["type"] == "no_provider"


def test_unknown_voice_is_400(sdk):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.audio.speech.create(model="tts-1", voice="nobody-here", input=TEXT)
    assert caught.value.body["type"] == "invalid_voice_sample"


def test_wrong_token_is_401(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="not-the-token-at-all", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT)


def test_library_voice_by_name_and_voices_listing(sdk, server):
    with server.client() as c:
        added = c.post("/v1/voice/samples", files={"file": ("mia.wav", voice_clip(seed=5), "audio/wav")},
                       data={"speaker_name": "Mia", "transcript": "This is how Mia sounds.", "is_default": "true"})
        assert added.status_code == 201 and added.json()["is_default"] is True
        names = c.get("/v1/audio/voices", params={"model": "tts-1"}).json()
        objects = c.get("/v1/audio/voices").json()
    assert "Mia" in names["voices"]  # seed 001's shape
    assert {"id": str(added.json()["id"]), "name": "Mia"} in objects["voices"]  # Open WebUI's
    audio = sdk.audio.speech.create(model="tts-1", voice="Mia", input="Hi.",
                                    extra_body={"max_new_tokens": 384}).content
    assert audio[:4] == b"RIFF"


def test_models_list_has_the_openai_shape(sdk):
    models = sdk.models.list().data
    assert len(models) == 1 and models[0].owned_by == "nari-labs"
    assert models[0].model_extra["features"] == ["tts", "voice-cloning"]


def test_the_served_model_reports_the_dtype_it_loaded_in(sdk, server):
    # the test server loads the tiny model (folder "dia") in float32, without quantisation
    assert [(m.id, m.model_extra["precision"]) for m in sdk.models.list().data] == [("dia", "fp32")]
    health = httpx.get(server.url + "/health", timeout=30).json()
    assert (health["model"], health["precision"]) == ("dia", "fp32")
