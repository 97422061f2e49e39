"""Encoding rendered audio for the API: WAV, PCM, MP3, Opus, AAC and FLAC, whole or chunk by chunk.

Every encoder takes float32 mono samples at the engine's rate and returns bytes as soon as the
codec has them, so a streamed response starts while the model is still generating. WAV streams
with a header whose sizes say "unknown" (0xFFFFFFFF, as FFmpeg and browsers read it); a whole
WAV has exact sizes. ``pcm`` is OpenAI's: raw 16-bit little-endian mono at 24 kHz, no header.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np

from engine import TARGET_SAMPLE_RATE, InvalidParameterError

PCM_RATE = 24_000
"""OpenAI's ``pcm`` format: 24 kHz, 16-bit signed little-endian, mono."""
WAV_BITS = 16
UNKNOWN_SIZE = 0xFFFFFFFF


@dataclass(frozen=True)
class AudioFormat:
    name: str
    media_type: str
    container: str = ""  # FFmpeg muxer (PyAV formats only)
    encoder: str = ""
    rate: int | None = None  # None: the engine's rate
    bit_rate: int = 0


FORMATS: dict[str, AudioFormat] = {fmt.name: fmt for fmt in (
    AudioFormat("wav", "audio/wav"),
    AudioFormat("pcm", "audio/pcm"),
    AudioFormat("mp3", "audio/mpeg", "mp3", "libmp3lame", None, 128_000),
    AudioFormat("opus", "audio/ogg", "ogg", "libopus", 48_000, 64_000),
    AudioFormat("aac", "audio/aac", "adts", "aac", None, 128_000),
    AudioFormat("flac", "audio/flac", "flac", "flac", None, 0),
)}


def audio_format(name: str) -> AudioFormat:
    """The format called ``name``; ``InvalidParameterError`` naming the choices otherwise."""
    fmt = FORMATS.get(name)
    if fmt is None:
        raise InvalidParameterError(f"response_format must be one of {', '.join(FORMATS)} (got {name!r})")
    return fmt


def to_int16(samples: np.ndarray) -> bytes:
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return np.round(clipped * 32767.0).astype("<i2").tobytes()


def wav_header(sample_rate: int, data_bytes: int | None) -> bytes:
    """A 44-byte PCM WAV header; ``data_bytes=None`` writes the "unknown length" sizes of a stream."""
    block = WAV_BITS // 8
    if data_bytes is None:
        riff, data = UNKNOWN_SIZE, UNKNOWN_SIZE
    else:
        riff, data = 36 + data_bytes, data_bytes
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * block, block, WAV_BITS)
            + b"data" + struct.pack("<I", data))


class Encoder:
    """Chunks in (``feed``), encoded bytes out; ``finish`` flushes the codec."""

    def feed(self, samples: np.ndarray) -> bytes:
        raise NotImplementedError

    def finish(self) -> bytes:
        return b""


class WavStreamEncoder(Encoder):
    def __init__(self, sample_rate: int) -> None:
        self.header: bytes | None = wav_header(sample_rate, None)

    def feed(self, samples: np.ndarray) -> bytes:
        head, self.header = self.header or b"", None
        return head + to_int16(samples)

    def finish(self) -> bytes:
        return self.header or b""  # an empty render still gets a valid header


class PcmEncoder(Encoder):
    def __init__(self, sample_rate: int) -> None:
        import soxr

        self.stream = soxr.ResampleStream(sample_rate, PCM_RATE, 1, dtype="float32")

    def feed(self, samples: np.ndarray) -> bytes:
        return to_int16(self.stream.resample_chunk(np.asarray(samples, dtype=np.float32)))

    def finish(self) -> bytes:
        return to_int16(self.stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))


class _Sink:
    """A write-only file for FFmpeg's muxer: what it writes is collected until taken."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


class PyAVEncoder(Encoder):
    """MP3, Opus (Ogg), AAC (ADTS) and FLAC through FFmpeg; ``output`` may be a seekable file
    (a whole file, exact headers) or None (a stream)."""

    def __init__(self, fmt: AudioFormat, sample_rate: int, output: io.BytesIO | None = None) -> None:
        import av

        self.sink = _Sink() if output is None else None
        self.sample_rate = sample_rate
        try:
            self.container = av.open(output if output is not None else self.sink, mode="w", format=fmt.container)
            self.stream = self.container.add_stream(fmt.encoder, rate=fmt.rate or sample_rate, layout="mono")
        except Exception as exc:  # noqa: BLE001 - FFmpeg built without this encoder (PyAV raises variously)
            raise InvalidParameterError(f"this machine's FFmpeg cannot encode {fmt.name} ({exc}); choose "
                                        "wav, pcm or flac") from None
        if fmt.bit_rate:
            self.stream.bit_rate = fmt.bit_rate
        self.resampler = av.AudioResampler(format=self.stream.codec_context.format.name, layout="mono",
                                           rate=fmt.rate or sample_rate)
        self.position = 0

    def _frame(self, samples: np.ndarray):
        import av

        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, dtype=np.float32)[None, :],
                                           format="flt", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self.position
        self.position += samples.shape[0]
        return frame

    def _encode(self, frame) -> bytes:
        for resampled in self.resampler.resample(frame):
            for packet in self.stream.encode(resampled):
                self.container.mux(packet)
        return self.sink.take() if self.sink is not None else b""

    def feed(self, samples: np.ndarray) -> bytes:
        samples = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
        return self._encode(self._frame(samples)) if samples.size else b""

    def finish(self) -> bytes:
        self._encode(None)
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()
        return self.sink.take() if self.sink is not None else b""


def stream_encoder(fmt: AudioFormat, sample_rate: int = TARGET_SAMPLE_RATE) -> Encoder:
    """An encoder for a streamed response in ``fmt``."""
    if fmt.name == "wav":
        return WavStreamEncoder(sample_rate)
    if fmt.name == "pcm":
        return PcmEncoder(sample_rate)
    return PyAVEncoder(fmt, sample_rate)


def encode(samples: np.ndarray, fmt: AudioFormat, sample_rate: int = TARGET_SAMPLE_RATE) -> bytes:
    """A whole file of ``samples`` in ``fmt`` (exact headers and lengths)."""
    if fmt.name == "wav":
        data = to_int16(samples)
        return wav_header(sample_rate, len(data)) + data
    if fmt.name == "pcm":
        encoder = PcmEncoder(sample_rate)
        return encoder.feed(samples) + encoder.finish()
    if fmt.name == "flac":
        import soundfile as sf

        buffer = io.BytesIO()
        sf.write(buffer, np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0), sample_rate,
                 format="FLAC", subtype="PCM_16")
        return buffer.getvalue()
    buffer = io.BytesIO()
    encoder = PyAVEncoder(fmt, sample_rate, buffer)
    encoder.feed(samples)
    encoder.finish()
    return buffer.getvalue()
