"""The main window: wiring of editor, cast, parameters, render queue, player and history.

Business rules live in the engine; this module only connects panels, actions and the worker.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QCloseEvent, QDesktopServices, QIcon, QTextCursor
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

import engine
import resources
from app import settings as opts
from app.draft import Draft, atomic_write_text, load_draft, read_script, save_draft
from app.editor.script_panel import ScriptPanel
from app.errors import UserError, describe
from app.geometry import fit_window
from app.menus import add_action, build_menus
from app.model_settings import (
    ModelSettingsDialog,
    ask_before_download,
    engine_options,
    missing_model_message,
)
from app.panels.cast import CastPanel
from app.panels.history import HistoryPanel
from app.panels.parameters import ParametersPanel
from app.panels.player import PlayerPanel
from app.panels.queue import QueuePanel
from app.panels.render_bar import RenderBar
from app.panels.status_bar import WrappingStatusBar
from app.playback import BUFFERING, PLAYING, AudioPlayer, DeviceWatcher
from app.settings import Settings
from app.take import (
    EXPORT_FILTERS,
    EXPORT_SUFFIX,
    Take,
    suggested_file_name,
    take_warnings,
)
from app.tasks import TaskRunner
from app.theme import apply_theme
from app.workers import JobOutcome, RenderJob, RenderQueue

log = logging.getLogger(__name__)

FRAMES_PER_SECOND = 44100 / 512
MAX_RECENT = 8
DEFAULT_SIZE = QSize(1280, 860)  # on a first start; shrunk to fit smaller screens


class MainWindow(QMainWindow):
    """Dia Studio's main window."""

    exportFinished = Signal(str)  # path
    exportFailed = Signal(object)  # UserError

    def __init__(self, settings: Settings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings or Settings()
        self.setObjectName("main_window")
        self.setWindowTitle("Dia Studio")
        self.setWindowIcon(QIcon(str(resources.path("icons", "dia-studio.svg"))))
        self.tasks = TaskRunner(self)
        self.history, history_error = self._open_store(engine.RenderHistory, "history")
        self.library, library_error = self._open_store(engine.VoiceLibrary, "voice library")
        self.queue = RenderQueue(lambda: self.history, lambda: self.library, self)
        self.player = AudioPlayer(self)
        self.take: Take | None = None
        self.file_path = ""
        self.last_error: UserError | None = None
        self.load_dialog: QProgressDialog | None = None
        self.library_window = None
        self._closing = False

        self._build_widgets()
        self._build_actions()
        self._connect()
        self._restore_settings()
        self._restore_draft()
        self.cast_panel.set_library(self.library, library_error)
        self.history_panel.set_history(self.history)
        self.show_store_notices(history_error)
        self.update_model_banner()
        self._update_render_state()

    # ------------------------------------------------------------------ construction

    def _open_store(self, factory, what: str):
        try:
            return factory(), ""
        except Exception as exc:  # noqa: BLE001 - the app must start even if a store is damaged
            err = describe(exc)
            log.error("can't open the %s: %s", what, err.message)
            return None, f"The {what} can't be opened: {err.message}"

    def _build_widgets(self) -> None:
        self.script_panel = ScriptPanel()
        self.editor = self.script_panel.editor
        self.cast_panel = CastPanel(self.settings)
        self.params_panel = ParametersPanel(self.settings)

        cast_box = QGroupBox("Cast")
        QVBoxLayout(cast_box).addWidget(self.cast_panel)
        params_box = QGroupBox("Parameters")
        QVBoxLayout(params_box).addWidget(self.params_panel)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(cast_box)
        side_layout.addWidget(params_box)
        side_layout.addStretch(1)
        side_scroll = QScrollArea()
        side_scroll.setWidget(side)
        side_scroll.setWidgetResizable(True)
        side_scroll.setFrameShape(QFrame.Shape.NoFrame)
        side_scroll.setMinimumWidth(320)

        self.editor_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.editor_splitter.setObjectName("editor_splitter")
        self.editor_splitter.addWidget(self.script_panel)
        self.editor_splitter.addWidget(side_scroll)
        self.editor_splitter.setStretchFactor(0, 3)
        self.editor_splitter.setStretchFactor(1, 2)
        self.editor_splitter.setChildrenCollapsible(False)

        self.render_bar = RenderBar()
        self.render_button = self.render_bar.render_button
        self.progress = self.render_bar.progress
        self.progress_label = self.render_bar.label
        self.cancel_button = self.render_bar.cancel_button

        self.player_panel = PlayerPanel(self.player)
        self.history_panel = HistoryPanel()
        self.queue_panel = QueuePanel(self.queue)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("bottom_tabs")
        self.tabs.addTab(self.history_panel, "History")
        self.tabs.addTab(self.queue_panel, "Queue")

        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(self.render_bar)
        bottom_layout.addWidget(self.player_panel, 2)
        bottom_layout.addWidget(self.tabs, 3)

        self.main_splitter = QSplitter(Qt.Orientation.Vertical)
        self.main_splitter.setObjectName("main_splitter")
        self.main_splitter.addWidget(self.editor_splitter)
        self.main_splitter.addWidget(bottom)
        self.main_splitter.setStretchFactor(0, 3)
        self.main_splitter.setStretchFactor(1, 2)
        self.main_splitter.setChildrenCollapsible(False)

        self.banner, self.banner_text, self.banner_button = _banner("model_banner", "Model settings…")
        self.notice, self.notice_text, self.notice_button = _banner("store_notice", "Dismiss")
        self.notice_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # paths to copy

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 6, 8, 4)
        layout.addWidget(self.banner)
        layout.addWidget(self.notice)
        layout.addWidget(self.main_splitter, 1)
        self.setCentralWidget(central)
        self.setStatusBar(WrappingStatusBar())
        self.device_watcher = DeviceWatcher(self)

        QWidget.setTabOrder(self.editor, self.cast_panel.combos["S1"])
        QWidget.setTabOrder(self.cast_panel.combos["S1"], self.cast_panel.combos["S2"])
        QWidget.setTabOrder(self.cast_panel.combos["S2"], self.cast_panel.manage)
        QWidget.setTabOrder(self.cast_panel.manage, self.params_panel.preset)
        QWidget.setTabOrder(self.params_panel.reset, self.render_button)
        QWidget.setTabOrder(self.render_button, self.cancel_button)
        QWidget.setTabOrder(self.cancel_button, self.player_panel.play_button)

    def _build_actions(self) -> None:
        build_menus(self)

    def _connect(self) -> None:
        self.render_button.clicked.connect(self.render)
        self.cancel_button.clicked.connect(self.queue.cancel_current)
        self.banner_button.clicked.connect(self.open_model_settings)
        self.notice_button.clicked.connect(self.notice.hide)
        self.editor.undoAvailable.connect(self.undo_action.setEnabled)
        self.editor.redoAvailable.connect(self.redo_action.setEnabled)
        self.editor.textChanged.connect(self._text_changed)
        self.editor.fileDropped.connect(self.open_script)
        self.editor.issuesChanged.connect(lambda _i: self._update_render_state())
        self.cast_panel.promptCostChanged.connect(self.script_panel.set_prompt_cost)
        self.cast_panel.castChanged.connect(lambda _c: self._update_render_state())
        self.cast_panel.manageRequested.connect(self.open_library)
        self.params_panel.paramsChanged.connect(lambda p: self.script_panel.set_max_new_tokens(p.max_new_tokens))
        self.script_panel.set_max_new_tokens(self.params_panel.params().max_new_tokens)
        self.player_panel.exportRequested.connect(self.ask_export_current)
        self.player.error.connect(lambda message: self.show_error(UserError("Playback problem", message)))
        self.player.durationChanged.connect(lambda _d: self._update_render_state())
        self.device_watcher.changed.connect(self.player_panel.rescan)

        q = self.queue
        q.loadingStarted.connect(self._loading_started)
        q.loadProgress.connect(self._loading_progress)
        q.loadingFinished.connect(self._loading_finished)
        q.renderStarted.connect(self._render_started)
        q.jobChanged.connect(self._job_changed)
        q.audioChunk.connect(self._audio_chunk)
        q.jobFinished.connect(self._job_finished)
        q.jobFailed.connect(self._job_failed)
        q.jobCancelled.connect(self._job_cancelled)
        q.busyChanged.connect(lambda _b: self._update_render_state())

        h = self.history_panel
        h.playRequested.connect(self.play_entry)
        h.exportRequested.connect(self.ask_export_entry)
        h.restoreRequested.connect(self.restore_entry)
        h.rerenderRequested.connect(self.rerender_entry)
        h.deleteRequested.connect(self.delete_entry)
        h.errorOccurred.connect(self.show_error)

        self._draft_timer = QTimer(self, singleShot=True, interval=800)
        self._draft_timer.timeout.connect(self.save_draft_now)

    # ------------------------------------------------------------------ settings, draft

    def _restore_settings(self) -> None:
        s = self.settings
        if s.get(opts.GEOMETRY) and self.restoreGeometry(s.get(opts.GEOMETRY)):
            fit_window(self)  # saved on a larger screen: keep it inside this one
        else:
            fit_window(self, DEFAULT_SIZE, center=True)
        if s.get(opts.WINDOW_STATE):
            self.restoreState(s.get(opts.WINDOW_STATE))
        if s.get(opts.MAIN_SPLITTER):
            self.main_splitter.restoreState(s.get(opts.MAIN_SPLITTER))
        else:
            self.main_splitter.setSizes(self._default_main_split())
        if s.get(opts.EDITOR_SPLITTER):
            self.editor_splitter.restoreState(s.get(opts.EDITOR_SPLITTER))
        else:
            self.editor_splitter.setSizes([760, 480])
        self.tabs.setCurrentIndex(max(0, min(s.get(opts.BOTTOM_TAB), self.tabs.count() - 1)))
        size = s.get(opts.EDITOR_FONT_SIZE)
        if size > 0:
            self._set_editor_font_size(size)
        self.player_panel.refresh_devices(s.get(opts.OUTPUT_DEVICE))
        self._fill_recent()

    def _default_main_split(self) -> list[int]:
        """Editor row and bottom row: the bottom keeps its minimum, the editor row (with the
        parameters) gets what the side panel needs first, then a share of the rest."""
        total = max(1, self.main_splitter.height() if self.isVisible() else self.height() - 110)
        bottom_min = self.main_splitter.widget(1).minimumSizeHint().height()
        side = self.editor_splitter.widget(1).widget().sizeHint().height()
        top = max(min(side, total - bottom_min), round(total * 0.6))
        top = min(top, total - bottom_min) if total > bottom_min else total // 2
        return [top, max(1, total - top)]

    def save_settings(self) -> None:
        s = self.settings
        s.set(opts.GEOMETRY, bytes(self.saveGeometry().data()))
        s.set(opts.WINDOW_STATE, bytes(self.saveState().data()))
        s.set(opts.MAIN_SPLITTER, bytes(self.main_splitter.saveState().data()))
        s.set(opts.EDITOR_SPLITTER, bytes(self.editor_splitter.saveState().data()))
        s.set(opts.BOTTOM_TAB, self.tabs.currentIndex())
        s.set(opts.OUTPUT_DEVICE, self.player_panel.selected_device_name())
        s.sync()

    def _restore_draft(self) -> None:
        draft = load_draft()
        if draft is None:
            examples = sorted(resources.path("examples").glob("*.txt"))
            if examples:
                self._set_script(read_script(examples[0]), "", modified=False)
            return
        self._set_script(draft.text, draft.path, modified=draft.modified)
        if draft.modified and draft.path:
            self.statusBar().showMessage(f"Restored your unsaved changes to {Path(draft.path).name}.", 8000)

    def _set_script(self, text: str, path: str, *, modified: bool) -> None:
        """Replace the editor's text (one undo step, so even this can be undone)."""
        cursor = QTextCursor(self.editor.document())
        cursor.beginEditBlock()
        cursor.select(QTextCursor.SelectionType.Document)
        cursor.insertText(text)
        cursor.endEditBlock()
        self.editor.moveCursor(QTextCursor.MoveOperation.Start)
        self.file_path = path
        self.editor.document().setModified(modified)
        self.editor.check_now()
        self.script_panel.update_budget()
        self._update_title()

    def _text_changed(self) -> None:
        self._update_title()
        self._draft_timer.start()

    def save_draft_now(self) -> None:
        self._draft_timer.stop()
        try:
            save_draft(Draft(self.editor.toPlainText(), self.file_path, self.editor.document().isModified()))
        except OSError as exc:
            log.error("can't autosave the draft: %s", exc)
            self.statusBar().showMessage(f"Can't autosave the script: {exc}", 8000)

    def _update_title(self) -> None:
        if self.file_path:
            star = "*" if self.editor.document().isModified() else ""
            self.setWindowTitle(f"{Path(self.file_path).name}{star} — Dia Studio")
        else:
            self.setWindowTitle("Dia Studio")

    # ------------------------------------------------------------------ script files

    def keep_or_drop_changes(self) -> bool:
        """Before the editor gets other text: offer to save unsaved changes; False means "stay"."""
        if not self.editor.document().isModified() or not self.editor.toPlainText().strip():
            return True
        name = Path(self.file_path).name if self.file_path else "the untitled script"
        answer = self.ask_unsaved(name)
        if answer == "save":
            return self.save_script()
        return answer == "discard"

    def ask_unsaved(self, name: str) -> str:
        """"save", "discard" or "cancel" (tests replace this)."""
        buttons = (QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                   | QMessageBox.StandardButton.Cancel)
        answer = QMessageBox.question(self, "Unsaved changes", f"Save the changes to {name}?", buttons,
                                      QMessageBox.StandardButton.Save)
        return {QMessageBox.StandardButton.Save: "save",
                QMessageBox.StandardButton.Discard: "discard"}.get(answer, "cancel")

    def new_script(self) -> None:
        if not self.keep_or_drop_changes():
            return
        self.save_draft_now()
        self._set_script("[S1] ", "", modified=False)
        self.editor.moveCursor(QTextCursor.MoveOperation.End)
        self.editor.setFocus()

    def ask_open_script(self) -> None:
        """Offer to save unsaved changes first, then ask which file to open."""
        if not self.keep_or_drop_changes():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open script", self.settings.get(opts.LAST_DIR) or str(Path.home()),
                                              "Scripts (*.txt *.dia);;All files (*)")
        if path:
            self.open_script(path, ask=False)

    def open_script(self, path: str | Path, *, ask: bool = True) -> bool:
        """Load a script file; ``ask=False`` when the unsaved changes were already dealt with."""
        if ask and not self.keep_or_drop_changes():
            return False
        try:
            text = read_script(path)
        except Exception as exc:  # noqa: BLE001
            self.show_error(describe(exc))
            return False
        self.save_draft_now()
        self._set_script(text, str(path), modified=False)
        self._remember_file(str(path))
        self.statusBar().showMessage(f"Opened {Path(path).name}", 4000)
        return True

    def open_example(self, path: Path) -> None:
        if not self.keep_or_drop_changes():
            return
        self.save_draft_now()
        self._set_script(read_script(path), "", modified=False)
        self.statusBar().showMessage(f"Example: {path.stem.split('-', 1)[-1].replace('-', ' ')}", 4000)

    def save_script(self) -> bool:
        if not self.file_path:
            return self.ask_save_script_as()
        return self.write_script(self.file_path)

    def ask_save_script_as(self) -> bool:
        start = self.file_path or str(Path(self.settings.get(opts.LAST_DIR) or Path.home()) / "dialogue.txt")
        path, _ = QFileDialog.getSaveFileName(self, "Save script", start, "Scripts (*.txt);;All files (*)")
        if not path:
            return False
        return self.write_script(path)

    def write_script(self, path: str | Path) -> bool:
        try:
            atomic_write_text(path, self.editor.toPlainText())
        except Exception as exc:  # noqa: BLE001
            self.show_error(describe(exc))
            return False
        self.file_path = str(path)
        self.editor.document().setModified(False)
        self._remember_file(str(path))
        self._update_title()
        self.save_draft_now()
        self.statusBar().showMessage(f"Saved {Path(path).name}", 4000)
        return True

    def _remember_file(self, path: str) -> None:
        self.settings.set(opts.LAST_DIR, str(Path(path).parent))
        recent = [p for p in self.settings.get(opts.RECENT_FILES) if p != path]
        self.settings.set(opts.RECENT_FILES, [path, *recent][:MAX_RECENT])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = [p for p in self.settings.get(opts.RECENT_FILES) if Path(p).is_file()]
        for path in recent:
            add_action(self, self.recent_menu, Path(path).name, lambda _=False, p=path: self.open_script(p), tip=path)
        self.recent_menu.setEnabled(bool(recent))

    # ------------------------------------------------------------------ rendering

    def build_job(self, script: str | None = None, params: engine.GenerationParams | None = None,
                  cast: dict | None = None) -> RenderJob | None:
        """A job from the editor, cast and parameters (or the given values); None with a message if
        something must be fixed first."""
        from_editor = script is None
        script = self.editor.toPlainText() if script is None else script
        if from_editor:
            self.editor.check_now()
            errors = [i for i in self.editor.issues if i.is_error]
            if not script.strip():
                self.show_error(UserError("The script is empty", "Write a dialogue first.",
                                          "For example: [S1] Hello! [S2] Hi there. (laughs)", "missing_input"))
                return None
            if errors:
                first = errors[0]
                self.editor.go_to(first.line, first.column)
                self.statusBar().showMessage(f"Fix the script first: line {first.line}: {first.message}", 8000)
                self.progress_label.setText("Fix the script first (see the red underline)")
                return None
        if not self.params_panel.seed.is_valid():
            self.show_error(UserError("The seed is out of range", "A seed is a whole number from 0 to 2^63 − 1.",
                                      code="invalid_parameter"))
            return None
        try:
            params = params or self.params_panel.params()
        except engine.DiaStudioError as exc:
            self.show_error(describe(exc))
            return None
        cast = self.cast_panel.cast() if cast is None else cast
        cost = self.cast_panel.prompt_cost() if cast == self.cast_panel.cast() else None
        budget = engine.estimate_budget(script, prompt_seconds=cost.seconds if cost else 0.0,
                                        max_new_tokens=params.max_new_tokens)
        expected = math.ceil(budget.estimated_seconds * FRAMES_PER_SECOND) + 15
        if not ask_before_download(self, self.settings):  # a missing model: ask before downloading gigabytes
            return None
        return RenderJob(script=script, params=params, options=engine_options(self.settings), cast=dict(cast),
                         title=engine.make_title(script), expected_steps=expected)

    def render(self) -> RenderJob | None:
        """Queue a render of what is on screen (Ctrl+Enter)."""
        self.script_panel.update_budget()  # the meter may still be waiting for its debounce
        self.save_draft_now()  # a render is a good moment to make sure the text is on disk
        job = self.build_job()
        if job is None:
            return None
        return self.submit(job)

    def submit(self, job: RenderJob) -> RenderJob:
        ahead = len(self.queue.pending) + (1 if self.queue.busy else 0)
        self.queue.submit(job)
        if ahead:
            self.statusBar().showMessage(f"Queued: {ahead} render{'s' if ahead != 1 else ''} ahead of it", 5000)
            self.tabs.setCurrentWidget(self.queue_panel)
        return job

    def _update_render_state(self) -> None:
        busy = self.queue.busy
        self.render_bar.set_busy(busy)
        self.cancel_action.setEnabled(busy)
        has_errors = any(i.is_error for i in self.editor.issues)
        self.render_button.setToolTip("Fix the script's errors first (red underlines)" if has_errors else
                                      "Render the script with the chosen voices and parameters (Ctrl+Enter)")
        can_export = self.player.duration > 0 and not self.player.streaming
        self.export_action.setEnabled(can_export)

    def _loading_started(self, job: RenderJob) -> None:
        dialog = QProgressDialog("Loading the Dia model…", "Cancel", 0, 0, self)
        dialog.setObjectName("load_dialog")
        dialog.setWindowTitle("Loading the model")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.setMinimumWidth(460)
        dialog.canceled.connect(lambda: self.queue.cancel(job.id))
        dialog.show()
        self.load_dialog = dialog
        self.progress_label.setText("Loading the model…")

    def _loading_progress(self, job: RenderJob, p: engine.LoadProgress) -> None:
        dialog = self.load_dialog
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

    def _close_load_dialog(self) -> None:
        if self.load_dialog is not None:
            self.load_dialog.canceled.disconnect()  # closing a QProgressDialog emits canceled
            self.load_dialog.close()
            self.load_dialog.deleteLater()
            self.load_dialog = None

    def _loading_finished(self, message: str) -> None:
        self._close_load_dialog()
        self.statusBar().showMessage(message, 5000)
        self.update_model_banner()

    def _render_started(self, job: RenderJob) -> None:
        """Stream the render into the player (live waveform, partial kept on cancel) unless another
        take is playing; play along when asked to and an output exists."""
        self._close_load_dialog()
        busy_elsewhere = self.player.state in (PLAYING, BUFFERING) and (self.take is None or self.take.job_id is None)
        if busy_elsewhere:
            return
        self.take = Take(job.title, job.script, job.params.to_dict(), None, self._cast_names(job.cast),
                         job.options.model or engine.DIA_REPO, job_id=job.id)
        expected = job.expected_steps / FRAMES_PER_SECOND if job.expected_steps else 10.0
        self.player.begin_stream(44100, ("job", job.id), expected)
        self.player_panel.waveform.expected_seconds = expected / max(0.5, job.params.speed_factor)
        self.player_panel.set_title(f"Rendering: {job.title}")
        self.player_panel.set_warnings(())
        if self.follow_action.isChecked() and self.player_panel.has_output:
            self.player.play()

    def _job_changed(self, job: RenderJob) -> None:
        if job is self.queue.current:
            self.render_bar.show_job(job)

    def _audio_chunk(self, job: RenderJob, chunk: engine.AudioChunk) -> None:
        if self.player.source == ("job", job.id):
            self.player.append(chunk.samples, chunk.start)

    def _job_finished(self, job: RenderJob, outcome: JobOutcome) -> None:
        result = outcome.result
        self.params_panel.set_last_seed(result.seed)
        entry = outcome.entry
        warnings = take_warnings(result.stop_reason, result.warnings)
        take = Take(entry.title if entry else engine.make_title(job.script), job.script, result.params.to_dict(),
                    result.seed, self._cast_names(job.cast, entry), job.options.model or engine.DIA_REPO,
                    entry.id if entry else None, job.id, warnings=warnings)
        if self.player.source == ("job", job.id):
            self.player.end_stream(result.audio)
            self.take = take
        elif self.player.state != PLAYING:
            self.player.load(result.audio, result.sample_rate, ("job", job.id))
            self.take = take
        if self.take is take:
            self.player_panel.set_title(f"{take.title} · seed {result.seed}")
            self.player_panel.set_warnings(warnings)
        note = f" · ⚠ {warnings[0].split(':')[0]}" if warnings else ""  # in full above the waveform
        self.render_bar.show_result(f"Done: {result.duration:.1f} s of audio in "
                                    f"{result.timings.get('total', 0):.1f} s (seed {result.seed}){note}", done=True)
        self.history_panel.reload()
        if entry is not None:
            self.history_panel.select(entry.id)
        if outcome.history_error is not None:
            self.show_error(outcome.history_error)
        self._update_render_state()

    def _job_failed(self, job: RenderJob, error: UserError) -> None:
        self._close_load_dialog()
        if self.player.source == ("job", job.id):
            self.player.end_stream()
        self.render_bar.show_result(f"Failed: {error.title}", done=False)
        if error.action == "script" and error.line is not None and job.script == self.editor.toPlainText():
            self.editor.go_to(error.line, error.column or 1)
        if error.action == "model_settings" and self.queue.pending:
            # every queued render would fail the same way: don't stack up identical messages
            for pending in self.queue.pending:
                self.queue.cancel(pending.id)
            error = UserError(error.title, error.message, error.hint + " The queued renders were cancelled.",
                              error.code, error.line, error.column, error.action)
        self.show_error(error)
        self.update_model_banner()

    def _job_cancelled(self, job: RenderJob) -> None:
        if job.state != "cancelled":
            return
        self._close_load_dialog()
        if self.player.source == ("job", job.id):
            self.player.end_stream()
            if self.take is not None and self.take.job_id == job.id:
                self.take.partial = True
                self.take.title = f"{self.take.title} (cancelled, partial)"
                self.player_panel.set_title(self.take.title)
        if self.queue.current is None or self.queue.current is job:
            self.render_bar.show_result("Cancelled", done=False)
        self.statusBar().showMessage("Render cancelled", 4000)

    def _cast_names(self, cast: dict, entry: engine.HistoryEntry | None = None) -> dict:
        if entry is not None:
            return {tag: (m.name if not m.is_random else "random voice") for tag, m in
                    {t: entry.cast.get(t) or engine.CastMember() for t in ("S1", "S2")}.items()}
        samples = self.cast_panel.samples
        return {tag: (samples[vid].speaker_name if vid in samples else f"voice {vid}") if vid is not None
                else "random voice" for tag, vid in cast.items()}

    # ------------------------------------------------------------------ history

    def play_entry(self, entry: engine.HistoryEntry) -> None:
        history = self.history

        def done(samples: np.ndarray) -> None:
            self.player.load(samples, entry.sample_rate, ("entry", entry.id))
            self.take = Take(entry.title, entry.script, entry.params.to_dict(), entry.seed,
                             self._cast_names({}, entry), entry.model, entry.id,
                             warnings=take_warnings(entry.stop_reason, entry.warnings))
            self.player_panel.set_title(f"{entry.title} · seed {entry.seed}")
            self.player_panel.set_warnings(self.take.warnings)
            self.player.play()
            self._update_render_state()

        self.tasks.run(lambda: history.load_audio(entry), done, lambda exc: self.show_error(describe(exc)))

    def restore_entry(self, entry: engine.HistoryEntry) -> None:
        """Put a take's script, voices and parameters (with the seed it used) back on screen."""
        self._set_script(entry.script, "", modified=False)
        self.params_panel.set_params(entry.reproducible_params)
        wanted = {tag: (entry.cast[tag].voice_id if tag in entry.cast else None) for tag in ("S1", "S2")}
        self.cast_panel.set_cast(wanted)
        lost = [entry.cast[t].name for t in entry.cast if self.cast_panel.cast().get(t) != wanted[t]]
        message = f"Restored the settings of “{entry.title}” (seed {entry.seed}); Ctrl+Z brings your text back."
        if lost:
            message += f" Voices no longer in the library: {', '.join(lost)} (random voice used)."
        self.statusBar().showMessage(message, 8000)

    def rerender_entry(self, entry: engine.HistoryEntry) -> RenderJob | None:
        """Queue the take's script and settings again (with its seed: the same take, unless the
        voices changed). Voices no longer in the library are replaced by random ones, with a note."""
        cast = {tag: (entry.cast[tag].voice_id if tag in entry.cast else None) for tag in ("S1", "S2")}
        gone = [entry.cast[t].name for t, vid in cast.items() if vid is not None and vid not in self.cast_panel.samples]
        if gone:
            cast = {t: (vid if vid in self.cast_panel.samples else None) for t, vid in cast.items()}
            self.statusBar().showMessage(f"Not in the library any more: {', '.join(gone)}; a random voice "
                                         "speaks instead.", 8000)
        job = self.build_job(entry.script, entry.reproducible_params, cast)
        return self.submit(job) if job is not None else None

    def delete_entry(self, entry: engine.HistoryEntry) -> bool:
        if not self.confirm("Delete this take?", f"“{entry.title}” (seed {entry.seed}) and its audio will be deleted."):
            return False
        try:
            self.history.delete(entry.id)
        except Exception as exc:  # noqa: BLE001
            self.show_error(describe(exc))
            return False
        if self.player.source == ("entry", entry.id):
            self.player.clear()
            self.take = None
            self.player_panel.set_title("")
            self.player_panel.set_warnings(())
        self.history_panel.reload()
        return True

    # ------------------------------------------------------------------ export

    def export_suffix_filter(self) -> tuple[str, str]:
        formats = engine.export_formats()
        preferred = self.settings.get(opts.EXPORT_FORMAT)
        preferred = preferred if preferred in formats else "wav"
        filters = ";;".join(EXPORT_FILTERS[f] for f in formats if f in EXPORT_FILTERS)
        return preferred, filters

    def _ask_export_path(self, title: str) -> str:
        preferred, filters = self.export_suffix_filter()
        name = suggested_file_name(title)
        start = Path(self.settings.get(opts.LAST_DIR) or Path.home()) / f"{name}{EXPORT_SUFFIX[preferred]}"
        path, chosen = QFileDialog.getSaveFileName(self, "Export audio", str(start), filters,
                                                   EXPORT_FILTERS[preferred])
        if path and not Path(path).suffix:
            fmt = next((f for f, flt in EXPORT_FILTERS.items() if flt == chosen), preferred)
            path += EXPORT_SUFFIX[fmt]
        return path

    def ask_export_current(self) -> None:
        if self.player.duration <= 0 or self.player.streaming:
            return
        path = self._ask_export_path(self.take.title if self.take else "dialogue")
        if path:
            self.export_current(path)

    def export_current(self, path: str | Path) -> None:
        """Write the player's audio with the take's settings in the file's metadata (in the background)."""
        samples = self.player.samples().copy()
        rate = self.player.sample_rate
        metadata = (self.take or Take("Dia Studio render")).metadata()
        self._export(path, lambda: samples, rate, metadata)

    def ask_export_entry(self, entry: engine.HistoryEntry) -> None:
        path = self._ask_export_path(entry.title)
        if path:
            self.export_entry(entry, path)

    def export_entry(self, entry: engine.HistoryEntry, path: str | Path) -> None:
        take = Take(entry.title, entry.script, entry.params.to_dict(), entry.seed, self._cast_names({}, entry),
                    entry.model, entry.id, warnings=take_warnings(entry.stop_reason, entry.warnings))
        history = self.history
        self._export(path, lambda: history.load_audio(entry), entry.sample_rate, take.metadata())

    def _export(self, path: str | Path, samples_fn, rate: int, metadata: dict) -> None:
        path = Path(path)
        self.statusBar().showMessage(f"Exporting {path.name}…")

        def work() -> str:
            engine.write_audio(path, samples_fn(), rate, metadata=metadata)
            return str(path)

        def done(written: str) -> None:
            self.settings.set(opts.LAST_DIR, str(path.parent))
            fmt = path.suffix.lower().lstrip(".")
            self.settings.set(opts.EXPORT_FORMAT, "opus" if fmt == "ogg" else fmt)
            self.statusBar().showMessage(f"Exported {path.name}", 6000)
            self.exportFinished.emit(written)

        def failed(exc: BaseException) -> None:
            error = describe(exc)
            self.show_error(error)
            self.exportFailed.emit(error)

        self.tasks.run(work, done, failed)

    # ------------------------------------------------------------------ other windows

    def open_library(self) -> None:
        from app.library.window import LibraryWindow

        if self.library is None:
            self.show_error(UserError("The voice library can't be opened",
                                      "Its database is damaged or unreadable; see the log for details."))
            return
        if self.library_window is None:
            self.library_window = LibraryWindow(self.library, self.settings, self.tasks, self.player)
            self.library_window.libraryChanged.connect(self.cast_panel.refresh)
            self.library_window.place(self)
        self.library_window.show()
        self.library_window.raise_()
        self.library_window.activateWindow()

    def open_model_settings(self) -> ModelSettingsDialog:
        dialog = ModelSettingsDialog(self.settings, self.tasks, self)
        dialog.finished.connect(lambda _r: self.update_model_banner())
        dialog.downloadFinished.connect(lambda _ok: self.update_model_banner())
        dialog.open()
        self.model_dialog = dialog
        return dialog

    def show_store_notices(self, history_error: str = "") -> None:
        """What opening the history and the voice library found (a lost database rebuilt, files moved
        aside), or why the history can't be opened: shown until dismissed, not as a passing status."""
        stores = (self.history, self.library)
        lines = [history_error] + [store.open_report.notice for store in stores if store is not None]
        text = "\n".join(line for line in lines if line)
        self.notice_text.setText("ⓘ " + text if text else "")
        self.notice.setVisible(bool(text))

    def update_model_banner(self) -> None:
        message = missing_model_message(self.settings)
        self.banner_text.setText("⚠ " + message if message else "")
        self.banner.setVisible(bool(message))

    def set_theme(self, theme: str) -> None:
        self.settings.set(opts.THEME, theme)
        apply_theme(QApplication.instance(), theme)
        for action in self.theme_group.actions():
            action.setChecked(action.objectName() == f"theme_{theme}")

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.script_panel.apply_colors()
            self.cast_panel._update_warning(self.cast_panel.cast())  # noqa: SLF001 - recolour
        super().changeEvent(event)

    def zoom_editor(self, step: int) -> None:
        size = max(7, min(40, round(self.editor.font().pointSizeF()) + step))
        self._set_editor_font_size(size)
        self.settings.set(opts.EDITOR_FONT_SIZE, size)

    def _set_editor_font_size(self, size: int) -> None:
        font = self.editor.font()
        font.setPointSize(size)
        self.editor.setFont(font)

    def go_to_next_issue(self) -> None:
        position = self.editor.textCursor().position()
        issues = self.editor.issues
        if not issues:
            return
        following = [i for i in issues if i.start > position] or issues
        self.editor.go_to(following[0].line, following[0].column)

    # ------------------------------------------------------------------ messages

    def show_error(self, error: UserError) -> QMessageBox:
        """Show a message (non-blocking); the last one is kept for tests and the status bar."""
        self.last_error = error
        log.info("user message: %s: %s", error.title, error.message)
        box = QMessageBox(QMessageBox.Icon.Warning, error.title, error.message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("error_box")
        if error.hint:
            box.setInformativeText(error.hint)
        if error.action == "model_settings":
            button = box.addButton("Model settings…", QMessageBox.ButtonRole.ActionRole)
            button.clicked.connect(self.open_model_settings)
        elif error.action == "voice_library":
            button = box.addButton("Voice library…", QMessageBox.ButtonRole.ActionRole)
            button.clicked.connect(self.open_library)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.statusBar().showMessage(f"{error.title}: {error.message}", 10000)
        return box

    def confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _open_url(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    # ------------------------------------------------------------------ shutdown

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.hide()  # vanish at once; stopping a model load in progress can take a few seconds
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Save everything and stop background work (idempotent)."""
        if self._closing:
            return
        self._closing = True
        self.save_draft_now()
        self.save_settings()
        self._close_load_dialog()
        self.queue.shutdown()
        self.player.shutdown()
        self.tasks.wait()
        if self.library_window is not None:
            self.library_window.shutdown()
            self.library_window.close()
        for store in (self.history, self.library):
            if store is not None:
                store.close()


def _banner(name: str, button_text: str) -> tuple[QFrame, QLabel, QPushButton]:
    """A hidden strip across the top of the window: wrapped text and one button."""
    frame = QFrame()
    frame.setObjectName(name)
    frame.setStyleSheet(f"QFrame#{name} {{ background: rgba(235, 170, 40, 0.18); "
                        "border: 1px solid rgba(200, 140, 0, 0.7); border-radius: 4px; }")
    text = QLabel()
    text.setObjectName(f"{name}_text")
    text.setWordWrap(True)
    button = QPushButton(button_text)
    button.setObjectName(f"{name}_button")
    row = QHBoxLayout(frame)
    row.addWidget(text, 1)
    row.addWidget(button)
    frame.hide()
    return frame, text, button
