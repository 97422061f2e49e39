"""Exporting audio: the player's take or a stored one, with its settings in the file's metadata."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

import engine
from app import settings as opts
from app.errors import describe
from app.now_playing import NowPlaying
from app.playback import AudioPlayer
from app.settings import Settings
from app.take import (
    EXPORT_FILTERS,
    EXPORT_SUFFIX,
    Take,
    entry_take,
    suggested_file_name,
)
from app.tasks import TaskRunner


class ExportActions(QObject):
    """Asks where to export, writes in the background, remembers the folder and format."""

    exportFinished = Signal(str)  # path
    exportFailed = Signal(object)  # UserError
    errorRaised = Signal(object)  # UserError
    statusMessage = Signal(str, int)  # text, milliseconds (0: until replaced)

    def __init__(self, settings: Settings, tasks: TaskRunner, player: AudioPlayer, now_playing: NowPlaying,
                 history: Callable[[], engine.RenderHistory | None], dialog_parent: QWidget | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.tasks = tasks
        self.player = player
        self.now_playing = now_playing
        self.history = history
        self.dialog_parent = dialog_parent

    def can_export_current(self) -> bool:
        """The player holds finished audio."""
        return self.player.duration > 0 and not self.player.streaming

    def suffix_filter(self) -> tuple[str, str]:
        """The preferred format (the last one used, if still available) and the dialog's filters."""
        formats = engine.export_formats()
        preferred = self.settings.get(opts.EXPORT_FORMAT)
        preferred = preferred if preferred in formats else "wav"
        filters = ";;".join(EXPORT_FILTERS[f] for f in formats if f in EXPORT_FILTERS)
        return preferred, filters

    def ask_path(self, title: str) -> str:
        """Ask where to export a take called ``title`` ("" if the user cancelled)."""
        preferred, filters = self.suffix_filter()
        name = suggested_file_name(title)
        start = Path(self.settings.get(opts.LAST_DIR) or Path.home()) / f"{name}{EXPORT_SUFFIX[preferred]}"
        path, chosen = QFileDialog.getSaveFileName(self.dialog_parent, "Export audio", str(start), filters,
                                                   EXPORT_FILTERS[preferred])
        if path and not Path(path).suffix:
            fmt = next((f for f, flt in EXPORT_FILTERS.items() if flt == chosen), preferred)
            path += EXPORT_SUFFIX[fmt]
        return path

    def ask_export_current(self) -> None:
        if not self.can_export_current():
            return
        take = self.now_playing.take
        path = self.ask_path(take.title if take else "dialogue")
        if path:
            self.export_current(path)

    def export_current(self, path: str | Path) -> None:
        """Write the player's audio with the take's settings in the file's metadata (in the background)."""
        samples = self.player.samples().copy()
        metadata = (self.now_playing.take or Take("Dia Studio render")).metadata()
        self._export(path, lambda: samples, self.player.sample_rate, metadata)

    def ask_export_entry(self, entry: engine.HistoryEntry) -> None:
        path = self.ask_path(entry.title)
        if path:
            self.export_entry(entry, path)

    def export_entry(self, entry: engine.HistoryEntry, path: str | Path) -> None:
        """Write a stored take (read in the background) with its settings in the metadata."""
        history = self.history()
        self._export(path, lambda: history.load_audio(entry), entry.sample_rate, entry_take(entry).metadata())

    def _export(self, path: str | Path, samples_fn, rate: int, metadata: dict) -> None:
        path = Path(path)
        self.statusMessage.emit(f"Exporting {path.name}…", 0)

        def work() -> str:
            engine.write_audio(path, samples_fn(), rate, metadata=metadata)
            return str(path)

        def done(written: str) -> None:
            self.settings.set(opts.LAST_DIR, str(path.parent))
            fmt = path.suffix.lower().lstrip(".")
            self.settings.set(opts.EXPORT_FORMAT, "opus" if fmt == "ogg" else fmt)
            self.statusMessage.emit(f"Exported {path.name}", 6000)
            self.exportFinished.emit(written)

        def failed(exc: BaseException) -> None:
            error = describe(exc)
            self.errorRaised.emit(error)
            self.exportFailed.emit(error)

        self.tasks.run(work, done, failed)
