"""The main window: lays out the views and panels and connects them to the controllers.

What the window does not do itself lives beside it: the script document (``app.document``) and its
files (``app.script_files``), rendering (``app.render_controller``), history and export actions,
the menu bar (``app.menus``, which only emits signals). The stores, queue, player and task runner
come from ``app.main`` (``app.services``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QEvent, QSize, Qt, QUrl
from PySide6.QtGui import QCloseEvent, QDesktopServices, QIcon, QTextCursor
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

import engine
import resources
from app import settings as opts
from app.api_server import ApiServer, ApiServerDialog
from app.draft import read_script
from app.episode.mode import EpisodeMode
from app.errors import UserError, describe
from app.export_actions import ExportActions
from app.geometry import fit_window
from app.history_actions import HistoryActions
from app.load_dialog import ModelLoadDialog
from app.menus import MenuBar
from app.model_settings import (
    ModelSettingsDialog,
    ask_before_download,
    missing_model_message,
    remote_target,
)
from app.now_playing import NowPlaying
from app.panels.docks import PanelDocks
from app.panels.history import HistoryPanel
from app.panels.player import PlayerPanel
from app.panels.queue import QueuePanel
from app.panels.render_bar import RenderBar
from app.panels.status_bar import WrappingStatusBar
from app.playback import DeviceWatcher
from app.render_controller import RenderController
from app.script_files import ScriptFiles
from app.script_view import ScriptView
from app.services import Services, create_services
from app.settings import Settings
from app.take import Take
from app.theme import apply_theme
from app.workers import RenderJob

log = logging.getLogger(__name__)

DEFAULT_SIZE = QSize(1280, 860)  # on a first start; shrunk to fit smaller screens


class MainWindow(QMainWindow):
    """Dia Studio's main window: the script view above, render bar and player below it; History and
    Queue in docks (tabbed at the bottom by default; resizable, movable, floatable)."""

    def __init__(self, settings: Settings | None = None, services: Services | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings or Settings()
        self.services = services or create_services()
        self.history, self.library = self.services.history, self.services.library
        self.queue, self.player, self.tasks = self.services.queue, self.services.player, self.services.tasks
        self.setObjectName("main_window")
        self.setWindowTitle("Dia Studio")
        self.setWindowIcon(QIcon(str(resources.path("icons", "dia-studio.svg"))))
        self.last_error: UserError | None = None
        self.library_window = None
        self.model_dialog: ModelSettingsDialog | None = None
        self.api_dialog: ApiServerDialog | None = None
        self._render_target: object = False  # where renders go, once applied (None: this computer)
        self._closing = False

        self._build_widgets()
        self.menus = MenuBar(self, self.settings.get(opts.THEME), self.settings.get(opts.PLAY_WHILE_RENDERING))
        self._dock_menu()
        self._build_controllers()
        self._connect()
        self.episode = EpisodeMode(self)  # the episode view beside the script view (app.episode.mode)
        self._restore_settings()
        self._restore_draft()
        self.apply_render_target()
        self.history_panel.set_history(self.history)
        self.show_store_notices(self.services.history_error)
        self.update_model_banner()
        self._update_render_state()
        self.episode.restore()
        self.api_server.restore()

    # ------------------------------------------------------------------ construction

    def _build_widgets(self) -> None:
        self.script_view = ScriptView(self.settings)
        self.document = self.script_view.document
        self.editor_splitter = self.script_view
        self.script_panel = self.script_view.script_panel
        self.editor = self.script_view.editor
        self.cast_panel = self.script_view.cast_panel
        self.params_panel = self.script_view.params_panel

        self.render_bar = RenderBar()
        self.render_button = self.render_bar.render_button
        self.progress = self.render_bar.progress
        self.progress_label = self.render_bar.label
        self.cancel_button = self.render_bar.cancel_button

        self.player_panel = PlayerPanel(self.player)
        self.history_panel = HistoryPanel()
        self.queue_panel = QueuePanel(self.queue)
        self.tabs = PanelDocks(self, {"History": self.history_panel, "Queue": self.queue_panel})

        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(self.render_bar)
        bottom_layout.addWidget(self.player_panel, 1)

        self.main_splitter = QSplitter(Qt.Orientation.Vertical)
        self.main_splitter.setObjectName("main_splitter")
        self.main_splitter.addWidget(self.script_view)
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
        QWidget.setTabOrder(self.params_panel.last_in_tab_order, self.render_button)
        QWidget.setTabOrder(self.render_button, self.cancel_button)
        QWidget.setTabOrder(self.cancel_button, self.player_panel.play_button)

    def _dock_menu(self) -> None:
        """View → History / Queue show and hide their docks."""
        view = next(a.menu() for a in self.menuBar().actions() if a.menu() is not None and a.text() == "&View")
        view.addSeparator()
        for action, key in zip(self.tabs.toggle_actions(), ("Ctrl+Shift+H", "Ctrl+Shift+U")):
            action.setShortcut(key)
            view.addAction(action)

    def _build_controllers(self) -> None:
        def voices() -> dict:  # the library's samples by id, as the cast panel has them
            return self.cast_panel.samples

        self.now_playing = NowPlaying(self)
        self.files = ScriptFiles(self.document, self.settings, lambda name: self.ask_unsaved(name), self, self)
        self.model_loading = ModelLoadDialog(self.queue, self)  # first: it closes before the render shows
        self.renderer = RenderController(self.queue, self.player, self.now_playing, self.settings, voices,
                                         lambda: self.menus.follow_action.isChecked() and self.player_panel.has_output,
                                         self)
        self.history_actions = HistoryActions(lambda: self.history, self.player, self.tasks, self.now_playing, voices,
                                              self.render_script, lambda title, text: self.confirm(title, text), self)
        self.exporter = ExportActions(self.settings, self.tasks, self.player, self.now_playing,
                                      lambda: self.history, self, self)
        self.api_server = ApiServer(self.queue, self.settings, lambda: self.services.library, lambda: self.history,
                                    self)
        self.api_server.historyChanged.connect(self.history_panel.reload)
        self.api_server.errorRaised.connect(lambda error: self.statusBar().showMessage(
            f"{error.title}: {error.message}", 10000))

    def _connect(self) -> None:
        self._connect_menus()
        self.render_button.clicked.connect(self.render)
        self.cancel_button.clicked.connect(self.renderer.cancel)
        self.banner_button.clicked.connect(self.open_model_settings)
        self.notice_button.clicked.connect(self.notice.hide)

        doc = self.document
        doc.titleChanged.connect(self.setWindowTitle)
        doc.draftFailed.connect(lambda why: self.statusBar().showMessage(f"Can't autosave the script: {why}", 8000))
        self.editor.undoAvailable.connect(self.menus.undo_action.setEnabled)
        self.editor.redoAvailable.connect(self.menus.redo_action.setEnabled)
        self.editor.fileDropped.connect(self.files.open)
        self.editor.issuesChanged.connect(lambda _i: self._update_render_state())
        self.cast_panel.castChanged.connect(lambda _c: self._update_render_state())
        self.cast_panel.manageRequested.connect(self.open_library)

        self.player_panel.exportRequested.connect(self.exporter.ask_export_current)
        self.player.error.connect(lambda message: self.show_error(UserError("Playback problem", message)))
        self.player.durationChanged.connect(lambda _d: self._update_render_state())
        self.device_watcher.changed.connect(self.player_panel.rescan)
        self.now_playing.titleChanged.connect(self.player_panel.set_title)
        self.now_playing.warningsChanged.connect(self.player_panel.set_warnings)

        for source in (self.files, self.renderer, self.history_actions, self.exporter):
            source.errorRaised.connect(self.show_error)
            source.statusMessage.connect(self.statusBar().showMessage)
        self.files.recentChanged.connect(self.menus.set_recent)

        self._connect_rendering()

        h = self.history_panel
        h.playRequested.connect(self.history_actions.play)
        h.exportRequested.connect(self.exporter.ask_export_entry)
        h.restoreRequested.connect(self.restore_entry)
        h.rerenderRequested.connect(self.history_actions.rerender)
        h.deleteRequested.connect(self.history_actions.delete)
        h.errorOccurred.connect(self.show_error)
        self.history_actions.historyChanged.connect(self.history_panel.reload)

    def _connect_menus(self) -> None:
        m = self.menus
        m.newRequested.connect(self.new_script)
        m.openRequested.connect(lambda: self.files.ask_open())
        m.exampleRequested.connect(self.files.open_example)
        m.recentRequested.connect(self.files.open)
        m.saveRequested.connect(self.files.save)
        m.saveAsRequested.connect(self.files.ask_save_as)
        m.exportRequested.connect(self.exporter.ask_export_current)
        m.quitRequested.connect(self.close)
        m.editRequested.connect(self.script_view.edit)
        m.insertRequested.connect(self.editor.insert_text)
        m.renderRequested.connect(self.render)
        m.cancelRequested.connect(self.renderer.cancel)
        m.playPauseRequested.connect(self.player.toggle)
        m.stopRequested.connect(self.player.stop)
        m.followToggled.connect(lambda on: self.settings.set(opts.PLAY_WHILE_RENDERING, on))
        m.unloadRequested.connect(self.queue.unload_model)
        m.themeRequested.connect(self.set_theme)
        m.zoomRequested.connect(self.zoom_editor)
        m.libraryRequested.connect(self.open_library)
        m.modelSettingsRequested.connect(self.open_model_settings)
        m.apiServerRequested.connect(self.open_api_server)
        m.folderRequested.connect(self._open_url)

    def _connect_rendering(self) -> None:
        r = self.renderer
        r.jobShown.connect(self.render_bar.show_job)
        r.resultShown.connect(self.render_bar.show_result)
        r.streamExpected.connect(lambda seconds: setattr(self.player_panel.waveform, "expected_seconds", seconds))
        r.seedUsed.connect(self.params_panel.set_last_seed)
        r.historyChanged.connect(self._history_changed)
        r.scriptFailed.connect(self._script_failed)
        r.queuedBehind.connect(lambda _ahead: self.tabs.setCurrentWidget(self.queue_panel))
        q = self.queue
        q.loadingStarted.connect(lambda _job: self.progress_label.setText("Loading the model…"))
        q.loadingFinished.connect(self._loading_finished)
        q.jobFinished.connect(lambda _job, _outcome: self._update_render_state())
        q.jobFailed.connect(lambda _job, _error: self.update_model_banner())
        q.busyChanged.connect(lambda _b: self._update_render_state())

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
            self.script_view.restoreState(s.get(opts.EDITOR_SPLITTER))
        else:
            self.script_view.setSizes([760, 480])
        self.tabs.raise_tab(max(0, min(s.get(opts.BOTTOM_TAB), self.tabs.count() - 1)))
        size = s.get(opts.EDITOR_FONT_SIZE)
        if size > 0:
            self.script_view.set_font_size(size)
        self.player_panel.refresh_devices(s.get(opts.OUTPUT_DEVICE))
        self.menus.set_recent(self.files.recent())

    def _default_main_split(self) -> list[int]:
        """Editor row and bottom row: the bottom keeps its minimum, the editor row (with the
        parameters) gets what the side panel needs first, then a share of the rest."""
        total = max(1, self.main_splitter.height() if self.isVisible() else self.height() - 110)
        bottom_min = self.main_splitter.widget(1).minimumSizeHint().height()
        side = self.script_view.widget(1).widget().sizeHint().height()
        top = max(min(side, total - bottom_min), round(total * 0.6))
        top = min(top, total - bottom_min) if total > bottom_min else total // 2
        return [top, max(1, total - top)]

    def save_settings(self) -> None:
        s = self.settings
        s.set(opts.GEOMETRY, bytes(self.saveGeometry().data()))
        s.set(opts.WINDOW_STATE, bytes(self.saveState().data()))
        s.set(opts.MAIN_SPLITTER, bytes(self.main_splitter.saveState().data()))
        s.set(opts.EDITOR_SPLITTER, bytes(self.script_view.saveState().data()))
        s.set(opts.BOTTOM_TAB, self.tabs.currentIndex())
        s.set(opts.OUTPUT_DEVICE, self.player_panel.selected_device_name())
        s.sync()

    def _restore_draft(self) -> None:
        draft = self.document.restore_draft()
        if draft is None:
            examples = sorted(resources.path("examples").glob("*.txt"))
            if examples:
                self.document.set_text(read_script(examples[0]))
            return
        if draft.modified and draft.path:
            self.statusBar().showMessage(f"Restored your unsaved changes to {Path(draft.path).name}.", 8000)

    # ------------------------------------------------------------------ script

    def new_script(self) -> None:
        """An empty script, ready to type in (after offering to save unsaved changes)."""
        if self.files.new():
            self.editor.moveCursor(QTextCursor.MoveOperation.End)
            self.editor.setFocus()

    def ask_unsaved(self, name: str) -> str:
        """"save", "discard" or "cancel" (tests replace this)."""
        buttons = (QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                   | QMessageBox.StandardButton.Cancel)
        answer = QMessageBox.question(self, "Unsaved changes", f"Save the changes to {name}?", buttons,
                                      QMessageBox.StandardButton.Save)
        return {QMessageBox.StandardButton.Save: "save",
                QMessageBox.StandardButton.Discard: "discard"}.get(answer, "cancel")

    def restore_entry(self, entry: engine.HistoryEntry) -> None:
        """Put a take's script, voices and parameters (with the seed it used) back on screen."""
        lost = self.script_view.restore(entry)
        message = f"Restored the settings of “{entry.title}” (seed {entry.seed}); Ctrl+Z brings your text back."
        if lost:
            message += f" Voices no longer in the library: {', '.join(lost)} (random voice used)."
        self.statusBar().showMessage(message, 8000)

    # ------------------------------------------------------------------ rendering

    def render(self) -> RenderJob | None:
        """Queue a render of what is on screen (Ctrl+Enter); None with a message if something must
        be fixed first."""
        self.script_panel.update_budget()  # the meter may still be waiting for its debounce
        self.document.save_draft()  # a render is a good moment to make sure the text is on disk
        script = self.document.text()
        if not self._script_ready(script):
            return None
        return self.render_script(script)

    def render_script(self, script: str, params: engine.GenerationParams | None = None,
                      cast: dict | None = None) -> RenderJob | None:
        """Queue ``script`` with ``params`` and ``cast`` (default: those on screen)."""
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
        if not ask_before_download(self, self.settings):  # a missing model: ask before downloading gigabytes
            return None
        job = self.renderer.build_job(script, params, cast, self.script_view.prompt_seconds_for(cast))
        return self.renderer.submit(job)

    def _script_ready(self, script: str) -> bool:
        """The editor's script can be rendered; else say why (and show the first error)."""
        self.editor.check_now()
        if not script.strip():
            self.show_error(UserError("The script is empty", "Write a dialogue first.",
                                      "For example: [S1] Hello! [S2] Hi there. (laughs)", "missing_input"))
            return False
        first = next((i for i in self.editor.issues if i.is_error), None)
        if first is not None:
            self.editor.go_to(first.line, first.column)
            self.statusBar().showMessage(f"Fix the script first: line {first.line}: {first.message}", 8000)
            self.progress_label.setText("Fix the script first (see the red underline)")
            return False
        return True

    def _update_render_state(self) -> None:
        busy = self.queue.busy
        self.render_bar.set_busy(busy)
        self.menus.cancel_action.setEnabled(busy)
        has_errors = any(i.is_error for i in self.editor.issues)
        self.render_button.setToolTip("Fix the script's errors first (red underlines)" if has_errors else
                                      "Render the script with the chosen voices and parameters (Ctrl+Enter)")
        self.menus.export_action.setEnabled(self.exporter.can_export_current())

    def _loading_finished(self, message: str) -> None:
        self.statusBar().showMessage(message, 5000)
        self.update_model_banner()

    def _history_changed(self, entry_id: int | None) -> None:
        self.history_panel.reload()
        if entry_id is not None:
            self.history_panel.select(entry_id)

    def _script_failed(self, script: str, line: int, column: int) -> None:
        if script == self.document.text():
            self.editor.go_to(line, column)

    @property
    def load_dialog(self):
        """The model-loading progress dialog while it is open."""
        return self.model_loading.dialog

    @property
    def take(self) -> Take | None:
        """The take in the player."""
        return self.now_playing.take

    @take.setter
    def take(self, take: Take | None) -> None:
        self.now_playing.take = take

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
        dialog.accepted.connect(self.apply_render_target)
        dialog.downloadFinished.connect(lambda _ok: self.update_model_banner())
        dialog.open()
        self.model_dialog = dialog
        return dialog

    def open_api_server(self) -> ApiServerDialog:
        """Tools ▸ Local API server."""
        if self.api_dialog is None:
            self.api_dialog = ApiServerDialog(self.api_server, self)
        self.api_dialog.show()
        self.api_dialog.raise_()
        return self.api_dialog

    def apply_render_target(self) -> None:
        """Renders and the voice library on this computer, or on the server Model settings names."""
        target = remote_target(self.settings)
        if target == self._render_target:
            return
        self._render_target = self.queue.remote = target
        self.library, message = self.services.voice_library(target)
        self.cast_panel.set_library(self.library, message, self.tasks)  # a server's voices load in the background
        if self.library_window is not None:  # it showed the other library: the next open builds a new one
            self.library_window.shutdown()
            self.library_window.close()
            self.library_window = None

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
        self.menus.set_theme(theme)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.script_panel.apply_colors()
            self.cast_panel._update_warning(self.cast_panel.cast())  # noqa: SLF001 - recolour
        super().changeEvent(event)

    def zoom_editor(self, step: int) -> None:
        self.settings.set(opts.EDITOR_FONT_SIZE, self.script_view.zoom(step))

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
        self.document.save_draft()
        self.cast_panel.shutdown()
        self.episode.shutdown()
        self.save_settings()
        self.model_loading.close()
        self.api_server.stop(remember=False)  # before the render queue: API renders in flight are cancelled
        self.services.stop()
        if self.library_window is not None:
            self.library_window.shutdown()
            self.library_window.close()
        self.services.close_stores()


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
