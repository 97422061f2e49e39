"""Audio playback through sounddevice (PortAudio), fed from a growing buffer.

The PortAudio callback only copies samples out of the buffer. A GUI-thread timer reads the
position for the playhead and handles the end of the stream. While a render streams in, audio
is appended to the buffer; when playback catches up with the render it pauses ("buffering") and
resumes once enough new audio has arrived, instead of spinning on silence.

No PortAudio library or no output device is a normal state: ``available_outputs()`` reports it
and ``play()`` emits ``error`` with a message instead of raising.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

import engine

log = logging.getLogger(__name__)

STOPPED, PLAYING, PAUSED, BUFFERING = "stopped", "playing", "paused", "buffering"
RESUME_SECONDS = 0.4  # audio that must be ahead of the playhead before buffering ends
TICK_MS = 33
DEVICE_NODES = Path("/dev/snd")  # Linux: sound device nodes come and go as devices are plugged in
DEVICE_SETTLE_MS = 700  # wait for a plugged-in device to finish appearing before rescanning

_players: weakref.WeakSet[AudioPlayer] = weakref.WeakSet()
_holds: set[int] = set()  # ids of other owners of open streams (the recorder)


def hold_audio(owner: object) -> None:
    """Mark a stream outside ``AudioPlayer`` (a recording) as open: no rescan may pull PortAudio away."""
    _holds.add(id(owner))


def release_audio(owner: object) -> None:
    _holds.discard(id(owner))


def audio_in_use() -> bool:
    return bool(_holds) or any(player.has_stream for player in list(_players))


def rescan_devices() -> bool:
    """Let PortAudio look for devices again (its list is fixed when it starts). Only while no stream
    of ours is open, since restarting PortAudio closes them; returns whether it rescanned."""
    sd = load_sounddevice()
    if sd is None or audio_in_use():
        return False
    try:
        sd._terminate()  # sounddevice's documented way to refresh the device list
        sd._initialize()
    except Exception as exc:  # noqa: BLE001 - PortAudio errors vary by platform
        log.warning("rescanning the audio devices failed: %s", exc)
        return False
    return True


class DeviceWatcher(QObject):
    """Emits ``changed`` (once things settle) when sound devices appear or go, where the OS shows it."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None, nodes: Path = DEVICE_NODES) -> None:
        super().__init__(parent)
        self._settle = QTimer(self, singleShot=True, interval=DEVICE_SETTLE_MS)
        self._settle.timeout.connect(self.changed)
        self._watcher = QFileSystemWatcher(self)
        if nodes.is_dir():
            self._watcher.addPath(str(nodes))
        self._watcher.directoryChanged.connect(lambda _p: self._settle.start())


@dataclass(frozen=True)
class OutputDevice:
    index: int
    name: str
    host_api: str
    is_default: bool

    @property
    def label(self) -> str:
        return f"{self.name} ({self.host_api})" + (" — default" if self.is_default else "")


def load_sounddevice() -> ModuleType | None:
    try:
        import sounddevice
    except (OSError, ImportError) as exc:  # OSError: the PortAudio library is missing
        log.warning("sounddevice unavailable: %s", exc)
        return None
    return sounddevice


def available_outputs() -> tuple[list[OutputDevice], str]:
    """The output devices and a status message ("" when all is well). Never raises."""
    sd = load_sounddevice()
    if sd is None:
        return [], "Playback is unavailable: the PortAudio library is missing (Debian/Ubuntu: sudo apt install libportaudio2)."
    try:
        default_out = sd.default.device[1]
        apis = sd.query_hostapis()
        devices = [OutputDevice(int(d["index"]), d["name"], apis[d["hostapi"]]["name"], int(d["index"]) == default_out)
                   for d in sd.query_devices() if d["max_output_channels"] > 0]
    except Exception as exc:  # noqa: BLE001 - PortAudio errors vary by platform
        return [], f"Can't list the audio outputs: {exc}"
    if not devices:
        return [], "No audio output found: connect speakers or headphones, then open the Output list again."
    return devices, ""


