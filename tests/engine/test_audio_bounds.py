"""Decoding is bounded whatever a file's header says, and written files are cleaned up and have the
right permissions (issue 9).

The files are built here: WAV byte by byte, FLAC frame by frame (hours of constant samples in a
few KB) or written by libsndfile, then patched, so each test holds the exact header that once
crashed or exhausted the machine. Children that could blow up get a capped address space.
"""

from __future__ import annotations

import os
import signal
import stat
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine import audio
from engine.errors import (
    AudioDecodeFailedError,
    InvalidParameterError,
    InvalidVoiceSampleError,
)
from engine.voices import MAX_INPUT_SECONDS, MAX_SECONDS, VoiceLibrary, prepare_clip, read_clip
from tests.engine.test_audio_samples import speech  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT_BYTES = 1536 * 1024 * 1024
"""Address space given to child processes: a decoder blow-up fails the test, not the machine."""


# --------------------------------------------------------------------------- file builders

def wav_bytes(*, rate: int = 16000, channels: int = 1, bits: int = 16, tag: int = 1, frames: int = 1600,
              data_size: int | None = None, byte_rate: int | None = None, block_align: int | None = None,
              payload_bytes: int | None = None, seed: int = 0) -> bytes:
    """A RIFF/WAVE file whose header fields are exactly as given (``data_size`` may lie).

    The data chunk holds ``frames`` frames of random bytes, or ``payload_bytes`` bytes if given."""
    align = block_align if block_align is not None else max(1, channels * bits // 8)
    size = frames * align if payload_bytes is None else payload_bytes
    payload = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    fmt = struct.pack("<HHIIHH", tag, channels, rate,
                      byte_rate if byte_rate is not None else (rate * align) & 0xFFFFFFFF, align & 0xFFFF, bits)
    size = len(payload) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + payload
    return b"RIFF" + struct.pack("<I", len(body) & 0xFFFFFFFF) + body


def flac_silence(path: Path, seconds: int, rate: int = 8000, channels: int = 1) -> Path:
    """Digital silence as FLAC written by libsndfile, a minute at a time (it compresses to little)."""
    minute = np.zeros((60 * rate, channels), np.int16)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=channels, format="FLAC", subtype="PCM_16") as f:
        for _ in range(seconds // 60):
            f.write(minute)
        f.write(minute[: (seconds % 60) * rate])
    return path


def _crc(data: bytes, poly: int, width: int) -> int:
    crc, top, mask = 0, 1 << (width - 1), (1 << width) - 1
    for byte in data:
        crc ^= byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
    return crc


def _utf8_number(n: int) -> bytes:
    """FLAC's frame number coding (UTF-8 extended to 36 bits)."""
    if n < 0x80:
        return bytes([n])
    tail: list[int] = []
    while True:
        tail.insert(0, 0x80 | (n & 0x3F))
        n >>= 6
        count = len(tail) + 1
        if n < (1 << (7 - count)):
            return bytes([((0xFF << (8 - count)) & 0xFF) | n, *tail])


def constant_flac(seconds: float, *, rate: int = 48000, channels: int = 2, block: int = 65535,
                  value: int = 0) -> bytes:
    """A FLAC stream of 16-bit constant ``value`` built frame by frame: hours in a few KB, in a
    fraction of a second (an encoder would need seconds per hour)."""
    frames = max(1, -(-int(seconds * rate) // block))
    info = struct.pack(">HH", block, block) + bytes(6)
    info += ((rate << 44) | ((channels - 1) << 41) | (15 << 36) | frames * block).to_bytes(8, "big") + bytes(16)
    out = [b"fLaC", bytes([0x80, 0, 0, 34]), info]
    subframes = (b"\x00" + struct.pack(">h", value)) * channels  # CONSTANT subframe per channel
    for number in range(frames):
        # sync, blocksize "16 bits at the end", rate "from STREAMINFO", independent channels, 16 bits
        head = bytes([0xFF, 0xF8, 0x70, ((channels - 1) << 4) | 0x08]) + _utf8_number(number)
        head += struct.pack(">H", block - 1)
        head += bytes([_crc(head, 0x07, 8)])
        frame = head + subframes
        out.append(frame + struct.pack(">H", _crc(frame, 0x8005, 16)))
    return b"".join(out)


_STREAMINFO = slice(8 + 10, 8 + 18)  # "fLaC", the block header, then rate/channels/bits/total in 8 bytes


def patch_streaminfo(data: bytes, *, rate: int | None = None, channels: int | None = None,
                     bits: int | None = None, total_frames: int | None = None,
                     block_sizes: tuple[int, int] | None = None) -> bytes:
    """The FLAC file with its STREAMINFO fields replaced (frames keep their own headers)."""
    out = bytearray(data)
    assert out[:4] == b"fLaC" and out[4] & 0x7F == 0, "STREAMINFO must come first"
    packed = int.from_bytes(out[_STREAMINFO], "big")
    fields = {"rate": (packed >> 44) & 0xFFFFF, "channels": ((packed >> 41) & 0x7) + 1,
              "bits": ((packed >> 36) & 0x1F) + 1, "total": packed & (2 ** 36 - 1)}
    fields.update({k: v for k, v in (("rate", rate), ("channels", channels), ("bits", bits),
                                     ("total", total_frames)) if v is not None})
    packed = ((fields["rate"] << 44) | ((fields["channels"] - 1) << 41) | ((fields["bits"] - 1) << 36)
              | fields["total"])
    out[_STREAMINFO] = packed.to_bytes(8, "big")
    if block_sizes is not None:
        out[8:12] = struct.pack(">HH", *block_sizes)
    return bytes(out)


def run_child(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run Python ``code`` in a child limited to ``MEMORY_LIMIT_BYTES`` of address space."""
    prelude = textwrap.dedent(f"""
        import sys
        try:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT_BYTES}, {MEMORY_LIMIT_BYTES}))
        except (ImportError, ValueError, OSError):  # Windows; macOS refuses RLIMIT_AS
            pass
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code), *args], cwd=ROOT,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


