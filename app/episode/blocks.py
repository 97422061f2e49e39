"""The block list's model: one row per block with its characters, length, state and take."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

COLUMNS = ("#", "Characters", "Length", "State", "Take")
STATE_LABELS = {"pending": "Not rendered", "done": "Done", "changed": "Changed since render", "locked": "🔒 Locked",
                "failed": "Failed"}
STATE_COLORS = {"done": "#2e9d4f", "changed": "#c98a00", "failed": "#d0312d", "locked": "#3a78c2",
                "rendering": "#3a78c2", "queued": "#808080"}


def take_label(block) -> str:
    """‹ 2/3 › for the chosen take of three; — before the first render."""
    ids = [t.id for t in block.takes]
    if not ids:
        return "—"
    at = ids.index(block.chosen) + 1 if block.chosen in ids else 1
    starred = " ★" if block.takes[at - 1].starred else ""
    return f"‹ {at}/{len(ids)} ›{starred}"


def length_label(block) -> str:
    take = next((t for t in block.takes if t.id == block.chosen), None)
    if take is None:
        return f"≈ {block.estimated_seconds:.0f} s"
    return f"{take.seconds:.1f} s (≈ {block.estimated_seconds:.0f})"


class BlockModel(QAbstractTableModel):
    """Blocks of the open project; ``live(identity)`` adds the queue's state (queued, rendering %)."""

    def __init__(self, live: Callable[[str], tuple[str, float] | None], parent=None) -> None:
        super().__init__(parent)
        self.blocks: list = []
        self.live = live
        self.playing = -1

    def set_blocks(self, blocks: list) -> None:
        self.beginResetModel()
        self.blocks = list(blocks)
        self.endResetModel()

    def refresh_identity(self, identity: str) -> None:
        for row, block in enumerate(self.blocks):
            if block.identity == identity:
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def set_playing(self, index: int) -> None:
        old, self.playing = self.playing, index
        for row in (old, index):
            if 0 <= row < len(self.blocks):
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def state(self, block) -> tuple[str, str]:
        """(key, label) of a block's state, the queue's live state first."""
        live = self.live(block.identity)
        if live is not None:
            kind, fraction = live
            return kind, (f"Rendering {fraction:.0%}" if kind == "rendering" else "Queued")
        label = STATE_LABELS.get(block.state, block.state)
        if block.state == "failed" and block.error:
            label = f"Failed: {block.error.split(':')[-1].strip()[:60]}"
        return block.state, label

    # -- Qt

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.blocks)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        block = self.blocks[index.row()]
        column = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            if column == 0:
                return str(block.index + 1)
            if column == 1:
                return " & ".join(block.characters)
            if column == 2:
                return length_label(block)
            if column == 3:
                return self.state(block)[1]
            return take_label(block)
        if role == Qt.ItemDataRole.ToolTipRole:
            return block.text
        if role == Qt.ItemDataRole.ForegroundRole and column == 3:
            color = STATE_COLORS.get(self.state(block)[0])
            return QBrush(QColor(color)) if color else None
        if role == Qt.ItemDataRole.FontRole and index.row() == self.playing:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.BackgroundRole and index.row() == self.playing:
            highlight = QApplication.palette().color(QPalette.ColorRole.Highlight)
            highlight.setAlpha(60)
            return QBrush(highlight)
        return None
