"""The take the player holds, shared by the render controller, the history and export actions.

Views listen to ``titleChanged`` and ``warningsChanged``; nothing here touches a widget.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.take import Take


class NowPlaying(QObject):
    """The player's take (None: nothing, or audio not from a render) and how it is titled."""

    titleChanged = Signal(str)
    warningsChanged = Signal(object)  # tuple[str, ...]

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.take: Take | None = None

    def show(self, take: Take | None, title: str, warnings: tuple[str, ...] = ()) -> None:
        """Hold ``take`` and show ``title`` and ``warnings`` above the waveform."""
        self.take = take
        self.titleChanged.emit(title)
        self.warningsChanged.emit(tuple(warnings))

    def set_title(self, title: str) -> None:
        self.titleChanged.emit(title)

    def clear(self) -> None:
        self.show(None, "")
