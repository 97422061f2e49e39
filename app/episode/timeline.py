"""The episode's timeline: a time ruler, each block where the export puts it (with its take's
levels), block boundaries, chapter markers, a marker where each script line starts, the playhead;
zoom (buttons, Ctrl+wheel, +/−) and scroll; a click plays from there.

The layout comes from ``layout_episode``, which asks the engine's own join (``engine.join_blocks``)
where each block goes, so what the ruler says is where the exported episode has it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPalette, QPen, QWheelEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QScrollBar, QSizePolicy, QVBoxLayout, QWidget

import engine

LAYOUT_RATE = engine.TARGET_SAMPLE_RATE // 100
"""The rate the layout is joined at: a hundredth of the audio's, so the timeline is the export's to 10 ms."""
RULER_HEIGHT = 16
MAX_ZOOM = 64.0
ZOOM_STEP = 2.0
TICK_STEPS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)  # seconds between labelled ticks
MIN_TICK_PIXELS = 70
CHAPTER_COLOR = "#d07a00"
TURN_COLORS = ("#3a78c2", "#2e9d4f", "#b0479a", "#c98a00", "#5a6ad0", "#1f9aa0")


@dataclass(frozen=True)
class TimelineLayout:
    """Where everything is, in seconds of the exported episode."""

    spans: list[tuple[float, float]] = field(default_factory=list)  # per block
    blocks: list[int] = field(default_factory=list)  # block index per span
    chapters: list[tuple[float, str]] = field(default_factory=list)  # start, title
    turns: list[tuple[float, str]] = field(default_factory=list)  # where each script line starts, who speaks
    duration: float = 0.0


def layout_episode(blocks: list, chapters: list, lengths: dict[int, float]) -> TimelineLayout:
    """Lay ``blocks`` out as the export joins them: ``lengths`` maps a block index to its take's
    length after the export's trim (blocks without one count their estimate). Turn markers share
    each block's span by their text, as the estimated captions do."""
    rate = LAYOUT_RATE
    stand_ins = [np.full(round(lengths.get(b.index, b.estimated_seconds) * rate), 0.5, dtype=np.float32)
                 for b in blocks]
    settings = engine.MasterSettings()  # the export's pauses; the stand-ins are all sound, so nothing is trimmed
    starts = {c.first_block for c in chapters if 0 < c.first_block < len(blocks)}
    joined, spans = engine.join_blocks(stand_ins, starts, settings, rate)
    turns = [(c.start, c.character) for c in engine.estimate_captions([list(b.turns) for b in blocks], spans)]
    chapter_marks = [(spans[c.first_block][0], c.title) for c in chapters if c.first_block < len(spans)]
    return TimelineLayout(list(spans), [b.index for b in blocks], chapter_marks, turns, joined.shape[0] / rate)


def tick_step(seconds_per_pixel: float) -> float:
    """The ruler's step: the smallest of ``TICK_STEPS`` whose labels are ``MIN_TICK_PIXELS`` apart."""
    for step in TICK_STEPS:
        if step / max(seconds_per_pixel, 1e-9) >= MIN_TICK_PIXELS:
            return step
    return TICK_STEPS[-1]


def ruler_label(seconds: float) -> str:
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}" if rest % 1 else f"{int(minutes)}:{int(rest):02d}"


