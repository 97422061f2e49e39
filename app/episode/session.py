"""The open episode project: its file, its script kept in step with the editor (autosaved), its
blocks, and one undo stack for script edits, cast changes, take choices and locks.

A project file is saved as it changes (every change is an SQLite transaction), so "Save" only
makes sure the latest typing is in it; "Save as" copies the project to a new file. Text that does
not parse yet can't go into the project: it is kept in a private draft beside the settings until
it does, so nothing typed is lost on a crash.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QTextDocument, QUndoCommand, QUndoStack

import engine
from app import settings as opts
from app.errors import describe
from app.settings import Option, Settings
from app.tasks import TaskRunner
from engine.files import atomic_write, atomic_write_text

log = logging.getLogger(__name__)

LAST_PROJECT = Option("episode/last_project", "", str)
LAST_BLOCK = Option("episode/last_block", 0, int)
RENDER_INTERRUPTED = Option("episode/render_interrupted", "", str)  # project a "render all" was running on
COMMIT_DELAY_MS = 600  # typing goes into the project this long after the last keystroke
DRAFT_NAME = "episode-draft.json"


def projects_dir() -> Path:
    """Where untitled projects live until they are saved elsewhere."""
    return engine.data_dir() / "projects"


def draft_path() -> Path:
    return engine.data_dir() / DRAFT_NAME


def untitled_path() -> Path:
    stamp = datetime.now().strftime("%Y-%m-%d-%H%M%S")
    folder = projects_dir()
    path = folder / f"Untitled {stamp}{engine.PROJECT_SUFFIX}"
    n = 2
    while path.exists():
        path = folder / f"Untitled {stamp} ({n}){engine.PROJECT_SUFFIX}"
        n += 1
    return path


def is_project_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() == engine.PROJECT_SUFFIX


class _TextEdit(QUndoCommand):
    """One of the editor's own undo steps, replayed through the shared stack."""

    def __init__(self, document: QTextDocument) -> None:
        super().__init__("Typing")
        self.document = document
        self._first = True

    def undo(self) -> None:
        self.document.undo()

    def redo(self) -> None:
        if self._first:  # the edit has just happened in the editor
            self._first = False
            return
        self.document.redo()


class _ProjectCommand(QUndoCommand):
    """A change to the project, done and undone by two callables."""

    def __init__(self, text: str, do: Callable[[], None], undo: Callable[[], None],
                 session: EpisodeSession) -> None:
        super().__init__(text)
        self._do, self._undo, self.session = do, undo, session

    def redo(self) -> None:
        self.session.run(self._do)

    def undo(self) -> None:
        self.session.run(self._undo)


