"""engine.audio on real files: decoding every import format, clean-up, time-stretch, export."""

from __future__ import annotations

import json

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from engine import audio
from engine.errors import AudioDecodeFailedError, InvalidParameterError, StorageError
from tests.engine.test_audio_samples import FORMATS, speech  # noqa: F401  (fixture)

SR = audio.TARGET_SAMPLE_RATE


def tone(freq: float, seconds: float, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spectrum))
    # Parabolic interpolation around the peak bin gives sub-bin accuracy.
    a, b, c = np.log(spectrum[k - 1:k + 2] + 1e-12)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / len(x)


def median_f0(x: np.ndarray, sr: int) -> float:
    """Median pitch of voiced 40 ms frames by autocorrelation (60–400 Hz)."""
    n, found = int(0.04 * sr), []
    for i in range(0, len(x) - n, n // 2):
        frame = x[i:i + n] * np.hanning(n)
        if np.sqrt(np.mean(frame ** 2)) < 0.02:
            continue
        ac = np.correlate(frame, frame, "full")[n - 1:]
        lo, hi = sr // 400, sr // 60
        k = lo + int(np.argmax(ac[lo:hi]))
        if ac[k] > 0.5 * ac[0]:
            found.append(sr / k)
    return float(np.median(found))


def envelope(x: np.ndarray, sr: int, n: int) -> np.ndarray:
    hop = sr // 100
    e = np.sqrt(np.convolve(x ** 2, np.ones(hop) / hop, "same"))[::hop]
    return np.interp(np.linspace(0, len(e) - 1, n), np.arange(len(e)), e)


# --------------------------------------------------------------------------- conversions

def test_to_mono_averages_channels_and_scales_int_pcm():
    stereo = np.stack([np.full(10, 0.5, np.float32), np.full(10, -0.1, np.float32)], axis=1)
    assert np.allclose(audio.to_mono(stereo), 0.2)
    assert audio.to_mono(stereo).dtype == np.float32
    mono = np.linspace(-1, 1, 7, dtype=np.float32)
    assert audio.to_mono(mono) is mono
    assert np.array_equal(audio.to_mono(mono[:, None]), mono)
    pcm = np.array([[16384, -16384], [-32768, -32768]], dtype=np.int16)
    assert np.allclose(audio.to_mono(pcm), [0.0, -1.0])
    assert np.allclose(audio.as_float32(np.array([0, 128, 255], np.uint8)), [-1.0, 0.0, 127 / 128])
    with pytest.raises(ValueError):
        audio.to_mono(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("sr_in", [8000, 22050, 48000])
def test_resample_to_44k_keeps_length_and_pitch(sr_in):
    x = tone(1000.0, 1.0, sr_in)
    y = audio.resample(x, sr_in, SR)
    assert y.dtype == np.float32
    assert abs(len(y) - SR) <= 2
    assert peak_hz(y, SR) == pytest.approx(1000.0, rel=2e-3)
    assert np.sqrt(np.mean(y[1000:-1000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_resample_is_a_no_op_at_equal_rates_and_handles_stereo():
    x = tone(440, 0.1)
    assert audio.resample(x, SR, SR) is x
    stereo = np.stack([x, x], axis=1)
    assert audio.resample(stereo, SR, 22050).shape == (2205, 2)
    assert audio.resample(np.zeros(0, np.float32), 8000, SR).shape == (0,)


# --------------------------------------------------------------------------- decoding

@pytest.mark.parametrize("fmt", FORMATS)
def test_decode_every_import_format(speech, fmt):
    reference = audio.decode_audio(speech["wav"])
    decoded = audio.decode_audio(speech[fmt])
    assert decoded.samples.dtype == np.float32 and decoded.samples.ndim == 2
    assert decoded.channels == (2 if fmt == "ogg" else 1)
    assert decoded.sample_rate == (48000 if fmt in ("opus", "webm") else 22050)
    assert decoded.duration == pytest.approx(reference.duration, abs=0.06)  # AAC pads ~50 ms
    # Same words, same rhythm: the loudness envelopes line up.
    a = envelope(audio.to_mono(reference.samples), reference.sample_rate, 400)
    b = envelope(audio.to_mono(decoded.samples), decoded.sample_rate, 400)
    assert np.corrcoef(a, b)[0, 1] > 0.95
    # Bytes in, same audio out.
    from_bytes = audio.decode_audio(speech[fmt].read_bytes(), name=speech[fmt].name)
    assert np.array_equal(from_bytes.samples, decoded.samples)


def test_decode_reports_format_and_codec(speech):
    assert (audio.decode_audio(speech["wav"]).format, audio.decode_audio(speech["wav"]).codec) == ("WAV", "PCM_16")
    assert audio.decode_audio(speech["flac"]).format == "FLAC"
    assert audio.decode_audio(speech["ogg"]).codec == "VORBIS"
    assert audio.decode_audio(speech["mp3"]).format == "mp3"
    assert audio.decode_audio(speech["webm"]).codec == "opus"
    assert "mp4" in audio.decode_audio(speech["m4a"]).format


def test_decode_failures_name_the_file(tmp_path, speech):
    garbage = tmp_path / "voice memo.m4a"
    garbage.write_bytes(b"this is not audio at all " * 200)
    truncated = tmp_path / "cut.wav"
    truncated.write_bytes(speech["wav"].read_bytes()[:30])
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for bad in (garbage, truncated, empty, text, tmp_path / "missing.wav"):
        with pytest.raises(AudioDecodeFailedError) as info:
            audio.decode_audio(bad)
        assert info.value.code == "audio_decode_failed"
        assert bad.name in str(info.value)
        assert info.value.to_dict()["type"] == "audio_decode_failed"
    with pytest.raises(AudioDecodeFailedError, match="upload.webm"):
        audio.decode_audio(b"\x1a\x45\xdf\xa3 broken", name="upload.webm")


# --------------------------------------------------------------------------- clean-up

def test_trim_silence_keeps_the_speech_and_a_margin(speech):
    decoded = audio.decode_audio(speech["wav"])
    voice = audio.to_mono(decoded.samples)
    sr = decoded.sample_rate
    rng = np.random.default_rng(0)
    hiss = lambda n: (rng.standard_normal(n) * 1e-4).astype(np.float32)  # noqa: E731  (-80 dBFS)
    padded = np.concatenate([hiss(sr), voice, hiss(2 * sr)])
    trimmed = audio.trim_silence(padded, sr, keep_ms=100)
    inner = audio.trim_silence(voice, sr, keep_ms=0)
    assert len(inner) <= len(trimmed) <= len(inner) + int(0.2 * sr) + 2 * int(0.01 * sr)
    assert len(trimmed) < len(padded) - 2.5 * sr
    # Stereo is trimmed on the mix, keeping both channels.
    assert audio.trim_silence(np.stack([padded, padded], 1), sr).shape[1] == 2
    assert audio.trim_silence(np.zeros(sr, np.float32), sr).shape == (0,)
    assert audio.trim_silence(hiss(sr) * 0.01, sr).shape == (0,)  # under the absolute floor


def test_normalize_loudness_hits_target_without_clipping(speech):
    decoded = audio.decode_audio(speech["wav"])
    voice = audio.resample(audio.to_mono(decoded.samples), decoded.sample_rate) * 0.05  # quiet take
    out = audio.normalize_loudness(voice, SR, target_lufs=-23.0)
    meter = pyloudnorm.Meter(SR)
    assert meter.integrated_loudness(out.astype(np.float64)) == pytest.approx(-23.0, abs=0.3)
    # A loud target is limited by the peak ceiling rather than clipped.
    loud = audio.normalize_loudness(voice, SR, target_lufs=-5.0, peak_ceiling_dbfs=-1.0)
    assert audio.peak_dbfs(loud) == pytest.approx(-1.0, abs=0.01)
    # Shorter than one 400 ms block: RMS fallback; silence and empty stay as they are.
    short = audio.normalize_loudness(tone(300, 0.2, amp=0.01), SR, target_lufs=-20.0)
    assert audio.rms_dbfs(short) == pytest.approx(-20.0, abs=0.1)
    assert not audio.normalize_loudness(np.zeros(SR, np.float32), SR).any()
    assert audio.normalize_loudness(np.zeros(0, np.float32), SR).shape == (0,)
    # The gain cap keeps a whisper of noise from being blown up.
    faint = tone(300, 1.0, amp=1e-5)
    assert audio.peak_dbfs(audio.normalize_loudness(faint, SR)) <= audio.peak_dbfs(faint) + 30.01


# --------------------------------------------------------------------------- time-stretch

@pytest.mark.parametrize("factor", [0.5, 0.8, 1.25, 1.5, 2.0])
def test_time_stretch_keeps_pitch_and_scales_duration(factor):
    x = tone(440.0, 2.0)
    y = audio.time_stretch(x, SR, factor)
    assert len(y) == round(len(x) / factor)
    middle = y[len(y) // 4: 3 * len(y) // 4]
    assert peak_hz(middle, SR) == pytest.approx(440.0, rel=0.005)
    assert np.sqrt(np.mean(middle ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


@pytest.mark.parametrize("factor", [0.5, 0.75, 1.5, 2.0])
def test_time_stretch_on_speech_keeps_voice_pitch_and_rhythm(speech, factor):
    decoded = audio.decode_audio(speech["wav"])
    voice = audio.resample(audio.to_mono(decoded.samples), decoded.sample_rate)
    out = audio.time_stretch(voice, SR, factor)
    assert len(out) == round(len(voice) / factor)
    assert median_f0(out, SR) == pytest.approx(median_f0(voice, SR), rel=0.03)
    # The loudness contour, squeezed back to the same length, follows the original.
    assert np.corrcoef(envelope(voice, SR, 500), envelope(out, SR, 500))[0, 1] > 0.9


def test_time_stretch_identity_range_stereo_and_determinism():
    x = tone(220, 0.5)
    assert audio.time_stretch(x, SR, 1.0) is x
    for bad in (0.49, 2.01, 0.0, -1.0):
        with pytest.raises(InvalidParameterError) as info:
            audio.time_stretch(x, SR, bad)
        assert info.value.code == "invalid_parameter"
    stereo = np.stack([x, 0.5 * x], axis=1)
    y = audio.time_stretch(stereo, SR, 1.5)
    assert y.shape == (round(len(x) / 1.5), 2)
    assert np.array_equal(y, audio.time_stretch(stereo, SR, 1.5))
    assert audio.time_stretch(np.zeros(0, np.float32), SR, 2.0).shape == (0,)


# --------------------------------------------------------------------------- export

def test_export_formats_here():
    formats = audio.export_formats()
    assert formats[:2] == ["wav", "flac"]
    assert {"opus", "mp3"} <= set(formats)  # the PyAV wheel's FFmpeg has libopus and LAME


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".opus", ".ogg", ".mp3"])
def test_write_audio_round_trips_samples_and_metadata(tmp_path, suffix):
    x = tone(440, 1.0)
    params = json.dumps({"seed": 42, "cfg_scale": 3.0, "speed_factor": 1.0})
    path = audio.write_audio(tmp_path / f"render{suffix}", x, SR,
                             metadata={"title": "Épisode 1", "comment": params, "artist": "Dia Studio"})
    tags = audio.read_metadata(path)
    assert tags["title"] == "Épisode 1"
    assert json.loads(tags["comment"]) == json.loads(params)
    assert tags["artist"] == "Dia Studio"
    back = audio.decode_audio(path)
    assert back.duration == pytest.approx(1.0, abs=0.01)
    mono = audio.resample(audio.to_mono(back.samples), back.sample_rate)
    assert peak_hz(mono[2000:-2000], SR) == pytest.approx(440.0, rel=0.005)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left


def test_write_audio_bit_depth_clipping_and_format_override(tmp_path):
    x = np.array([0.0, 0.5, 1.5, -2.0], np.float32)
    path = audio.write_audio(tmp_path / "clip.flac", x, SR, bit_depth=24)
    assert sf.info(path).subtype == "PCM_24"
    assert np.allclose(sf.read(path, dtype="float32")[0], [0.0, 0.5, 1.0, -1.0], atol=1e-6)
    odd = audio.write_audio(tmp_path / "clip.data", x, SR, fmt="wav")
    assert sf.info(odd).format == "WAV"


def test_write_audio_rejects_bad_requests(tmp_path):
    x = tone(440, 0.1)
    with pytest.raises(InvalidParameterError, match="Unsupported metadata"):
        audio.write_audio(tmp_path / "a.wav", x, SR, metadata={"seed": "1"})
    with pytest.raises(InvalidParameterError, match=".aiff"):
        audio.write_audio(tmp_path / "a.aiff", x, SR)
    with pytest.raises(InvalidParameterError):
        audio.write_audio(tmp_path / "a.wav", x, SR, fmt="wma")
    with pytest.raises(InvalidParameterError):
        audio.write_audio(tmp_path / "a.wav", x, SR, bit_depth=8)
    assert list(tmp_path.iterdir()) == []


def test_write_audio_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "take.wav"
    audio.write_audio(target, tone(440, 0.5), SR)
    before = target.read_bytes()

    def crash(tmp, *args, **kwargs):
        tmp.write_bytes(b"RIFF half a header")
        raise OSError("disk full")

    monkeypatch.setattr(audio, "_write_soundfile", crash)
    with pytest.raises(StorageError, match="disk full"):
        audio.write_audio(target, tone(880, 0.5), SR)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["take.wav"]


# --------------------------------------------------------------------------- waveform

def test_peak_envelope():
    x = np.sin(np.linspace(0, 20 * np.pi, 10_000)).astype(np.float32)
    env = audio.peak_envelope(x, 100)
    assert env.shape == (100, 2)
    for i in (0, 37, 99):
        chunk = x[i * 100:(i + 1) * 100]
        assert env[i, 0] == chunk.min() and env[i, 1] == chunk.max()
    assert (audio.peak_envelope(np.stack([x, x], 1), 10) == audio.peak_envelope(x, 10)).all()
    few = audio.peak_envelope(np.array([0.1, -0.2, 0.3], np.float32), 6)
    assert np.allclose(few[:, 0], [0.1, 0.1, -0.2, -0.2, 0.3, 0.3]) and (few[:, 0] == few[:, 1]).all()
    assert not audio.peak_envelope(np.zeros(0, np.float32), 4).any()
    with pytest.raises(ValueError):
        audio.peak_envelope(x, 0)
