"""The render history list: search, play, export, restore settings, re-render, delete, and the
user's own star and label per take (click the star; F2, a click on a selected label or the context
menu edits the label in place)."""

from __future__ import annotations

import logging
from datetime import datetime

from PySide6.QtCore import QEvent, QModelIndex, QObject, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

import engine
from app.errors import describe
from app.table_model import RowsModel
from app.take import take_warnings
from app.theme import editor_colors

log = logging.getLogger(__name__)

COLUMNS = ("★", "When", "Label", "Script", "Voices", "Length", "Seed", "Took")
STAR, WHEN, LABEL, SCRIPT, VOICES, LENGTH, SEED, TOOK = range(len(COLUMNS))
STARRED, UNSTARRED = "★", "☆"


def when(created: datetime) -> str:
    local = created.astimezone()
    today = datetime.now().astimezone().date()
    return local.strftime("%H:%M") if local.date() == today else local.strftime("%Y-%m-%d %H:%M")


class HistoryModel(RowsModel):
    """The takes, one per row; the label cell is editable (``labelEdited`` asks to store the text)."""

    columns = COLUMNS
    labelEdited = Signal(object, str)  # HistoryEntry, the new label

    @property
    def entries(self) -> list:
        return self.rows

    def set_entries(self, entries) -> None:
        self.set_rows(entries)

    def replace(self, entry: engine.HistoryEntry) -> None:
        """Show ``entry`` (changed in the history) in place of its row."""
        for row, old in enumerate(self.rows):
            if old.id == entry.id:
                self.rows[row] = entry
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))
                return

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        flags = super().flags(index)
        return flags | Qt.ItemFlag.ItemIsEditable if index.column() == LABEL else flags

    def setData(self, index: QModelIndex, value, role=Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if not index.isValid() or index.column() != LABEL or role != Qt.ItemDataRole.EditRole:
            return False
        entry = self.rows[index.row()]
        if str(value) != entry.label:
            self.labelEdited.emit(entry, str(value))
        return True

    def cell(self, entry, column: int, role):
        warnings = take_warnings(entry.stop_reason, entry.warnings)
        if role == Qt.ItemDataRole.DisplayRole:
            title = ("⚠ " if warnings else "") + entry.title
            return (STARRED if entry.starred else UNSTARRED, when(entry.created_at), entry.label, title,
                    entry.cast_label, f"{entry.duration:.1f} s", str(entry.seed),
                    f"{entry.render_seconds:.1f} s")[column]
        if role == Qt.ItemDataRole.EditRole and column == LABEL:
            return entry.label
        if role == Qt.ItemDataRole.ForegroundRole and column == SCRIPT and warnings:
            return editor_colors().warning
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == STAR:
                return "Starred: click to unstar" if entry.starred else "Click to star this take"
            if column == LABEL:
                return "Your label for this take: F2 or a click on the selected take edits it"
            notes = "".join(f"\n⚠ {w}" for w in warnings)
            missing = "\n⚠ The audio file is missing." if not entry.audio_available else ""
            params = ", ".join(f"{k}={v}" for k, v in entry.params.to_dict().items() if k != "seed")
            return f"{entry.script}\n\n{entry.cast_label}\nSeed {entry.seed}; {params}{notes}{missing}"
        if role == Qt.ItemDataRole.AccessibleTextRole and column == STAR:
            return "starred" if entry.starred else "not starred"
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (LENGTH, SEED, TOOK):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == STAR:
            return int(Qt.AlignmentFlag.AlignCenter)
        if role == Qt.ItemDataRole.UserRole:
            return entry
        return None


class HistoryPanel(QWidget):
    playRequested = Signal(object)  # HistoryEntry
    exportRequested = Signal(object)
    restoreRequested = Signal(object)
    rerenderRequested = Signal(object)
    deleteRequested = Signal(object)
    errorOccurred = Signal(object)  # UserError: a star or label could not be stored

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history: engine.RenderHistory | None = None
        self.search = QLineEdit()
        self.search.setObjectName("history_search")
        self.search.setPlaceholderText("Search script, label, voice or seed")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search the history")
        self.model = HistoryModel(self)
        self.table = QTableView()
        self.table.setObjectName("history_table")
        self.table.setAccessibleName("Render history")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        # only the label cell is editable; a double click plays the take
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed
                                   | QAbstractItemView.EditTrigger.SelectedClicked)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)  # compact rows
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(SCRIPT, QHeaderView.ResizeMode.Stretch)
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
        self.table.doubleClicked.connect(self._double_clicked)
        self.table.clicked.connect(self._clicked)
        self.table.customContextMenuRequested.connect(self._show_context_menu)
        self.model.labelEdited.connect(self.set_label)
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

    # -- star and label

    def toggle_star(self, entry: engine.HistoryEntry) -> None:
        """Star an unstarred take, unstar a starred one."""
        self._store(lambda history: history.set_starred(entry.id, not entry.starred))

    def set_label(self, entry: engine.HistoryEntry, label: str) -> None:
        """Store the user's label for a take ("" removes it)."""
        self._store(lambda history: history.set_label(entry.id, label))

    def edit_label(self, entry: engine.HistoryEntry) -> None:
        """Open the label cell of ``entry`` for typing."""
        if self.select(entry.id):
            index = self.model.index(self.table.currentIndex().row(), LABEL)
            self.table.setCurrentIndex(index)
            self.table.edit(index)

    def _store(self, change) -> None:
        if self.history is None:
            return
        try:
            self.model.replace(change(self.history))
        except Exception as exc:  # noqa: BLE001 - a message, and the list shows what is stored
            self.errorOccurred.emit(describe(exc))
            self.reload()

    def _clicked(self, index: QModelIndex) -> None:
        if index.column() == STAR:
            self.toggle_star(self.model.entries[index.row()])

    def _double_clicked(self, index: QModelIndex) -> None:
        if index.column() != STAR:  # a quick second click on the star toggles it back, nothing more
            self._emit(self.playRequested)

    def context_menu(self, entry: engine.HistoryEntry) -> QMenu:
        """The actions on one take (right click)."""
        menu = QMenu(self)
        menu.setObjectName("history_menu")
        for text, signal in (("Play", self.playRequested), ("Export…", self.exportRequested),
                             ("Restore settings", self.restoreRequested), ("Re-render", self.rerenderRequested)):
            action = menu.addAction(text, lambda s=signal: s.emit(entry))
            action.setEnabled(entry.audio_available or signal not in (self.playRequested, self.exportRequested))
        menu.addSeparator()
        menu.addAction("Unstar" if entry.starred else "Star", lambda: self.toggle_star(entry))
        menu.addAction("Edit label…", lambda: self.edit_label(entry)).setShortcut(QKeySequence("F2"))
        menu.addSeparator()
        menu.addAction("Delete", lambda: self.deleteRequested.emit(entry))
        return menu

    def _show_context_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        self.table.selectRow(index.row())
        menu = self.context_menu(self.model.entries[index.row()])
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(self.table.viewport().mapToGlobal(pos))

    # -- keys and buttons

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        """Enter plays the selected take, Delete deletes it (after asking), F2 edits its label."""
        if watched is self.table and event.type() == QEvent.Type.KeyPress \
                and event.modifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier):
            if event.key() == Qt.Key.Key_F2 and self.selected() is not None:
                self.edit_label(self.selected())
                return True
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
