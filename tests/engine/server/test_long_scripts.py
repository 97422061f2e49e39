"""Scripts longer than one render, through the episode engine, against a real server (tiny model,
``--max-new-tokens 256``: one render holds about 2.8 s, so three lines make several blocks).

One WAV covers every block; the same seed gives the same bytes; library voices are the cast;
OpenAI's SDK gets the same audio, streamed block by block; a client that goes away cancels the
render and the next request starts; the history keeps one entry per request."""

from __future__ import annotations

import io
import threading

import av
import httpx
import numpy as np
import openai
import pytest
import soundfile as sf

from engine import FRAMES_PER_SECOND, TARGET_SAMPLE_RATE, SplitSettings, master_episode, parse_episode, split_episode
from engine.episode.master import true_peak_dbtp
from engine.server.longform import JOIN, Joiner
from tests.engine.server.conftest import voice_clip

MAX_NEW_TOKENS = 256  # the test server's
ONE_RENDER_SECONDS = MAX_NEW_TOKENS / FRAMES_PER_SECOND
LONG = "\n".join(f"[S{1 + i % 2}] This is line number {i}, and it goes on a while." for i in range(3))
RATE = TARGET_SAMPLE_RATE


def blocks_of(script: str, max_new_tokens: int = MAX_NEW_TOKENS) -> int:
    return len(split_episode(parse_episode(script), {}, SplitSettings(max_new_tokens=max_new_tokens)))


def seconds_of(wav: bytes) -> float:
    info = sf.info(io.BytesIO(wav))
    return info.frames / info.samplerate


def history_entries(client: httpx.Client, script: str) -> list[dict]:
    return [h for h in client.get("/v1/history", params={"limit": 500}).json()["data"] if h["script"] == script]


def health(server) -> dict:
    return httpx.get(server.url + "/health").json()["queue"]


def wait_for(condition) -> None:
    """Wait for a state the server will reach (no time limit of its own: pytest's run has one)."""
    event = threading.Event()
    while not condition():
        event.wait(0.02)


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


@pytest.fixture(scope="module")
def long_render(client) -> httpx.Response:
    response = client.post("/v1/voice/generations", json={"input": LONG, "seed": 5})
    assert response.status_code == 200, response.text
    return response


# ------------------------------------------------------------------ joining, without a model

