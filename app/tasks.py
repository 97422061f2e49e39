"""Short background jobs (import a file, export audio, transcribe) on a thread pool.

``TaskRunner.run(fn, on_done, on_error)`` calls ``fn()`` on a pool thread and delivers its result
or exception to the callbacks on the GUI thread. Long-lived model work belongs to the render
worker instead (``app.workers``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class _Relay(QObject):
    """Lives on the GUI thread; signals emitted from the pool thread are queued to it."""

    done = Signal(object)  # a 1-tuple: None itself must never cross a signal (PySide6 refcount bug)
    failed = Signal(object)


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self.fn = fn
        self.relay = relay
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            result = self.fn()
        except BaseException as exc:  # handed to on_error on the GUI thread
            self.relay.failed.emit(exc)
        else:
            self.relay.done.emit((result,))


class TaskRunner(QObject):
    """A small private thread pool, so shutdown can wait for exactly our jobs."""

    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None, max_threads: int = 2) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._relays: set[_Relay] = set()

    def run(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[BaseException], None] | None = None) -> None:
        relay = _Relay()  # created on the calling (GUI) thread

        def finish(callback, value) -> None:
            self._relays.discard(relay)
            relay.deleteLater()
            if not self._relays:
                self.busyChanged.emit(False)
            if callback is not None:
                callback(value)
            elif isinstance(value, BaseException):
                log.error("background task failed", exc_info=value)

        relay.done.connect(lambda boxed: finish(on_done, boxed[0]))
        relay.failed.connect(lambda exc: finish(on_error, exc))
        if not self._relays:
            self.busyChanged.emit(True)
        self._relays.add(relay)
        self.pool.start(_Task(fn, relay))

    @property
    def busy(self) -> bool:
        return bool(self._relays)

    def wait(self, msecs: int = 30000) -> bool:
        """Block until every started job has finished (shutdown, tests)."""
        return self.pool.waitForDone(msecs)
