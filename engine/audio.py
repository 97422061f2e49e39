"""Small, pure audio helpers on numpy arrays, plus decoding and writing files.

Samples are float32, shaped ``(n,)`` (mono) or ``(n, channels)``. Nothing here keeps state or
touches Qt, so the app, the CLI and the voice library share one code path.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from engine.constants import SAMPLE_RATE
from engine.errors import AudioDecodeFailedError, InvalidParameterError
from engine.files import atomic_write

TARGET_SAMPLE_RATE = SAMPLE_RATE
"""Dia's DAC codec works at 44.1 kHz; every prompt and render is at this rate."""

MIN_SPEED_FACTOR = 0.5
MAX_SPEED_FACTOR = 2.0

METADATA_KEYS = ("title", "artist", "album", "date", "comment", "genre", "tracknumber",
                 "copyright", "software", "license")
"""Tags ``write_audio`` accepts: the set libsndfile can store in WAV and FLAC, so every format
keeps the same keys. Put structured data (render parameters) into ``comment`` as JSON."""

AudioSource = str | os.PathLike | bytes | bytearray | BinaryIO

# Containers libsndfile reads natively; everything else goes through FFmpeg (PyAV).
_SOUNDFILE_FORMATS = {"WAV", "WAVEX", "RF64", "W64", "AIFF", "FLAC", "CAF"}
_SOUNDFILE_OGG_CODECS = {"VORBIS"}


# --------------------------------------------------------------------------- basic conversions

def as_float32(samples: np.ndarray) -> np.ndarray:
    """Float32 samples (no copy when already float32); integer PCM is scaled to [-1, 1)."""
    arr = np.asarray(samples)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        if info.min == 0:  # unsigned PCM (8-bit WAV) is centred on its midpoint
            mid = (int(info.max) + 1) // 2
            return ((arr.astype(np.float64) - mid) / mid).astype(np.float32)
        return (arr.astype(np.float64) / float(-int(info.min))).astype(np.float32)
    return arr.astype(np.float32, copy=False)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Mix ``(n, channels)`` down to ``(n,)`` by averaging the channels; mono passes through."""
    arr = as_float32(samples)
    if arr.ndim == 1:
        return arr
    if arr.ndim != 2:
        raise ValueError(f"expected (n,) or (n, channels) samples, got shape {arr.shape}")
    if arr.shape[1] == 1:
        return arr[:, 0]
    return arr.mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, sr_in: int, sr_out: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Resample with soxr's high-quality filter; returns the input unchanged when the rates match.

    Rates outside ``MIN_SAMPLE_RATE``..``MAX_SAMPLE_RATE`` raise ``InvalidParameterError`` before
    any work: the output's size is proportional to ``sr_out / sr_in``.
    """
    for rate in (sr_in, sr_out):
        problem = sample_rate_problem(rate)
        if problem:
            raise InvalidParameterError(f"Can't resample audio: {problem}.")
    arr = as_float32(samples)
    if int(sr_in) == int(sr_out):
        return arr
    if arr.shape[0] == 0:
        return arr.copy()
    import soxr

    return np.asarray(soxr.resample(arr, int(sr_in), int(sr_out), quality="HQ"), dtype=np.float32)


def duration_of(samples: np.ndarray, sr: int) -> float:
    """Length in seconds."""
    return float(np.asarray(samples).shape[0]) / float(sr)


def peak_dbfs(samples: np.ndarray) -> float:
    """The absolute peak in dBFS (``-inf`` for digital silence or an empty clip)."""
    arr = np.asarray(samples)
    peak = float(np.max(np.abs(arr))) if arr.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