# --------------------------------------------------------------------------- sample rates

def test_a_wav_header_saying_1_hz_is_refused_before_decoding():
    data = wav_bytes(rate=1, frames=118_000)  # the reported 236 KB file: 33 hours "at 1 Hz"
    assert 230_000 < len(data) < 240_000
    with pytest.raises(AudioDecodeFailedError, match=r"voice\.wav.*1 Hz.*8 and 384 kHz") as info:
        audio.decode_audio(data, name="voice.wav")
    assert info.value.code == "audio_decode_failed"


def test_voices_add_of_the_1_hz_wav_is_a_clear_error_not_a_crash(tmp_path):
    (tmp_path / "voice.wav").write_bytes(wav_bytes(rate=1, frames=118_000))
    done = run_child("""
        from engine.cli import main
        sys.exit(main(sys.argv[1:]))
    """, "voices", "add", str(tmp_path / "voice.wav"), "--name", "Ann",
        env={"DIA_STUDIO_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode > 0, done.stderr  # it was -11 (SIGSEGV) after 20 GB
    assert "[audio_decode_failed]" in done.stderr and "1 Hz" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("rate", [7999, 384_001, 1_000_000])
def test_rates_outside_8_to_384_khz_are_refused(rate):
    with pytest.raises(AudioDecodeFailedError, match="8 and 384 kHz"):
        audio.decode_audio(wav_bytes(rate=rate), name="odd.wav")


@pytest.mark.parametrize("rate", [0, 2 ** 31, 4_000_000_000])
def test_rates_no_decoder_opens_are_a_decode_failure(rate):
    with pytest.raises(AudioDecodeFailedError, match="odd.wav"):
        audio.decode_audio(wav_bytes(rate=rate), name="odd.wav")


@pytest.mark.parametrize("rate", [8000, 384_000])
def test_the_rate_limits_themselves_decode(rate):
    decoded = audio.decode_audio(wav_bytes(rate=rate, frames=800), name="edge.wav")
    assert (decoded.sample_rate, decoded.frames) == (rate, 800)


def test_a_flac_header_with_an_absurd_rate_is_refused():
    data = constant_flac(2, rate=1)
    with pytest.raises(AudioDecodeFailedError, match="1 Hz"):
        audio.decode_audio(data, name="s.flac")


def test_resample_refuses_absurd_rates_before_any_work():
    with pytest.raises(InvalidParameterError, match="8 and 384 kHz") as info:
        audio.resample(np.zeros(236_000, np.float32), 1, audio.TARGET_SAMPLE_RATE)
    assert info.value.code == "invalid_parameter"


def test_too_many_channels_are_refused():
    with pytest.raises(AudioDecodeFailedError, match="9 channels"):
        audio.decode_audio(wav_bytes(channels=9, frames=100), name="wide.wav")


def test_many_channels_at_a_high_rate_are_refused():
    with pytest.raises(AudioDecodeFailedError, match="8 channels at 192 kHz"):
        audio.decode_audio(wav_bytes(rate=192_000, channels=8, frames=100), name="wide.wav")


# --------------------------------------------------------------------------- length

def test_hours_of_flac_silence_decode_only_as_far_as_asked(tmp_path):
    path = flac_silence(tmp_path / "hours.flac", 2 * 3600)  # two hours in a few hundred KB
    assert path.stat().st_size < 1_000_000
    decoded = audio.decode_audio(path, max_seconds=MAX_INPUT_SECONDS)
    assert decoded.truncated
    assert decoded.frames == MAX_INPUT_SECONDS * 8000


def test_the_voice_library_refuses_hours_of_flac_silence_as_too_long():
    decoded = audio.decode_audio(constant_flac(3600), name="hours.flac", max_seconds=MAX_INPUT_SECONDS)
    with pytest.raises(InvalidVoiceSampleError, match=f"longer than {MAX_INPUT_SECONDS:g} s.*{MAX_SECONDS:g} s"):
        prepare_clip(decoded, "hours.flac")


def test_reading_a_clip_for_transcription_is_bounded_like_adding_it(tmp_path):
    # `voices add --transcribe` prepares the clip before the library sees it
    path = tmp_path / "hours.flac"
    path.write_bytes(constant_flac(3600))
    with pytest.raises(InvalidVoiceSampleError, match="longer than"):
        read_clip(path)


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), "fast", None])
def test_a_raw_recording_with_a_nonsense_rate_is_a_typed_error(tmp_path, rate):
    with VoiceLibrary(tmp_path / "lib") as library, pytest.raises((InvalidVoiceSampleError, InvalidParameterError)):
        library.add(np.full(44100, 0.1, np.float32), speaker_name="Ann", sample_rate=rate)