class TimelineCanvas(QWidget):
    """Draws the layout between ``start`` and ``start + visible`` seconds; ``seekRequested`` on a click."""

    seekRequested = Signal(int, float)  # block index, seconds into its span
    viewChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("episode_timeline")
        self.setAccessibleName("Episode timeline: ruler, blocks, chapters and line markers; click to play from there")
        self.setAccessibleDescription("Ctrl+wheel or + and − zoom; the wheel scrolls; Home shows the whole episode.")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumHeight(74)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.layout_ = TimelineLayout()
        self.levels: dict[int, list[float]] = {}  # block index -> peak levels of its take
        self.zoom = 1.0
        self.start = 0.0
        self.position = -1.0  # playhead, seconds into the episode (-1: none)
        self.playing = -1
        self.selected = -1

    # -- view

    @property
    def duration(self) -> float:
        return max(self.layout_.duration, 1.0)

    @property
    def visible(self) -> float:
        """Seconds across the widget at this zoom."""
        return self.duration / self.zoom

    def x_of(self, seconds: float) -> float:
        return (seconds - self.start) / self.visible * max(1, self.width())

    def seconds_at(self, x: float) -> float:
        return self.start + x / max(1, self.width()) * self.visible

    def set_layout(self, layout: TimelineLayout, levels: dict[int, list[float]]) -> None:
        self.layout_, self.levels = layout, dict(levels)
        self._clamp()
        self.update()

    def set_zoom(self, zoom: float, around: float | None = None) -> None:
        """Zoom (1 = the whole episode) keeping the time at ``around`` (default: the middle) in place."""
        around = self.start + self.visible / 2 if around is None else around
        fraction = (around - self.start) / self.visible
        self.zoom = min(MAX_ZOOM, max(1.0, zoom))
        self.start = around - fraction * self.visible
        self._clamp()
        self.update()

    def scroll_to(self, start: float) -> None:
        self.start = start
        self._clamp()
        self.update()

    def _clamp(self) -> None:
        self.start = min(max(0.0, self.start), max(0.0, self.duration - self.visible))
        self.viewChanged.emit()

    def follow(self, seconds: float) -> None:
        """Move the playhead; scroll when it leaves the view."""
        self.position = seconds
        if seconds >= 0 and not self.start <= seconds <= self.start + self.visible:
            self.scroll_to(seconds - self.visible * 0.1)
        self.update()

    # -- painting

    def paintEvent(self, _event) -> None:  # noqa: N802
        painter = QPainter(self)
        pal = self.palette()
        painter.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
        self._paint_ruler(painter, pal)
        self._paint_blocks(painter, pal)
        self._paint_markers(painter)
        if self.position >= 0:
            painter.setPen(QPen(pal.color(QPalette.ColorRole.Highlight), 2))
            x = self.x_of(self.position)
            painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        painter.end()

    def _paint_ruler(self, painter: QPainter, pal: QPalette) -> None:
        painter.fillRect(QRectF(0, 0, self.width(), RULER_HEIGHT), pal.color(QPalette.ColorRole.AlternateBase))
        painter.setPen(QPen(pal.color(QPalette.ColorRole.Text), 1))
        font = painter.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        painter.setFont(font)
        step = tick_step(self.visible / max(1, self.width()))
        t = math.floor(self.start / step) * step
        while t <= self.start + self.visible:
            x = self.x_of(t)
            painter.drawLine(QPointF(x, RULER_HEIGHT - 5), QPointF(x, RULER_HEIGHT))
            painter.drawText(QPointF(x + 3, RULER_HEIGHT - 4), ruler_label(t))
            t += step

    def _paint_blocks(self, painter: QPainter, pal: QPalette) -> None:
        top, h = RULER_HEIGHT, self.height() - RULER_HEIGHT
        mid = top + h / 2
        wave = pal.color(QPalette.ColorRole.Text)
        for index, (s, e) in zip(self.layout_.blocks, self.layout_.spans):
            x0, x1 = self.x_of(s), self.x_of(e)
            if x1 < 0 or x0 > self.width():
                continue
            if index in (self.playing, self.selected):
                tint = pal.color(QPalette.ColorRole.Highlight)
                tint.setAlpha(70 if index == self.playing else 35)
                painter.fillRect(QRectF(x0, top, x1 - x0, h), tint)
            levels = self.levels.get(index)
            color = QColor(wave)
            color.setAlpha(200 if levels else 60)
            painter.setPen(QPen(color, 1))
            if levels:
                n = len(levels)
                for i, level in enumerate(levels):
                    px = x0 + (x1 - x0) * (i + 0.5) / n
                    painter.drawLine(QPointF(px, mid - level * (h / 2 - 10)), QPointF(px, mid + level * (h / 2 - 10)))
            else:
                painter.drawLine(QPointF(x0 + 2, mid), QPointF(x1 - 2, mid))
            painter.setPen(QPen(pal.color(QPalette.ColorRole.Mid), 1))
            painter.drawLine(QPointF(x0, top), QPointF(x0, self.height()))

    def _paint_markers(self, painter: QPainter) -> None:
        bottom = self.height()
        characters: dict[str, int] = {}
        for start, character in self.layout_.turns:
            color = QColor(TURN_COLORS[characters.setdefault(character, len(characters)) % len(TURN_COLORS)])
            x = self.x_of(start)
            painter.setPen(QPen(color, 2))
            painter.drawLine(QPointF(x, bottom - 9), QPointF(x, bottom))
        painter.setPen(QPen(QColor(CHAPTER_COLOR), 2))
        for start, title in self.layout_.chapters:
            x = self.x_of(start) + 1
            painter.drawLine(QPointF(x, RULER_HEIGHT), QPointF(x, bottom))
            painter.drawText(QPointF(x + 4, RULER_HEIGHT + 12), title[:40])

    # -- input

    def block_at(self, seconds: float) -> tuple[int, float] | None:
        """The block under ``seconds`` (or the nearest one after a pause) and the seconds into its span."""
        for index, (s, e) in zip(self.layout_.blocks, self.layout_.spans):
            if seconds < e or (s == e and seconds <= s):
                return index, max(0.0, seconds - s)
        if self.layout_.blocks:
            s, e = self.layout_.spans[-1]
            return self.layout_.blocks[-1], max(0.0, min(seconds, e) - s)
        return None

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        hit = self.block_at(self.seconds_at(event.position().x()))
        if hit is not None:
            self.seekRequested.emit(*hit)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120 or event.angleDelta().x() / 120
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.set_zoom(self.zoom * ZOOM_STEP ** steps, self.seconds_at(event.position().x()))
        else:
            self.scroll_to(self.start - steps * self.visible / 8)
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.set_zoom(self.zoom * ZOOM_STEP)
        elif key == Qt.Key.Key_Minus:
            self.set_zoom(self.zoom / ZOOM_STEP)
        elif key == Qt.Key.Key_Home:
            self.set_zoom(1.0)
        else:
            super().keyPressEvent(event)