def rms_dbfs(samples: np.ndarray) -> float:
    """The RMS level in dBFS (``-inf`` for digital silence or an empty clip)."""
    arr = as_float32(samples)
    if not arr.size:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(arr, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


# --------------------------------------------------------------------------- decoding

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 384_000
"""Rates a file or clip may have. Anything else is refused before it is decoded or resampled:
a WAV header saying 1 Hz once made the resampler ask for 20 GB."""
MAX_CHANNELS = 8
"""FLAC's and 7.1 audio's maximum; a header claiming more is refused."""
MAX_SAMPLES_PER_SECOND = 2 * MAX_SAMPLE_RATE
"""Rate times channels: stereo at the top rate, or 8 channels at 96 kHz. This bounds the memory
of each decoded second whatever the header says."""
_DECODE_BLOCK_FRAMES = 1 << 16


@dataclass(frozen=True)
class DecodedAudio:
    """A decoded file: float32 samples shaped ``(n, channels)`` at the file's own rate."""

    samples: np.ndarray
    sample_rate: int
    format: str
    """Container as its decoder names it (``WAV``, ``FLAC``, ``OGG``, ``mp3``, ``matroska,webm`` ...)."""
    codec: str
    """Audio codec (``PCM_16``, ``VORBIS``, ``opus``, ``aac``, ``mp3float`` ...)."""
    truncated: bool = False
    """True when ``decode_audio``'s ``max_seconds`` stopped it: the source holds more than ``samples``."""

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        return self.frames / float(self.sample_rate)


def sample_rate_problem(rate: object) -> str | None:
    """Why ``rate`` can't be an audio sample rate here (a sentence fragment), or ``None`` if it can."""
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.integer, np.floating)):
        return f"its sample rate {rate!r} is not a number"
    if not np.isfinite(rate) or rate != int(rate):
        return f"its sample rate {rate!r} is not a whole number of hertz"
    if not MIN_SAMPLE_RATE <= int(rate) <= MAX_SAMPLE_RATE:
        return (f"its sample rate is {int(rate):,} Hz; audio must be between "
                f"{MIN_SAMPLE_RATE // 1000} and {MAX_SAMPLE_RATE // 1000} kHz")
    return None


def layout_problem(rate: object, channels: int) -> str | None:
    """Why audio at ``rate`` with ``channels`` can't be decoded or used here, or ``None``."""
    problem = sample_rate_problem(rate)
    if problem:
        return problem
    if not 1 <= channels <= MAX_CHANNELS:
        return f"it has {channels} channels; audio may have 1 to {MAX_CHANNELS}"
    if int(rate) * channels > MAX_SAMPLES_PER_SECOND:
        return (f"it has {channels} channels at {int(rate) // 1000} kHz, more data a second than Dia Studio reads; "
                "save it as mono or stereo at 48 kHz")
    return None


def decode_audio(source: AudioSource, *, name: str | None = None,
                 max_seconds: float | None = None) -> DecodedAudio:
    """Decode a file path, bytes or binary file object to float32 ``(n, channels)``.

    WAV/FLAC/AIFF and Ogg Vorbis go through libsndfile (soundfile); everything else (MP3, M4A/AAC,
    Opus in Ogg or WebM, ...) through FFmpeg (PyAV). ``name`` is used in messages (defaults to the
    path's file name). Any failure raises ``AudioDecodeFailedError`` naming the file, including
    a sample rate or channel count outside ``layout_problem``'s limits (checked before decoding).

    With ``max_seconds`` decoding stops after that much audio, whatever the header declares, and
    the result says ``truncated`` if there was more: time and memory stay bounded.
    """
    if max_seconds is not None and not max_seconds > 0:
        raise InvalidParameterError(f"max_seconds must be positive, got {max_seconds}.")
    label = name or (Path(os.fspath(source)).name if isinstance(source, (str, os.PathLike)) else "audio data")
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source))
        if not path.is_file():
            raise AudioDecodeFailedError(f"Could not read '{label}': no such file.")
        data: bytes | None = None
    elif isinstance(source, (bytes, bytearray)):
        path, data = None, bytes(source)
    else:
        path, data = None, source.read()
    if data is not None and not data:
        raise AudioDecodeFailedError(f"Could not decode '{label}': the file is empty.")

    def opener() -> str | io.BytesIO:
        return str(path) if path is not None else io.BytesIO(data)

    try:
        decoded = _decode_with_soundfile(opener, max_seconds)
        if decoded is None:
            decoded = _decode_with_pyav(opener, max_seconds)
    except AudioDecodeFailedError as exc:
        raise AudioDecodeFailedError(f"Could not decode '{label}': {exc.message}") from None
    except MemoryError:
        raise AudioDecodeFailedError(
            f"Could not decode '{label}': there is not enough memory to decode it.") from None
    except Exception as exc:  # FFmpeg's errors are many; all mean "not decodable"
        reason = (getattr(exc, "strerror", None) or str(exc)).rstrip(".")
        raise AudioDecodeFailedError(
            f"Could not decode '{label}': it is damaged or not in an audio format Dia Studio reads "
            f"({reason}).") from exc
    return decoded


