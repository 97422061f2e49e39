"""The main window's menus, actions and help texts."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMessageBox

import engine
import resources
from app import settings as opts
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


def build_menus(window) -> None:
    """The menu bar and the (hidden) toolbar of the main window; actions become window attributes."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    add_action(window, file_menu, "&New script", window.new_script, QKeySequence.StandardKey.New, name="action_new")
    add_action(window, file_menu, "&Open script…", window.ask_open_script, QKeySequence.StandardKey.Open,
                 name="action_open")
    window.examples_menu = file_menu.addMenu("Open &example")
    for path in sorted(resources.path("examples").glob("*.txt")):
        title = path.stem.split("-", 1)[-1].replace("-", " ").capitalize()
        add_action(window, window.examples_menu, title, lambda _=False, p=path: window.open_example(p))
    window.recent_menu = file_menu.addMenu("Open &recent")
    file_menu.addSeparator()
    add_action(window, file_menu, "&Save script", window.save_script, QKeySequence.StandardKey.Save, name="action_save")
    add_action(window, file_menu, "Save script &as…", window.ask_save_script_as, QKeySequence.StandardKey.SaveAs,
                 name="action_save_as")
    window.export_action = add_action(window, file_menu, "&Export audio…", window.ask_export_current, "Ctrl+E",
                                      name="action_export")
    file_menu.addSeparator()
    add_action(window, file_menu, "&Quit", window.close, QKeySequence.StandardKey.Quit, name="action_quit")

    edit_menu = bar.addMenu("&Edit")
    window.undo_action = add_action(window, edit_menu, "&Undo", window.editor.undo, QKeySequence.StandardKey.Undo)
    window.redo_action = add_action(window, edit_menu, "&Redo", window.editor.redo, QKeySequence.StandardKey.Redo)
    window.undo_action.setEnabled(False)
    window.redo_action.setEnabled(False)
    edit_menu.addSeparator()
    add_action(window, edit_menu, "Cu&t", window.editor.cut, QKeySequence.StandardKey.Cut)
    add_action(window, edit_menu, "&Copy", window.editor.copy, QKeySequence.StandardKey.Copy)
    add_action(window, edit_menu, "&Paste", window.editor.paste, QKeySequence.StandardKey.Paste)
    add_action(window, edit_menu, "Select &all", window.editor.selectAll, QKeySequence.StandardKey.SelectAll)
    edit_menu.addSeparator()
    add_action(window, edit_menu, "Insert [S1]", lambda: window.editor.insert_text("[S1] "), "Ctrl+1")
    add_action(window, edit_menu, "Insert [S2]", lambda: window.editor.insert_text("[S2] "), "Ctrl+2")
    cues = edit_menu.addMenu("Insert &cue")
    for cue in engine.KNOWN_CUES:
        add_action(window, cues, cue, lambda _=False, c=cue: window.editor.insert_text(c))
    add_action(window, edit_menu, "Suggest tag or cue", lambda: window.editor.update_completion(force=True),
                 "Ctrl+Space", tip="Show the speaker tags and cues Dia knows")
    edit_menu.addSeparator()
    add_action(window, edit_menu, "Go to next issue", window.go_to_next_issue, "F8")

    render_menu = bar.addMenu("&Render")
    window.render_action = add_action(window, render_menu, "&Render", window.render,
                                      QKeySequence(Qt.Modifier.CTRL | Qt.Key.Key_Return), name="action_render")
    window.render_action.setShortcuts([QKeySequence(Qt.Modifier.CTRL | Qt.Key.Key_Return),
                                     QKeySequence(Qt.Modifier.CTRL | Qt.Key.Key_Enter), QKeySequence("F5")])
    window.cancel_action = add_action(window, render_menu, "&Cancel render", window.queue.cancel_current, "Esc",
                                      name="action_cancel")
    render_menu.addSeparator()
    window.play_action = add_action(window, render_menu, "&Play / pause", window.player.toggle, "Ctrl+P",
                                    name="action_play")
    window.stop_action = add_action(window, render_menu, "&Stop", window.player.stop, "Ctrl+.", name="action_stop")
    render_menu.addSeparator()
    window.follow_action = QAction("Play while rendering", window, checkable=True)
    window.follow_action.setObjectName("action_follow")
    window.follow_action.setChecked(window.settings.get(opts.PLAY_WHILE_RENDERING))
    window.follow_action.toggled.connect(lambda on: window.settings.set(opts.PLAY_WHILE_RENDERING, on))
    render_menu.addAction(window.follow_action)
    add_action(window, render_menu, "Unload the model (free memory)", window.queue.unload_model)

    view_menu = bar.addMenu("&View")
    theme_menu = view_menu.addMenu("&Theme")
    window.theme_group = QActionGroup(window)
    for theme in THEMES:
        action = QAction(theme.capitalize(), window, checkable=True)
        action.setObjectName(f"theme_{theme}")
        action.setChecked(window.settings.get(opts.THEME) == theme)
        action.triggered.connect(lambda _=False, t=theme: window.set_theme(t))
        window.theme_group.addAction(action)
        theme_menu.addAction(action)
    add_action(window, view_menu, "Larger text", lambda: window.zoom_editor(1), QKeySequence.StandardKey.ZoomIn)
    add_action(window, view_menu, "Smaller text", lambda: window.zoom_editor(-1), QKeySequence.StandardKey.ZoomOut)

    tools_menu = bar.addMenu("&Tools")
    add_action(window, tools_menu, "&Voice library…", window.open_library, "Ctrl+L", name="action_library")
    add_action(window, tools_menu, "&Model settings…", window.open_model_settings, "Ctrl+,", name="action_model_settings")
    tools_menu.addSeparator()
    add_action(window, tools_menu, "Open the data folder", lambda: window._open_url(engine.data_dir()))
    add_action(window, tools_menu, "Open the log folder", lambda: window._open_url(engine.data_dir() / "logs"))

    help_menu = bar.addMenu("&Help")
    add_action(window, help_menu, "Writing scripts for Dia", lambda: show_script_help(window), QKeySequence.StandardKey.HelpContents)
    add_action(window, help_menu, "Keyboard shortcuts", lambda: show_shortcuts(window))
    add_action(window, help_menu, "About Dia Studio", lambda: show_about(window))

    window.toolbar = window.addToolBar("Main")
    window.toolbar.setObjectName("main_toolbar")
    window.toolbar.setMovable(False)
    for action in (window.render_action, window.cancel_action, window.play_action, window.stop_action):
        window.toolbar.addAction(action)
    window.toolbar.hide()  # the render bar carries these buttons; the toolbar exists for customisation


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
        "Insert [S1] / [S2]: Ctrl+1 / Ctrl+2\nVoice library: Ctrl+L\nModel settings: Ctrl+,")

def show_about(parent) -> None:
    QMessageBox.about(parent, "About Dia Studio",
                      f"Dia Studio {engine.__version__}\n\nWrite and render spoken dialogue with Nari Labs' Dia "
                      "model, entirely on this computer.")
