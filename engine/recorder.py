"""Microphone capture with sounddevice (PortAudio), Qt-free.

The PortAudio callback only copies each block into a queue and counts frames; it ends the stream
itself once the requested number of frames has arrived (so a recording's length never depends on
wall-clock timing, which also makes unpaced test devices work). Levels for a meter are computed
outside the callback, in ``Recorder.poll()``, which a GUI timer calls ~30 times a second.

No PortAudio library or no input device is a normal state: ``input_status()`` reports it
without raising, and the other entry points raise ``DeviceUnavailableError`` with a message a
user can act on.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from engine import audio
from engine.errors import DeviceUnavailableError, InvalidParameterError

MAX_RECORD_SECONDS = 60.0
PREFERRED_SAMPLE_RATE = audio.TARGET_SAMPLE_RATE


def _missing_portaudio_message() -> str:
    if sys.platform.startswith("linux"):
        hint = "install it with your package manager (Debian/Ubuntu: sudo apt install libportaudio2)"
    else:
        hint = "reinstall Dia Studio (the sounddevice package ships it on this system)"
    return f"Recording is unavailable: the PortAudio audio library is missing; {hint}."


def load_sounddevice() -> ModuleType:
    """Import sounddevice; ``DeviceUnavailableError`` when PortAudio can't be loaded."""
    try:
        import sounddevice
    except (OSError, ImportError) as exc:  # sounddevice raises OSError when libportaudio is absent
        raise DeviceUnavailableError(_missing_portaudio_message()) from exc
    return sounddevice


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    host_api: str
    channels: int
    default_samplerate: float
    is_default: bool


@dataclass(frozen=True)
class InputStatus:
    """Whether recording can work here, and why not."""

    available: bool
    message: str
    devices: tuple[InputDevice, ...] = ()


@dataclass(frozen=True)
class Level:
    """Meter reading for the audio that arrived since the previous poll."""

    peak_dbfs: float
    rms_dbfs: float


@dataclass(frozen=True)
class Recording:
    samples: np.ndarray
    """float32, shaped ``(n, channels)``."""
    sample_rate: int
    overflows: int = 0
    """Blocks PortAudio reported as overflowed (audio lost because the machine was too busy)."""

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        return self.frames / float(self.sample_rate)

    @property
    def mono(self) -> np.ndarray:
        return audio.to_mono(self.samples)


def input_devices() -> list[InputDevice]:
    """The microphones PortAudio sees (the list is fixed when PortAudio starts)."""
    sd = load_sounddevice()
    try:
        default_in = sd.default.device[0]
        if default_in is None or default_in < 0:
            default_in = sd.query_devices(kind="input")["index"] if _has_default_input(sd) else -1
        apis = sd.query_hostapis()
        return [InputDevice(int(d["index"]), d["name"], apis[d["hostapi"]]["name"],
                            int(d["max_input_channels"]), float(d["default_samplerate"]),
                            int(d["index"]) == default_in)
                for d in sd.query_devices() if d["max_input_channels"] > 0]
    except sd.PortAudioError as exc:
        raise DeviceUnavailableError(f"Can't list the audio devices: {exc}") from exc


def _has_default_input(sd: ModuleType) -> bool:
    try:
        sd.query_devices(kind="input")
        return True
    except (sd.PortAudioError, ValueError):
        return False


def input_status() -> InputStatus:
    """Can we record? Never raises: a missing library or device is reported in ``message``."""
    try:
        devices = input_devices()
    except DeviceUnavailableError as exc:
        return InputStatus(False, exc.message)
    if not devices:
        return InputStatus(False, "No microphone found. Connect one, then restart Dia Studio.")
    default = next((d for d in devices if d.is_default), devices[0])
    return InputStatus(True, f"Ready to record from {default.name}.", tuple(devices))