class _Blocks:
    """Decoded ``(n, channels)`` blocks, up to an optional frame limit, joined at the end."""

    def __init__(self, channels: int, limit: int | None) -> None:
        self.channels = channels
        self.limit = limit
        self.frames = 0
        self.truncated = False
        self._blocks: list[np.ndarray] = []

    def add(self, block: np.ndarray) -> None:
        """Keep ``block`` (or the part under the limit); refuse NaN/inf samples."""
        if self.limit is not None and self.frames + block.shape[0] > self.limit:
            block = block[: self.limit - self.frames]
            self.truncated = True
        if not np.isfinite(block).all():
            raise AudioDecodeFailedError("it holds invalid (NaN/inf) samples.")
        self._blocks.append(block)
        self.frames += block.shape[0]

    def samples(self) -> np.ndarray:
        if not self._blocks:
            return np.zeros((0, self.channels), np.float32)
        joined = np.concatenate(self._blocks, axis=0) if len(self._blocks) > 1 else self._blocks[0]
        self._blocks = []
        return np.ascontiguousarray(joined, dtype=np.float32)


def _frame_limit(rate: int, max_seconds: float | None) -> int | None:
    return None if max_seconds is None else int(np.ceil(max_seconds * rate))


def _check_layout(rate: object, channels: int) -> None:
    problem = layout_problem(rate, channels)
    if problem:
        raise AudioDecodeFailedError(f"{problem}.")


def _decode_with_soundfile(opener, max_seconds: float | None) -> DecodedAudio | None:
    """libsndfile for the formats it owns; ``None`` means "let FFmpeg try"."""
    import soundfile as sf

    try:
        f = sf.SoundFile(opener())
    except Exception:  # noqa: BLE001 - not a file libsndfile can open
        return None
    with f:
        if f.format not in _SOUNDFILE_FORMATS and not (f.format == "OGG" and f.subtype in _SOUNDFILE_OGG_CODECS):
            return None
        _check_layout(f.samplerate, f.channels)
        blocks = _Blocks(f.channels, _frame_limit(f.samplerate, max_seconds))
        try:
            # Blocks, not one read: a header may declare hours (or nothing) and be wrong either way.
            while not blocks.truncated:
                block = f.read(_DECODE_BLOCK_FRAMES, dtype="float32", always_2d=True)
                if not block.shape[0]:
                    break
                blocks.add(block)
        except AudioDecodeFailedError:
            raise
        except Exception:  # noqa: BLE001 - damaged data: FFmpeg may still read it
            return None
        return DecodedAudio(blocks.samples(), int(f.samplerate), f.format, f.subtype, blocks.truncated)


def _decode_with_pyav(opener, max_seconds: float | None) -> DecodedAudio:
    import av

    with av.open(opener(), mode="r") as container:
        if not container.streams.audio:
            raise AudioDecodeFailedError("it has no audio stream.")
        stream = container.streams.audio[0]
        if stream.codec_context is None:  # FFmpeg has no decoder for this codec (e.g. a rare WAV format tag)
            raise AudioDecodeFailedError(
                "its audio codec is not one Dia Studio can decode; save it as WAV (PCM), FLAC, MP3 or Opus.")
        codec = stream.codec_context.name
        declared = int(stream.codec_context.sample_rate or 0)
        if declared:
            _check_layout(declared, max(1, int(stream.codec_context.channels or 1)))
        resampler: av.AudioResampler | None = None
        blocks: _Blocks | None = None
        rate = 0
        for frame in container.decode(stream):
            if resampler is None:
                # Fix the output rate and layout at the first frame: a stream that changes them
                # midway (rare, but legal in some containers) is converted to match.
                rate = int(frame.sample_rate)
                _check_layout(rate, len(frame.layout.channels))
                resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=rate)
                blocks = _Blocks(len(frame.layout.channels), _frame_limit(rate, max_seconds))
            for out in resampler.resample(frame):
                blocks.add(out.to_ndarray().T)
            if blocks.truncated:
                break
        if resampler is not None and not blocks.truncated:
            for out in resampler.resample(None):
                blocks.add(out.to_ndarray().T)
        fmt = container.format.name
    if blocks is None:
        raise AudioDecodeFailedError("it holds no decodable audio.")
    return DecodedAudio(blocks.samples(), rate, fmt, codec, blocks.truncated)


