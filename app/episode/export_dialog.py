"""Export the episode: format, loudness preset (the episode's own loudness is measured in the
background as the dialog opens, and shown before exporting), mono or stereo, chapters, captions
(VTT/SRT), metadata and a cover image where the format carries one; runs in the background,
written atomically by ``engine.export_project`` (and ``engine.embed_cover``)."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal
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
COVER_FILTER = "Images (*.png *.jpg *.jpeg)"


class _Progress(QObject):
    """Progress from the measuring thread, queued to the dialog."""

    changed = Signal(int, int)  # done, total


def measure_episode(path, progress=None, should_stop=None):
    """The episode as rendered, joined as the export joins it: its loudness (LUFS) and true peak
    (dBTP), unmastered. ``progress(done, total)`` per block read; ``CancelledError`` on ``should_stop``."""
    with engine.EpisodeProject(path) as project:
        blocks = project.blocks()
        missing = [b.index + 1 for b in blocks if b.chosen is None]
        if not blocks or missing:
            raise engine.MissingInputError(
                f"{len(missing)} block(s) have no take yet: render them to measure the episode" if blocks
                else "the episode has no blocks yet: write its script and render it")
        takes = []
        for done, block in enumerate(blocks, start=1):
            if should_stop is not None and should_stop():
                raise engine.CancelledError("measuring was stopped")
            takes.append(project.take_audio(block.chosen))
            if progress is not None:
                progress(done, len(blocks) + 1)
        chapters = {c.first_block for c in project.chapters() if 0 < c.first_block < len(blocks)}
    return engine.master_episode(takes, chapters, engine.MasterSettings(loudness="off"), engine.TARGET_SAMPLE_RATE)


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
        self.loudness_now = QLabel("Measuring the episode…")
        self.loudness_now.setObjectName("export_loudness_now")
        self.loudness_now.setWordWrap(True)
        self.measure_progress = QProgressBar()
        self.measure_progress.setObjectName("export_measure_progress")
        self.measure_progress.setAccessibleName("Measuring the episode's loudness")
        self.measure_progress.setMaximumHeight(12)
        self.measure_progress.setTextVisible(False)
        form.addRow("Measured", self.loudness_now)
        form.addRow("", self.measure_progress)
        self.loudness.currentIndexChanged.connect(lambda _i: self._show_measured())
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
        self.cover = QLineEdit()
        self.cover.setObjectName("export_cover")
        self.cover.setAccessibleName("Cover image")
        self.cover.setPlaceholderText("PNG or JPEG (optional)")
        self.cover_browse = QPushButton("Choose…")
        self.cover_browse.setObjectName("export_cover_browse")
        self.cover_browse.setAccessibleName("Choose a cover image")
        self.cover_browse.clicked.connect(self._browse_cover)
        cover_row = QHBoxLayout()
        cover_row.addWidget(self.cover, 1)
        cover_row.addWidget(self.cover_browse)
        form.addRow("Cover", cover_row)
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
        self.measurement = None  # the episode's JoinedEpisode as rendered, once measured
        self._stop_measuring = threading.Event()
        self.finished.connect(lambda _r: self._stop_measuring.set())
        self._format_changed()
        self.measure()

    def measure(self) -> None:
        """Measure the joined episode in the background; the result shows beside the loudness preset."""
        relay = _Progress(self)
        relay.changed.connect(lambda done, total: (self.measure_progress.setRange(0, total),
                                                   self.measure_progress.setValue(done)))
        self.measure_progress.show()
        self.tasks.run(lambda: measure_episode(self.project.path, relay.changed.emit, self._stop_measuring.is_set),
                       self._measured, self._not_measured)

    def _measured(self, joined) -> None:
        self.measurement = joined
        self.measure_progress.hide()
        self._show_measured()

    def _not_measured(self, exc: BaseException) -> None:
        self.measure_progress.hide()
        if not isinstance(exc, engine.CancelledError):
            error = describe(exc)
            self.loudness_now.setText(f"Not measured: {error.message}")

    def _show_measured(self) -> None:
        joined = self.measurement
        if joined is None:
            return
        if joined.loudness_lufs is None:
            self.loudness_now.setText("The episode is silent.")
            return
        text = f"{joined.loudness_lufs:.1f} LUFS as rendered"
        if joined.true_peak_dbtp is not None:
            text += f", true peak {joined.true_peak_dbtp:.1f} dBTP"
        target = engine.LOUDNESS_PRESETS.get(self.loudness.currentData())
        text += f"; the export brings it to {target:g} LUFS." if target is not None else "; exported as it is."
        self.loudness_now.setText(text)

    def _browse_cover(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Cover image", self.cover.text() or str(self.project.path.parent),
                                              COVER_FILTER)
        if path:
            self.cover.setText(path)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export episode", self.path.text())
        if path:
            self.path.setText(path)

    def _format_changed(self) -> None:
        self.path.setText(str(Path(self.path.text()).with_suffix(self.format.currentData())))
        carries = self.format.currentData().lstrip(".") in engine.COVER_FORMATS
        self.cover.setEnabled(carries)
        self.cover_browse.setEnabled(carries)
        self.cover.setToolTip("" if carries else "This format can't carry a cover image (MP3, M4A and FLAC can).")

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
        cover = Path(self.cover.text()).expanduser() if self.cover.isEnabled() and self.cover.text().strip() else None
        self.export_button.setEnabled(False)
        self.progress.show()
        self.measured.setText("Exporting…")

        def work():
            image = _read_cover(cover) if cover is not None else None  # a bad image stops before the export
            with engine.EpisodeProject(path) as project:  # its own connection, on the task thread
                result = engine.export_project(project, audio, settings=settings, metadata=metadata,
                                               captions=captions, chapters_json=chapters, captions_timing="auto")
            if image is not None:
                engine.embed_cover(result.path, image)
            return result

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


def _read_cover(path: Path) -> bytes:
    try:
        image = path.read_bytes()
    except OSError as exc:
        raise engine.InvalidParameterError(f"Can't read the cover image {path.name}: {exc.strerror or exc}. "
                                           "Choose another file.") from None
    engine.cover_image_type(image)
    return image


def _combo(choices: dict[str, str], name: str) -> QComboBox:
    combo = QComboBox()
    combo.setAccessibleName(name)
    for label, value in choices.items():
        combo.addItem(label, value)
    return combo
