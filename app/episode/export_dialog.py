"""Export the episode: format, loudness preset (the measured loudness is shown after), mono or
stereo, chapters, captions (VTT/SRT) and metadata; runs in the background, written atomically by
``engine.export_project``."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QWidget,
)

import engine
from app.errors import describe
from app.tasks import TaskRunner

FORMATS = {"WAV": ".wav", "FLAC": ".flac", "MP3": ".mp3", "Opus": ".opus", "M4A (AAC)": ".m4a"}
CAPTIONS = {"None": "", "WebVTT (.vtt)": ".vtt", "SubRip (.srt)": ".srt"}


class ExportDialog(QDialog):
    """Collects the choices, runs the export on the task runner and shows what it measured."""

    exported = Signal(object)  # engine ExportResult

    def __init__(self, project: engine.EpisodeProject, tasks: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("episode_export_dialog")
        self.setWindowTitle("Export episode")
        self.project, self.tasks = project, tasks
        self.result = None
        form = QFormLayout(self)
        self.path = QLineEdit(str(project.path.with_suffix(".mp3")))
        self.path.setAccessibleName("Output file")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form.addRow("File", row)
        self.format = _combo(FORMATS, "Format")
        self.format.setCurrentText("MP3")
        self.format.currentIndexChanged.connect(self._format_changed)
        form.addRow("Format", self.format)
        self.loudness = QComboBox()
        self.loudness.setAccessibleName("Loudness preset")
        for name, lufs in engine.LOUDNESS_PRESETS.items():
            self.loudness.addItem(f"{name} ({lufs:g} LUFS)" if lufs is not None else f"{name} (as rendered)", name)
        form.addRow("Loudness", self.loudness)
        self.stereo = QCheckBox("Stereo (dual mono)")
        form.addRow("Channels", self.stereo)
        self.chapters = QCheckBox("Chapter markers")
        self.chapters.setChecked(True)
        form.addRow("Chapters", self.chapters)
        self.captions = _combo(CAPTIONS, "Captions")
        self.captions.setCurrentIndex(1)
        form.addRow("Captions", self.captions)
        chapters = project.chapters()
        self.title = QLineEdit(chapters[0].title if chapters else project.path.stem)
        self.show_name = QLineEdit()
        self.episode = QLineEdit()
        for label, edit in (("Title", self.title), ("Show", self.show_name), ("Episode", self.episode)):
            edit.setAccessibleName(label)
            form.addRow(label, edit)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.hide()
        self.measured = QLabel()
        self.measured.setObjectName("export_measured")
        self.measured.setWordWrap(True)
        form.addRow(self.progress)
        form.addRow(self.measured)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.setObjectName("export_start")
        self.buttons.accepted.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export episode", self.path.text())
        if path:
            self.path.setText(path)

    def _format_changed(self) -> None:
        self.path.setText(str(Path(self.path.text()).with_suffix(self.format.currentData())))

    def outputs(self) -> tuple[Path, Path | None, Path | None]:
        """The audio file, the captions file, the chapters JSON (None when not wanted)."""
        audio = Path(self.path.text()).expanduser()
        caption = self.captions.currentData()
        captions = audio.with_suffix(caption) if caption else None
        chapters = audio.with_suffix(".chapters.json") if self.chapters.isChecked() and self.project.chapters() else None
        return audio, captions, chapters

    def start(self) -> None:
        """Export in the background; the dialog stays open with the result."""
        audio, captions, chapters = self.outputs()
        settings = engine.MasterSettings(loudness=self.loudness.currentData(), stereo=self.stereo.isChecked())
        metadata = engine.EpisodeMetadata(title=self.title.text(), show=self.show_name.text(),
                                          episode=self.episode.text())
        path = self.project.path
        self.export_button.setEnabled(False)
        self.progress.show()
        self.measured.setText("Exporting…")

        def work():
            with engine.EpisodeProject(path) as project:  # its own connection, on the task thread
                return engine.export_project(project, audio, settings=settings, metadata=metadata, captions=captions,
                                             chapters_json=chapters, captions_timing="auto")

        self.tasks.run(work, self._done, self._failed)

    def _done(self, result) -> None:
        self.result = result
        self.progress.hide()
        self.export_button.setEnabled(True)
        loud = f"{result.loudness_lufs:.1f} LUFS" if result.loudness_lufs is not None else "not measured"
        peak = f", true peak {result.true_peak_dbtp:.1f} dBTP" if result.true_peak_dbtp is not None else ""
        self.measured.setText(f"Exported {result.path.name}: {result.seconds:.1f} s, measured loudness {loud}{peak}, "
                              f"{result.chapters} chapter(s)"
                              + (f", captions in {result.captions.name}" if result.captions else "") + ".")
        self.exported.emit(result)

    def _failed(self, exc: BaseException) -> None:
        self.progress.hide()
        self.export_button.setEnabled(True)
        error = describe(exc)
        self.measured.setText(f"⚠ {error.title}: {error.message} {error.hint}".strip())


def _combo(choices: dict[str, str], name: str) -> QComboBox:
    combo = QComboBox()
    combo.setAccessibleName(name)
    for label, value in choices.items():
        combo.addItem(label, value)
    return combo