class EpisodeTimeline(QWidget):
    """The canvas with zoom buttons and a scroll bar under it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("episode_timeline_panel")
        self.canvas = TimelineCanvas()
        self.seekRequested = self.canvas.seekRequested
        self.zoom_in = _tool("+", "timeline_zoom_in", "Zoom in (Ctrl+wheel, or + on the timeline)")
        self.zoom_out = _tool("−", "timeline_zoom_out", "Zoom out (Ctrl+wheel, or − on the timeline)")
        self.zoom_fit = _tool("Fit", "timeline_zoom_fit", "Show the whole episode (Home on the timeline)")
        self.zoom_in.setAccessibleName("Zoom in")
        self.zoom_out.setAccessibleName("Zoom out")
        self.zoom_fit.setAccessibleName("Show the whole episode")
        self.length = QLabel()
        self.length.setObjectName("timeline_length")
        self.scrollbar = QScrollBar(Qt.Orientation.Horizontal)
        self.scrollbar.setObjectName("timeline_scrollbar")
        self.scrollbar.setAccessibleName("Scroll the timeline")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Timeline"))
        row.addWidget(self.length, 1)
        for button in (self.zoom_out, self.zoom_in, self.zoom_fit):
            row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(row)
        layout.addWidget(self.canvas)
        layout.addWidget(self.scrollbar)
        self.zoom_in.clicked.connect(lambda: self.canvas.set_zoom(self.canvas.zoom * ZOOM_STEP))
        self.zoom_out.clicked.connect(lambda: self.canvas.set_zoom(self.canvas.zoom / ZOOM_STEP))
        self.zoom_fit.clicked.connect(lambda: self.canvas.set_zoom(1.0))
        self.canvas.viewChanged.connect(self._sync_scrollbar)
        self.scrollbar.valueChanged.connect(lambda ms: self.canvas.scroll_to(ms / 1000))
        self._sync_scrollbar()

    def _sync_scrollbar(self) -> None:
        c = self.canvas
        self.scrollbar.blockSignals(True)
        self.scrollbar.setRange(0, round(max(0.0, c.duration - c.visible) * 1000))
        self.scrollbar.setPageStep(max(1, round(c.visible * 1000)))
        self.scrollbar.setValue(round(c.start * 1000))
        self.scrollbar.blockSignals(False)
        self.scrollbar.setVisible(c.zoom > 1.0)
        self.length.setText(f"{ruler_label(c.layout_.duration)} · zoom {c.zoom:g}×")


def _tool(text: str, name: str, tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setObjectName(name)
    button.setToolTip(tip)
    button.setMaximumWidth(44)
    return button
