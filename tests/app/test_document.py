"""The script document on its own (no window, no editor): dirty state, undo, files and the draft."""

from __future__ import annotations

from PySide6.QtGui import QTextCursor

from app.document import ScriptDocument


def type_text(doc: ScriptDocument, text: str) -> None:
    """What typing does: an insert at the end of the document."""
    cursor = QTextCursor(doc.document)
    cursor.movePosition(QTextCursor.MoveOperation.End)
    cursor.insertText(text)


def test_a_new_document_is_untitled_and_clean(qapp):
    doc = ScriptDocument()
    assert doc.text() == "" and doc.path == "" and not doc.modified
    assert doc.title() == "Dia Studio"


def test_typing_makes_it_dirty_and_the_title_shows_a_star(qapp, tmp_path):
    doc = ScriptDocument()
    doc.set_text("[S1] Hi.", str(tmp_path / "scene.txt"))
    titles: list[str] = []
    doc.titleChanged.connect(titles.append)
    type_text(doc, " Bye.")
    assert doc.modified and doc.needs_saving()
    assert titles[-1] == "scene.txt* — Dia Studio" == doc.title()


def test_blank_unsaved_text_is_not_worth_asking_about(qapp):
    doc = ScriptDocument()
    type_text(doc, "   \n")
    assert doc.modified and not doc.needs_saving()


def test_replacing_the_text_is_one_undo_step(qapp):
    doc = ScriptDocument()
    type_text(doc, "[S1] Mine.")
    doc.set_text("[S1] From a take.\n[S2] Yes.")
    assert doc.document.isUndoAvailable()
    doc.undo()
    assert doc.text() == "[S1] Mine."
    doc.redo()
    assert doc.text() == "[S1] From a take.\n[S2] Yes."


def test_a_file_round_trip_keeps_the_text_and_clears_the_dirty_state(qapp, tmp_path):
    path = tmp_path / "scene.txt"
    path.write_bytes("\ufeff[S1] Caf\u00e9.\r\n[S2] Oui.".encode())
    doc = ScriptDocument()
    doc.open(path)
    assert doc.text() == "[S1] Caf\u00e9.\n[S2] Oui." and doc.path == str(path) and not doc.modified
    type_text(doc, " (laughs)")
    other = tmp_path / "copy.txt"
    doc.save(other)
    assert other.read_text(encoding="utf-8") == "[S1] Caf\u00e9.\n[S2] Oui. (laughs)"
    assert doc.path == str(other) and not doc.modified and doc.title() == "copy.txt — Dia Studio"
    again = ScriptDocument()
    again.open(other)
    assert again.text() == doc.text()


def test_an_untitled_document_needs_a_path_to_be_saved(qapp):
    doc = ScriptDocument()
    type_text(doc, "[S1] Hi.")
    try:
        doc.save()
    except ValueError:
        pass
    else:
        raise AssertionError("saving an untitled document without a path must fail")
    assert doc.modified


def test_a_change_schedules_the_draft_and_the_draft_restores_text_file_and_dirty_state(qtbot, tmp_path):
    doc = ScriptDocument()
    doc.set_text("[S1] Saved part.", str(tmp_path / "scene.txt"))
    type_text(doc, " Unsaved part.")
    assert doc.draft_pending
    qtbot.waitUntil(lambda: not doc.draft_pending, timeout=3000)
    restored = ScriptDocument()
    draft = restored.restore_draft()
    assert draft is not None
    assert restored.text() == "[S1] Saved part. Unsaved part." and restored.path == str(tmp_path / "scene.txt")
    assert restored.modified and restored.title() == "scene.txt* — Dia Studio"


def test_without_a_draft_nothing_is_restored(qapp):
    doc = ScriptDocument()
    assert doc.restore_draft() is None and doc.text() == ""


def test_a_draft_that_cannot_be_written_is_reported_not_raised(qapp, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    monkeypatch.setenv("DIA_STUDIO_DATA_DIR", str(blocker))
    doc = ScriptDocument()
    failures: list[str] = []
    doc.draftFailed.connect(failures.append)
    type_text(doc, "[S1] Hi.")
    assert not doc.save_draft()
    assert len(failures) == 1 and not doc.draft_pending