class Recorder:
    """One take from an input device; ``start()``, ``poll()`` for levels, then ``stop()``."""

    def __init__(self, *, device: int | str | None = None, sample_rate: int | None = None,
                 channels: int = 1, blocksize: int = 0) -> None:
        if channels < 1:
            raise InvalidParameterError("channels must be at least 1")
        self._sd = load_sounddevice()
        self.device = device
        self.channels = channels
        self.blocksize = blocksize
        self.sample_rate = int(sample_rate or self._pick_rate())
        self._queue: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        self._chunks: list[np.ndarray] = []
        self._stream = None
        self._done = threading.Event()
        self._target = 0
        self._captured = 0  # written only by the callback
        self._overflows = 0
        self._drained = 0

    def _pick_rate(self) -> int:
        """44.1 kHz when the device takes it (no resampling later), else its default rate."""
        sd = self._sd
        try:
            sd.check_input_settings(device=self.device, channels=self.channels,
                                    samplerate=PREFERRED_SAMPLE_RATE, dtype="float32")
            return PREFERRED_SAMPLE_RATE
        except (sd.PortAudioError, ValueError):
            pass
        try:
            return int(sd.query_devices(self.device, kind="input")["default_samplerate"])
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceUnavailableError(
                "No microphone found. Connect one, then restart Dia Studio." if self.device is None
                else f"Can't use the input device {self.device!r}: {exc}") from exc

    # -- PortAudio thread

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self._overflows += 1
        take = min(frames, self._target - self._captured)
        if take > 0:
            self._queue.put(indata[:take].copy())
            self._captured += take
        if self._captured >= self._target:
            raise self._sd.CallbackStop

    def _finished(self) -> None:
        self._done.set()

    # -- caller's thread

    def start(self, *, seconds: float | None = None, frames: int | None = None) -> None:
        """Open the stream and record until ``frames`` (or ``seconds``) arrived, or ``stop()``."""
        if self._stream is not None:
            raise RuntimeError("this recorder is already recording")
        if frames is None:
            frames = int(round((seconds if seconds is not None else MAX_RECORD_SECONDS) * self.sample_rate))
        if not 0 < frames <= MAX_RECORD_SECONDS * self.sample_rate:
            raise InvalidParameterError(f"A recording lasts between 0 and {MAX_RECORD_SECONDS:g} seconds.")
        self._target = int(frames)
        sd = self._sd
        try:
            self._stream = sd.InputStream(
                device=self.device, channels=self.channels, samplerate=self.sample_rate,
                dtype="float32", blocksize=self.blocksize, callback=self._callback,
                finished_callback=self._finished)
            self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            self._close_stream()
            raise DeviceUnavailableError(f"Can't open the microphone: {exc}") from exc

    @property
    def running(self) -> bool:
        return self._stream is not None and not self._done.is_set()

    @property
    def frames_recorded(self) -> int:
        return self._captured

    @property
    def seconds_recorded(self) -> float:
        return self._captured / float(self.sample_rate)

    @property
    def overflows(self) -> int:
        return self._overflows

    def poll(self) -> Level | None:
        """Move arrived audio into the take; the level of that audio, or ``None`` if none came."""
        fresh = []
        while True:
            try:
                fresh.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not fresh:
            return None
        self._chunks.extend(fresh)
        block = np.concatenate(fresh)
        self._drained += block.shape[0]
        return Level(audio.peak_dbfs(block), audio.rms_dbfs(block))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the requested frames have arrived; False on timeout."""
        return self._done.wait(timeout)

    def stop(self) -> Recording:
        """End the take (if still running) and return everything recorded."""
        self._close_stream()
        self.poll()
        samples = (np.concatenate(self._chunks) if self._chunks
                   else np.zeros((0, self.channels), dtype=np.float32))
        self._chunks = []
        return Recording(samples, self.sample_rate, self._overflows)

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()
        self._done.set()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close_stream()


def record(seconds: float, *, device: int | str | None = None, sample_rate: int | None = None,
           channels: int = 1, on_level=None, poll_interval: float = 0.05) -> Recording:
    """Record ``seconds`` of audio (ended by frame count), calling ``on_level(level, seconds_so_far)``."""
    recorder = Recorder(device=device, sample_rate=sample_rate, channels=channels)
    with recorder:
        recorder.start(seconds=seconds)
        deadline = time.monotonic() + seconds * 3 + 10  # a stuck device must not hang us forever
        while True:
            finished = recorder.wait(poll_interval)
            level = recorder.poll()  # also after the last block, so a meter always sees the end
            if level is not None and on_level is not None:
                on_level(level, recorder.seconds_recorded)
            if finished:
                break
            if time.monotonic() > deadline:
                raise DeviceUnavailableError("The microphone stopped delivering audio.")
        take = recorder.stop()
    if take.frames < int(round(seconds * recorder.sample_rate)):
        raise DeviceUnavailableError("The microphone stopped before the recording was complete.")
    return take