class AudioPlayer(QObject):
    """Plays mono float32 audio; the buffer can grow while playing (streamed renders)."""

    stateChanged = Signal(str)
    positionChanged = Signal(float)  # seconds
    durationChanged = Signal(float)  # seconds available so far
    finished = Signal()
    error = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.sample_rate = engine.TARGET_SAMPLE_RATE
        self.device: int | str | None = None  # None = the system default
        self._lock = threading.Lock()
        self._buf = np.zeros(0, dtype=np.float32)
        self._length = 0
        self._pos = 0
        self._streaming = False  # more audio may be appended
        self._stream = None
        self._sd: ModuleType | None = None
        self._state = STOPPED
        self._latency = 0.0
        self._timer = QTimer(self, interval=TICK_MS)
        self._timer.timeout.connect(self._tick)
        self.source: object = None  # what is loaded (the window keeps its own description here)
        _players.add(self)

    # -- content

    @property
    def state(self) -> str:
        return self._state

    @property
    def duration(self) -> float:
        return self._length / self.sample_rate

    @property
    def position(self) -> float:
        """Seconds into the audio of what is being heard (output latency taken into account)."""
        with self._lock:
            pos = self._pos
        if self._state == PLAYING:
            pos -= int(self._latency * self.sample_rate)
        return max(0, min(pos, self._length)) / self.sample_rate

    @property
    def streaming(self) -> bool:
        return self._streaming

    @property
    def has_stream(self) -> bool:
        """A PortAudio stream is open."""
        return self._stream is not None

    def samples(self) -> np.ndarray:
        """A copy-free view of the audio loaded so far."""
        return self._buf[:self._length]

    def load(self, samples: np.ndarray, sample_rate: int, source: object = None) -> None:
        """Replace the audio (stops playback)."""
        self.stop()
        audio = np.ascontiguousarray(np.asarray(samples, dtype=np.float32).reshape(-1))
        with self._lock:
            self._buf = audio.copy()
            self._length = audio.shape[0]
            self._pos = 0
            self._streaming = False
        self.sample_rate = int(sample_rate)
        self.source = source
        self.durationChanged.emit(self.duration)
        self.positionChanged.emit(0.0)

    def begin_stream(self, sample_rate: int, source: object = None, expected_seconds: float = 0.0) -> None:
        """Start an empty buffer that ``append`` fills while a render runs."""
        self.stop()
        capacity = max(int(expected_seconds * sample_rate), sample_rate * 5)
        with self._lock:
            self._buf = np.zeros(capacity, dtype=np.float32)
            self._length = 0
            self._pos = 0
            self._streaming = True
        self.sample_rate = int(sample_rate)
        self.source = source
        self.durationChanged.emit(0.0)
        self.positionChanged.emit(0.0)

    def append(self, samples: np.ndarray, start: int | None = None) -> None:
        """Add streamed audio at ``start`` (default: the end)."""
        chunk = np.asarray(samples, dtype=np.float32).reshape(-1)
        with self._lock:
            at = self._length if start is None else int(start)
            end = at + chunk.shape[0]
            if end > self._buf.shape[0]:
                grown = np.zeros(max(end, self._buf.shape[0] * 2), dtype=np.float32)
                grown[:self._length] = self._buf[:self._length]
                self._buf = grown
            self._buf[at:end] = chunk
            self._length = max(self._length, end)
        self.durationChanged.emit(self.duration)
        if self._state == BUFFERING and (self._length - self._pos) >= RESUME_SECONDS * self.sample_rate:
            self._start_stream()

    def end_stream(self, final: np.ndarray | None = None) -> None:
        """No more audio will come; ``final`` (the finished render) replaces what streamed in."""
        with self._lock:
            if final is not None:
                final = np.ascontiguousarray(np.asarray(final, dtype=np.float32).reshape(-1))
                self._buf = final.copy()
                self._length = final.shape[0]
                self._pos = min(self._pos, self._length)
            self._streaming = False
        self.durationChanged.emit(self.duration)
        if self._state == BUFFERING:
            if self._pos < self._length:
                self._start_stream()
            else:  # the playhead had caught up with the render: playback is complete
                with self._lock:
                    self._pos = 0
                self._set_state(STOPPED)
                self.positionChanged.emit(0.0)
                self.finished.emit()

    def clear(self) -> None:
        self.stop()
        with self._lock:
            self._buf = np.zeros(0, dtype=np.float32)
            self._length = self._pos = 0
            self._streaming = False
        self.source = None
        self.durationChanged.emit(0.0)
        self.positionChanged.emit(0.0)

    # -- transport

    def play(self) -> bool:
        """Start or resume; False (and ``error``) when no audio device can be used."""
        if self._state == PLAYING:
            return True
        if self._length == 0 and not self._streaming:
            return False
        with self._lock:
            if self._pos >= self._length and not self._streaming:
                self._pos = 0  # play again from the start
        if self._streaming and self._length - self._pos < RESUME_SECONDS * self.sample_rate:
            self._set_state(BUFFERING)
            self._timer.start()
            return True
        return self._start_stream()

    def pause(self) -> None:
        if self._state in (PLAYING, BUFFERING):
            self._close_stream()
            self._set_state(PAUSED)

    def toggle(self) -> None:
        if self._state in (PLAYING, BUFFERING):
            self.pause()
        else:
            self.play()

    def stop(self) -> None:
        self._close_stream()
        with self._lock:
            self._pos = 0
        if self._state != STOPPED:
            self._set_state(STOPPED)
        self.positionChanged.emit(0.0)

    def seek(self, seconds: float) -> None:
        with self._lock:
            self._pos = max(0, min(int(seconds * self.sample_rate), self._length))
        self.positionChanged.emit(self._pos / self.sample_rate)

    def set_device(self, device: int | str | None) -> None:
        """Use another output; a running playback moves to it."""
        playing = self._state == PLAYING
        self.device = device
        if playing:
            self._close_stream()
            self._start_stream()

    # -- PortAudio

    def _start_stream(self) -> bool:
        sd = load_sounddevice()
        if sd is None:
            self.error.emit("Playback is unavailable: the PortAudio library is missing.")
            self._set_state(STOPPED)
            return False
        self._close_stream()
        self._sd = sd
        try:
            stream = sd.OutputStream(samplerate=self.sample_rate, channels=1, dtype="float32", device=self.device,
                                     callback=self._callback)
            stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudio/ValueError: no device, busy, bad rate
            log.warning("can't open the audio output: %s", exc)
            devices, status = available_outputs()
            self.error.emit(status if not devices else
                            f"Can't play on this audio output: {exc}. Choose another output device.")
            self._set_state(STOPPED)
            return False
        self._stream = stream
        try:
            self._latency = float(stream.latency)
        except Exception:  # noqa: BLE001
            self._latency = 0.0
        self._set_state(PLAYING)
        self._timer.start()
        return True

    def _callback(self, outdata, frames, time_info, status) -> None:  # PortAudio thread: copy only
        with self._lock:
            n = max(0, min(frames, self._length - self._pos))
            outdata[:n, 0] = self._buf[self._pos:self._pos + n]
            self._pos += n
        if n < frames:  # out of audio: the GUI timer sees the stream stop and decides what follows
            outdata[n:] = 0
            raise self._sd.CallbackStop

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception as exc:  # noqa: BLE001
                log.warning("closing the audio stream: %s", exc)

    def _tick(self) -> None:
        stream = self._stream
        if self._state == PLAYING and stream is not None and not stream.active:
            self._close_stream()
            with self._lock:
                remaining = self._length - self._pos
            if remaining > 0 and not self._streaming:
                self._start_stream()  # audio arrived after the callback ran dry (end of a stream)
            elif self._streaming and remaining >= RESUME_SECONDS * self.sample_rate:
                self._start_stream()
            elif self._streaming:
                self._set_state(BUFFERING)
            else:
                with self._lock:
                    self._pos = 0
                self._set_state(STOPPED)
                self.positionChanged.emit(0.0)
                self.finished.emit()
                return
        if self._state in (PLAYING, BUFFERING):
            self.positionChanged.emit(self.position)
        else:
            self._timer.stop()

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.stateChanged.emit(state)
        if state in (STOPPED, PAUSED):
            self._timer.stop()

    def shutdown(self) -> None:
        self._timer.stop()
        self._close_stream()

