"""Placing windows inside the screen's available area (small laptop screens, restored geometry)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize
from PySide6.QtGui import QGuiApplication, QScreen
from PySide6.QtWidgets import QWidget

FRAME_ALLOWANCE = QSize(16, 40)  # window-manager frame and title bar, before the window knows its own


def available_rect(widget: QWidget, anchor: QWidget | None = None) -> QRect:
    """The available geometry (without panels and docks) of the screen ``anchor`` (or ``widget``) is on."""
    screen: QScreen | None = (anchor or widget).screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry() if screen is not None else QRect(0, 0, 1280, 800)


def frame_extra(widget: QWidget) -> QSize:
    """How much larger the frame is than the client area (an allowance until the window is shown)."""
    frame, inner = widget.frameGeometry(), widget.geometry()
    extra = QSize(frame.width() - inner.width(), frame.height() - inner.height())
    return extra if widget.isVisible() and extra.height() > 0 else FRAME_ALLOWANCE


def fitted_size(wanted: QSize, available: QRect, extra: QSize) -> QSize:
    """``wanted``, shrunk so the window with its frame fits inside ``available``."""
    return QSize(min(wanted.width(), available.width() - extra.width()),
                 min(wanted.height(), available.height() - extra.height()))


def fit_window(widget: QWidget, wanted: QSize | None = None, anchor: QWidget | None = None,
               *, center: bool = False) -> None:
    """Resize ``widget`` (to ``wanted``, else its current size) to fit the available screen area and
    move it fully inside; ``center`` centres it on ``anchor`` (or the screen)."""
    available = available_rect(widget, anchor)
    extra = frame_extra(widget)
    size = fitted_size(wanted or widget.size(), available, extra)
    widget.resize(size)
    outer = QSize(size.width() + extra.width(), size.height() + extra.height())
    if center:
        middle = anchor.frameGeometry().center() if anchor is not None else available.center()
        top_left = QPoint(middle.x() - outer.width() // 2, middle.y() - outer.height() // 2)
    else:
        top_left = widget.frameGeometry().topLeft()
    widget.move(clamped_top_left(top_left, outer, available))


def clamped_top_left(top_left: QPoint, outer: QSize, available: QRect) -> QPoint:
    """The nearest position at which a frame of size ``outer`` lies inside ``available``."""
    x = max(available.left(), min(top_left.x(), available.right() + 1 - outer.width()))
    y = max(available.top(), min(top_left.y(), available.bottom() + 1 - outer.height()))
    return QPoint(x, y)