class EpisodeSession(QObject):
    """The project on screen. Signals tell views what changed; errors go out as ``UserError``."""

    opened = Signal(str)  # path of the project now open ("" when closed)
    blocksChanged = Signal(list)  # list[BlockRecord]
    castChanged = Signal(dict)  # character -> ProjectVoice or None
    errorRaised = Signal(object)  # UserError
    statusMessage = Signal(str, int)
    titleChanged = Signal(str)
    recentChanged = Signal(list)
    draftRestored = Signal(str)  # text from the draft that is newer than the project's script

    def __init__(self, settings: Settings, document: QTextDocument, parent: QObject | None = None,
                 tasks: TaskRunner | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.tasks = tasks or TaskRunner(self)  # slow work (speech-to-text, a server's library)
        self.document = document  # the episode editor's text
        self.project: engine.EpisodeProject | None = None
        self.blocks: list = []
        self.undo_stack = QUndoStack(self)
        self._loading = False
        self._commit_timer = QTimer(self, singleShot=True, interval=COMMIT_DELAY_MS)
        self._commit_timer.timeout.connect(self.commit)
        document.contentsChanged.connect(self._text_changed)
        document.undoCommandAdded.connect(self._text_step)

    # -- state

    @property
    def path(self) -> Path | None:
        return self.project.path if self.project is not None else None

    @property
    def untitled(self) -> bool:
        return self.path is not None and self.path.parent == projects_dir()

    def title(self) -> str:
        return f"{self.path.name} — Dia Studio" if self.path else "Dia Studio"

    def text(self) -> str:
        return self.document.toPlainText()

    # -- files

    def open(self, path: str | Path) -> bool:
        """Open (or create) a project and show its script; False with a message if it can't be."""
        try:
            project = engine.EpisodeProject(path)
        except Exception as exc:  # noqa: BLE001 - shown as a message
            self.errorRaised.emit(describe(exc))
            return False
        self.close()
        self.project = project
        self._loading = True
        self.document.setPlainText(project.script)
        self._loading = False
        self.undo_stack.clear()
        self.settings.set(LAST_PROJECT, str(project.path))
        if not self.untitled:
            self._remember(str(project.path))
        self._restore_draft()
        self.refresh()
        self.opened.emit(str(project.path))
        self.titleChanged.emit(self.title())
        return True

    def new(self, script: str = "") -> bool:
        """A new untitled project (in the data folder until saved elsewhere), optionally with a script."""
        path = untitled_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.open(path):
            return False
        if script:
            self.document.setPlainText(script)
            self.commit()
        return True

    def save(self) -> bool:
        """Put the latest typing into the project (it is otherwise saved as it changes)."""
        if self.project is None:
            return False
        self.commit()
        self.statusMessage.emit(f"Saved {self.path.name}", 4000)
        return True

    def save_as(self, target: str | Path) -> bool:
        """Copy the project (consistently, even while a render writes to it) to ``target`` and open that."""
        if self.project is None:
            return False
        target = Path(target)
        if target.suffix.lower() != engine.PROJECT_SUFFIX:
            target = target.with_name(target.name + engine.PROJECT_SUFFIX)
        self.commit()
        old = self.path
        try:
            atomic_write(target, lambda tmp: _copy_database(old, tmp), private=True)
        except Exception as exc:  # noqa: BLE001 - shown as a message
            self.errorRaised.emit(describe(exc))
            return False
        was_untitled = self.untitled
        if not self.open(target):
            return False
        if was_untitled:
            old.unlink(missing_ok=True)  # the untitled copy has a real home now
        self.statusMessage.emit(f"Saved as {target.name}", 4000)
        return True

    def close(self) -> None:
        if self.project is None:
            return
        self.commit()
        self.project.close()
        self.project = None
        self.blocks = []

    def recent(self) -> list[str]:
        return opts.recent_files(self.settings)

    def _remember(self, path: str) -> None:
        opts.remember_file(self.settings, path)
        self.recentChanged.emit(self.recent())

    # -- the script

    def _text_changed(self) -> None:
        if self._loading or self.project is None:
            return
        self._write_draft()
        self._commit_timer.start()

    def _text_step(self) -> None:
        if not self._loading and self.project is not None:
            self.undo_stack.push(_TextEdit(self.document))

    def commit(self) -> bool:
        """Put the editor's script into the project if it parses (re-splitting the blocks)."""
        self._commit_timer.stop()
        if self.project is None:
            return False
        text = self.text()
        if text == self.project.script:
            return True
        if any(i.is_error for i in engine.check_episode(text)):
            return False  # kept in the draft until it parses
        try:
            self.project.update(script=text)
        except Exception as exc:  # noqa: BLE001 - a damaged file or a full disk
            self.errorRaised.emit(describe(exc))
            return False
        self._clear_draft()
        self.refresh()
        return True

    def _write_draft(self) -> None:
        try:
            atomic_write_text(draft_path(), json.dumps({"path": str(self.path), "text": self.text()}), private=True)
        except (OSError, engine.DiaStudioError) as exc:
            log.error("can't write the episode draft: %s", exc)

    def _clear_draft(self) -> None:
        draft_path().unlink(missing_ok=True)

    def _restore_draft(self) -> None:
        try:
            draft = json.loads(draft_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if draft.get("path") == str(self.path) and draft.get("text") != self.project.script:
            self._loading = True
            self.document.setPlainText(str(draft.get("text", "")))
            self._loading = False
            self.draftRestored.emit(self.text())
            self.statusMessage.emit("Restored your latest typing (the script has an error to fix).", 8000)

    # -- blocks, takes, cast

    def refresh(self) -> None:
        if self.project is None:
            return
        self.blocks = self.project.blocks()
        self.blocksChanged.emit(self.blocks)
        self.castChanged.emit(self.project.cast())

    def run(self, change: Callable[[], None]) -> bool:
        """Apply a change to the project and show the result; False with a message if it failed."""
        try:
            change()
        except Exception as exc:  # noqa: BLE001 - shown as a message
            self.errorRaised.emit(describe(exc))
            return False
        finally:
            self.refresh()
        return True

    def _index(self, content_key: str) -> int:
        """Where the block with this content is now (blocks move as the script changes)."""
        for block in self.project.blocks():
            if block.content_key == content_key:
                return block.index
        raise engine.InvalidParameterError("that block is no longer in the script")

    def choose_take(self, index: int, take_id: int) -> None:
        block = self.blocks[index]
        if block.chosen == take_id:
            return
        key, old = block.content_key, block.chosen
        self.undo_stack.push(_ProjectCommand(
            f"Choose take of block {index + 1}",
            lambda: self.project.choose(self._index(key), take_id),
            lambda: self.project.choose(self._index(key), old), self))

    def step_take(self, index: int, step: int) -> None:
        """Choose the next (+1) or previous (-1) take of a block."""
        block = self.blocks[index]
        ids = [t.id for t in block.takes]
        if len(ids) < 2 or block.locked:
            return
        at = ids.index(block.chosen) if block.chosen in ids else 0
        self.choose_take(index, ids[(at + step) % len(ids)])

    def set_locked(self, index: int, locked: bool) -> None:
        block = self.blocks[index]
        if block.locked == locked:
            return
        key = block.content_key
        self.undo_stack.push(_ProjectCommand(
            f"{'Lock' if locked else 'Unlock'} block {index + 1}",
            lambda: self.project.lock(self._index(key), locked),
            lambda: self.project.lock(self._index(key), not locked), self))

    def star_take(self, take_id: int, starred: bool) -> bool:
        """Star a take (or take its star away); kept in the project file."""
        return self.run(lambda: self.project.set_take_starred(take_id, starred))

    def label_take(self, take_id: int, label: str) -> bool:
        """The user's label on a take; kept in the project file."""
        return self.run(lambda: self.project.set_take_label(take_id, label))

    def voice_input(self, voice: engine.ProjectVoice | None) -> engine.VoiceInput | None:
        """A project voice as a ``VoiceInput`` again (to put it back on undo)."""
        if voice is None:
            return None
        return engine.VoiceInput(voice.name, self.project.voice_audio(voice.id), voice.transcript, voice.source,
                                 voice.library_uid)

    def set_cast(self, character: str, voice: engine.VoiceInput | None, what: str = "") -> None:
        """Give ``character`` a voice (None: a random, seed-only voice), undoably."""
        old = self.voice_input(self.project.cast().get(character))
        self.undo_stack.push(_ProjectCommand(
            what or f"Cast {character}",
            lambda: self.project.update(cast={character: voice}),
            lambda: self.project.update(cast={character: old}), self))

    def keep_voice(self, index: int, character: str, library: engine.VoiceLibrary | None = None, *,
                   transcriber: object | None = None) -> bool:
        """Cut ``character``'s voice from the block's chosen take into the project (and the library).

        The speech-to-text and the library (maybe a server's) work on ``tasks``, in the background; the
        project changes (one undo step) when they are done, if this project is still the one open.
        ``transcriber`` finds the words (default: Whisper). False with a message when it can't start."""
        if not engine.stt_available():
            self.errorRaised.emit(describe(engine.InvalidParameterError(
                "Keeping a voice from a take needs speech-to-text to find the words. Install it with: "
                ".venv/bin/pip install 'dia-studio[stt]' (faster-whisper), then try again.")))
            return False
        block = self.blocks[index]
        if block.chosen is None:
            self.errorRaised.emit(describe(engine.InvalidParameterError(
                f"Block {index + 1} has no take yet: render it, then keep a voice from the take you like.")))
            return False
        project, take_id, turns = self.project, block.chosen, block.turns
        take = project.take_audio(take_id)

        def cut() -> tuple[engine.TakeVoice, str | None]:
            voice = engine.voice_from_take(take, engine.TARGET_SAMPLE_RATE, turns, character, transcriber=transcriber)
            uid = engine.save_to_library(library, voice, character).uid if library is not None else None
            return voice, uid

        def done(found: tuple[engine.TakeVoice, str | None]) -> None:
            if self.project is not project:
                self.statusMessage.emit(f"{character}'s voice was cut after its episode was closed: not cast.", 8000)
                return
            self._cast_from_take(block.content_key, take_id, character, *found)

        self.statusMessage.emit(f"Cutting {character}'s voice from the take of block {index + 1}…", 0)
        self.tasks.run(cut, done, lambda exc: self.errorRaised.emit(describe(exc)))
        return True

    def _cast_from_take(self, key: str, take_id: int, character: str, voice: engine.TakeVoice, uid: str | None) -> None:
        """Cast ``character`` with a voice cut from a take, keeping that take (locked): one undo step."""
        try:
            block = self.project.block(self._index(key))
        except engine.DiaStudioError as exc:  # the block was edited away meanwhile
            self.errorRaised.emit(describe(exc))
            return
        old = self.voice_input(self.project.cast().get(character))
        was_locked, was_chosen = block.locked, block.chosen

        def do() -> None:
            engine.cast_kept_voice(self.project, self._index(key), character, voice, take_id, library_uid=uid)

        def undo() -> None:
            self.project.update(cast={character: old})
            self.project.lock(self._index(key), was_locked)
            if was_chosen is not None:
                self.project.choose(self._index(key), was_chosen)

        self.undo_stack.push(_ProjectCommand(f"Keep the voice of {character}", do, undo, self))
        self.statusMessage.emit(f"{character} now speaks with the voice from the take.", 5000)


def _copy_database(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy even while another connection writes."""
    src = sqlite3.connect(f"{source.absolute().as_uri()}?mode=ro", uri=True)
    dst = sqlite3.connect(str(target))
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
