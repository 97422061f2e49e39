"""What the History list's buttons do: play a take, queue it again, delete it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, Signal

import engine
from app.errors import describe
from app.now_playing import NowPlaying
from app.playback import AudioPlayer
from app.take import entry_take
from app.tasks import TaskRunner
from app.workers import RenderJob

Render = Callable[[str, engine.GenerationParams, dict], "RenderJob | None"]


class HistoryActions(QObject):
    """Plays, re-renders and deletes stored takes; messages go out as signals."""

    errorRaised = Signal(object)  # UserError
    statusMessage = Signal(str, int)  # text, milliseconds
    historyChanged = Signal()  # an entry was deleted

    def __init__(self, history: Callable[[], engine.RenderHistory | None], player: AudioPlayer, tasks: TaskRunner,
                 now_playing: NowPlaying, voices: Callable[[], dict], render: Render,
                 confirm: Callable[[str, str], bool], parent: QObject | None = None) -> None:
        """``voices``: the library's samples by id; ``render(script, params, cast)`` queues a render;
        ``confirm(title, text)`` asks the user."""
        super().__init__(parent)
        self.history = history
        self.player = player
        self.tasks = tasks
        self.now_playing = now_playing
        self.voices = voices
        self.render = render
        self.confirm = confirm

    def play(self, entry: engine.HistoryEntry) -> None:
        """Load the take's audio in the background, then play it."""
        history = self.history()

        def done(samples: np.ndarray) -> None:
            self.player.load(samples, entry.sample_rate, ("entry", entry.id))
            take = entry_take(entry)
            self.now_playing.show(take, f"{entry.title} · seed {entry.seed}", take.warnings)
            self.player.play()

        self.tasks.run(lambda: history.load_audio(entry), done, lambda exc: self.errorRaised.emit(describe(exc)))

    def rerender(self, entry: engine.HistoryEntry) -> RenderJob | None:
        """Queue the take's script and settings again (with its seed: the same take, unless the
        voices changed). Voices no longer in the library are replaced by random ones, with a note."""
        cast = {tag: (entry.cast[tag].voice_id if tag in entry.cast else None) for tag in ("S1", "S2")}
        voices = self.voices()
        gone = [entry.cast[t].name for t, vid in cast.items() if vid is not None and vid not in voices]
        if gone:
            cast = {t: (vid if vid in voices else None) for t, vid in cast.items()}
            self.statusMessage.emit(f"Not in the library any more: {', '.join(gone)}; a random voice "
                                    "speaks instead.", 8000)
        return self.render(entry.script, entry.reproducible_params, cast)

    def delete(self, entry: engine.HistoryEntry) -> bool:
        """Delete the take and its audio, after asking."""
        if not self.confirm("Delete this take?", f"“{entry.title}” (seed {entry.seed}) and its audio will be deleted."):
            return False
        try:
            self.history().delete(entry.id)
        except Exception as exc:  # noqa: BLE001 - shown as a message
            self.errorRaised.emit(describe(exc))
            return False
        if self.player.source == ("entry", entry.id):
            self.player.clear()
            self.now_playing.clear()
        self.historyChanged.emit()
        return True
