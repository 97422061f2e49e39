"""The "Loading the Dia model…" progress dialog that the first render (or a changed model) opens."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QProgressDialog, QWidget

import engine
from app.workers import RenderJob, RenderQueue


class ModelLoadDialog(QObject):
    """Opens a window-modal progress dialog while the queue loads the model; Cancel cancels the job.
    It closes when the render starts, fails, is cancelled or the load finishes."""

    def __init__(self, queue: RenderQueue, parent_widget: QWidget) -> None:
        super().__init__(parent_widget)
        self.queue = queue
        self.parent_widget = parent_widget
        self.dialog: QProgressDialog | None = None
        queue.loadingStarted.connect(self.open)
        queue.loadProgress.connect(self.update)
        queue.renderStarted.connect(lambda _job: self.close())
        queue.jobFailed.connect(lambda _job, _error: self.close())
        queue.jobCancelled.connect(lambda job: self.close() if job.state == "cancelled" else None)

    def open(self, job: RenderJob) -> None:
        dialog = QProgressDialog("Loading the Dia model…", "Cancel", 0, 0, self.parent_widget)
        dialog.setObjectName("load_dialog")
        dialog.setWindowTitle("Loading the model")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.setMinimumWidth(460)
        dialog.canceled.connect(lambda: self.queue.cancel(job.id))
        dialog.show()
        self.dialog = dialog

    def update(self, _job: RenderJob, p: engine.LoadProgress) -> None:
        dialog = self.dialog
        if dialog is None:
            return
        text = p.message
        if p.download is not None and p.download.file_total:
            d = p.download
            dialog.setRange(0, 1000)
            dialog.setValue(int(1000 * d.file_bytes / max(1, d.file_total)))
            text = f"Downloading {d.filename}: {d.file_bytes / 1e6:,.0f} of {d.file_total / 1e6:,.0f} MB"
        else:
            dialog.setRange(0, 0)
        dialog.setLabelText(text)

    def close(self) -> None:
        if self.dialog is not None:
            self.dialog.canceled.disconnect()  # closing a QProgressDialog emits canceled
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
