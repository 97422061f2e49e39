"""What the windows share and ``app.main`` creates: the stores, the render queue, the player and
the background task runner."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import engine
from app.errors import describe
from app.playback import AudioPlayer
from app.remote import RemoteLibrary, RemoteTarget
from app.tasks import TaskRunner
from app.workers import RenderQueue

log = logging.getLogger(__name__)


def open_store(factory: Callable[[], Any], what: str) -> tuple[Any | None, str]:
    """``factory()``, or None and a sentence for the user: the app must start even if a store is damaged."""
    try:
        return factory(), ""
    except Exception as exc:  # noqa: BLE001 - reported, never fatal
        err = describe(exc)
        log.error("can't open the %s: %s", what, err.message)
        return None, f"The {what} can't be opened: {err.message}"


@dataclass
class Services:
    """The render history and voice library (None if they can't be opened, with why), the render
    queue, the audio player and the task runner."""

    history: engine.RenderHistory | None
    library: engine.VoiceLibrary | None
    queue: RenderQueue
    player: AudioPlayer
    tasks: TaskRunner
    history_error: str = ""
    library_error: str = ""
    remote_library: RemoteLibrary | None = None  # the server's, while renders go to a Dia Studio server

    def voice_library(self, target: RemoteTarget | None) -> tuple[Any | None, str]:
        """The voice library the windows use: this computer's, or ``target``'s (a server); with why
        it can't be used."""
        if self.remote_library is not None:
            self.remote_library.close()
            self.remote_library = None
        if target is None:
            return self.library, self.library_error
        try:
            self.remote_library = RemoteLibrary(target)
        except engine.DiaStudioError as exc:
            return None, describe(exc).message
        return self.remote_library, ""

    def stop(self) -> None:
        """Stop background work: renders, playback, tasks."""
        self.queue.shutdown()
        self.player.shutdown()
        self.tasks.wait()

    def close_stores(self) -> None:
        """Close the history and the library (after ``stop``: nothing may still write to them)."""
        for store in (self.history, self.library, self.remote_library):
            if store is not None:
                store.close()


def create_services() -> Services:
    """Open the stores in the data folder and start the render thread."""
    tasks = TaskRunner()
    history, history_error = open_store(engine.RenderHistory, "history")
    library, library_error = open_store(engine.VoiceLibrary, "voice library")
    queue = RenderQueue(lambda: history, lambda: library)
    return Services(history, library, queue, AudioPlayer(), tasks, history_error, library_error)
