"""A long-running server's memory stays flat: a real ``dia-studio serve`` (tiny model, its own
process, so its memory is its own) answers many renders of every kind, and its resident memory after
a warm-up grows by no more than a small, fixed allowance however many requests follow.

oneDNN (PyTorch's CPU convolutions) keeps up to 1024 compiled kernels, one per tensor shape, and a
render of a new length adds the codec's at that length: about 1 MB per request here until the cache
is full (≈ 100 renders). That cache is bounded and not the server's, so it is switched off in this
server process (``ONEDNN_PRIMITIVE_CACHE_CAPACITY=0``), and what is measured is the server's own memory.
"""

from __future__ import annotations

import itertools

import httpx
import pytest

from tests.engine.server.conftest import Server, voice_clip
from tests.peak_memory import resident_bytes

pytestmark = pytest.mark.slow

WARM_UP = 10
REQUESTS = 40
ALLOWED_GROWTH = 12 * (1 << 20)
"""RSS may grow this much between request WARM_UP and request REQUESTS (measured: 0–3 MB). Keeping
each request's audio alone (0.5–0.8 MB a render) would pass it."""
SPEECH_FORMATS = ("wav", "mp3", "opus", "flac", "aac", "pcm")
TEXT = "[S1] Memory test. [S2] Still flat?"


def speech(client: httpx.Client, n: int) -> None:
    fmt = SPEECH_FORMATS[n % len(SPEECH_FORMATS)]
    response = client.post("/v1/audio/speech", json={"model": "tts-1", "input": TEXT, "response_format": fmt,
                                                     "seed": n})
    assert response.status_code == 200, response.text


def generation(client: httpx.Client, n: int, voice: int) -> None:
    response = client.post("/v1/voice/generations", json={"input": TEXT, "seed": n, "speakers": {"S1": voice},
                                                          "max_new_tokens": 384})
    assert response.status_code == 200, response.text


def cancelled_stream(client: httpx.Client, n: int) -> None:
    """A streamed render whose client leaves after the first bytes (the server cancels it)."""
    with client.stream("POST", "/v1/audio/speech", json={"model": "tts-1", "input": TEXT * 2, "seed": n,
                                                         "response_format": "pcm"}) as response:
        assert response.status_code == 200
        next(response.iter_bytes())


def test_memory_stays_flat_under_repeated_requests(tiny_models, tmp_path):
    server = Server(tiny_models, tmp_path, env={"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0"})
    try:
        with server.client() as client:
            added = client.post("/v1/voice/samples", files={"file": ("ann.wav", voice_clip(), "audio/wav")},
                                data={"speaker_name": "Ann", "transcript": "Hello there, this is Ann."})
            assert added.status_code == 201, added.text
            voice = added.json()["id"]
            # a cancelled stream is always followed by a whole render, which waits for it to stop
            kinds = itertools.cycle([speech, cancelled_stream, speech, lambda c, n: generation(c, n, voice),
                                     speech, lambda c, n: generation(c, n, voice)])
            measured = {}
            for n, kind in zip(range(1, REQUESTS + 1), kinds):
                kind(client, n)
                if n in (WARM_UP, REQUESTS):
                    measured[n] = resident_bytes(server.proc.pid)
            health = client.get("/health").json()["queue"]
        assert health["rendering"] == 0 and health["waiting"] == 0
        growth = measured[REQUESTS] - measured[WARM_UP]
        assert growth < ALLOWED_GROWTH, f"RSS grew {growth / (1 << 20):.1f} MB over {REQUESTS - WARM_UP} requests"
    finally:
        server.stop()
