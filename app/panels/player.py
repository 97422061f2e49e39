"""The player: waveform with playhead and click-to-seek, transport buttons, output device, export."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStyle,
    QVBoxLayout,
    QWidget,
)

import engine
from app import playback
from app.playback import (
    BUFFERING,
    PLAYING,
    AudioPlayer,
    available_outputs,
    rescan_devices,
)
from app.theme import editor_colors, waveform_colors


def clock(seconds: float) -> str:
    seconds = max(0.0, seconds)
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


class RescanComboBox(QComboBox):
    """A device list that asks for a fresh scan each time it is opened."""

    aboutToShowPopup = Signal()

    def showPopup(self) -> None:  # noqa: N802
        self.aboutToShowPopup.emit()
        super().showPopup()


class WaveformView(QWidget):
    """Draws the player's audio as a min/max envelope; click or drag to seek, arrows to step."""

    seekRequested = Signal(float)

    def __init__(self, player: AudioPlayer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.player = player
        self.setObjectName("waveform")
        self.setAccessibleName("Waveform")
        self.setAccessibleDescription("Click to move the playhead; Left and Right arrows step one second.")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumHeight(48)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.expected_seconds = 0.0  # while streaming: the estimated total, so the wave grows to the right
        self._envelope: np.ndarray | None = None
        self._cache_key: tuple | None = None
        self._position = 0.0
        player.positionChanged.connect(self._moved)
        player.durationChanged.connect(lambda _d: self._invalidate())

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(600, 96)

    def _invalidate(self) -> None:
        self._cache_key = None
        self.update()

    def _moved(self, seconds: float) -> None:
        self._position = seconds
        self.update()

    def span_seconds(self) -> float:
        duration = self.player.duration
        if self.player.streaming:
            return max(duration, self.expected_seconds, 1.0)
        return duration

    def envelope(self, width: int) -> np.ndarray | None:
        samples = self.player.samples()
        if samples.size == 0 or width <= 0:
            return None
        span = self.span_seconds()
        key = (id(self.player._buf), samples.size, width, round(span, 3))  # noqa: SLF001 - cache identity
        if key != self._cache_key:
            columns = max(1, min(width, int(round(width * self.player.duration / span)) if span else width))
            self._envelope = engine.peak_envelope(samples, columns)
            self._cache_key = key
        return self._envelope

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        background, played, unplayed, head = waveform_colors()
        rect = self.rect()
        painter.fillRect(rect, background)
        mid = rect.height() / 2
        env = self.envelope(rect.width())
        span = self.span_seconds()
        if env is None or span <= 0:
            painter.setPen(self.palette().color(self.palette().ColorRole.PlaceholderText))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter,
                             "Rendering…" if self.player.streaming else "No audio yet: write a script and press Render")
        else:
            head_x = self._position / span * rect.width()
            scale = (rect.height() / 2 - 3) / max(0.05, float(np.abs(env).max()))
            for x, (lo, hi) in enumerate(env):
                painter.setPen(QPen(played if x <= head_x else unplayed, 1))
                top, bottom = mid - hi * scale, mid - lo * scale
                painter.drawLine(QPointF(x + 0.5, top), QPointF(x + 0.5, max(bottom, top + 1)))
            painter.setPen(QPen(head, 2))
            painter.drawLine(QPointF(head_x, 0), QPointF(head_x, rect.height()))
        if self.hasFocus():
            pen = QPen(self.palette().color(self.palette().ColorRole.Highlight), 1, Qt.PenStyle.DotLine)
            painter.setPen(pen)
            painter.drawRect(rect.adjusted(0, 0, -1, -1))
        painter.end()

    def _seek_to_x(self, x: float) -> None:
        span = self.span_seconds()
        if span > 0 and self.player.duration > 0:
            seconds = max(0.0, min(x / max(1, self.width()) * span, self.player.duration))
            self.seekRequested.emit(seconds)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._seek_to_x(event.position().x())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._seek_to_x(event.position().x())

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        steps = {Qt.Key.Key_Left: -1.0, Qt.Key.Key_Right: 1.0}
        if event.key() in steps:
            self.seekRequested.emit(max(0.0, min(self.player.position + steps[event.key()], self.player.duration)))
        elif event.key() == Qt.Key.Key_Home:
            self.seekRequested.emit(0.0)
        elif event.key() == Qt.Key.Key_End:
            self.seekRequested.emit(self.player.duration)
        else:
            super().keyPressEvent(event)