def tone_block(seconds: float, amplitude: float, seed: int) -> np.ndarray:
    """A voice-like burst with silence before and after (what the join trims to a little)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    voiced = (amplitude * np.sin(2 * np.pi * 200 * t) * (1 + 0.1 * rng.standard_normal(t.size))).astype(np.float32)
    silence = np.zeros(RATE // 3, dtype=np.float32)
    return np.concatenate([silence, voiced, silence])


def test_blocks_join_block_by_block_exactly_as_the_episode_engine_joins_them():
    blocks = [tone_block(1.0, 0.3, 1), tone_block(0.7, 0.5, 2), np.zeros(4410, np.float32), tone_block(0.5, 0.4, 3)]
    joiner = Joiner()
    pieces = [joiner.add(block) for block in blocks]
    whole = master_episode(blocks, (), JOIN, RATE).samples[:, 0]
    assert np.array_equal(np.concatenate(pieces), whole)
    assert pieces[2].size == 0  # a silent block takes no time


def test_a_block_over_the_ceiling_is_limited_to_it():
    joiner = Joiner()
    joiner.add(tone_block(1.0, 0.3, 1))
    joiner.add(tone_block(0.7, 1.5, 2))
    assert true_peak_dbtp(joiner.audio(), RATE) <= JOIN.true_peak_dbtp


# ------------------------------------------------------------------ seed 000

def test_a_long_script_is_one_wav_covering_all_its_blocks(long_render, client):
    blocks = blocks_of(LONG)
    assert blocks >= 3
    assert long_render.headers["content-type"] == "audio/wav"
    assert long_render.headers["x-dia-blocks"] == str(blocks)
    samples, rate = sf.read(io.BytesIO(long_render.content), dtype="float32")
    assert rate == RATE and np.abs(samples).max() > 0
    assert samples.size / rate > 2 * ONE_RENDER_SECONDS  # more than any one render can hold
    assert samples.size / rate >= (blocks - 1) * JOIN.pause_seconds


def test_the_same_seed_gives_the_same_bytes(long_render, client):
    again = client.post("/v1/voice/generations", json={"input": LONG, "seed": 5})
    assert again.status_code == 200
    assert again.content == long_render.content
    assert again.headers["x-dia-seed"] == "5"


def test_the_history_keeps_one_entry_for_a_long_request(long_render, client):
    entry = client.get(f"/v1/history/{long_render.headers['x-dia-history-id']}").json()
    assert entry["script"] == LONG and entry["seed"] == 5 and entry["label"] == "via API"
    assert entry["duration"] == pytest.approx(seconds_of(long_render.content), abs=1e-3)
    stored, _ = sf.read(io.BytesIO(client.get(f"/v1/history/{entry['id']}/audio").content), dtype="float32")
    assert stored.size == sf.info(io.BytesIO(long_render.content)).frames
    assert all(h["duration"] > ONE_RENDER_SECONDS for h in history_entries(client, LONG))  # no per-block entries


def test_library_voices_are_the_cast_of_every_block(client):
    ids = {}
    for tag, name, seed in (("S1", "Ann", 1), ("S2", "Ben", 2)):
        added = client.post("/v1/voice/samples", files={"file": (f"{name}.wav", voice_clip(seed=seed), "audio/wav")},
                            data={"speaker_name": name, "transcript": f"Hello, this is {name}."})
        assert added.status_code == 201
        ids[tag] = added.json()["id"]
    script = LONG.replace("line number", "cloned line")
    response = client.post("/v1/voice/generations", json={"input": script, "speakers": ids, "seed": 3,
                                                          "max_new_tokens": 512})
    assert response.status_code == 200, response.text
    assert int(response.headers["x-dia-blocks"]) >= 2
    entries = history_entries(client, script)
    assert len(entries) == 1
    assert entries[0]["cast"] == {"S1": {"voice_id": ids["S1"], "name": "Ann"},
                                  "S2": {"voice_id": ids["S2"], "name": "Ben"}}
    unvoiced = client.post("/v1/voice/generations", json={"input": script, "seed": 3, "max_new_tokens": 512})
    assert unvoiced.content != response.content


def test_voices_that_leave_a_block_no_room_are_413_before_rendering(client, server):
    long_voice = client.post("/v1/voice/samples", files={"file": ("long.wav", voice_clip(4.0, seed=4), "audio/wav")},
                             data={"speaker_name": "Longwinded", "transcript": "A long sample of speech here."})
    rendered = health(server)["rendered"]
    response = client.post("/v1/voice/generations", json={"input": LONG, "speakers": {"S1": long_voice.json()["id"]}})
    assert response.status_code == 413 and response.json()["error"]["type"] == "request_too_large"
    assert "max_new_tokens" in response.json()["error"]["message"]
    assert health(server)["rendered"] == rendered


# ------------------------------------------------------------------ OpenAI's SDK

@pytest.fixture(scope="module")
def sdk(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=server.token, max_retries=0, timeout=600)


def test_openai_speech_streams_a_long_script_block_by_block(sdk, server, long_render):
    with sdk.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input=LONG,
                                                         extra_body={"seed": 5}) as response:
        chunks = response.iter_bytes()
        first = next(chunks)
        state = health(server)
        rest = b"".join(chunks)
    assert first[:4] == b"RIFF"
    assert state["rendering"] == 1 and state["blocks_done"] < state["blocks_total"]  # before the last block
    streamed, _ = sf.read(io.BytesIO(first + rest), dtype="float32")
    whole, _ = sf.read(io.BytesIO(long_render.content), dtype="float32")
    assert np.array_equal(streamed, whole)  # the same audio as the whole file


def test_openai_speech_encodes_a_long_script_in_other_formats(sdk, long_render):
    audio = sdk.audio.speech.create(model="tts-1", voice="alloy", input=LONG, response_format="mp3",
                                    extra_body={"seed": 5}).content
    with av.open(io.BytesIO(audio)) as container:
        frames = list(container.decode(audio=0))
    seconds = sum(f.samples for f in frames) / frames[0].sample_rate
    assert seconds == pytest.approx(seconds_of(long_render.content), abs=0.1)


# ------------------------------------------------------------------ cancellation

def test_a_client_that_goes_away_cancels_the_long_render_and_the_next_request_starts(server, client):
    script = LONG.replace("line number", "abandoned line")
    after: dict = {}
    rendered = health(server)["rendered"]

    def next_request() -> None:
        after["response"] = client.post("/v1/voice/generations", json={"input": "[S1] Next, please.", "seed": 1})

    with httpx.Client(base_url=server.url, headers=server.headers, timeout=600) as own, \
            own.stream("POST", "/v1/audio/speech", json={"model": "dia", "input": script, "seed": 2}) as response:
        assert response.status_code == 200
        chunks = response.iter_bytes()  # kept: a dropped iterator closes the connection
        next(chunks)  # the first block is out; the others are still to render
        waiting = threading.Thread(target=next_request)
        waiting.start()
        wait_for(lambda: health(server)["waiting"] == 1)
        assert health(server)["blocks_done"] < health(server)["blocks_total"]
    waiting.join()
    assert after["response"].status_code == 200
    assert health(server)["rendered"] == rendered + 1  # the next request only: the long one never finished
    assert history_entries(client, script) == []
