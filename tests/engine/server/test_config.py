"""Server settings without a server: the token's sources and storage, the bind rule, path scrubbing,
the audio encoders."""

from __future__ import annotations

import io
import os
import stat

import av
import numpy as np
import pytest
import soundfile as sf

from engine import InvalidParameterError
from engine.server.config import (
    TOKEN_ENV,
    TOKEN_FILE,
    ServerConfig,
    is_loopback,
    resolve_token,
)
from engine.server.errors import scrub_paths
from engine.server.formats import FORMATS, PCM_RATE, encode, stream_encoder

TONE = (0.3 * np.sin(np.arange(44100) / 44100 * 2 * np.pi * 330)).astype(np.float32)


def test_token_flag_wins_over_environment(data_dir, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment-123456")
    assert resolve_token("from-the-flag-1234567890") == ("from-the-flag-1234567890", "--token")


def test_token_from_environment(data_dir, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment-123456")
    assert resolve_token(None) == ("from-the-environment-123456", TOKEN_ENV)
    assert not (data_dir / TOKEN_FILE).exists()


def test_generated_token_is_stored_owner_only_and_reused(data_dir, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    token, source = resolve_token(None)
    assert source == "stored" and len(token) >= 32
    path = data_dir / TOKEN_FILE
    if os.name != "nt":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_token(None)[0] == token


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.org"])
def test_other_hosts_need_allow_remote(host):
    assert not is_loopback(host)
    with pytest.raises(InvalidParameterError, match="--allow-remote"):
        ServerConfig(token="x" * 20, host=host)
    assert ServerConfig(token="x" * 20, host=host, allow_remote=True).host == host


def test_short_token_is_refused():
    with pytest.raises(InvalidParameterError, match="at least"):
        ServerConfig(token="short")


def test_messages_lose_their_paths(data_dir):
    message = f"The audio of voice 3 is missing ({data_dir}/voices/samples/ab12/voice.flac)."
    scrubbed = scrub_paths(message)
    assert str(data_dir) not in scrubbed and "voices/samples" not in scrubbed and "voice.flac" in scrubbed
    assert scrub_paths("see GET /v1/models and /health") == "see GET /v1/models and /health"
    assert "Users" not in scrub_paths(r"Could not read C:\Users\ann\me.wav")


def _decoded_seconds(data: bytes, name: str) -> float:
    if name == "pcm":
        return len(data) / 2 / PCM_RATE
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(audio=0))
    return sum(f.samples for f in frames) / frames[0].sample_rate


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_encodes_whole_and_streamed(name):
    fmt = FORMATS[name]
    streamed = stream_encoder(fmt)
    pieces = [streamed.feed(TONE[i:i + 5000]) for i in range(0, TONE.size, 5000)] + [streamed.finish()]
    for data in (encode(TONE, fmt), b"".join(pieces)):
        assert _decoded_seconds(data, name) == pytest.approx(1.0, abs=0.06)


def test_streamed_wav_header_says_unknown_length_and_still_reads():
    encoder = stream_encoder(FORMATS["wav"])
    data = encoder.feed(TONE) + encoder.finish()
    assert data[4:8] == b"\xff\xff\xff\xff"
    samples, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert rate == 44100 and samples.size == TONE.size
    np.testing.assert_allclose(samples, TONE, atol=1 / 32767)
