"""The script view: the editor (with its check and budget meter) beside the Cast and Parameters.

It shows a ``ScriptDocument`` and says what a render of it would use; it builds no jobs itself.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QGroupBox,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

import engine
from app.document import ScriptDocument
from app.editor.script_panel import ScriptPanel
from app.panels.cast import CastPanel
from app.panels.parameters import ParametersPanel
from app.settings import Settings

SIDE_MIN_WIDTH = 320
MIN_FONT_SIZE, MAX_FONT_SIZE = 7, 40


class ScriptView(QSplitter):
    """Editor on the left, Cast and Parameters (scrolling) on the right."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setObjectName("editor_splitter")
        self.script_panel = ScriptPanel()
        self.editor = self.script_panel.editor
        self.document = ScriptDocument(self.editor.document(), self)
        self.cast_panel = CastPanel(settings)
        self.params_panel = ParametersPanel(settings)
        self.addWidget(self.script_panel)
        self.addWidget(self._side())
        self.setStretchFactor(0, 3)
        self.setStretchFactor(1, 2)
        self.setChildrenCollapsible(False)
        self.document.replaced.connect(self._replaced)
        self.cast_panel.promptCostChanged.connect(self.script_panel.set_prompt_cost)
        self.params_panel.paramsChanged.connect(lambda p: self.script_panel.set_max_new_tokens(p.max_new_tokens))
        self.script_panel.set_max_new_tokens(self.params_panel.params().max_new_tokens)

    def _side(self) -> QScrollArea:
        cast_box = QGroupBox("Cast")
        QVBoxLayout(cast_box).addWidget(self.cast_panel)
        params_box = QGroupBox("Parameters")
        QVBoxLayout(params_box).addWidget(self.params_panel)
        side = QWidget()
        layout = QVBoxLayout(side)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(cast_box)
        layout.addWidget(params_box)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setMinimumWidth(SIDE_MIN_WIDTH)
        return scroll

    def _replaced(self) -> None:
        """New text: the cursor goes to the start, the check and the meter follow at once."""
        self.editor.moveCursor(QTextCursor.MoveOperation.Start)
        self.editor.check_now()
        self.script_panel.update_budget()

    def prompt_seconds_for(self, cast: dict[str, int | None]) -> float:
        """Seconds of voice prompt a render with ``cast`` adds (known only for the cast on screen)."""
        return self.cast_panel.prompt_cost().seconds if cast == self.cast_panel.cast() else 0.0

    def restore(self, entry: engine.HistoryEntry) -> list[str]:
        """Put a take's script, parameters (with its seed) and voices back; the names of voices no
        longer in the library (a random voice is chosen for them)."""
        self.document.set_text(entry.script)
        self.params_panel.set_params(entry.reproducible_params)
        wanted = {tag: (entry.cast[tag].voice_id if tag in entry.cast else None) for tag in ("S1", "S2")}
        self.cast_panel.set_cast(wanted)
        return [entry.cast[t].name for t in entry.cast if self.cast_panel.cast().get(t) != wanted[t]]

    def edit(self, command: str) -> None:
        """An Edit menu command on the editor."""
        editor = self.editor
        {"undo": editor.undo, "redo": editor.redo, "cut": editor.cut, "copy": editor.copy, "paste": editor.paste,
         "select_all": editor.selectAll, "complete": lambda: editor.update_completion(force=True),
         "next_issue": self.go_to_next_issue}[command]()

    def go_to_next_issue(self) -> None:
        position = self.editor.textCursor().position()
        issues = self.editor.issues
        if not issues:
            return
        following = [i for i in issues if i.start > position] or issues
        self.editor.go_to(following[0].line, following[0].column)

    def zoom(self, step: int) -> int:
        """Make the editor's text ``step`` points larger (within limits); the new size."""
        size = max(MIN_FONT_SIZE, min(MAX_FONT_SIZE, round(self.editor.font().pointSizeF()) + step))
        self.set_font_size(size)
        return size

    def set_font_size(self, size: int) -> None:
        font = self.editor.font()
        font.setPointSize(size)
        self.editor.setFont(font)
