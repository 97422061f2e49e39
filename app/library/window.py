"""The voice library window: samples with name, length, transcript state and default mark; play,
import (also by drag and drop), record, edit the transcript, transcribe, rename, set default,
delete, and export/import zips.

Every library call goes through ``_run``: at once for this computer's library, on the task runner
for a Dia Studio server's (``app.remote.RemoteLibrary``), which may be slow or not answer at all;
the window then shows that it waits, and never freezes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStyle,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

import engine
import resources
from app import settings as opts
from app.errors import UserError, describe
from app.geometry import fit_window
from app.library import length_rule
from app.library.recorder import RecorderDialog
from app.playback import PLAYING, AudioPlayer
from app.remote import RemoteLibrary
from app.settings import Settings
from app.table_model import RowsModel
from app.tasks import TaskRunner
from app.theme import editor_colors

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".aiff", ".aif", ".mp4"}
COLUMNS = ("Name", "Length", "Transcript", "Default")
DEFAULT_SIZE = QSize(900, 560)


class VoiceModel(RowsModel):
    columns = COLUMNS

    @property
    def samples(self) -> list:
        return self.rows

    def set_samples(self, samples) -> None:
        self.set_rows(samples)

    def cell(self, sample, column: int, role):
        if role == Qt.ItemDataRole.DisplayRole:
            return (sample.speaker_name, f"{sample.duration:.1f} s",
                    "✓" if sample.has_transcript else "missing", "★" if sample.is_default else "")[column]
        if role == Qt.ItemDataRole.ForegroundRole and column == 2 and not sample.has_transcript:
            return editor_colors().warning
        if role == Qt.ItemDataRole.ToolTipRole:
            notes = "\n".join(sample.warnings)
            return (sample.transcript or "No transcript yet") + (f"\n\n{notes}" if notes else "")
        if role == Qt.ItemDataRole.AccessibleTextRole and column == 2:
            return "has a transcript" if sample.has_transcript else "transcript missing"
        if role == Qt.ItemDataRole.AccessibleTextRole and column == 3:
            return "default voice" if sample.is_default else "not default"
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (1, 2, 3):
            return int(Qt.AlignmentFlag.AlignCenter)
        return None


class LibraryWindow(QMainWindow):
    """Manage the voice samples used for cloning."""

    libraryChanged = Signal()

    def __init__(self, library: engine.VoiceLibrary, settings: Settings, tasks: TaskRunner,
                 player: AudioPlayer | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Voice library — Dia Studio")
        self.setObjectName("library_window")
        self.setWindowIcon(QIcon(str(resources.path("icons", "dia-studio.svg"))))
        self.setAcceptDrops(True)
        self.library = library
        self.settings = settings
        self.tasks = tasks
        self.player = AudioPlayer(self)  # its own player: previews don't replace the main window's take
        self.transcriber = None
        self.last_error: UserError | None = None
        self.recorder_dialog: RecorderDialog | None = None
        self.importing = 0
        self.remote = isinstance(library, RemoteLibrary)  # its calls run in the background
        self.waiting = 0  # library calls in flight on the task runner
        self._listing = 0  # the newest listing asked for (an older answer is dropped)
        self._shown_id: int | None = None  # the sample whose name/transcript the editors hold

        self.model = VoiceModel(self)
        self.table = QTableView()
        self.table.setObjectName("voice_table")
        self.table.setAccessibleName("Voice samples")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.empty_hint = QLabel("No voices yet. Add an audio file (or drop audio files here) or record one. "
                                 + length_rule())
        self.empty_hint.setObjectName("library_empty")
        self.empty_hint.setWordWrap(True)

        style = self.style()
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("voice_name")
        self.name_edit.setAccessibleName("Speaker name")
        self.rename_button = QPushButton("Rename")
        self.rename_button.setObjectName("voice_rename")
        self.transcript_edit = QPlainTextEdit()
        self.transcript_edit.setObjectName("voice_transcript")
        self.transcript_edit.setAccessibleName("Transcript")
        self.transcript_edit.setPlaceholderText("The exact words spoken in the clip (no [S1]/[S2] tags)")
        self.transcript_edit.setTabChangesFocus(True)
        self.save_transcript = QPushButton("Save transcript")
        self.save_transcript.setObjectName("voice_save_transcript")
        self.transcribe_button = QPushButton("Transcribe")
        self.transcribe_button.setObjectName("voice_transcribe")
        self.play_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Play")
        self.play_button.setObjectName("voice_play")
        self.default_button = QPushButton("Set as default")
        self.default_button.setObjectName("voice_default")
        self.default_button.setToolTip("The default voice is preselected for [S1] in new sessions")
        self.delete_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_TrashIcon), "Delete…")
        self.delete_button.setObjectName("voice_delete")
        self.info = QLabel("")
        self.info.setObjectName("voice_info")
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.PlainText)
        self.status = QLabel("")
        self.status.setObjectName("library_status")
        self.status.setWordWrap(True)
        self.busy_text = QLabel("")
        self.busy_text.setObjectName("library_busy_text")
        self.busy_bar = QProgressBar()
        self.busy_bar.setObjectName("library_busy")
        self.busy_bar.setRange(0, 0)  # no known length: it shows activity
        self.busy_bar.setMaximumWidth(160)
        self.busy_bar.setAccessibleName("Waiting for the server")

        details = QGroupBox("Sample")
        form = QFormLayout(details)
        name_row = QHBoxLayout()
        name_row.addWidget(self.name_edit, 1)
        name_row.addWidget(self.rename_button)
        form.addRow("Name", name_row)
        form.addRow("Transcript", self.transcript_edit)
        transcript_row = QHBoxLayout()
        transcript_row.addWidget(self.save_transcript)
        transcript_row.addWidget(self.transcribe_button)
        transcript_row.addStretch(1)
        form.addRow("", transcript_row)
        action_row = QHBoxLayout()
        action_row.addWidget(self.play_button)
        action_row.addWidget(self.default_button)
        action_row.addStretch(1)
        action_row.addWidget(self.delete_button)
        form.addRow("", action_row)
        form.addRow("", self.info)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.table, 1)
        left_layout.addWidget(self.empty_hint)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(details)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setChildrenCollapsible(False)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(splitter, 1)
        busy_row = QHBoxLayout()
        busy_row.addWidget(self.busy_bar)
        busy_row.addWidget(self.busy_text, 1)
        layout.addLayout(busy_row)
        layout.addWidget(self.status)
        self._show_busy()
        self.setCentralWidget(central)

        toolbar = QToolBar("Library")
        toolbar.setObjectName("library_toolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBar(toolbar)
        self.import_action = toolbar.addAction(style.standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton),
                                               "Add voice from audio file…", self.ask_import_files)
        self.import_action.setShortcut(QKeySequence.StandardKey.Open)
        self.import_action.setToolTip("Make a new voice from a recording you have (WAV, FLAC, MP3, OGG, Opus, "
                                      "M4A); you can also drop files on this window. " + length_rule())
        self.record_action = toolbar.addAction(style.standardIcon(QStyle.StandardPixmap.SP_MediaVolume),
                                               "Record…", self.open_recorder)
        self.record_action.setShortcut(QKeySequence("Ctrl+R"))
        self.record_action.setToolTip("Record a voice with the microphone")
        toolbar.addSeparator()
        self.export_action = toolbar.addAction("Back up library to zip…", self.ask_export_zip)
        self.export_action.setToolTip("Save all voices (audio and transcripts) to one zip file")
        self.import_zip_action = toolbar.addAction("Restore voices from zip…", self.ask_import_zip)
        self.import_zip_action.setToolTip("Add the voices of a zip saved by Dia Studio (on this or another computer)")
        self.close_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.close)
        self.table.installEventFilter(self)

        self.table.selectionModel().selectionChanged.connect(self._show_selected)
        self.table.doubleClicked.connect(lambda _i: self.play_selected())
        self.rename_button.clicked.connect(self.rename_selected)
        self.name_edit.returnPressed.connect(self.rename_selected)
        self.save_transcript.clicked.connect(self.save_selected_transcript)
        self.transcribe_button.clicked.connect(self.transcribe_selected)
        self.play_button.clicked.connect(self.play_selected)
        self.default_button.clicked.connect(self.toggle_default)
        self.delete_button.clicked.connect(self.delete_selected)
        self.transcript_edit.textChanged.connect(self._update_buttons)
        self.name_edit.textChanged.connect(self._update_buttons)
        self.player.stateChanged.connect(self._player_state)
        self.player.error.connect(lambda message: self.show_error(UserError("Playback problem", message)))

        self.stt_available = engine.stt_available()
        if not self.stt_available:
            self.transcribe_button.setToolTip("Automatic transcription needs faster-whisper: "
                                              "pip install 'dia-studio[stt]'")
        else:
            self.transcribe_button.setToolTip("Fill in the transcript automatically with Whisper "
                                              f"({settings.get(opts.STT_MODEL)}); check it before saving")
        self._restored = bool(settings.get(opts.LIBRARY_GEOMETRY)) and self.restoreGeometry(
            settings.get(opts.LIBRARY_GEOMETRY))
        if not self._restored:
            self.resize(DEFAULT_SIZE)
        self.refresh()
        notice = getattr(getattr(library, "open_report", None), "notice", "")  # what recovery on open did
        if notice:
            self.status.setText(notice)

    def place(self, anchor: QWidget | None = None) -> None:
        """Put the window fully on screen: where it was last time, else centred on ``anchor``."""
        fit_window(self, anchor=anchor, center=not self._restored)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        """On the voice list, Enter plays the selected voice and Delete deletes it (after asking)."""
        if watched is self.table and event.type() == QEvent.Type.KeyPress \
                and event.modifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier):
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.play_selected()
                return True
            if event.key() == Qt.Key.Key_Delete:
                self.delete_selected()
                return True
        return super().eventFilter(watched, event)

    # -- content

    def refresh(self, select_id: int | None = None, on_listed: Callable[[], None] | None = None) -> None:
        """List the voices again, selecting ``select_id`` (else the one selected); ``on_listed`` once shown."""
        self._keep_pending_edits()
        current = self.selected()
        wanted = select_id if select_id is not None else (current.id if current else None)
        self._listing += 1
        listing = self._listing

        def show(samples: list) -> None:
            if listing == self._listing:  # else a newer listing is on its way
                self._show_samples(samples, wanted)
            if on_listed is not None:
                on_listed()

        def failed(exc: BaseException) -> None:
            if listing == self._listing:
                self._show_samples([], None)
                self.status.setText(describe(exc).message)
            if on_listed is not None:
                on_listed()

        self._run("Loading the voices…", self.library.list, show, failed)

    def _show_samples(self, samples: list, wanted: int | None) -> None:
        self.model.set_samples(samples)
        self.empty_hint.setVisible(not samples)
        if wanted is not None:
            self.select(wanted)
        elif samples:
            self.table.selectRow(0)
        self._show_selected()

    def select(self, sample_id: int) -> bool:
        for row, sample in enumerate(self.model.samples):
            if sample.id == sample_id:
                self.table.selectRow(row)
                return True
        return False

    def selected(self) -> engine.VoiceSample | None:
        model = self.table.selectionModel()
        rows = model.selectedRows() if model is not None else []
        return self.model.samples[rows[0].row()] if rows and rows[0].row() < len(self.model.samples) else None

    def _keep_pending_edits(self) -> None:
        """Save a transcript or name the user typed for the sample shown before (nothing typed is lost)."""
        shown, self._shown_id = self._shown_id, None
        if shown is None:
            return
        transcript = " ".join(self.transcript_edit.toPlainText().split())
        name = self.name_edit.text().strip()
        known = next((s for s in self.model.samples if s.id == shown), None)
        if known is not None and transcript == known.transcript and name in ("", known.speaker_name):
            return  # nothing typed
        library = self.library

        def save() -> tuple[engine.VoiceSample, list[str]] | None:
            try:
                sample = library.get(shown)
            except engine.InvalidVoiceSampleError:
                return None  # deleted meanwhile
            saved = []
            if transcript != sample.transcript:
                library.set_transcript(sample.id, transcript)
                saved.append("transcript")
            if name and name != sample.speaker_name:
                library.rename(sample.id, name)
                saved.append("name")
            return sample, saved

        def done(outcome: tuple[engine.VoiceSample, list[str]] | None) -> None:
            if outcome is None or not outcome[1]:
                return
            sample, saved = outcome
            self.status.setText(f"Saved the {' and '.join(saved)} of “{sample.speaker_name}”.")
            # refresh once the selection change in progress is done (rows may re-sort by name)
            QTimer.singleShot(0, lambda: self._changed(self.selected().id if self.selected() else None))

        def failed(exc: BaseException) -> None:
            who = known.speaker_name if known is not None else "the voice"
            self.status.setText(f"⚠ Your edit of “{who}” was not saved: {describe(exc).message}")

        self._run("Saving your edit…", save, done, failed)

    def _show_selected(self, *_args) -> None:
        self._keep_pending_edits()
        sample = self.selected()
        self._shown_id = sample.id if sample else None
        self.name_edit.setText(sample.speaker_name if sample else "")
        self.transcript_edit.setPlainText(sample.transcript if sample else "")
        if sample is None:
            self.info.setText("")
        else:
            lines = [f"{sample.duration:.1f} s of speech · from {sample.original_filename} ({sample.original_format}, "
                     f"{sample.original_sample_rate} Hz)"]
            lines += [f"⚠ {w}" for w in sample.warnings]
            self.info.setText("\n".join(lines))
        self._update_buttons()

    def _update_buttons(self) -> None:
        sample = self.selected()
        has = sample is not None
        for widget in (self.name_edit, self.transcript_edit, self.play_button, self.default_button, self.delete_button):
            widget.setEnabled(has)
        self.rename_button.setEnabled(has and self.name_edit.text().strip() not in ("", sample.speaker_name))
        self.save_transcript.setEnabled(has and " ".join(self.transcript_edit.toPlainText().split())
                                        != sample.transcript)
        self.transcribe_button.setEnabled(has and self.stt_available)
        for button in (self.rename_button, self.save_transcript, self.default_button, self.delete_button):
            button.setEnabled(button.isEnabled() and not self.waiting)  # one change at a time on a server
        self.default_button.setText("Remove default" if has and sample.is_default else "Set as default")
        self.export_action.setEnabled(bool(self.model.samples))

    def _changed(self, sample_id: int | None = None, message: str = "") -> None:
        """After a change: list again (``libraryChanged`` once the list is shown) and say what happened."""
        self.refresh(sample_id, self.libraryChanged.emit)
        if message:
            self.status.setText(message)

    # -- library calls

    def _run(self, what: str, call: Callable[[], Any], done: Callable[[Any], None],
             failed: Callable[[BaseException], None] | None = None) -> None:
        """``done(call())``, or ``failed`` (default: the error shown) if it raises. On a server's library
        the call runs on the task runner and the window shows ``what`` meanwhile."""
        failed = failed or (lambda exc: self.show_error(describe(exc)))
        if not self.remote:
            try:
                value = call()
            except Exception as exc:  # noqa: BLE001 - every failure becomes a message
                failed(exc)
                return
            done(value)
            return
        self._waiting_for(what, +1)

        def finish(handler: Callable[[Any], None], value: Any) -> None:
            if not isValid(self.busy_text):  # the window was closed while the server answered
                return
            self._waiting_for(what, -1)
            handler(value)

        self.tasks.run(call, lambda value: finish(done, value), lambda exc: finish(failed, exc))

    def _waiting_for(self, what: str, step: int) -> None:
        self.waiting += step
        self.busy_text.setText(f"{what} waiting for {self.library.root}" if self.waiting else "")
        self._show_busy()
        self._update_buttons()

    def _show_busy(self) -> None:
        self.busy_bar.setVisible(bool(self.waiting))
        self.busy_text.setVisible(bool(self.waiting))

    # -- import

    def ask_import_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Import voice clips", self.settings.get(opts.LAST_DIR) or str(Path.home()),
            "Audio (" + " ".join(f"*{s}" for s in sorted(AUDIO_SUFFIXES)) + ");;All files (*)")
        if paths:
            self.import_files(paths)

    def import_files(self, paths: list[str | Path]) -> None:
        """Add audio files in the background; a sidecar ``<name>.txt`` is used as the transcript."""
        for raw in paths:
            path = Path(raw)
            sidecar = path.with_suffix(".txt")
            transcript = ""
            if sidecar.is_file():
                try:
                    transcript = sidecar.read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError):
                    transcript = ""
            name = path.stem.replace("_", " ").replace("-", " ").strip() or "Voice"
            library = self.library
            self.importing += 1
            self.status.setText(f"Importing {path.name}…")

            def work(path=path, name=name, transcript=transcript, library=library):
                return library.add(path, speaker_name=name[:80], transcript=transcript)

            def done(sample, path=path) -> None:
                self.importing -= 1
                note = "" if sample.has_transcript else " Add its transcript to clone it."
                self._changed(sample.id, f"Imported {path.name} as “{sample.speaker_name}”.{note}")

            def failed(exc: BaseException, path=path) -> None:
                self.importing -= 1
                self.show_error(describe(exc))

            self.tasks.run(work, done, failed)
        if paths:
            self.settings.set(opts.LAST_DIR, str(Path(paths[0]).parent))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if self._dropped_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = self._dropped_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            zips = [p for p in paths if p.suffix.lower() == ".zip"]
            for z in zips:
                self.import_zip(z)
            self.import_files([p for p in paths if p.suffix.lower() != ".zip"])

    @staticmethod
    def _dropped_paths(mime) -> list[Path]:
        if not mime.hasUrls():
            return []
        paths = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
        return [p for p in paths if p.is_file() and (p.suffix.lower() in AUDIO_SUFFIXES or p.suffix.lower() == ".zip")]

    # -- record

    def open_recorder(self, recorder_factory=None) -> RecorderDialog:
        dialog = RecorderDialog(self.library, self.settings, self.tasks, self, recorder_factory=recorder_factory)
        dialog.saved.connect(lambda sample: self._changed(sample.id, f"Recorded “{sample.speaker_name}”."))
        dialog.open()
        self.recorder_dialog = dialog
        return dialog

    # -- edit

    def rename_selected(self) -> None:
        sample = self.selected()
        if sample is None:
            return
        name = self.name_edit.text()
        self._run("Renaming…", lambda: self.library.rename(sample.id, name),
                  lambda updated: self._changed(updated.id, f"Renamed to “{updated.speaker_name}”."))

    def save_selected_transcript(self) -> None:
        sample = self.selected()
        if sample is None:
            return
        transcript = self.transcript_edit.toPlainText()
        self._run("Saving the transcript…", lambda: self.library.set_transcript(sample.id, transcript),
                  lambda updated: self._changed(updated.id, "Transcript saved."))

    def toggle_default(self) -> None:
        sample = self.selected()
        if sample is None:
            return
        message = "Default cleared." if sample.is_default else f"“{sample.speaker_name}” is now the default voice."
        self._run("Setting the default voice…", lambda: self.library.set_default(None if sample.is_default
                                                                                  else sample.id),
                  lambda _updated: self._changed(sample.id, message))

    def delete_selected(self) -> bool:
        """Delete the selected voice after asking; False if the user said no (or none is selected)."""
        sample = self.selected()
        if sample is None:
            return False
        if not self.confirm("Delete this voice?",
                            f"“{sample.speaker_name}” and its audio will be deleted from the library. "
                            "Renders that used it stay in the history."):
            return False
        self.player.stop()
        self._run("Deleting…", lambda: self.library.delete(sample.id),
                  lambda _none: self._changed(None, f"Deleted “{sample.speaker_name}”."))
        return True

    def confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    # -- play, transcribe

    def play_selected(self) -> None:
        sample = self.selected()
        if sample is None:
            return
        if self.player.state == PLAYING and self.player.source == sample.id:
            self.player.stop()
            return
        self._run("Fetching the audio…", lambda: self.library.load_audio(sample),
                  lambda samples: self._play(samples, sample.id))

    def _play(self, samples, sample_id: int) -> None:
        self.player.load(samples, engine.TARGET_SAMPLE_RATE, sample_id)
        self.player.play()

    def _player_state(self, state: str) -> None:
        playing = state == PLAYING
        icon = QStyle.StandardPixmap.SP_MediaStop if playing else QStyle.StandardPixmap.SP_MediaPlay
        self.play_button.setIcon(self.style().standardIcon(icon))
        self.play_button.setText("Stop" if playing else "Play")

    def transcribe_selected(self) -> None:
        sample = self.selected()
        if sample is None or not self.stt_available:
            return
        if self.transcriber is None:
            self.transcriber = engine.WhisperTranscriber(model=self.settings.get(opts.STT_MODEL),
                                                         allow_download=not self.settings.get(opts.OFFLINE))
        transcriber, library = self.transcriber, self.library
        self.transcribe_button.setEnabled(False)
        self.status.setText(f"Transcribing “{sample.speaker_name}”… (the first time loads the Whisper model)")

        def work() -> str:
            return transcriber.transcribe(library.load_audio(sample), engine.TARGET_SAMPLE_RATE)

        def done(text: str) -> None:
            if self.selected() is not None and self.selected().id == sample.id:
                self.transcript_edit.setPlainText(text)
                self.status.setText("Transcribed: check the words, then Save transcript.")
            self._update_buttons()

        def failed(exc: BaseException) -> None:
            self._update_buttons()
            self.show_error(describe(exc))

        self.tasks.run(work, done, failed)

    # -- zips

    def ask_export_zip(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export voices",
                                              str(Path(self.settings.get(opts.LAST_DIR) or Path.home()) / "voices.zip"),
                                              "Zip files (*.zip)")
        if path:
            self.export_zip(path)

    def export_zip(self, path: str | Path) -> None:
        library = self.library
        self.tasks.run(lambda: library.export_zip(path),
                       lambda written: self.status.setText(f"Exported {len(self.model.samples)} voices to {Path(written).name}."),
                       lambda exc: self.show_error(describe(exc)))

    def ask_import_zip(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import voices", self.settings.get(opts.LAST_DIR) or str(Path.home()),
                                              "Zip files (*.zip)")
        if path:
            self.import_zip(path)

    def import_zip(self, path: str | Path) -> None:
        library = self.library

        def done(report) -> None:
            skipped = f"; {len(report.skipped)} already here" if report.skipped else ""
            self._changed(report.added[0].id if report.added else None,
                          f"Imported {len(report.added)} voice{'s' if len(report.added) != 1 else ''}{skipped}.")

        self.tasks.run(lambda: library.import_zip(path), done, lambda exc: self.show_error(describe(exc)))

    # -- messages, shutdown

    def show_error(self, error: UserError) -> None:
        self.last_error = error
        self.status.setText(f"⚠ {error.title}: {error.message}")
        box = QMessageBox(QMessageBox.Icon.Warning, error.title, error.message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("library_error_box")
        if error.hint:
            box.setInformativeText(error.hint)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def closeEvent(self, event) -> None:  # noqa: N802
        self._keep_pending_edits()
        self._shown_id = self.selected().id if self.selected() else None
        self.settings.set(opts.LIBRARY_GEOMETRY, bytes(self.saveGeometry().data()))
        self.player.stop()
        if self.recorder_dialog is not None:
            self.recorder_dialog.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        self.player.shutdown()
        if self.recorder_dialog is not None:
            self.recorder_dialog.shutdown()
