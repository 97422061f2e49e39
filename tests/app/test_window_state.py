"""Window state that persists (geometry, splitters, tab, theme, font), shortcuts, accessibility basics."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QTableView,
    QWidget,
)

from app import settings as opts
from app.settings import Settings
from tests.app.conftest import make_window


@pytest.fixture
def restore_palette(qapp):
    style, palette = qapp.style().name(), qapp.palette()
    yield
    qapp.setStyle(style)
    qapp.setPalette(palette)


def test_geometry_splitters_tab_theme_and_font_are_restored(qtbot, settings_path, restore_palette):
    first = make_window(qtbot, Settings(QSettings(str(settings_path), QSettings.Format.IniFormat)))
    first.resize(760, 540)  # fits the offscreen screen (800x600) with a frame allowance (app.geometry)
    first.editor_splitter.setSizes([300, 470])
    first.tabs.setCurrentIndex(1)
    first.set_theme("dark")
    first.zoom_editor(+2)
    font_size = first.editor.font().pointSize()
    sizes = first.editor_splitter.sizes()
    first.close()

    fresh = Settings(QSettings(str(settings_path), QSettings.Format.IniFormat))  # reads the INI file again
    assert fresh.get(opts.THEME) == "dark" and isinstance(fresh.get(opts.GEOMETRY), bytes)
    second = make_window(qtbot, fresh)
    assert (second.width(), second.height()) == (first.width(), first.height())
    assert second.editor_splitter.sizes() == sizes
    assert second.tabs.currentIndex() == 1
    assert second.editor.font().pointSize() == font_size
    assert second.findChild(type(second.menus.follow_action), "theme_dark").isChecked()


def test_keyboard_shortcuts(qtbot, settings, tmp_path):
    settings.set(opts.MODEL_PATH, str(tmp_path / "missing"))
    window = make_window(qtbot, settings)
    shortcuts = {
        "action_render": "Ctrl+Return", "action_cancel": "Esc", "action_play": "Ctrl+P", "action_stop": "Ctrl+.",
        "action_save": QKeySequence(QKeySequence.StandardKey.Save).toString(), "action_export": "Ctrl+E",
        "action_library": "Ctrl+L",
    }
    for name, keys in shortcuts.items():
        action = window.findChild(type(window.menus.render_action), name)
        assert action is not None, name
        assert keys in [s.toString() for s in action.shortcuts()], name
    assert "F5" in [s.toString() for s in window.menus.render_action.shortcuts()]
    # the shortcut really renders (and the missing model is reported)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    window.editor.setFocus()
    with qtbot.waitSignal(window.queue.jobFailed, timeout=30000):
        qtbot.keyClick(window.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert len(window.queue.jobs) == 1
    assert window.editor.toPlainText().count("\n") == window.editor.document().blockCount() - 1  # no newline typed


def interactive_widgets(root: QWidget) -> list[QWidget]:
    kinds = (QAbstractButton, QComboBox, QLineEdit, QAbstractSpinBox, QAbstractSlider, QPlainTextEdit, QTableView)
    return [w for w in root.findChildren(QWidget) if isinstance(w, kinds) and w.isVisibleTo(root)
            and w.focusPolicy() != Qt.FocusPolicy.NoFocus and w.parent() is not None
            and type(w).__name__ not in ("QScrollBar",) and w.objectName() != "qt_spinbox_lineedit"]


def described(widget: QWidget, labels: list[QLabel]) -> bool:
    text = widget.text() if isinstance(widget, QAbstractButton) else ""
    buddy = any(label.buddy() is widget for label in labels)
    return bool(widget.accessibleName() or widget.toolTip() or text or buddy)


def test_every_control_has_a_name_or_tooltip_and_the_tab_order_flows(qtbot, window):
    labels = window.findChildren(QLabel)
    missing = [f"{type(w).__name__}:{w.objectName()}" for w in interactive_widgets(window)
               if not described(w, labels)]
    assert missing == []
    # Tab walks editor -> cast -> parameters -> render -> player
    chain, widget = [], window.editor
    for _ in range(1000):  # the whole chain: both views, the docks
        chain.append(widget)
        widget = widget.nextInFocusChain()
        if widget is window.editor:
            break
    order = [chain.index(w) for w in (window.editor, window.cast_panel.combos["S1"], window.params_panel.preset,
                                      window.params_panel.reset, window.render_button,
                                      window.player_panel.play_button)]
    assert order == sorted(order)
    assert window.editor.tabChangesFocus()  # Tab leaves the editor instead of inserting a tab


def test_library_window_controls_are_described(qtbot, window):
    window.open_library()
    library = window.library_window
    labels = library.findChildren(QLabel)
    missing = [f"{type(w).__name__}:{w.objectName()}" for w in interactive_widgets(library)
               if not described(w, labels)]
    assert missing == []
    library.close()
    assert QApplication.instance() is not None


def test_reuse_last_gives_the_exact_seed_after_a_restart(qtbot, settings_path, tmp_path):
    first = make_window(qtbot, Settings(QSettings(str(settings_path), QSettings.Format.IniFormat)))
    first.params_panel.set_last_seed(3000982715)  # what a finished render does
    first.settings.sync()
    first.close()

    # A copy under a new name is read from the file itself, as after a restart (Qt caches a file it has open).
    restarted = tmp_path / "restarted.ini"
    restarted.write_bytes(settings_path.read_bytes())
    second = make_window(qtbot, Settings(QSettings(str(restarted), QSettings.Format.IniFormat)))
    second.params_panel.seed.reuse_last()
    assert second.params_panel.seed.seed() == 3000982715
