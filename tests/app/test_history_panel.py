"""The history list's star and label: set in the list itself, stored in the real history database,
found by the search, and a failure to store them is a message, never a traceback."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLineEdit

import engine
from app.panels.history import LABEL, SCRIPT, STAR, STARRED, UNSTARRED, HistoryPanel
from tests.app.conftest import tone


@pytest.fixture
def history(tmp_path):
    with engine.RenderHistory(tmp_path / "history") as store:
        yield store


def add(history: engine.RenderHistory, script: str = "[S1] Hello there.", seed: int = 3) -> engine.HistoryEntry:
    return history.add(script=script, audio_samples=tone(0.5), sample_rate=44100,
                       params=engine.GenerationParams(seed=seed), seed=seed, render_seconds=1.0)


@pytest.fixture
def panel(qtbot, history):
    widget = HistoryPanel()
    qtbot.addWidget(widget)
    widget.set_history(history)
    widget.resize(900, 300)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def cell(panel: HistoryPanel, column: int, row: int = 0):
    return panel.model.index(row, column)


def click(qtbot, panel: HistoryPanel, index) -> None:
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton,
                     pos=panel.table.visualRect(index).center())


def test_clicking_the_star_stars_the_take_and_clicking_again_unstars_it(qtbot, history, panel):
    entry = add(history)
    panel.reload()
    assert panel.model.data(cell(panel, STAR)) == UNSTARRED
    click(qtbot, panel, cell(panel, STAR))
    assert history.get(entry.id).starred
    assert panel.model.data(cell(panel, STAR)) == STARRED
    panel.reload()  # what the list shows is what is stored
    assert panel.model.data(cell(panel, STAR)) == STARRED
    click(qtbot, panel, cell(panel, STAR))
    assert not history.get(entry.id).starred and panel.model.data(cell(panel, STAR)) == UNSTARRED


def test_the_label_is_edited_in_place_and_stored(qtbot, history, panel):
    entry = add(history)
    panel.reload()
    panel.select(entry.id)
    panel.table.setFocus()
    qtbot.keyClick(panel.table, Qt.Key.Key_F2)
    editor = QApplication.focusWidget()
    assert isinstance(editor, QLineEdit)
    editor.selectAll()
    qtbot.keyClicks(editor, "  best   take ")
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # the view commits on its next event loop turn
    qtbot.waitUntil(lambda: panel.table.state() != panel.table.State.EditingState)
    assert history.get(entry.id).label == "best take"  # spaces tidied by the history
    assert panel.model.data(cell(panel, LABEL)) == "best take"
    assert panel.selected().id == entry.id


def test_the_search_finds_a_take_by_its_label(qtbot, history, panel):
    kept, other = add(history, "[S1] One.", seed=1), add(history, "[S1] Two.", seed=2)
    panel.set_label(kept, "keeper")
    panel.search.setText("keeper")
    panel.reload()
    assert [e.id for e in panel.model.entries] == [kept.id]
    assert other.id not in [e.id for e in panel.model.entries]


def test_the_context_menu_stars_and_opens_the_label_for_typing(qtbot, history, panel):
    entry = add(history)
    panel.reload()
    menu = panel.context_menu(panel.model.entries[0])
    actions = {a.text(): a for a in menu.actions() if a.text()}
    assert {"Play", "Export…", "Restore settings", "Re-render", "Star", "Edit label…", "Delete"} <= set(actions)
    actions["Star"].trigger()
    assert history.get(entry.id).starred
    actions["Edit label…"].trigger()
    assert panel.table.state() == panel.table.State.EditingState
    assert panel.table.currentIndex() == cell(panel, LABEL)
    starred_menu = panel.context_menu(panel.model.entries[0])
    assert "Unstar" in [a.text() for a in starred_menu.actions()]


def test_only_the_label_cell_is_editable(panel, history):
    add(history)
    panel.reload()
    assert panel.model.flags(cell(panel, LABEL)) & Qt.ItemFlag.ItemIsEditable
    for column in (STAR, SCRIPT):
        assert not panel.model.flags(cell(panel, column)) & Qt.ItemFlag.ItemIsEditable


def test_a_star_that_cannot_be_stored_is_a_message_and_the_list_catches_up(qtbot, tmp_path, history, panel):
    entry, gone = add(history, "[S1] Stays."), add(history, "[S1] Goes.")
    panel.reload()
    with engine.RenderHistory(tmp_path / "history") as elsewhere:  # another window deletes a take
        elsewhere.delete(gone.id)
    errors = []
    panel.errorOccurred.connect(errors.append)
    panel.toggle_star(next(e for e in panel.model.entries if e.id == gone.id))
    assert len(errors) == 1 and f"no render {gone.id}" in errors[0].message
    assert [e.id for e in panel.model.entries] == [entry.id]