class PlayerPanel(QWidget):
    """Transport, waveform, time, output device and export for the player's audio."""

    exportRequested = Signal()

    def __init__(self, player: AudioPlayer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.player = player
        style = self.style()
        self.play_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Play")
        self.play_button.setObjectName("play_button")
        self.play_button.setToolTip("Play or pause (Ctrl+Space)")
        self.stop_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaStop), "Stop")
        self.stop_button.setObjectName("stop_button")
        self.stop_button.setToolTip("Stop and go back to the start (Ctrl+.)")
        self.time_label = QLabel("0:00.0 / 0:00.0")
        self.time_label.setObjectName("time_label")
        self.time_label.setAccessibleName("Playback time")
        self.title = QLabel("")
        self.title.setObjectName("player_title")
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.warning = QLabel("")
        self.warning.setObjectName("player_warning")
        self.warning.setAccessibleName("Take warning")
        self.warning.setTextFormat(Qt.TextFormat.PlainText)
        self.warning.setWordWrap(True)
        self.warning.hide()
        self.device_combo = RescanComboBox()
        self.device_combo.setObjectName("output_device")
        self.device_combo.setAccessibleName("Output device")
        self.device_combo.setToolTip("Where the audio plays")
        self.device_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.device_combo.setMinimumContentsLength(14)
        device_label = QLabel("Output")
        device_label.setBuddy(self.device_combo)
        self.export_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton), "Export…")
        self.export_button.setObjectName("export_button")
        self.export_button.setToolTip("Save the audio as WAV, FLAC, Opus or MP3 with its render settings (Ctrl+E)")
        self.waveform = WaveformView(player)

        top = QHBoxLayout()
        top.addWidget(self.play_button)
        top.addWidget(self.stop_button)
        top.addWidget(self.time_label)
        top.addWidget(self.title, 1)
        top.addWidget(device_label)
        top.addWidget(self.device_combo)
        top.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.warning)
        layout.addWidget(self.waveform, 1)

        self.play_button.clicked.connect(player.toggle)
        self.stop_button.clicked.connect(player.stop)
        self.export_button.clicked.connect(self.exportRequested)
        self.waveform.seekRequested.connect(player.seek)
        player.stateChanged.connect(self._state_changed)
        player.positionChanged.connect(self._update_time)
        player.durationChanged.connect(self._update_time)
        self.device_combo.currentIndexChanged.connect(self._device_chosen)
        self.device_combo.aboutToShowPopup.connect(self.rescan)
        self.device_status = ""
        self.refresh_devices()
        self._state_changed(player.state)

    def refresh_devices(self, preferred: str = "") -> None:
        devices, status = available_outputs()
        self.device_status = status
        self.device_combo.blockSignals(True)
        self.device_combo.clear()
        if not devices:
            self.device_combo.addItem("No audio output", "")  # "" not None: see ScriptEditor's signals
            self.device_combo.setToolTip(status)
            # still openable (opening it rescans) unless PortAudio itself is missing
            self.device_combo.setEnabled(playback.load_sounddevice() is not None)
        else:
            self.device_combo.setEnabled(True)
            self.device_combo.setToolTip("Where the audio plays")
            self.device_combo.addItem("System default", "")
            for device in devices:
                self.device_combo.addItem(device.label, device.name)
            index = self.device_combo.findData(preferred) if preferred else 0
            self.device_combo.setCurrentIndex(max(0, index))
        self.device_combo.blockSignals(False)
        self._device_chosen()

    def rescan(self) -> None:
        """Look for outputs again (opening the list, a device plugged in), keeping the choice."""
        rescan_devices()
        self.refresh_devices(self.selected_device_name())

    @property
    def has_output(self) -> bool:
        """An audio output exists (so playing can work)."""
        return not self.device_status

    def selected_device_name(self) -> str:
        return str(self.device_combo.currentData()) if self.device_combo.count() else ""

    def _device_chosen(self, _index: int = 0) -> None:
        name = self.selected_device_name()
        self.player.set_device(name or None)

    def set_title(self, text: str) -> None:
        self.title.setText(text)
        self.title.setToolTip(text)

    def set_warnings(self, warnings: tuple[str, ...] | list[str]) -> None:
        """Keep the take's warnings in view (they stay until another take is loaded)."""
        text = "\n".join(f"⚠ {w}" for w in warnings)
        self.warning.setText(text)
        self.warning.setToolTip(text)
        self.warning.setStyleSheet(f"color: {editor_colors().warning.name()};")
        self.warning.setVisible(bool(warnings))

    def _state_changed(self, state: str) -> None:
        playing = state in (PLAYING, BUFFERING)
        icon = QStyle.StandardPixmap.SP_MediaPause if playing else QStyle.StandardPixmap.SP_MediaPlay
        self.play_button.setIcon(self.style().standardIcon(icon))
        self.play_button.setText("Pause" if playing else "Play")
        self.play_button.setAccessibleName("Pause" if playing else "Play")
        self._update_time()

    def _update_time(self, *_args) -> None:
        has_audio = self.player.duration > 0 or self.player.streaming
        self.play_button.setEnabled(has_audio)
        self.stop_button.setEnabled(has_audio)
        self.export_button.setEnabled(self.player.duration > 0 and not self.player.streaming)
        suffix = " (buffering)" if self.player.state == BUFFERING else ""
        self.time_label.setText(f"{clock(self.player.position)} / {clock(self.player.duration)}{suffix}")

