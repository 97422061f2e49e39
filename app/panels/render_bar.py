"""The render bar: Render (or queue), the current job's progress and status, Cancel."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QStyle, QWidget

from app.workers import LOADING, RENDERING, RenderJob


class RenderBar(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        style = self.style()
        self.render_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Render")
        self.render_button.setObjectName("render_button")
        self.render_button.setToolTip("Render the script with the chosen voices and parameters (Ctrl+Enter)")
        font = self.render_button.font()
        font.setBold(True)
        self.render_button.setFont(font)
        self.render_button.setMinimumWidth(110)
        self.progress = QProgressBar()
        self.progress.setObjectName("render_progress")
        self.progress.setAccessibleName("Render progress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)  # the label says the share: text on the bar straddles the fill edge
        self.label = QLabel("Ready")
        self.label.setObjectName("render_status")
        self.label.setAccessibleName("Render status")
        self.cancel_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_DialogCancelButton), "Cancel")
        self.cancel_button.setObjectName("cancel_button")
        self.cancel_button.setToolTip("Stop the running render within one step (Esc)")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.render_button)
        row.addWidget(self.progress, 2)
        row.addWidget(self.label, 3)
        row.addWidget(self.cancel_button)

    def set_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.render_button.setText("Queue render" if busy else "Render")
        if not busy and self.label.text().startswith(("Rendering", "Loading", "Starting", "Preparing")):
            self.label.setText("Ready")

    def show_job(self, job: RenderJob) -> None:
        self.progress.setValue(int(job.fraction * 1000))
        if job.state == LOADING:
            self.label.setText("Loading the model…")
        else:
            self.label.setText(f"Rendering: {job.detail}" if job.state == RENDERING else job.detail)

    def show_result(self, text: str, done: bool) -> None:
        self.progress.setValue(1000 if done else 0)
        self.label.setText(text)
        self.label.setToolTip(text)
