"""One model, one queue: requests render in order on a single thread; a full queue answers 429.

A ``Job`` carries its results back to the event loop that submitted it as events:
``("chunk", AudioChunk)`` while rendering (streamed jobs only), then ``("done", RenderResult)``
or ``("error", exception)``. Cancelling a job (its client went away) skips it while it waits and
stops it within one model step while it renders.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine import CancelledError, DiaStudioError, RenderRequest, RenderResult
from engine.server.backend import RenderBackend
from engine.server.errors import ApiError

log = logging.getLogger(__name__)

FIRST_GUESS_SECONDS = 10.0
"""Assumed length of a render before the first one has been timed (for Retry-After)."""
SMOOTHING = 0.3
"""Weight of the latest render in the running average of render times."""


@dataclass(eq=False)
class Job:
    """One request waiting for, or holding, the model."""

    request: RenderRequest
    loop: asyncio.AbstractEventLoop
    stream: bool = False
    after: Callable[[RenderResult], object] | None = None
    """Run on the queue thread after a successful render (e.g. storing it in the history); its
    return value is handed back with the result as ``Job.extra``."""
    run: Callable[..., RenderResult] | None = None
    """Renders the job instead of ``backend.render(request)`` (a long script, block by block): called
    as ``run(backend, on_audio=…, should_stop=…, on_blocks=…)`` on the queue thread."""
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    extra: object = None
    blocks: tuple[int, int] | None = None
    """(blocks done, blocks in all) while a long script renders block by block."""

    def cancel(self) -> None:
        self.cancelled.set()

    def emit(self, kind: str, value: object) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is gone (server shutting down): nobody is listening
            self.cancel()


class QueueFull(ApiError):
    def __init__(self, waiting: int, retry_after: int) -> None:
        super().__init__("queue_full", f"the render queue is full ({waiting} requests waiting); try again in "
                                       f"about {retry_after} s", headers={"Retry-After": str(retry_after)})


class RenderQueue:
    """A FIFO of at most ``capacity`` waiting jobs in front of the one rendering."""

    def __init__(self, backend: RenderBackend, capacity: int) -> None:
        self.backend = backend
        self.capacity = capacity
        self._waiting: collections.deque[Job] = collections.deque()
        self._running: Job | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._average = FIRST_GUESS_SECONDS
        self.rendered = 0
        self._thread = threading.Thread(target=self._work, name="dia-api-render", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Job:
        """Queue ``job``; raises ``QueueFull`` (429 with Retry-After) when ``capacity`` are waiting."""
        with self._cond:
            if self._closed:
                raise ApiError("upstream_error", "the server is shutting down")
            self._waiting = collections.deque(j for j in self._waiting if not j.cancelled.is_set())
            if len(self._waiting) >= self.capacity:
                raise QueueFull(len(self._waiting), self._retry_after())
            self._waiting.append(job)
            self._cond.notify()
        return job

    def _retry_after(self) -> int:
        return max(1, math.ceil(self._average * (len(self._waiting) + 1) / 2))

    def stats(self) -> dict[str, int | None]:
        with self._cond:
            waiting = sum(1 for j in self._waiting if not j.cancelled.is_set())
            blocks = self._running.blocks if self._running is not None else None
            return {"rendering": int(self._running is not None), "waiting": waiting, "capacity": self.capacity,
                    "rendered": self.rendered, "blocks_done": blocks[0] if blocks else None,
                    "blocks_total": blocks[1] if blocks else None}

    def close(self, timeout: float | None = None) -> None:
        """Cancel everything and stop the thread."""
        with self._cond:
            self._closed = True
            for job in self._waiting:
                job.cancel()
            if self._running is not None:
                self._running.cancel()
            self._cond.notify_all()
        self._thread.join(timeout)

    def _next(self) -> Job | None:
        with self._cond:
            while True:
                while self._waiting:
                    job = self._waiting.popleft()
                    if not job.cancelled.is_set():
                        self._running = job
                        return job
                if self._closed:
                    return None
                self._cond.wait()

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                self._run(job)
            finally:
                with self._cond:
                    self._running = None

    def _run(self, job: Job) -> None:
        started = time.monotonic()
        try:
            on_audio = (lambda chunk: job.emit("chunk", chunk)) if job.stream else None
            if job.run is not None:
                result = job.run(self.backend, on_audio=on_audio, should_stop=job.cancelled.is_set,
                                 on_blocks=lambda done, total: setattr(job, "blocks", (done, total)))
            else:
                result = self.backend.render(job.request, on_audio=on_audio, should_stop=job.cancelled.is_set)
            if job.after is not None and not job.cancelled.is_set():
                job.extra = job.after(result)
        except CancelledError:
            return  # the client is gone; nothing to tell
        except (DiaStudioError, ApiError) as exc:
            job.emit("error", exc)
            return
        except Exception as exc:
            log.exception("render failed")
            job.emit("error", ApiError("upstream_error", f"the render failed unexpectedly ({type(exc).__name__}); "
                                                         "the server log has the details"))
            return
        seconds = time.monotonic() - started
        self._average = (1 - SMOOTHING) * self._average + SMOOTHING * seconds
        self.rendered += 1
        job.emit("done", result)