def test_a_flac_declaring_no_length_is_bounded_too():
    data = patch_streaminfo(constant_flac(3600, rate=8000, channels=1), total_frames=0)  # 0: "unknown"
    decoded = audio.decode_audio(data, name="s.flac", max_seconds=5)
    assert decoded.truncated and decoded.frames == 5 * 8000


def test_a_flac_declaring_less_than_it_holds_stops_where_it_says():
    data = patch_streaminfo(constant_flac(3600, rate=8000, channels=1), total_frames=8000)
    decoded = audio.decode_audio(data, name="s.flac", max_seconds=MAX_INPUT_SECONDS)
    assert decoded.frames == 8000 and not decoded.truncated


def test_a_wav_whose_data_size_overstates_the_file_reads_what_is_there():
    decoded = audio.decode_audio(wav_bytes(frames=16000, data_size=0xFFFFFFF0), name="big.wav",
                                 max_seconds=MAX_INPUT_SECONDS)
    assert decoded.frames == 16000 and not decoded.truncated


def test_ffmpeg_formats_are_bounded_too(speech):
    decoded = audio.decode_audio(speech["m4a"], max_seconds=1.0)
    assert decoded.truncated and decoded.frames == decoded.sample_rate


def test_max_seconds_leaves_shorter_files_whole(speech):
    whole = audio.decode_audio(speech["flac"])
    bounded = audio.decode_audio(speech["flac"], max_seconds=MAX_INPUT_SECONDS)
    assert not bounded.truncated and np.array_equal(whole.samples, bounded.samples)


