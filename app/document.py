"""The script document: the text being edited, the file it belongs to, its unsaved changes, its
undo stack and its autosaved draft. No widgets: an editor shows the document, dialogs live elsewhere.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QTextCursor, QTextDocument
from PySide6.QtWidgets import QPlainTextDocumentLayout

import engine
from app.draft import Draft, load_draft, read_script, save_draft, save_script
from app.errors import describe

log = logging.getLogger(__name__)

APP_TITLE = "Dia Studio"
DRAFT_DELAY_MS = 800  # the draft is written this long after the last keystroke


class ScriptDocument(QObject):
    """A script (``QTextDocument``: text, undo stack, modified flag) plus its file path and draft."""

    changed = Signal()  # the text changed
    titleChanged = Signal(str)  # the window title for this document
    replaced = Signal()  # the whole text was replaced (opened, new, restored)
    draftFailed = Signal(str)  # why the draft could not be written

    def __init__(self, document: QTextDocument | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        if document is None:
            document = QTextDocument(self)
            document.setDocumentLayout(QPlainTextDocumentLayout(document))
        self.document = document
        self.path = ""
        self._draft_timer = QTimer(self, singleShot=True, interval=DRAFT_DELAY_MS)
        self._draft_timer.timeout.connect(self.save_draft)
        document.contentsChanged.connect(self._contents_changed)
        document.modificationChanged.connect(lambda _m: self.titleChanged.emit(self.title()))

    # -- state

    def text(self) -> str:
        return self.document.toPlainText()

    @property
    def modified(self) -> bool:
        return self.document.isModified()

    def needs_saving(self) -> bool:
        """Unsaved changes worth asking about (an empty script is not)."""
        return self.modified and bool(self.text().strip())

    def title(self) -> str:
        """``name* — Dia Studio`` for a file (the star: unsaved changes), else the app's name."""
        if not self.path:
            return APP_TITLE
        return f"{Path(self.path).name}{'*' if self.modified else ''} — {APP_TITLE}"

    @property
    def draft_pending(self) -> bool:
        """A change is waiting for its draft to be written."""
        return self._draft_timer.isActive()

    # -- editing

    def set_text(self, text: str, path: str = "", *, modified: bool = False) -> None:
        """Replace the whole text as one undo step (so even this can be undone) and set the file."""
        cursor = QTextCursor(self.document)
        cursor.beginEditBlock()
        cursor.select(QTextCursor.SelectionType.Document)
        cursor.insertText(text)
        cursor.endEditBlock()
        self.path = str(path)
        self.document.setModified(modified)
        self.titleChanged.emit(self.title())
        self.replaced.emit()

    def undo(self) -> None:
        self.document.undo()

    def redo(self) -> None:
        self.document.redo()

    # -- files

    def open(self, path: str | Path) -> None:
        """Load a script file (raises the reader's error if it can't be read)."""
        self.set_text(read_script(path), str(path))

    def save(self, path: str | Path | None = None) -> Path:
        """Write the text to ``path`` (default: the document's file) atomically; it becomes the file."""
        target = path or self.path
        if not target:
            raise ValueError("an untitled script needs a path to be saved")
        written = save_script(target, self.text())
        self.path = str(target)
        self.document.setModified(False)
        self.titleChanged.emit(self.title())
        self.save_draft()
        return written

    # -- draft

    def save_draft(self) -> bool:
        """Write the autosaved draft now; False (and ``draftFailed``) if it can't be written."""
        self._draft_timer.stop()
        try:
            save_draft(Draft(self.text(), self.path, self.modified))
        except (OSError, engine.DiaStudioError) as exc:  # a data folder that can't be created: StorageError
            log.error("can't autosave the draft: %s", exc)
            self.draftFailed.emit(describe(exc).message)
            return False
        return True

    def restore_draft(self) -> Draft | None:
        """Put the autosaved draft back (with its file and unsaved state); None if there is none."""
        draft = load_draft()
        if draft is not None:
            self.set_text(draft.text, draft.path, modified=draft.modified)
        return draft

    def _contents_changed(self) -> None:
        self.titleChanged.emit(self.title())
        self._draft_timer.start()
        self.changed.emit()
