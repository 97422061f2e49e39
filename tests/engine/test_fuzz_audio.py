"""Fuzzed WAV and FLAC headers: decoding for the voice library ends in success or a typed error,
never another exception, and in bounded memory (issue 9).

Hypothesis runs in a child process whose address space is capped (``run_child``), so a decoder
that blows up fails this test instead of the machine; the child reports its peak RSS.
"""

from __future__ import annotations

import sys

import pytest

from tests.engine.test_audio_bounds import (
    constant_flac,
    patch_streaminfo,
    run_child,
    wav_bytes,
)

EXAMPLES_PER_FORMAT = 60
PEAK_RSS_LIMIT = 1024 ** 3


def _decode_for_the_library(data: bytes, name: str) -> None:
    """What ``VoiceLibrary.add`` does with a file's bytes before storing anything."""
    from engine import audio
    from engine.errors import DiaStudioError
    from engine.voices import MAX_INPUT_SECONDS, prepare_clip

    try:
        prepare_clip(audio.decode_audio(data, name=name, max_seconds=MAX_INPUT_SECONDS), name)
    except DiaStudioError as exc:
        assert exc.code in {"audio_decode_failed", "invalid_voice_sample"}, exc.code
        assert "Traceback" not in exc.message and "NoneType" not in exc.message


def fuzz() -> None:
    """Run the Hypothesis searches (in the child process)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    bounded = settings(max_examples=EXAMPLES_PER_FORMAT, deadline=None, database=None, derandomize=True,
                       suppress_health_check=list(HealthCheck))
    edge_rates = st.sampled_from([0, 1, 7999, 8000, 22050, 44100, 192_000, 384_000, 384_001, 655_350])
    u16, u32 = st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)

    # Mostly plausible values (so libsndfile gets past the header), sometimes anything at all.
    @bounded
    @given(rate=edge_rates | u32, channels=st.integers(1, 2) | st.integers(0, 10) | u16,
           bits=st.sampled_from([8, 16, 24, 32]) | st.sampled_from([0, 12, 64]) | u16,
           tag=st.sampled_from([1, 3, 0xFFFE]) | st.sampled_from([1, 3, 6, 7, 0x55, 0x1234]) | u16,
           payload_bytes=st.integers(0, 200_000), data_size=st.none() | u32, byte_rate=st.none() | u32,
           block_align=st.none() | u16)
    def wav_headers(**fields) -> None:
        _decode_for_the_library(wav_bytes(**fields), "fuzz.wav")

    @bounded
    @given(rate=st.sampled_from([8000, 44100, 48000, 384_000]), channels=st.integers(1, 8),
           block=st.sampled_from([16, 192, 4096, 65535]), frames=st.integers(1, 3000),
           value=st.integers(-32768, 32767), header_rate=st.none() | edge_rates | st.integers(0, 2 ** 20 - 1),
           header_channels=st.none() | st.integers(1, 8), header_bits=st.none() | st.integers(1, 32),
           header_total=st.none() | st.integers(0, 2 ** 36 - 1),
           header_blocks=st.none() | st.tuples(u16, u16),
           flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4))
    def flac_headers(rate, channels, block, frames, value, header_rate, header_channels, header_bits,
                     header_total, header_blocks, flips) -> None:
        data = constant_flac(frames * block / rate, rate=rate, channels=channels, block=block, value=value)
        data = bytearray(patch_streaminfo(data, rate=header_rate, channels=header_channels, bits=header_bits,
                                          total_frames=header_total, block_sizes=header_blocks))
        for where, byte in flips:  # damage frame headers and subframes (after the 42-byte STREAMINFO)
            data[42 + int(where * (len(data) - 43))] = byte
        _decode_for_the_library(bytes(data), "fuzz.flac")

    wav_headers()
    flac_headers()


@pytest.mark.skipif(sys.platform == "win32", reason="resource limits are POSIX")
def test_fuzzed_wav_and_flac_headers_end_in_typed_errors_within_1_gb():
    done = run_child("""
        from tests.engine.test_fuzz_audio import fuzz
        fuzz()
        from tests.peak_memory import peak_rss_bytes
        print(peak_rss_bytes())
    """)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-8000:]
    assert int(done.stdout.splitlines()[-1]) < PEAK_RSS_LIMIT