@pytest.mark.skipif(sys.platform == "win32", reason="peak RSS comes from the resource module")
def test_eight_hours_of_flac_in_the_voice_library_use_little_memory(tmp_path):
    path = tmp_path / "hours.flac"
    path.write_bytes(constant_flac(8 * 3600, value=3000))  # 11 GB as float32, in 360 KB
    assert path.stat().st_size < 1_000_000
    done = run_child("""
        from engine.voices import VoiceLibrary
        from engine.errors import InvalidVoiceSampleError
        with VoiceLibrary(sys.argv[2]) as library:
            try:
                library.add(sys.argv[1], speaker_name="Ann")
            except InvalidVoiceSampleError as exc:
                print(exc.code, exc)
        from tests.peak_memory import peak_rss_bytes
        print(peak_rss_bytes())
    """, str(path), str(tmp_path / "voices"))
    assert done.returncode == 0, done.stderr
    said, peak = done.stdout.splitlines()
    assert said.startswith("invalid_voice_sample") and "longer than" in said
    assert int(peak) < 1024 ** 3


def test_a_recording_at_an_absurd_rate_is_refused_before_resampling():
    take = audio.DecodedAudio(np.zeros((236_000, 1), np.float32) + 0.1, 1, "recording", "flac")
    with pytest.raises(InvalidVoiceSampleError, match="1 Hz"):
        prepare_clip(take, "recording")


# --------------------------------------------------------------------------- messages

def test_an_unknown_wav_format_tag_gets_a_clear_message():
    with pytest.raises(AudioDecodeFailedError) as info:
        audio.decode_audio(wav_bytes(tag=0x1234, rate=44100, frames=1000), name="tag.wav")
    message = str(info.value)
    assert "NoneType" not in message and "attribute" not in message
    assert "tag.wav" in message and "codec" in message and "WAV (PCM)" in message


# --------------------------------------------------------------------------- writing

def kill_a_writer_mid_write(target: Path) -> list[Path]:
    """Start a process that writes ``target`` over and over, kill -9 it as soon as one of its
    temporary files is seen, and return the ``.part`` files left next to ``target``. (The writer
    stops by itself after 500 writes, so a test never hangs on it.)"""
    code = """
        import sys
        import numpy as np
        from engine import audio
        noise = np.random.default_rng(0).uniform(-0.5, 0.5, 30 * 44100).astype(np.float32)
        for _ in range(500):
            audio.write_audio(sys.argv[1], noise, 44100)
    """
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(target)], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.DEVNULL)
    try:
        while child.poll() is None and not any(p.name.endswith(".part") for p in target.parent.iterdir()):
            pass
        child.kill()
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the writer ended before a kill landed"
    return [p for p in target.parent.iterdir() if p.name.endswith(".part")]


def test_the_next_write_sweeps_part_files_a_killed_writer_left(tmp_path):
    target = tmp_path / "out.wav"
    for _ in range(20):  # a kill can land between two files; the issue saw leftovers 6 times in 25
        if kill_a_writer_mid_write(target):
            break
    else:
        pytest.fail("no kill landed mid-write in 20 tries")
    audio.write_audio(target, np.zeros(100, np.float32), 44100)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3"])
def test_exports_follow_the_umask(tmp_path, umask_022, suffix):
    path = audio.write_audio(tmp_path / f"render{suffix}", np.zeros(4410, np.float32), 44100)
    assert mode(path) == 0o644


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_private_audio_is_0600(tmp_path, umask_022):
    path = audio.write_audio(tmp_path / "voice.flac", np.zeros(4410, np.float32), 44100, private=True)
    assert mode(path) == 0o600
