"""The menu bar on a bare QMainWindow: its actions emit signals and leave the window alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMainWindow

from app.menus import MenuBar


@pytest.fixture
def menus(qtbot):
    window = QMainWindow()
    qtbot.addWidget(window)
    return MenuBar(window, theme="light", follow=True)


@pytest.mark.parametrize("name, signal", [("action_render", "renderRequested"), ("action_cancel", "cancelRequested"),
                                          ("action_save", "saveRequested"), ("action_export", "exportRequested"),
                                          ("action_library", "libraryRequested"), ("action_new", "newRequested")])
def test_each_command_is_a_signal(qtbot, menus, name, signal):
    action = menus.window.findChild(QAction, name)
    with qtbot.waitSignal(getattr(menus, signal), timeout=1000):
        action.trigger()


def test_the_window_gets_no_attributes(menus):
    assert not any(hasattr(menus.window, name) for name in ("render_action", "follow_action", "recent_menu"))


def test_recent_files_are_listed_and_emit_their_path(qtbot, menus, tmp_path):
    path = str(tmp_path / "scene.txt")
    menus.set_recent([path])
    [action] = menus.recent_menu.actions()
    assert action.text() == Path(path).name and menus.recent_menu.isEnabled()
    with qtbot.waitSignal(menus.recentRequested, timeout=1000, check_params_cb=lambda p: p == path):
        action.trigger()
    menus.set_recent([])
    assert not menus.recent_menu.isEnabled()


def test_theme_and_follow_reflect_their_state(qtbot, menus):
    assert menus.follow_action.isChecked()
    with qtbot.waitSignal(menus.followToggled, check_params_cb=lambda on: on is False, timeout=1000):
        menus.follow_action.setChecked(False)
    menus.set_theme("dark")
    assert [a.objectName() for a in menus.theme_group.actions() if a.isChecked()] == ["theme_dark"]
