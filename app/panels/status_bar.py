"""A status bar whose messages wrap onto a second line instead of being cut off at the right edge."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QStatusBar, QWidget


class WrappingStatusBar(QStatusBar):
    """``showMessage`` and ``currentMessage`` work as usual; the text is shown by a word-wrapped label.

    QStatusBar paints a temporary message on one line, clipped at the first permanent widget. Here
    the label is that permanent widget and spans the whole bar, so Qt's own painting gets no room
    and the label shows the full message (its tooltip too, for the rare message that still won't fit).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("status_bar")
        self.setSizeGripEnabled(False)
        self.label = QLabel("")
        self.label.setObjectName("status_message")
        self.label.setAccessibleName("Status")
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.addPermanentWidget(self.label, 1)
        self.messageChanged.connect(self._show)

    def _show(self, text: str) -> None:
        self.label.setText(text)
        self.label.setToolTip(text)
