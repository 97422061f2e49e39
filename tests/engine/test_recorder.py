"""engine.recorder on real PortAudio streams (ALSA null/file devices) and without any device.

The session's ALSA config (tests/alsa-null.conf) gives one unpaced capture device reading
/dev/zero. For real speech, a child process points ALSA at a config whose capture ``infile`` is
espeak-ng speech as raw float32, so the microphone delivers known audio sample for sample.
Missing PortAudio and "no device at all" also run in child processes, since PortAudio reads the
device list once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine import audio, recorder
from engine.errors import DeviceUnavailableError, InvalidParameterError
from tests.engine.test_audio_samples import speech  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
SR = audio.TARGET_SAMPLE_RATE

needs_device = pytest.mark.skipif(not recorder.input_status().available,
                                  reason="no PortAudio capture device (install libportaudio2)")


def speech_alsa_config(directory: Path, samples: np.ndarray) -> Path:
    """An ALSA config whose default capture device plays ``samples`` (44.1 kHz mono float32)."""
    raw = directory / "mic.f32"
    # Loop the speech so a recording never runs past the end of the file.
    np.tile(samples.astype("<f4"), 4).tofile(raw)
    conf = directory / "alsa-speech.conf"
    conf.write_text(textwrap.dedent(f"""\
        </usr/share/alsa/alsa.conf>
        pcm.!default {{
            type file
            slave.pcm "null"
            file "/dev/null"
            infile "{raw}"
            format "raw"
        }}
        """))
    return conf


def run_python(code: str, **env: str) -> dict:
    """Run ``code`` in a child interpreter with extra environment; it prints one JSON line."""
    full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(
        p for p in (env.get("PYTHONPATH"), str(ROOT)) if p)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- real streams

@needs_device
def test_records_exactly_the_requested_frames():
    start = time.monotonic()
    levels = []
    take = recorder.record(2.5, on_level=lambda level, seconds: levels.append((level, seconds)))
    assert take.sample_rate == SR  # 44.1 kHz when the device offers it: no resampling later
    assert take.samples.shape == (int(2.5 * SR), 1) and take.samples.dtype == np.float32
    assert take.frames == int(2.5 * SR) and take.duration == pytest.approx(2.5)
    assert not take.samples.any()  # the null device reads /dev/zero
    assert take.mono.shape == (take.frames,)
    assert time.monotonic() - start < 2.0  # ended by frame count, not by the clock
    assert levels and all(level.peak_dbfs == float("-inf") for level, _ in levels)
    assert levels[-1][1] == pytest.approx(2.5)


@needs_device
def test_recorder_object_frames_channels_and_misuse():
    with recorder.Recorder(channels=2) as rec:
        rec.start(frames=12345)
        assert rec.wait(10)
        assert rec.frames_recorded == 12345 and not rec.running
        take = rec.stop()
        assert take.samples.shape == (12345, 2)
        with pytest.raises(InvalidParameterError):
            rec.start(seconds=0)
        with pytest.raises(InvalidParameterError):
            rec.start(seconds=recorder.MAX_RECORD_SECONDS + 1)
        rec.start(seconds=1)
        with pytest.raises(RuntimeError, match="already recording"):
            rec.start(seconds=1)
        rec.stop()
    with pytest.raises(InvalidParameterError):
        recorder.Recorder(channels=0)
    assert recorder.input_devices()[0].is_default


@needs_device
def test_real_speech_arrives_sample_for_sample(speech, tmp_path):
    decoded = audio.decode_audio(speech["wav"])
    voice = audio.resample(audio.to_mono(decoded.samples), decoded.sample_rate)
    np.save(tmp_path / "expected.npy", voice)
    conf = speech_alsa_config(tmp_path, voice)
    result = run_python(f"""
        import json, numpy as np
        from engine import recorder
        levels = []
        take = recorder.record(3.0, on_level=lambda level, s: levels.append(level.peak_dbfs))
        np.save({str(tmp_path / "take.npy")!r}, take.samples)
        print(json.dumps({{"rate": take.sample_rate, "levels": levels}}))
        """, ALSA_CONFIG_PATH=str(conf))
    take = np.load(tmp_path / "take.npy")
    assert result["rate"] == SR and take.shape == (3 * SR, 1)
    assert np.array_equal(take[:, 0], voice[: 3 * SR])
    assert max(result["levels"]) == pytest.approx(audio.peak_dbfs(voice[: 3 * SR]), abs=0.01)


# --------------------------------------------------------------------------- levels and stop, paced

class PacedStream:
    """Stands in for sounddevice.InputStream where real-time pacing matters: a thread delivers a
    440 Hz tone in 10 ms blocks, like a real microphone (the ALSA test devices are unpaced)."""

    def __init__(self, *, samplerate, channels, callback, finished_callback, **kwargs):
        self.rate, self.channels = int(samplerate), channels
        self.callback, self.finished = callback, finished_callback
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        block, pos = self.rate // 100, 0
        status = type("Status", (), {"input_overflow": False})()
        try:
            while not self.stopped.is_set():
                t = (pos + np.arange(block)) / self.rate
                data = np.repeat((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None], self.channels, 1)
                status.input_overflow = pos == block * 3  # one overflow report, to be counted
                self.callback(data, block, None, status)
                pos += block
                time.sleep(0.01)
        except FakeSoundDevice.CallbackStop:
            pass
        self.finished()

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopped.set()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join()

    def close(self):
        self.stop()


class FakeSoundDevice:
    class CallbackStop(Exception):
        pass

    class PortAudioError(Exception):
        pass

    InputStream = PacedStream

    @staticmethod
    def check_input_settings(**kwargs):
        return None


def test_levels_come_from_poll_and_stop_on_request(monkeypatch):
    monkeypatch.setattr(recorder, "load_sounddevice", lambda: FakeSoundDevice)
    rec = recorder.Recorder()
    rec.start(seconds=30)
    levels = []
    deadline = time.monotonic() + 5
    while rec.seconds_recorded < 0.15 and time.monotonic() < deadline:
        level = rec.poll()
        if level is not None:
            levels.append(level)
        time.sleep(0.02)
    take = rec.stop()
    assert rec.running is False
    assert 0.15 <= take.duration < 5 and take.frames < 30 * SR
    assert take.overflows == 1
    assert levels and all(lv.peak_dbfs == pytest.approx(-6.02, abs=0.05) for lv in levels)
    assert all(lv.rms_dbfs == pytest.approx(-9.03, abs=0.3) for lv in levels)
    assert rec.poll() is None  # nothing arrives after stop


# --------------------------------------------------------------------------- no device, no PortAudio

def test_no_capture_device_is_a_normal_state(tmp_path):
    bare = tmp_path / "alsa-bare.conf"
    bare.write_text("</usr/share/alsa/alsa.conf>\n")  # no default device at all
    result = run_python("""
        import json
        from engine import recorder
        from engine.errors import DeviceUnavailableError
        status = recorder.input_status()
        try:
            recorder.record(1.0)
            error = None
        except DeviceUnavailableError as exc:
            error = [exc.code, exc.message]
        print(json.dumps({"available": status.available, "message": status.message, "error": error}))
        """, ALSA_CONFIG_PATH=str(bare))
    assert result["available"] is False and "No microphone" in result["message"]
    assert result["error"][0] == "device_unavailable" and "No microphone" in result["error"][1]


def test_missing_portaudio_is_a_normal_state(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    # What `import sounddevice` does when libportaudio2 is not installed.
    (fake / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    result = run_python("""
        import json
        from engine import recorder
        from engine.errors import DeviceUnavailableError
        status = recorder.input_status()
        try:
            recorder.Recorder()
            error = None
        except DeviceUnavailableError as exc:
            error = exc.code
        print(json.dumps({"available": status.available, "message": status.message, "error": error}))
        """, PYTHONPATH=str(fake))
    assert result["available"] is False
    assert "PortAudio" in result["message"] and "libportaudio2" in result["message"]
    assert result["error"] == "device_unavailable"


def test_load_sounddevice_error_type(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # makes the import fail
    with pytest.raises(DeviceUnavailableError):
        recorder.load_sounddevice()
