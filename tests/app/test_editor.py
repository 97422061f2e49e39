"""The script editor: highlighting, live validation, completion, budget, files and the draft."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QTextCharFormat

import engine
from app.editor.analysis import Utf16Offsets, check
from app.editor.script_panel import PromptCost, ScriptPanel
from app.theme import editor_colors
from tests.app.conftest import make_window


def format_at(editor, line: int, column: int) -> QTextCharFormat:
    """The merged highlight format of the character at 0-based (line, column)."""
    block = editor.document().findBlockByNumber(line)
    result = QTextCharFormat()
    for rng in block.layout().formats():
        if rng.start <= column < rng.start + rng.length:
            result.merge(rng.format)
    return result


def type_script(qtbot, editor, text: str) -> None:
    editor.setFocus()
    qtbot.keyClicks(editor, text)
    qtbot.waitUntil(lambda: editor._checked_text == editor.toPlainText(), timeout=3000)  # noqa: SLF001


def test_typing_highlights_tags_cues_and_shows_issues(qtbot):
    panel = ScriptPanel()
    qtbot.addWidget(panel)
    panel.show()
    editor = panel.editor
    colors = editor_colors(editor.palette())
    editor.setPlainText("")
    type_script(qtbot, editor, "[S1] Hello there. (laughs)")
    editor.insertPlainText("\n[S2] Hi! (giggles) [S3] who?")
    qtbot.waitUntil(lambda: editor._checked_text == editor.toPlainText(), timeout=3000)  # noqa: SLF001

    s1 = format_at(editor, 0, 1)
    assert s1.foreground().color() == colors.s1 and s1.fontWeight() == QFont.Weight.Bold
    cue = format_at(editor, 0, len("[S1] Hello there. ("))
    assert cue.fontItalic() and cue.foreground().color() == colors.cue
    assert cue.underlineStyle() == QTextCharFormat.UnderlineStyle.NoUnderline
    assert format_at(editor, 1, 1).foreground().color() == colors.s2
    # unknown cue: warning (amber wavy underline)
    unknown = format_at(editor, 1, len("[S2] Hi! ("))
    assert unknown.underlineStyle() == QTextCharFormat.UnderlineStyle.WaveUnderline
    assert unknown.underlineColor() == colors.warning
    # a third speaker is an error: red wavy underline at its position, message as tooltip
    bad_col = len("[S2] Hi! (giggles) [")
    bad = format_at(editor, 1, bad_col)
    assert bad.underlineStyle() == QTextCharFormat.UnderlineStyle.WaveUnderline
    assert bad.underlineColor() == colors.error
    assert "only two speakers" in bad.toolTip()
    # plain text is untouched
    assert format_at(editor, 0, 8).underlineStyle() == QTextCharFormat.UnderlineStyle.NoUnderline

    issues = editor.issues
    assert [i.code for i in issues] == ["unknown_cue", "invalid_script"]
    # the status line shows the first error, with its line and column
    assert "Error at line 2" in panel.status.text() and "[S3]" in panel.status.text()
    # moving the cursor onto the warning shows it instead
    cursor = editor.textCursor()
    cursor.setPosition(editor.document().findBlockByNumber(1).position() + 11)
    editor.setTextCursor(cursor)
    assert panel.status.text().startswith("Warning at line 2") and "(giggles)" in panel.status.text()
    # fixing the error removes the underline
    editor.setPlainText("[S1] Hello there. (laughs)\n[S2] Hi!")
    editor.check_now()
    assert editor.issues == []
    assert format_at(editor, 1, 6).underlineStyle() == QTextCharFormat.UnderlineStyle.NoUnderline
    assert panel.status.text() == "Script OK"


def test_hovering_an_issue_shows_its_message(qtbot):
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QHelpEvent
    from PySide6.QtWidgets import QApplication, QToolTip

    panel = ScriptPanel()
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    editor = panel.editor
    editor.setPlainText("[S1] Hi (giggles)")
    editor.check_now()
    cursor = editor.textCursor()
    cursor.setPosition(len("[S1] Hi (gig"))
    point = editor.cursorRect(cursor).center()
    event = QHelpEvent(QEvent.Type.ToolTip, point, editor.viewport().mapToGlobal(point))
    QApplication.sendEvent(editor.viewport(), event)
    assert QToolTip.isVisible() and "unknown cue (giggles)" in QToolTip.text()
    assert QToolTip.text().startswith("Warning:")
    QToolTip.hideText()


def test_emoji_shifts_qt_positions_but_underlines_the_right_characters(qtbot):
    panel = ScriptPanel()
    qtbot.addWidget(panel)
    editor = panel.editor
    text = "[S1] 😀😀 Hi (lol)"
    editor.setPlainText(text)
    editor.check_now()
    (issue,) = editor.issues
    python_start = text.index("(lol)")
    assert issue.start == Utf16Offsets(text)(python_start) == python_start + 2
    units = editor.document().firstBlock().text().encode("utf-16-le")  # Qt positions are UTF-16 units
    underlined = [pos for pos in range(len(units) // 2)
                  if format_at(editor, 0, pos).underlineStyle() == QTextCharFormat.UnderlineStyle.WaveUnderline]
    assert units[2 * underlined[0]:2 * (underlined[-1] + 1)].decode("utf-16-le") == "(lol)"
    tag = [pos for pos in range(len(units) // 2) if format_at(editor, 0, pos).fontItalic()]
    assert units[2 * tag[0]:2 * (tag[-1] + 1)].decode("utf-16-le") == "(lol)"  # the cue's italics line up too
    # go_to uses the engine's (code point) columns
    editor.go_to(issue.line, issue.column)
    assert editor.textCursor().position() == issue.start


def test_completion_of_tags_and_cues(qtbot):
    panel = ScriptPanel()
    qtbot.addWidget(panel)
    panel.show()
    editor = panel.editor
    editor.setPlainText("")
    editor.setFocus()
    qtbot.keyClicks(editor, "[S1] Ha (lau")
    popup = editor.completer.popup()
    qtbot.waitUntil(popup.isVisible, timeout=2000)
    assert editor.completer.currentCompletion() == "(laughs)"
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert editor.toPlainText() == "[S1] Ha (laughs)"
    qtbot.keyClicks(editor, " [")
    qtbot.waitUntil(popup.isVisible, timeout=2000)
    assert editor.completer.completionCount() == 2
    editor.insert_completion("[S2]")
    assert editor.toPlainText() == "[S1] Ha (laughs) [S2] "
    # the whole insertion is one undo step
    editor.undo()
    assert editor.toPlainText() == "[S1] Ha (laughs) ["


def test_budget_meter_warns_when_the_script_is_too_long(qtbot):
    panel = ScriptPanel()
    qtbot.addWidget(panel)
    editor = panel.editor
    editor.setPlainText("[S1] Hello there, how are you doing today? [S2] Fine, thanks for asking!")
    panel.update_budget()
    view = panel.budget_view
    assert view.budget is not None and view.budget.fits
    assert view.estimate.text().startswith("≈")
    assert view.warning.isHidden() or "short" in view.warning.text()
    long_script = " ".join(f"[S{1 + i % 2}] This is sentence number {i} of a long dialogue." for i in range(40))
    editor.setPlainText(long_script)
    panel.update_budget()
    assert not view.budget.fits
    assert not view.warning.isHidden() and "split" in view.warning.text()
    # a voice prompt takes room too
    editor.setPlainText("[S1] " + "word " * 40)
    panel.set_max_new_tokens(3072)
    room = view.budget.available_seconds
    panel.set_prompt_cost(PromptCost(seconds=10.0, text_tokens=50))
    assert view.budget.available_seconds < room - 9
    assert "voice prompt" in view.estimate.text()
    assert editor._prefix_tokens == 50  # noqa: SLF001 - the validator counts the transcript


def test_check_helper_matches_engine():
    text = "[S1] Hi (laughs) [S2]"
    assert [(i.code, i.start) for i in check(text)] == [(i.code, i.start) for i in engine.check_script(text)]


def test_open_save_and_draft_survive_a_restart(qtbot, settings, tmp_path):
    window = make_window(qtbot, settings)
    script = tmp_path / "scene.txt"
    script.write_text("[S1] From a file.\r\n[S2] Yes.", encoding="utf-8")
    assert window.files.open(script)
    assert window.editor.toPlainText() == "[S1] From a file.\n[S2] Yes."
    assert window.windowTitle() == "scene.txt — Dia Studio"
    window.editor.moveCursor(window.editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(window.editor, " (laughs)")
    assert window.windowTitle() == "scene.txt* — Dia Studio"
    assert window.files.save()
    assert script.read_text(encoding="utf-8") == "[S1] From a file.\n[S2] Yes. (laughs)"
    assert window.windowTitle() == "scene.txt — Dia Studio"
    # unsaved typing is autosaved and comes back after a restart, still marked unsaved
    qtbot.keyClicks(window.editor, " Bye.")
    qtbot.waitUntil(lambda: not window.document.draft_pending, timeout=3000)
    window.close()
    again = make_window(qtbot, settings)
    assert again.editor.toPlainText().endswith("(laughs) Bye.")
    assert again.document.path == str(script) and again.editor.document().isModified()
    assert again.windowTitle() == "scene.txt* — Dia Studio"
    assert str(script) in again.settings.get(__import__("app.settings", fromlist=["x"]).RECENT_FILES)


def test_unsaved_changes_are_offered_for_saving_before_other_text_replaces_them(qtbot, settings, tmp_path,
                                                                                 monkeypatch):
    window = make_window(qtbot, settings)
    first, second = tmp_path / "one.txt", tmp_path / "two.txt"
    first.write_text("[S1] One.", encoding="utf-8")
    second.write_text("[S1] Two.", encoding="utf-8")
    assert window.files.open(first)
    window.editor.moveCursor(window.editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(window.editor, " More.")
    answers = ["cancel"]
    monkeypatch.setattr(window, "ask_unsaved", lambda name: answers.pop(0))
    assert not window.files.open(second)  # cancel: stay
    assert window.editor.toPlainText() == "[S1] One. More."
    answers.append("save")
    assert window.files.open(second)
    assert first.read_text(encoding="utf-8") == "[S1] One. More."
    assert window.editor.toPlainText() == "[S1] Two."
    qtbot.keyClicks(window.editor, "!")
    answers.append("discard")
    window.new_script()
    assert window.editor.toPlainText() == "[S1] " and second.read_text(encoding="utf-8") == "[S1] Two."


def test_dropping_a_script_file_opens_it(qtbot, settings, tmp_path):
    from PySide6.QtCore import QMimeData, QUrl

    window = make_window(qtbot, settings)
    script = tmp_path / "dropped.txt"
    script.write_text("[S1] Dropped in.", encoding="utf-8")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(script))])
    assert window.editor.canInsertFromMimeData(mime)
    window.editor.insertFromMimeData(mime)
    assert window.editor.toPlainText() == "[S1] Dropped in." and window.document.path == str(script)
    plain = QMimeData()
    plain.setText(" (laughs)")
    window.editor.moveCursor(window.editor.textCursor().MoveOperation.End)
    window.editor.insertFromMimeData(plain)  # ordinary text drops still insert text
    assert window.editor.toPlainText() == "[S1] Dropped in. (laughs)"


def test_first_start_shows_an_example_and_new_script_is_undoable(qtbot, settings):
    window = make_window(qtbot, settings)
    assert window.windowTitle() == "Dia Studio"
    assert window.editor.toPlainText().startswith("[S1]")
    assert window.editor.issues == []
    example = window.editor.toPlainText()
    window.new_script()
    assert window.editor.toPlainText() == "[S1] "
    window.editor.undo()
    assert window.editor.toPlainText() == example
