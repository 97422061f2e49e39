"""A microphone level meter: RMS bar in dBFS with a falling peak-hold mark."""

from __future__ import annotations

import math

from PySide6.QtCore import QRectF, QSize
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

FLOOR_DB = -60.0
PEAK_HOLD_TICKS = 20  # ~0.7 s at the recorder's 30 Hz poll
PEAK_FALL_DB = 1.5  # per tick after the hold


class LevelMeter(QWidget):
    """Horizontal meter: green up to -18 dBFS, amber to -6, red above (where speech starts to clip)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("level_meter")
        self.setAccessibleName("Input level")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.rms_db = FLOOR_DB
        self.peak_db = FLOOR_DB
        self.hold_db = FLOOR_DB
        self._hold_ticks = 0
        self.max_peak_db = FLOOR_DB  # loudest peak since reset (for "too loud/too quiet" advice)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(320, 18)

    def reset(self) -> None:
        self.rms_db = self.peak_db = self.hold_db = self.max_peak_db = FLOOR_DB
        self._hold_ticks = 0
        self.update()

    def set_level(self, peak_db: float, rms_db: float) -> None:
        peak_db = FLOOR_DB if not math.isfinite(peak_db) else max(FLOOR_DB, min(0.0, peak_db))
        rms_db = FLOOR_DB if not math.isfinite(rms_db) else max(FLOOR_DB, min(0.0, rms_db))
        self.rms_db, self.peak_db = rms_db, peak_db
        self.max_peak_db = max(self.max_peak_db, peak_db)
        if peak_db >= self.hold_db:
            self.hold_db, self._hold_ticks = peak_db, PEAK_HOLD_TICKS
        elif self._hold_ticks > 0:
            self._hold_ticks -= 1
        else:
            self.hold_db = max(FLOOR_DB, self.hold_db - PEAK_FALL_DB)
        self.setAccessibleDescription(f"{rms_db:.0f} dBFS")
        self.update()

    @staticmethod
    def _x(db: float, width: float) -> float:
        return (db - FLOOR_DB) / -FLOOR_DB * width

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        palette = self.palette()
        painter.fillRect(rect, palette.color(palette.ColorRole.Base))
        width = rect.width()
        zones = ((FLOOR_DB, -18.0, QColor(60, 170, 90)), (-18.0, -6.0, QColor(220, 170, 40)),
                 (-6.0, 0.0, QColor(215, 60, 50)))
        for low, high, color in zones:
            if self.rms_db <= low:
                continue
            x0, x1 = self._x(low, width), self._x(min(high, self.rms_db), width)
            painter.fillRect(QRectF(rect.left() + x0, rect.top(), x1 - x0, rect.height()), color)
        if self.hold_db > FLOOR_DB:
            x = rect.left() + self._x(self.hold_db, width)
            painter.fillRect(QRectF(x - 1, rect.top(), 2, rect.height()), palette.color(palette.ColorRole.Text))
        painter.setPen(palette.color(palette.ColorRole.Mid))
        painter.drawRect(rect)
        painter.end()
