"""The render queue: every queued, running and finished render with its state."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.workers import STATE_LABELS, RenderJob, RenderQueue

COLUMNS = ("#", "Script", "State", "Progress")


class QueuePanel(QWidget):
    def __init__(self, queue: RenderQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("queue_table")
        self.table.setAccessibleName("Render queue")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("queue_cancel")
        self.cancel_button.setToolTip("Cancel the selected render (queued or running)")
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setObjectName("queue_clear")
        self.clear_button.setToolTip("Remove finished, failed and cancelled renders from this list")
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.cancel_button)
        row.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        self.cancel_button.clicked.connect(self._cancel_selected)
        self.clear_button.clicked.connect(queue.clear_finished)
        queue.jobAdded.connect(self._add)
        queue.jobChanged.connect(self._update)
        queue.jobRemoved.connect(self._remove)

    def _row_of(self, job_id: int) -> int:
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == job_id:
                return row
        return -1

    def _add(self, job: RenderJob) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        for column in range(len(COLUMNS)):
            self.table.setItem(row, column, QTableWidgetItem())
        self.table.item(row, 0).setData(Qt.ItemDataRole.UserRole, job.id)
        self._update(job)

    def _update(self, job: RenderJob) -> None:
        row = self._row_of(job.id)
        if row < 0:
            return
        values = (str(job.id), job.title, STATE_LABELS.get(job.state, job.state), job.detail)
        for column, value in enumerate(values):
            item = self.table.item(row, column)
            item.setText(value)
            item.setToolTip(job.script if column == 1 else value)

    def _remove(self, job_id: int) -> None:
        row = self._row_of(job_id)
        if row >= 0:
            self.table.removeRow(row)

    def state_of(self, job_id: int) -> str:
        row = self._row_of(job_id)
        return self.table.item(row, 2).text() if row >= 0 else ""

    def _cancel_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            job_id = self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)
            self.queue.cancel(job_id)
