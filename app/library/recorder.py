"""The recorder dialog: device, countdown, a sentence to read, live level, auto-stop, preview, save.

Recording ends by frame count (``engine.Recorder``), so it also works on unpaced test devices.
The take is kept until it is saved or discarded: a failed save (silent clip, full disk) shows why
and lets the user try again without recording twice.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

import engine
from app import settings as opts
from app.errors import describe
from app.library import length_rule
from app.library.meter import LevelMeter
from app.panels.player import RescanComboBox
from app.playback import (
    AudioPlayer,
    DeviceWatcher,
    hold_audio,
    load_sounddevice,
    release_audio,
    rescan_devices,
)
from app.settings import Settings
from app.tasks import TaskRunner

log = logging.getLogger(__name__)

POLL_MS = 33
SENTENCES = (
    "I keep a notebook by the window, and most mornings I write down what the weather is doing.",
    "The last train leaves at eleven, so we should probably start walking back before it gets late.",
    "If you ask me, the best soup is the one you make from whatever is left in the fridge.",
    "She painted the door a bright shade of yellow, and now the whole street knows which house is hers.",
    "We spent the afternoon fixing an old radio, and it finally crackled back to life around five.",
    "Honestly, I didn't expect the museum to be that quiet on a Saturday, but I loved every minute.",
    "My brother swears he can tell the time by the way the light falls across the kitchen floor.",
    "Could you check whether the parcel arrived? It should have come sometime before lunch.",
)
IDLE, COUNTDOWN, RECORDING, PREVIEW, SAVING = "idle", "countdown", "recording", "preview", "saving"

RecorderFactory = Callable[..., "engine.Recorder"]


class RecorderDialog(QDialog):
    """Record a voice sample for the library."""

    saved = Signal(object)  # engine.VoiceSample
    stateChanged = Signal(str)

    def __init__(self, library: engine.VoiceLibrary, settings: Settings, tasks: TaskRunner,
                 parent: QWidget | None = None, recorder_factory: RecorderFactory | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Record a voice")
        self.setObjectName("recorder_dialog")
        self.library = library
        self.settings = settings
        self.tasks = tasks
        self.recorder_factory = recorder_factory or engine.Recorder
        self.recorder = None
        self.recording: engine.Recording | None = None
        self.state = IDLE
        self.countdown_left = 0
        self.player = AudioPlayer(self)
        self.last_error = None

        self.device = RescanComboBox()
        self.device.setObjectName("input_device")
        self.device.setAccessibleName("Microphone")
        self.seconds = QDoubleSpinBox()
        self.seconds.setObjectName("record_seconds")
        self.seconds.setRange(engine.MIN_SECONDS, engine.MAX_SECONDS)
        self.seconds.setDecimals(1)
        self.seconds.setSuffix(" s")
        self.seconds.setValue(min(engine.MAX_SECONDS, max(engine.MIN_SECONDS, settings.get(opts.RECORD_SECONDS))))
        self.seconds.setToolTip("Recording stops by itself after this long. " + length_rule())
        self.countdown = QSpinBox()
        self.countdown.setObjectName("record_countdown")
        self.countdown.setRange(0, 10)
        self.countdown.setSuffix(" s")
        self.countdown.setValue(max(0, min(10, settings.get(opts.RECORD_COUNTDOWN))))
        self.countdown.setToolTip("A countdown before recording starts, to get ready")
        self.sentence = QLabel()
        self.sentence.setObjectName("suggested_sentence")
        self.sentence.setWordWrap(True)
        self.sentence.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.sentence.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        self.sentence.setFont(font)
        self.another = QPushButton("Another sentence")
        self.another.setObjectName("another_sentence")
        self.meter = LevelMeter()
        self.time_bar = QProgressBar()
        self.time_bar.setObjectName("record_time")
        self.time_bar.setAccessibleName("Recorded time")
        self.time_bar.setRange(0, 1000)
        self.time_bar.setFormat("0.0 s")
        self.status = QLabel("")
        self.status.setObjectName("record_status")
        self.status.setWordWrap(True)
        self.record_button = QPushButton("Record")
        self.record_button.setObjectName("record_button")
        self.record_button.setDefault(True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("record_stop")
        self.play_button = QPushButton("Play take")
        self.play_button.setObjectName("record_play")
        self.name = QLineEdit()
        self.name.setObjectName("record_name")
        self.name.setPlaceholderText("Speaker name")
        self.name.setAccessibleName("Speaker name")
        self.transcript = QPlainTextEdit()
        self.transcript.setObjectName("record_transcript")
        self.transcript.setAccessibleName("Transcript")
        self.transcript.setToolTip("The exact words spoken in the take; Dia needs them to clone the voice.")
        self.transcript.setFixedHeight(64)
        self.save_button = QPushButton("Save to library")
        self.save_button.setObjectName("record_save")
        self.close_button = QPushButton("Close")

        form = QFormLayout()
        device_label = QLabel("Microphone")
        device_label.setBuddy(self.device)
        form.addRow(device_label, self.device)
        timing = QHBoxLayout()
        timing.addWidget(QLabel("Length"))
        timing.addWidget(self.seconds)
        timing.addSpacing(16)
        timing.addWidget(QLabel("Countdown"))
        timing.addWidget(self.countdown)
        timing.addStretch(1)
        form.addRow(timing)
        read = QLabel("Read this aloud, in your natural voice:")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(read)
        layout.addWidget(self.sentence)
        layout.addWidget(self.another, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.meter)
        layout.addWidget(self.time_bar)
        buttons = QHBoxLayout()
        buttons.addWidget(self.record_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.play_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        save_form = QFormLayout()
        save_form.addRow("Name", self.name)
        save_form.addRow("Transcript", self.transcript)
        layout.addLayout(save_form)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.save_button)
        bottom.addWidget(self.close_button)
        layout.addLayout(bottom)

        self._timer = QTimer(self, interval=POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._countdown_timer = QTimer(self, interval=1000)
        self._countdown_timer.timeout.connect(self._count)
        self.another.clicked.connect(self.next_sentence)
        self.record_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.play_button.clicked.connect(self.player.toggle)
        self.save_button.clicked.connect(self.save)
        self.close_button.clicked.connect(self.reject)
        self.name.textChanged.connect(lambda _t: self._update_buttons())
        self.device.aboutToShowPopup.connect(self.rescan)
        self.device_watcher = DeviceWatcher(self)
        self.device_watcher.changed.connect(self.rescan)
        self._fill_devices()
        self.next_sentence()
        self._set_state(IDLE)
        self.resize(560, self.sizeHint().height())

    # -- setup

    def rescan(self) -> None:
        """Look for microphones again (the list opened, a device plugged in), unless recording."""
        if self.state in (COUNTDOWN, RECORDING):
            return
        rescan_devices()
        self._fill_devices(self.device.currentText().split(" (")[0] if self.available else "")
        self._update_buttons()

    def _fill_devices(self, preferred: str = "") -> None:
        status = engine.input_status()
        self.device.blockSignals(True)
        self.device.clear()
        self.device.blockSignals(False)
        was_available, self.available = getattr(self, "available", False), status.available
        if not status.available:
            self.device.addItem("No microphone", -1)  # never None as item data (PySide6 refcount bug)
            self.status.setText(status.message)
            return
        if not was_available and self.status.text():
            self.status.setText(status.message)
        preferred = preferred or self.settings.get(opts.INPUT_DEVICE)
        for device in status.devices:
            label = f"{device.name} ({device.host_api})" + (" — default" if device.is_default else "")
            self.device.addItem(label, device.index)
            if device.name == preferred or (not preferred and device.is_default):
                self.device.setCurrentIndex(self.device.count() - 1)

    def next_sentence(self) -> None:
        choices = [s for s in SENTENCES if s != self.sentence.text()]
        self.sentence.setText(random.choice(choices))

    # -- flow

    def start(self) -> None:
        if self.state in (COUNTDOWN, RECORDING, SAVING):
            return
        self.player.stop()
        self.recording = None
        self.meter.reset()
        self.settings.set(opts.RECORD_SECONDS, self.seconds.value())
        self.settings.set(opts.RECORD_COUNTDOWN, self.countdown.value())
        self.countdown_left = self.countdown.value()
        if self.countdown_left > 0:
            self._set_state(COUNTDOWN)
            self.status.setText(f"Recording starts in {self.countdown_left}…")
            self._countdown_timer.start()
        else:
            self._begin_recording()

    def _count(self) -> None:
        self.countdown_left -= 1
        if self.countdown_left > 0:
            self.status.setText(f"Recording starts in {self.countdown_left}…")
        else:
            self._countdown_timer.stop()
            self._begin_recording()

    def _begin_recording(self) -> None:
        index = self.device.currentData() if self.device.count() else -1
        device = None if index is None or int(index) < 0 else int(index)
        try:
            self.recorder = self.recorder_factory(device=device)
            self.recorder.start(seconds=self.seconds.value())
        except Exception as exc:  # noqa: BLE001 - no device, busy device, ...
            self.recorder = None
            self._fail(exc)
            self._set_state(IDLE)
            return
        name = self.device.currentText().split(" (")[0]
        if device is not None:
            self.settings.set(opts.INPUT_DEVICE, name)
        self.status.setText("Recording… read the sentence above.")
        self._set_state(RECORDING)
        self._timer.start()

    def stop(self) -> None:
        """Stop early (the take so far is kept), or cancel a countdown."""
        if self.state == COUNTDOWN:
            self._countdown_timer.stop()
            self.status.setText("")
            self._set_state(IDLE)
        elif self.state == RECORDING:
            self._finish()
        elif self.state == PREVIEW:
            self.player.stop()

    def _poll(self) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        level = recorder.poll()
        if level is not None:
            self.meter.set_level(level.peak_dbfs, level.rms_dbfs)
        seconds = recorder.seconds_recorded
        self.time_bar.setValue(int(1000 * min(1.0, seconds / self.seconds.value())))
        self.time_bar.setFormat(f"{seconds:.1f} s of {self.seconds.value():.1f} s")
        if not recorder.running:
            self._finish()

    def _finish(self) -> None:
        self._timer.stop()
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return
        try:
            take = recorder.stop()
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)
            self._set_state(IDLE)
            return
        self.recording = take
        self.time_bar.setFormat(f"{take.duration:.1f} s recorded")
        mono = take.mono
        self.player.load(mono, take.sample_rate)
        peak = float(np.max(np.abs(mono))) if mono.size else 0.0
        peak_db = 20 * np.log10(peak) if peak > 0 else -float("inf")
        if peak_db < -50:
            advice = "The take is silent: check that the right microphone is chosen and not muted."
        elif peak_db < -30:
            advice = "The take is very quiet: move closer to the microphone or raise its level."
        elif peak_db > -0.5:
            advice = "The take clipped (too loud): move back a little or lower the input level."
        else:
            advice = "Listen to the take; save it or record again."
        overflow = f" ({take.overflows} blocks of audio were lost: the computer was busy.)" if take.overflows else ""
        self.status.setText(advice + overflow)
        current = self.transcript.toPlainText().strip()
        if not current or current in SENTENCES:  # not typed by the user: the sentence just read
            self.transcript.setPlainText(self.sentence.text())
        self._set_state(PREVIEW)

    def save(self) -> None:
        if self.recording is None or self.state == SAVING:
            return
        name = self.name.text().strip()
        if not name:
            self.status.setText("Give the voice a name first.")
            self.name.setFocus()
            return
        take = self.recording
        transcript = self.transcript.toPlainText()
        library = self.library
        self._set_state(SAVING)
        self.status.setText("Saving…")

        def work():
            return library.add(take.mono, sample_rate=take.sample_rate, speaker_name=name, transcript=transcript,
                               original_filename="recording.flac")

        def done(sample) -> None:
            self.status.setText(f"Saved “{sample.speaker_name}” ({sample.duration:.1f} s of speech).")
            self.recording = None
            self._set_state(IDLE)
            self.saved.emit(sample)

        def failed(exc: BaseException) -> None:
            self._fail(exc)
            self._set_state(PREVIEW)  # the take is kept: fix the problem and save again

        self.tasks.run(work, done, failed)

    def _fail(self, exc: BaseException) -> None:
        self.last_error = describe(exc)
        self.status.setText(f"⚠ {self.last_error.message}")

    def _set_state(self, state: str) -> None:
        self.state = state
        (hold_audio if state == RECORDING else release_audio)(self)  # no device rescan mid-take
        self._update_buttons()
        self.stateChanged.emit(state)

    def _update_buttons(self) -> None:
        state = self.state
        busy = state in (COUNTDOWN, RECORDING, SAVING)
        self.record_button.setEnabled(self.available and not busy)
        self.record_button.setText("Record again" if state == PREVIEW else "Record")
        self.stop_button.setEnabled(state in (COUNTDOWN, RECORDING))
        self.play_button.setEnabled(state == PREVIEW)
        self.save_button.setEnabled(state == PREVIEW and bool(self.name.text().strip()))
        self.device.setEnabled(not busy and load_sounddevice() is not None)  # opening the list rescans
        self.seconds.setEnabled(not busy)
        self.countdown.setEnabled(not busy)

    def reject(self) -> None:
        """Close (Esc, Close button); an unsaved take is only dropped after asking."""
        if self.state in (PREVIEW, SAVING) and self.recording is not None and not self.confirm(
                "Discard the take?", "This recording has not been saved to the voice library."):
            return
        super().reject()

    def confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Discard
                                      | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Discard

    def shutdown(self) -> None:
        release_audio(self)
        self._timer.stop()
        self._countdown_timer.stop()
        if self.recorder is not None:
            try:
                self.recorder.stop()
            except Exception:  # noqa: BLE001
                pass
            self.recorder = None
        self.player.shutdown()

    def done(self, result: int) -> None:  # noqa: D401 - Qt override: closing the dialog
        self.shutdown()
        super().done(result)
