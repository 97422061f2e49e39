"""The render history list (search, play, export, restore settings, re-render, delete)."""

from __future__ import annotations

import logging
from datetime import datetime

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

import engine
from app.table_model import RowsModel
from app.take import take_warnings
from app.theme import editor_colors

log = logging.getLogger(__name__)

COLUMNS = ("When", "Script", "Voices", "Length", "Seed", "Took")


def when(created: datetime) -> str:
    local = created.astimezone()
    today = datetime.now().astimezone().date()
    return local.strftime("%H:%M") if local.date() == today else local.strftime("%Y-%m-%d %H:%M")


class HistoryModel(RowsModel):
    columns = COLUMNS

    @property
    def entries(self) -> list:
        return self.rows

    def set_entries(self, entries) -> None:
        self.set_rows(entries)

    def cell(self, entry, column: int, role):
        warnings = take_warnings(entry.stop_reason, entry.warnings)
        if role == Qt.ItemDataRole.DisplayRole:
            title = ("⚠ " if warnings else "") + (entry.label + " — " if entry.label else "") + entry.title
            return (when(entry.created_at), title, entry.cast_label, f"{entry.duration:.1f} s", str(entry.seed),
                    f"{entry.render_seconds:.1f} s")[column]
        if role == Qt.ItemDataRole.ForegroundRole and column == 1 and warnings:
            return editor_colors().warning
        if role == Qt.ItemDataRole.ToolTipRole:
            notes = "".join(f"\n⚠ {w}" for w in warnings)
            missing = "\n⚠ The audio file is missing." if not entry.audio_available else ""
            params = ", ".join(f"{k}={v}" for k, v in entry.params.to_dict().items() if k != "seed")
            return f"{entry.script}\n\n{entry.cast_label}\nSeed {entry.seed}; {params}{notes}{missing}"
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (3, 4, 5):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return entry
        return None


class HistoryPanel(QWidget):
    playRequested = Signal(object)  # HistoryEntry
    exportRequested = Signal(object)
    restoreRequested = Signal(object)
    rerenderRequested = Signal(object)
    deleteRequested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history: engine.RenderHistory | None = None
        self.search = QLineEdit()
        self.search.setObjectName("history_search")
        self.search.setPlaceholderText("Search script, voice or seed")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search the history")
        self.model = HistoryModel(self)
        self.table = QTableView()
        self.table.setObjectName("history_table")
        self.table.setAccessibleName("Render history")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)  # compact rows
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.count = QLabel("")
        self.count.setObjectName("history_count")
        self.buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        row.addWidget(self.search, 1)
        for key, text, tip, signal in (
                ("play", "Play", "Load this take into the player and play it", self.playRequested),
                ("export", "Export…", "Save this take as an audio file", self.exportRequested),
                ("restore", "Restore settings", "Put this take's script, voices and parameters (with its seed) back",
                 self.restoreRequested),
                ("rerender", "Re-render", "Queue this take's script and settings again", self.rerenderRequested),
                ("delete", "Delete", "Delete this take and its audio", self.deleteRequested)):
            button = QPushButton(text)
            button.setObjectName(f"history_{key}")
            button.setToolTip(tip)
            button.clicked.connect(lambda _=False, s=signal: self._emit(s))
            self.buttons[key] = button
            row.addWidget(button)
        row.insertWidget(1, self.count)  # on the search row: one line less for small screens
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)
        self._search_timer = QTimer(self, singleShot=True, interval=200)
        self._search_timer.timeout.connect(self.reload)
        self.search.textChanged.connect(self._search_timer.start)
        self.table.doubleClicked.connect(lambda _i: self._emit(self.playRequested))
        self.table.installEventFilter(self)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self._update_buttons()

    def set_history(self, history: engine.RenderHistory | None) -> None:
        self.history = history
        self.reload()

    def reload(self) -> None:
        self._search_timer.stop()
        selected = self.selected()
        if self.history is None:
            self.model.set_entries([])
            self.count.setText("The history is unavailable.")
            self._update_buttons()
            return
        try:
            entries = self.history.list(self.search.text().strip())
        except engine.DiaStudioError as exc:
            entries = []
            self.count.setText(exc.message)
        else:
            total = len(self.history)
            self.count.setText(f"{len(entries)} of {total} renders" if self.search.text().strip()
                               else f"{total} render{'s' if total != 1 else ''}")
        self.model.set_entries(entries)
        if selected is not None:
            self.select(selected.id)
        self._update_buttons()

    def select(self, entry_id: int) -> bool:
        for row, entry in enumerate(self.model.entries):
            if entry.id == entry_id:
                self.table.selectRow(row)
                return True
        return False

    def selected(self) -> engine.HistoryEntry | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self.model.entries[rows[0].row()] if rows else None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        """Enter plays the selected take, Delete deletes it (after asking)."""
        if watched is self.table and event.type() == QEvent.Type.KeyPress \
                and event.modifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier):
            signal = {Qt.Key.Key_Return: self.playRequested, Qt.Key.Key_Enter: self.playRequested,
                      Qt.Key.Key_Delete: self.deleteRequested}.get(event.key())
            if signal is not None and self.selected() is not None:
                if signal is self.deleteRequested or self.selected().audio_available:
                    self._emit(signal)
                return True
        return super().eventFilter(watched, event)

    def _emit(self, signal) -> None:
        entry = self.selected()
        if entry is not None:
            signal.emit(entry)

    def _update_buttons(self, *_args) -> None:
        entry = self.selected()
        for key, button in self.buttons.items():
            enabled = entry is not None
            if key in ("play", "export"):
                enabled = enabled and entry.audio_available
            button.setEnabled(enabled)
