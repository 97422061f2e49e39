"""File actions on the script document: new, open, open an example or a recent file, save, save as.

Unsaved changes are offered for saving first (through ``ask_unsaved``, which answers "save",
"discard" or "cancel"). Errors and notes go out as signals; the window shows them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from app import settings as opts
from app.document import ScriptDocument
from app.draft import read_script
from app.errors import describe
from app.settings import Settings

SCRIPT_FILTER = "Scripts (*.txt *.dia);;All files (*)"


def example_title(path: Path) -> str:
    """``01-small-hours.txt`` -> ``small hours``."""
    return path.stem.split("-", 1)[-1].replace("-", " ")


class ScriptFiles(QObject):
    """Opens and saves the document's file and keeps the recent-files list."""

    errorRaised = Signal(object)  # UserError
    statusMessage = Signal(str, int)  # text, milliseconds
    recentChanged = Signal(list)  # paths of existing files, newest first

    def __init__(self, document: ScriptDocument, settings: Settings, ask_unsaved: Callable[[str], str],
                 dialog_parent: QWidget | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.settings = settings
        self.ask_unsaved = ask_unsaved
        self.dialog_parent = dialog_parent

    def keep_or_drop_changes(self) -> bool:
        """Before the document gets other text: offer to save unsaved changes; False means "stay"."""
        if not self.document.needs_saving():
            return True
        name = Path(self.document.path).name if self.document.path else "the untitled script"
        answer = self.ask_unsaved(name)
        if answer == "save":
            return self.save()
        return answer == "discard"

    def new(self) -> bool:
        """An empty script that starts with ``[S1]``; False if the user chose to stay."""
        if not self.keep_or_drop_changes():
            return False
        self.document.save_draft()
        self.document.set_text("[S1] ")
        return True

    def ask_open(self) -> None:
        """Offer to save unsaved changes first, then ask which file to open."""
        if not self.keep_or_drop_changes():
            return
        path, _ = QFileDialog.getOpenFileName(self.dialog_parent, "Open script", self._start_dir(), SCRIPT_FILTER)
        if path:
            self.open(path, ask=False)

    def open(self, path: str | Path, *, ask: bool = True) -> bool:
        """Load a script file; ``ask=False`` when the unsaved changes were already dealt with."""
        if ask and not self.keep_or_drop_changes():
            return False
        try:
            text = read_script(path)
        except Exception as exc:  # noqa: BLE001 - shown as a message
            self.errorRaised.emit(describe(exc))
            return False
        self.document.save_draft()
        self.document.set_text(text, str(path))
        self._remember(str(path))
        self.statusMessage.emit(f"Opened {Path(path).name}", 4000)
        return True

    def open_example(self, path: Path) -> bool:
        """An example script, untitled (saving it asks for a new name)."""
        if not self.keep_or_drop_changes():
            return False
        self.document.save_draft()
        self.document.set_text(read_script(path))
        self.statusMessage.emit(f"Example: {example_title(path)}", 4000)
        return True

    def save(self) -> bool:
        if not self.document.path:
            return self.ask_save_as()
        return self.write(self.document.path)

    def ask_save_as(self) -> bool:
        start = self.document.path or str(Path(self._start_dir()) / "dialogue.txt")
        path, _ = QFileDialog.getSaveFileName(self.dialog_parent, "Save script", start,
                                              "Scripts (*.txt);;All files (*)")
        return self.write(path) if path else False

    def write(self, path: str | Path) -> bool:
        """Save the document to ``path``, which becomes its file."""
        try:
            self.document.save(path)
        except Exception as exc:  # noqa: BLE001 - shown as a message
            self.errorRaised.emit(describe(exc))
            return False
        self._remember(str(path))
        self.statusMessage.emit(f"Saved {Path(path).name}", 4000)
        return True

    def recent(self) -> list[str]:
        """Recently opened or saved scripts that still exist, newest first."""
        return opts.recent_files(self.settings)

    def _remember(self, path: str) -> None:
        opts.remember_file(self.settings, path)
        self.recentChanged.emit(self.recent())

    def _start_dir(self) -> str:
        return self.settings.get(opts.LAST_DIR) or str(Path.home())
