"""uvicorn on a background thread: the desktop app's API server, the self-test's and the tests'.

``BackgroundServer(app, sock, **uvicorn_options)`` serves an ASGI app on an already bound socket
from a daemon thread. ``start`` returns once uvicorn accepts connections, or raises
``ServerStartError`` saying why it did not (what uvicorn raised or logged as an error on that
thread); nothing it raises reaches the thread's own traceback printer. ``stop`` asks uvicorn to
finish and waits a bounded time. ``dia-studio serve`` runs uvicorn in the foreground instead, where
it handles Ctrl-C itself.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from engine import DiaStudioError

START_SECONDS = 20.0
"""How long ``start`` waits for uvicorn to accept connections by default."""
STOP_SECONDS = 10.0
"""How long ``stop`` waits for uvicorn's thread to end by default."""
_POLL_SECONDS = 0.01
_UVICORN_LOGGER = "uvicorn.error"  # where uvicorn logs a failed startup (and the app's lifespan message)


class ServerStartError(DiaStudioError):
    """The API server could not start serving (the message says why)."""

    code = "server_start_failed"


class _ErrorLines(logging.Handler):
    """Error lines uvicorn logs on one thread (its reasons for not starting are only logged)."""

    def __init__(self, thread: threading.Thread) -> None:
        super().__init__(logging.ERROR)
        self.thread = thread
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread.ident:
            self.lines.append(" ".join(record.getMessage().split()))


class BackgroundServer:
    """uvicorn serving ``app`` on the listening socket ``sock`` from a daemon thread named ``name``.

    ``options`` go to ``uvicorn.Config`` (``log_config``, ``access_log``, ``server_header``,
    ``timeout_graceful_shutdown`` …). The caller keeps the socket and closes it after ``stop``.
    """

    def __init__(self, app: Any, sock: socket.socket, *, name: str = "dia-api-server",
                 start_timeout: float = START_SECONDS, stop_timeout: float = STOP_SECONDS, **options: Any) -> None:
        self.sock = sock
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.error: BaseException | None = None
        """What uvicorn's thread raised, if anything (``start`` reports it when it stops the start)."""
        self._server = uvicorn.Server(uvicorn.Config(app, **options))
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    @property
    def running(self) -> bool:
        """Whether uvicorn's thread is still alive (serving, or not yet stopped)."""
        return self._thread.is_alive()

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self.sock])
        except BaseException as exc:  # noqa: BLE001 - kept for start() and the caller, never printed by the thread
            self.error = exc

    def start(self) -> None:
        """Serve on the thread; return once uvicorn accepts connections. Raises ``ServerStartError``
        (the thread stopped) when it stopped first or did not start within ``start_timeout``."""
        errors = _ErrorLines(self._thread)
        logger = logging.getLogger(_UVICORN_LOGGER)
        logger.addHandler(errors)
        try:
            self._thread.start()
            deadline = time.monotonic() + self.start_timeout
            while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
                self._thread.join(_POLL_SECONDS)
        finally:
            logger.removeHandler(errors)
        if self._server.started:
            return
        timed_out = self._thread.is_alive()
        self.stop()
        raise ServerStartError(self._why_not_started(errors.lines, timed_out))

    def _why_not_started(self, logged: list[str], timed_out: bool) -> str:
        reasons = list(logged)
        if self.error is not None and not isinstance(self.error, SystemExit):  # uvicorn's exit follows a log line
            name = type(self.error).__name__
            reasons.append(f"{name}: {self.error}" if str(self.error) else name)
        if timed_out:
            reasons.append(f"it was not serving within {self.start_timeout:g} s")
        return "the API server did not start: " + ("; ".join(reasons) or "uvicorn stopped without saying why")

    def stop(self) -> bool:
        """Ask uvicorn to finish (its graceful shutdown) and wait at most ``stop_timeout`` for its
        thread; whether it ended. Safe to call again, or when never started."""
        self._server.should_exit = True
        if self._thread.ident is not None:
            self._thread.join(self.stop_timeout)
        return not self._thread.is_alive()
