"""Real speech files in every format a user may import, made on the spot.

espeak-ng speaks a sentence to WAV and PyAV encodes it to the other formats. Other test modules
import ``speech_files`` / ``speak`` from here; the tests below check the files are what they claim.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

SENTENCE = "The quick brown fox jumps over the lazy dog while the studio records every word clearly."

# name -> (container, encoder, encoder rate or None for the source rate, channel layout)
ENCODINGS = {
    "flac": ("flac", "flac", None, "mono"),
    "mp3": ("mp3", "libmp3lame", None, "mono"),
    "m4a": ("ipod", "aac", None, "mono"),
    "ogg": ("ogg", "vorbis", None, "stereo"),  # FFmpeg's Vorbis encoder only does stereo
    "opus": ("ogg", "libopus", 48000, "mono"),
    "webm": ("webm", "libopus", 48000, "mono"),  # what a browser's MediaRecorder produces
}
FORMATS = ("wav", *ENCODINGS)

_CACHE: dict[Path, dict[str, Path]] = {}


def speak(path: Path, text: str = SENTENCE, *, words_per_minute: int | None = None) -> Path:
    """Speak ``text`` with espeak-ng into a 22.05 kHz mono WAV."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is missing: run scripts/setup.sh --dev (apt-get install espeak-ng)")
    cmd = [exe, "-w", str(path)]
    if words_per_minute:
        cmd += ["-s", str(words_per_minute)]
    subprocess.run(cmd + [text], check=True, capture_output=True)
    return path


def encode(samples: np.ndarray, sr: int, path: Path, container: str, encoder: str,
           rate: int | None = None, layout: str = "mono") -> Path:
    """Encode mono float32 samples with PyAV (resampling and duplicating channels as needed)."""
    import soxr

    rate = rate or sr
    x = samples if rate == sr else soxr.resample(samples, sr, rate).astype(np.float32)
    planar = np.stack([x, x * 0.8]) if layout == "stereo" else x[None, :]
    options = {"strict": "experimental"} if encoder == "vorbis" else {}
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(encoder, rate=rate, layout=layout, options=options)
        for start in range(0, planar.shape[1], 2048):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, start:start + 2048]),
                                               format="fltp", layout=layout)
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def speech_files(directory: Path) -> dict[str, Path]:
    """``{format: path}`` for the sentence in every format (made once per directory)."""
    directory = Path(directory)
    if directory not in _CACHE:
        directory.mkdir(parents=True, exist_ok=True)
        wav = speak(directory / "speech.wav")
        samples, sr = sf.read(wav, dtype="float32")
        files = {"wav": wav}
        for name, (container, encoder, rate, layout) in ENCODINGS.items():
            files[name] = encode(samples, sr, directory / f"speech.{name}", container, encoder, rate, layout)
        _CACHE[directory] = files
    return _CACHE[directory]


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> dict[str, Path]:
    return speech_files(tmp_path_factory.getbasetemp() / "speech")


def test_every_format_is_what_it_claims(speech):
    expected = {"wav": "pcm_s16le", "flac": "flac", "mp3": "mp3", "m4a": "aac", "ogg": "vorbis",
                "opus": "opus", "webm": "opus"}
    assert set(speech) == set(FORMATS)
    for name, path in speech.items():
        with av.open(str(path)) as c:
            assert c.streams.audio[0].codec_context.name.startswith(expected[name]), name
            assert 4.0 < float(c.duration) / 1e6 < 6.5, name
