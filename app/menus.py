"""The main window's menu bar (actions that emit signals) and help texts."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QMessageBox

import engine
import resources
from app.theme import THEMES


def add_action(window, menu, text: str, slot, shortcut=None, tip: str = "", name: str = "") -> QAction:
    """A menu entry with an optional shortcut, tooltip and object name (tests find actions by name)."""
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(tip)
    if name:
        action.setObjectName(name)
    action.triggered.connect(slot)
    menu.addAction(action)
    return action


class MenuBar(QObject):
    """The main window's menus and (hidden) toolbar. Commands go out as signals; the window decides
    what they do. Actions are children of the window (tests find them by object name)."""

    newRequested = Signal()
    openRequested = Signal()
    exampleRequested = Signal(object)  # Path
    recentRequested = Signal(str)
    saveRequested = Signal()
    saveAsRequested = Signal()
    exportRequested = Signal()
    quitRequested = Signal()
    editRequested = Signal(str)  # "undo", "redo", "cut", "copy", "paste", "select_all", "complete", "next_issue"
    insertRequested = Signal(str)  # text to insert at the cursor (a tag or a cue)
    renderRequested = Signal()
    cancelRequested = Signal()
    playPauseRequested = Signal()
    stopRequested = Signal()
    followToggled = Signal(bool)
    unloadRequested = Signal()
    themeRequested = Signal(str)
    zoomRequested = Signal(int)  # +1 larger, -1 smaller
    libraryRequested = Signal()
    modelSettingsRequested = Signal()
    apiServerRequested = Signal()
    folderRequested = Signal(object)  # Path to show in the file manager

    def __init__(self, window: QMainWindow, theme: str, follow: bool) -> None:
        super().__init__(window)
        self.window = window
        bar = window.menuBar()
        self._file_menu(bar.addMenu("&File"))
        self._edit_menu(bar.addMenu("&Edit"))
        self._render_menu(bar.addMenu("&Render"), follow)
        self._view_menu(bar.addMenu("&View"), theme)
        self._tools_menu(bar.addMenu("&Tools"))
        self._help_menu(bar.addMenu("&Help"))
        self._toolbar()

    def _add(self, menu: QMenu, text: str, signal, shortcut=None, tip: str = "", name: str = "") -> QAction:
        return add_action(self.window, menu, text, lambda _=False: signal(), shortcut, tip, name)

    def _file_menu(self, menu: QMenu) -> None:
        self._add(menu, "&New script", self.newRequested.emit, QKeySequence.StandardKey.New, name="action_new")
        self._add(menu, "&Open script…", self.openRequested.emit, QKeySequence.StandardKey.Open, name="action_open")
        self.examples_menu = menu.addMenu("Open &example")
        for path in sorted(resources.path("examples").glob("*.txt")):
            title = path.stem.split("-", 1)[-1].replace("-", " ").capitalize()
            self._add(self.examples_menu, title, lambda p=path: self.exampleRequested.emit(p))
        self.recent_menu = menu.addMenu("Open &recent")
        menu.addSeparator()
        self._add(menu, "&Save script", self.saveRequested.emit, QKeySequence.StandardKey.Save, name="action_save")
        self._add(menu, "Save script &as…", self.saveAsRequested.emit, QKeySequence.StandardKey.SaveAs,
                  name="action_save_as")
        self.export_action = self._add(menu, "&Export audio…", self.exportRequested.emit, "Ctrl+E",
                                       name="action_export")
        menu.addSeparator()
        self._add(menu, "&Quit", self.quitRequested.emit, QKeySequence.StandardKey.Quit, name="action_quit")

    def _edit_menu(self, menu: QMenu) -> None:
        def edit(name: str):
            return lambda: self.editRequested.emit(name)

        self.undo_action = self._add(menu, "&Undo", edit("undo"), QKeySequence.StandardKey.Undo)
        self.redo_action = self._add(menu, "&Redo", edit("redo"), QKeySequence.StandardKey.Redo)
        self.undo_action.setEnabled(False)
        self.redo_action.setEnabled(False)
        menu.addSeparator()
        self._add(menu, "Cu&t", edit("cut"), QKeySequence.StandardKey.Cut)
        self._add(menu, "&Copy", edit("copy"), QKeySequence.StandardKey.Copy)
        self._add(menu, "&Paste", edit("paste"), QKeySequence.StandardKey.Paste)
        self._add(menu, "Select &all", edit("select_all"), QKeySequence.StandardKey.SelectAll)
        menu.addSeparator()
        self._add(menu, "Insert [S1]", lambda: self.insertRequested.emit("[S1] "), "Ctrl+1")
        self._add(menu, "Insert [S2]", lambda: self.insertRequested.emit("[S2] "), "Ctrl+2")
        cues = menu.addMenu("Insert &cue")
        for cue in engine.KNOWN_CUES:
            self._add(cues, cue, lambda c=cue: self.insertRequested.emit(c))
        self._add(menu, "Suggest tag or cue", edit("complete"), "Ctrl+Space", tip="Show the speaker tags and cues Dia knows")
        menu.addSeparator()
        self._add(menu, "Go to next issue", edit("next_issue"), "F8")

    def _render_menu(self, menu: QMenu, follow: bool) -> None:
        self.render_action = self._add(menu, "&Render", self.renderRequested.emit,
                                       QKeySequence(Qt.Modifier.CTRL | Qt.Key.Key_Return), name="action_render")
        self.render_action.setShortcuts([QKeySequence(Qt.Modifier.CTRL | Qt.Key.Key_Return),
                                         QKeySequence(Qt.Modifier.CTRL | Qt.Key.Key_Enter), QKeySequence("F5")])
        self.cancel_action = self._add(menu, "&Cancel render", self.cancelRequested.emit, "Esc", name="action_cancel")
        menu.addSeparator()
        self.play_action = self._add(menu, "&Play / pause", self.playPauseRequested.emit, "Ctrl+P", name="action_play")
        self.stop_action = self._add(menu, "&Stop", self.stopRequested.emit, "Ctrl+.", name="action_stop")
        menu.addSeparator()
        self.follow_action = QAction("Play while rendering", self.window, checkable=True)
        self.follow_action.setObjectName("action_follow")
        self.follow_action.setChecked(follow)
        self.follow_action.toggled.connect(self.followToggled)
        menu.addAction(self.follow_action)
        self._add(menu, "Unload the model (free memory)", self.unloadRequested.emit)

    def _view_menu(self, menu: QMenu, theme: str) -> None:
        theme_menu = menu.addMenu("&Theme")
        self.theme_group = QActionGroup(self.window)
        for name in THEMES:
            action = QAction(name.capitalize(), self.window, checkable=True)
            action.setObjectName(f"theme_{name}")
            action.setChecked(theme == name)
            action.triggered.connect(lambda _=False, t=name: self.themeRequested.emit(t))
            self.theme_group.addAction(action)
            theme_menu.addAction(action)
        self._add(menu, "Larger text", lambda: self.zoomRequested.emit(1), QKeySequence.StandardKey.ZoomIn)
        self._add(menu, "Smaller text", lambda: self.zoomRequested.emit(-1), QKeySequence.StandardKey.ZoomOut)

    def _tools_menu(self, menu: QMenu) -> None:
        self._add(menu, "&Voice library…", self.libraryRequested.emit, "Ctrl+L", name="action_library")
        self._add(menu, "&Model settings…", self.modelSettingsRequested.emit, "Ctrl+,", name="action_model_settings")
        self._add(menu, "Local &API server…", self.apiServerRequested.emit, name="action_api_server",
                  tip="Let other programs render through the API (OpenAI-compatible), with this window's model")
        menu.addSeparator()
        self._add(menu, "Open the data folder", lambda: self.folderRequested.emit(engine.data_dir()))
        self._add(menu, "Open the log folder", lambda: self.folderRequested.emit(engine.data_dir() / "logs"))

    def _help_menu(self, menu: QMenu) -> None:
        self._add(menu, "Writing scripts for Dia", lambda: show_script_help(self.window),
                  QKeySequence.StandardKey.HelpContents)
        self._add(menu, "Keyboard shortcuts", lambda: show_shortcuts(self.window))
        self._add(menu, "About Dia Studio", lambda: show_about(self.window))

    def _toolbar(self) -> None:
        self.toolbar = self.window.addToolBar("Main")
        self.toolbar.setObjectName("main_toolbar")
        self.toolbar.setMovable(False)
        for action in (self.render_action, self.cancel_action, self.play_action, self.stop_action):
            self.toolbar.addAction(action)
        self.toolbar.hide()  # the render bar carries these buttons; the toolbar exists for customisation

    def set_recent(self, paths: list[str]) -> None:
        """Fill File → Open recent with ``paths`` (disabled when empty)."""
        self.recent_menu.clear()
        for path in paths:
            add_action(self.window, self.recent_menu, Path(path).name,
                       lambda _=False, p=path: self.recentRequested.emit(p), tip=path)
        self.recent_menu.setEnabled(bool(paths))

    def set_theme(self, theme: str) -> None:
        """Check ``theme`` in View → Theme."""
        for action in self.theme_group.actions():
            action.setChecked(action.objectName() == f"theme_{theme}")


def show_script_help(parent) -> None:
    cues = ", ".join(engine.KNOWN_CUES)
    QMessageBox.information(
        parent, "Writing scripts for Dia",
        "• Start every turn with [S1] or [S2]; the script opens with [S1] and the speakers alternate.\n"
        "• 5–20 seconds of speech per render sounds best; the meter under the editor estimates it.\n"
        "• Ending with the other speaker's empty tag (e.g. a final “[S1]”) gives a cleaner ending.\n"
        f"• Nonverbal cues Dia knows, in round brackets: {cues}. Use them sparingly.\n"
        "• To clone a voice, choose a library sample with an exact transcript in the Cast panel.\n"
        "• Dia speaks English.")

def show_shortcuts(parent) -> None:
    QMessageBox.information(
        parent, "Keyboard shortcuts",
        "Render: Ctrl+Enter or F5\nCancel render: Esc\nPlay / pause: Ctrl+P\nStop: Ctrl+.\n"
        "Save script: Ctrl+S\nExport audio: Ctrl+E\nSuggest tag or cue: Ctrl+Space\nNext issue: F8\n"
        "Insert [S1] / [S2]: Ctrl+1 / Ctrl+2\nVoice library: Ctrl+L\nModel settings: Ctrl+,\n\n"
        "Episode view (Ctrl+Shift+E): next / previous block: Alt+Down / Alt+Up\n"
        "Next / previous take: Alt+Right / Alt+Left\nRegenerate block: Ctrl+R\nLock / unlock block: Ctrl+K\n"
        "Play block: Ctrl+Shift+P\nRender all: Ctrl+Shift+Enter\nStop rendering: Ctrl+Shift+Esc\n"
        "New episode: Ctrl+Shift+N")

def show_about(parent) -> None:
    QMessageBox.about(parent, "About Dia Studio",
                      f"Dia Studio {engine.__version__}\n\nWrite and render spoken dialogue with Nari Labs' Dia "
                      "model, entirely on this computer.")