# --------------------------------------------------------------------------- clean-up

def _frame_rms_db(mono: np.ndarray, frame: int) -> np.ndarray:
    n = mono.shape[0] // frame
    if n == 0:
        return np.array([rms_dbfs(mono)]) if mono.size else np.zeros(0)
    frames = mono[: n * frame].reshape(n, frame).astype(np.float64)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    tail = mono[n * frame:]
    if tail.size:
        rms = np.append(rms, np.sqrt(np.mean(tail.astype(np.float64) ** 2)))
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(rms)


def trim_silence(samples: np.ndarray, sr: int, *, threshold_db: float = -40.0,
                 floor_dbfs: float = -65.0, keep_ms: float = 120.0) -> np.ndarray:
    """Cut leading and trailing silence, keeping ``keep_ms`` of it at each end.

    A 10 ms frame counts as sound when its RMS is within ``threshold_db`` of the loudest frame
    (relative, so quiet recordings trim as well as loud ones) and above ``floor_dbfs``. A clip with
    no sound at all comes back empty. Works on mono and multi-channel samples.
    """
    arr = as_float32(samples)
    if arr.shape[0] == 0:
        return arr
    frame = max(1, int(sr * 0.01))
    levels = _frame_rms_db(to_mono(arr), frame)
    if not levels.size or not np.isfinite(levels.max()):
        return arr[:0]
    loud = levels >= max(levels.max() + threshold_db, floor_dbfs)
    if not loud.any():
        return arr[:0]
    first, last = int(np.argmax(loud)), int(len(loud) - 1 - np.argmax(loud[::-1]))
    keep = int(sr * keep_ms / 1000.0)
    start = max(0, first * frame - keep)
    end = min(arr.shape[0], (last + 1) * frame + keep)
    return arr[start:end]


def normalize_loudness(samples: np.ndarray, sr: int, target_lufs: float = -20.0, *,
                       peak_ceiling_dbfs: float = -1.0, max_gain_db: float = 30.0) -> np.ndarray:
    """Scale to ``target_lufs`` integrated loudness (ITU-R BS.1770 via pyloudnorm).

    The gain is then lowered so the peak stays under ``peak_ceiling_dbfs`` (no clipping, no
    limiter) and capped at ``max_gain_db`` so a near-silent clip's noise is not blown up. Clips
    shorter than one 400 ms measurement block fall back to RMS level; silence is returned as is.
    """
    arr = as_float32(samples)
    if arr.shape[0] == 0 or peak_dbfs(arr) == float("-inf"):
        return arr.copy()
    loudness = float("-inf")
    if arr.shape[0] >= int(0.4 * sr) + 1:
        import pyloudnorm

        meter = pyloudnorm.Meter(sr)
        try:
            loudness = float(meter.integrated_loudness(arr.astype(np.float64)))
        except ValueError:
            loudness = float("-inf")
    if not np.isfinite(loudness):
        # Too short for the gated measure, or every block fell under the gate: use RMS.
        loudness = rms_dbfs(arr)
    gain_db = min(target_lufs - loudness, max_gain_db, peak_ceiling_dbfs - peak_dbfs(arr))
    return (arr * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)


def time_stretch(samples: np.ndarray, sr: int, factor: float) -> np.ndarray:
    """Change the tempo by ``factor`` without changing the pitch (Dia's ``speed_factor``).

    ``factor`` 2.0 plays twice as fast (half the duration); the range is 0.5–2.0 and 1.0 returns
    the input object untouched. The output has ``round(n / factor)`` frames.

    Library choice: python-stretch (a binding of Signalsmith Stretch). It is MIT-licensed (we
    distribute a desktop app, so pedalboard's GPLv3 Rubber Band is out), ships wheels for Linux
    x86-64, Windows and macOS, keeps pitch and timbre on espeak-ng speech as well as Rubber Band
    did in our checks, is the fastest of the three, is deterministic with a fixed seed, and returns
    exactly the expected length. audiotsm (MIT, pure Python WSOLA) has had no release since 2018
    and drifts ~1 % in length. Numbers: README, "Dependencies".
    """
    factor = float(factor)
    if not MIN_SPEED_FACTOR <= factor <= MAX_SPEED_FACTOR:
        raise InvalidParameterError(
            f"speed_factor must be between {MIN_SPEED_FACTOR} and {MAX_SPEED_FACTOR}, got {factor:g}.")
    if factor == 1.0:
        return samples
    arr = as_float32(samples)
    if arr.shape[0] == 0:
        return arr.copy()
    import python_stretch

    planar = np.ascontiguousarray((arr[None, :] if arr.ndim == 1 else arr.T), dtype=np.float32)
    stretch = python_stretch.Signalsmith.Stretch(0)  # fixed seed: same input, same output
    stretch.preset(planar.shape[0], float(sr))
    stretch.timeFactor = factor
    out = np.asarray(stretch.process(planar), dtype=np.float32)
    return np.ascontiguousarray(out[0] if arr.ndim == 1 else out.T)


def peak_envelope(samples: np.ndarray, buckets: int) -> np.ndarray:
    """Min and max per bucket, shape ``(buckets, 2)``, for drawing a waveform of any length.

    Channels are mixed to mono first. With fewer samples than buckets each bucket shows the
    sample under it; an empty clip gives zeros.
    """
    if buckets <= 0:
        raise ValueError("buckets must be positive")
    mono = to_mono(samples)
    n = mono.shape[0]
    out = np.zeros((buckets, 2), dtype=np.float32)
    if n == 0:
        return out
    starts = (np.arange(buckets, dtype=np.int64) * n) // buckets
    if n >= buckets:
        out[:, 0] = np.minimum.reduceat(mono, starts)
        out[:, 1] = np.maximum.reduceat(mono, starts)
    else:
        out[:, 0] = out[:, 1] = mono[starts]
    return out


# --------------------------------------------------------------------------- writing

_SUFFIX_FORMATS = {".wav": "wav", ".flac": "flac", ".opus": "opus", ".ogg": "opus", ".mp3": "mp3"}
# PyAV formats: container, encoder, encoder rate (None = keep), bit rate.
_PYAV_FORMATS = {"opus": ("ogg", "libopus", 48000, 96_000), "mp3": ("mp3", "libmp3lame", None, 192_000)}
_MP3_RATES = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000}


def _has_encoder(name: str) -> bool:
    try:
        import av

        av.Codec(name, "w")
        return True
    except Exception:
        return False


def export_formats() -> list[str]:
    """The formats ``write_audio`` can produce on this machine (WAV and FLAC always)."""
    formats = ["wav", "flac"]
    formats += [fmt for fmt, (_, encoder, _, _) in _PYAV_FORMATS.items() if _has_encoder(encoder)]
    return formats


def format_for_path(path: str | os.PathLike) -> str:
    """The export format a file name asks for (``.ogg`` means Opus in Ogg)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise InvalidParameterError(
            f"Unknown audio file type '{suffix or Path(path).name}'; use one of "
            + ", ".join(sorted(_SUFFIX_FORMATS)) + ".")
    return _SUFFIX_FORMATS[suffix]


def write_audio(path: str | os.PathLike, samples: np.ndarray, sr: int, *, fmt: str | None = None,
                metadata: dict[str, str] | None = None, bit_depth: int = 16, private: bool = False) -> Path:
    """Write samples atomically with ``engine.files.atomic_write`` (which also sweeps the
    ``.part`` files that killed writers left next to ``path``).

    ``fmt`` is ``wav``/``flac`` (soundfile, ``bit_depth`` 16 or 24, or 32 = 32-bit float for WAV, which
    stores the samples exactly) or ``opus``/``mp3`` (PyAV, when
    FFmpeg has the encoder); by default it comes from the suffix. ``metadata`` keys must be in
    ``METADATA_KEYS``. Samples are clipped to [-1, 1]. An export (the default) gets the umask's
    usual mode; ``private=True`` (history, voice library) gets 0600. Returns the final path.
    """
    path = Path(path)
    fmt = (fmt or format_for_path(path)).lower()
    if fmt not in ("wav", "flac", *_PYAV_FORMATS):
        raise InvalidParameterError(f"Unknown export format '{fmt}'.")
    if fmt in _PYAV_FORMATS and fmt not in export_formats():
        raise InvalidParameterError(f"This machine's FFmpeg cannot encode {fmt}; use one of {export_formats()}.")
    if bit_depth not in (16, 24, 32) or (bit_depth == 32 and fmt != "wav"):
        raise InvalidParameterError(f"bit_depth must be 16 or 24 (or 32 for float WAV), got {bit_depth}.")
    metadata = {k.lower(): str(v) for k, v in (metadata or {}).items()}
    unknown = sorted(set(metadata) - set(METADATA_KEYS))
    if unknown:
        raise InvalidParameterError(f"Unsupported metadata keys {unknown}; allowed: {', '.join(METADATA_KEYS)}.")
    arr = np.clip(as_float32(samples), -1.0, 1.0)
    if arr.ndim == 1:
        arr = arr[:, None]

    def write(tmp: Path) -> None:
        if fmt in ("wav", "flac"):
            _write_soundfile(tmp, arr, sr, fmt, metadata, bit_depth)
        else:
            _write_pyav(tmp, arr, sr, fmt, metadata)

    try:
        return atomic_write(path, write, private=private)
    except (OSError, RuntimeError) as exc:  # libsndfile's and FFmpeg's write errors are RuntimeErrors/OSErrors
        from engine.storage import storage_fault

        raise storage_fault(exc, f"write {path.name}", path.parent) from exc


def _write_soundfile(tmp: Path, arr: np.ndarray, sr: int, fmt: str, metadata: dict[str, str],
                     bit_depth: int) -> None:
    import soundfile as sf

    with sf.SoundFile(str(tmp), "w", samplerate=int(sr), channels=arr.shape[1],
                      subtype="FLOAT" if bit_depth == 32 else f"PCM_{bit_depth}", format=fmt.upper()) as f:
        for key, value in metadata.items():
            setattr(f, key, value)  # libsndfile writes tags with the header
        f.write(arr)


def _write_pyav(tmp: Path, arr: np.ndarray, sr: int, fmt: str, metadata: dict[str, str]) -> None:
    import av

    container_fmt, encoder, fixed_rate, bit_rate = _PYAV_FORMATS[fmt]
    rate = fixed_rate or (int(sr) if int(sr) in _MP3_RATES else TARGET_SAMPLE_RATE)
    arr = resample(arr, sr, rate)
    layout = "mono" if arr.shape[1] == 1 else "stereo"
    if arr.shape[1] > 2:
        arr, layout = to_mono(arr)[:, None], "mono"
    with av.open(str(tmp), mode="w", format=container_fmt) as container:
        for key, value in metadata.items():
            container.metadata[key] = value
        stream = container.add_stream(encoder, rate=rate, layout=layout)
        stream.bit_rate = bit_rate
        for key, value in metadata.items():  # Ogg keeps its comments on the stream
            stream.metadata[key] = value
        encode_planar(container, stream, arr, rate, layout)


def encode_planar(container, stream, samples: np.ndarray, rate: int, layout: str, *, block: int = 4096) -> None:
    """Encode ``(frames, channels)`` float32 samples into a PyAV ``stream`` block by block, then flush it."""
    import av

    for start in range(0, samples.shape[0], block):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[start:start + block].T),
                                           format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def read_metadata(source: AudioSource) -> dict[str, str]:
    """The tags of an audio file (container and first audio stream merged, keys lower-case)."""
    import av

    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(bytes(source))
    elif isinstance(source, os.PathLike):
        source = os.fspath(source)
    try:
        with av.open(source, mode="r") as container:
            tags = {k.lower(): v for k, v in container.metadata.items()}
            if container.streams.audio:
                tags.update({k.lower(): v for k, v in container.streams.audio[0].metadata.items()})
    except Exception as exc:
        raise AudioDecodeFailedError(f"Could not read the tags: {exc}") from exc
    return tags
