"""Rendering an episode on the app's one render queue, and playing it across blocks.

Each block that needs a take becomes one ``RenderJob`` whose ``work`` runs the engine's per-block
render (``engine.regenerate_block`` with the block's own seed, which is exactly what
``render_episode`` does for it) on the render thread, with the model the queue already holds: the
Queue tab lists block jobs, Stop cancels them, and a kill loses only the block in flight. The model
is part of each block's identity: rendering on a Dia Studio server, the project records the server's
model (asked in the background before the blocks are queued), so switching between this computer and
a server marks the blocks as another model's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from PySide6.QtCore import QObject, Signal

import engine
from app.episode.session import RENDER_INTERRUPTED, EpisodeSession
from app.errors import UserError, describe
from app.model_settings import engine_options
from app.playback import AudioPlayer
from app.remote import RemoteEngine, server_model_key
from app.render_controller import expected_steps
from app.settings import Settings
from app.tasks import TaskRunner
from app.workers import JobOutcome, RenderJob, RenderQueue, format_seconds

log = logging.getLogger(__name__)

QUEUED, RENDERING = "queued", "rendering"
T = TypeVar("T")


class _Relay:
    """The loaded engine as ``regenerate_block`` sees it, passing progress and audio to the queue too."""

    def __init__(self, dia, on_progress: Callable, on_audio: Callable) -> None:
        self.dia, self.on_progress, self.on_audio = dia, on_progress, on_audio
        self.result: engine.RenderResult | None = None

    @property
    def options(self) -> engine.EngineOptions:
        return self.dia.options

    def encode_prompt(self, voice):
        return self.dia.encode_prompt(voice)

    def render(self, request, *, on_progress=None, should_stop=None, prompt_codes=None, **_ignored):
        def progress(p) -> None:
            self.on_progress(p)
            if on_progress is not None:
                on_progress(p)

        self.result = self.dia.render(request, on_progress=progress, on_audio=self.on_audio,
                                      should_stop=should_stop, prompt_codes=prompt_codes)
        return self.result


@dataclass
class BlockWork:
    """A block's render, run on the render thread with its own connection to the project file."""

    path: Path
    identity: str
    seed: int | None  # None: a fresh random seed (Regenerate)
    take_id: int | None = field(default=None, init=False)

    def __call__(self, dia, on_progress, on_audio, should_stop) -> engine.RenderResult:
        relay = _Relay(dia, on_progress, on_audio)
        with engine.EpisodeProject(self.path) as project:
            block = next((b for b in project.blocks() if b.identity == self.identity), None)
            if block is None:
                raise engine.CancelledError("the block was edited before its turn came")
            if isinstance(dia, RemoteEngine):  # rendering on a Dia Studio server: one request per block
                self.take_id, result = dia.render_block(project, block.index, seed=self.seed, on_progress=on_progress,
                                                        on_audio=on_audio, should_stop=should_stop)
                return result
            self.take_id = engine.regenerate_block(project, relay, block.index, seed=self.seed,
                                                   should_stop=should_stop)
        return relay.result


class EpisodeRenderer(QObject):
    """Queues block jobs and follows them: each block's state and progress, the overall progress."""

    blockChanged = Signal(str)  # identity of a block whose live state changed
    progressChanged = Signal(str, float)  # overall: text for the status bar, fraction (0..1)
    blockFinished = Signal(str)  # identity of a block that got a take
    idle = Signal(str)  # the last queued block finished: what happened

    def __init__(self, session: EpisodeSession, queue: RenderQueue, settings: Settings,
                 parent: QObject | None = None, tasks: TaskRunner | None = None) -> None:
        super().__init__(parent)
        self.session, self.queue, self.settings = session, queue, settings
        self.tasks = tasks or TaskRunner(self)  # asks a server which model it renders with
        self.jobs: dict[int, tuple[RenderJob, str, float]] = {}  # job id -> job, identity, estimated seconds
        self._batch_total = 0.0
        self._batch_done = 0.0
        self._batch_started = 0.0
        self._failed = 0
        queue.jobChanged.connect(self._changed)
        queue.jobFinished.connect(self._finished)
        queue.jobFailed.connect(self._failed_job)
        queue.jobCancelled.connect(self._cancelled)

    # -- state

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    def live(self, identity: str) -> tuple[str, float] | None:
        """("queued" | "rendering", fraction) of a block in the queue, else None."""
        for job, ident, _est in self.jobs.values():
            if ident == identity:
                return (RENDERING if job is self.queue.current else QUEUED), job.fraction
        return None

    # -- commands

    def render(self, changed_only: bool = False) -> int:
        """Queue every block that needs a take (or only those changed since their render); how many.
        Rendering on a server, the server is first asked for its model in the background: 0 now, and
        the blocks are queued when it answers."""
        session = self.session
        if session.project is None:
            return 0
        session.commit()
        if any(i.is_error for i in engine.check_episode(session.text())):
            session.errorRaised.emit(UserError("Fix the script first", "The script has an error (red underline); "
                                               "the blocks can't be rendered until it is fixed.",
                                               code="invalid_script"))
            return 0
        return self._with_model(lambda: self._queue_pending(changed_only)) or 0

    def _queue_pending(self, changed_only: bool) -> int:
        session = self.session
        queued = {ident for _job, ident, _est in self.jobs.values()}
        blocks = [b for b in engine.pending_blocks(session.project) if b.identity not in queued
                  and (not changed_only or b.state in ("changed", "failed"))]
        for block in blocks:
            self._submit(block, block.seed)
        if blocks:
            self.settings.set(RENDER_INTERRUPTED, str(session.path))
        return len(blocks)

    def regenerate(self, index: int) -> RenderJob | None:
        """Render block ``index`` again with a new random seed; the new take becomes its choice (on a
        server: once it has said which model it renders with; None now)."""
        block = self.session.blocks[index]
        if block.locked:
            self.session.statusMessage.emit(f"Block {index + 1} is locked: unlock it to regenerate it.", 5000)
            return None
        key = block.content_key

        def submit() -> RenderJob | None:
            now = next((b for b in self.session.project.blocks() if b.content_key == key), None)
            return self._submit(now, None) if now is not None else None

        return self._with_model(submit)

    def stop(self) -> None:
        """Cancel every queued and running block job (finished takes are kept)."""
        for job, _ident, _est in list(self.jobs.values()):
            self.queue.cancel(job.id)
        self.settings.set(RENDER_INTERRUPTED, "")

    def _with_model(self, then: Callable[[], T]) -> T | None:
        """The model is part of each block's identity: settle it in the project, then ``then()`` (its
        result). On a server the server says which model it is, asked on the task runner: ``then`` runs
        when it answers, if the same project is open and renders still go to that server."""
        target, project = self.queue.remote, self.session.project
        if target is None:
            options = engine_options(self.settings)
            settled = self.session.run(lambda: _set_model(project, engine.model_key(options),
                                                          engine.engine_settings(options)))
            return then() if settled else None

        def done(key: str) -> None:
            if self.session.project is project and self.queue.remote == target:
                self.session.statusMessage.emit("", 0)
                if self.session.run(lambda: _set_model(project, key, {"server": target.base})):
                    then()

        def failed(exc: BaseException) -> None:
            if self.session.project is project:
                self.session.errorRaised.emit(describe(exc))

        self.session.statusMessage.emit(f"Asking the server at {target.base} which model it renders with…", 0)
        self.tasks.run(lambda: server_model_key(target), done, failed)
        return None

    def _submit(self, block, seed: int | None) -> RenderJob:
        params = block.params.replace(seed=block.seed if seed is None else seed)
        budget = engine.estimate_budget(block.model_text, max_new_tokens=params.max_new_tokens)
        who = " & ".join(block.characters)
        job = RenderJob(script=block.model_text, params=params, options=engine_options(self.settings),
                        title=f"Block {block.index + 1} · {who}", expected_steps=expected_steps(budget),
                        work=BlockWork(self.session.path, block.identity, seed))
        if not self.jobs:
            self._batch_total, self._batch_done, self._failed = 0.0, 0.0, 0
            self._batch_started = time.monotonic()
        self._batch_total += block.estimated_seconds
        self.jobs[job.id] = (job, block.identity, block.estimated_seconds)
        self.queue.submit(job)
        self.blockChanged.emit(block.identity)
        return job

    # -- following the queue

    def _changed(self, job: RenderJob) -> None:
        entry = self.jobs.get(job.id)
        if entry is None or job.finished:
            return
        self.blockChanged.emit(entry[1])
        done = self._batch_done + entry[2] * job.fraction
        fraction = done / self._batch_total if self._batch_total else 0.0
        self.progressChanged.emit(self._progress_text(fraction), fraction)

    def _progress_text(self, fraction: float) -> str:
        left = len(self.jobs)
        text = f"Rendering the episode: {fraction:.0%}, {left} block{'s' if left != 1 else ''} to go"
        elapsed = time.monotonic() - self._batch_started
        if fraction > 0.02:
            text += f" · ≈ {format_seconds(elapsed / fraction * (1 - fraction))} left"
        return text

    def _end(self, job: RenderJob) -> tuple[str, float] | None:
        entry = self.jobs.pop(job.id, None)
        if entry is None:
            return None
        _job, identity, estimate = entry
        self._batch_done += estimate
        return identity, estimate

    def _finished(self, job: RenderJob, _outcome: JobOutcome) -> None:
        ended = self._end(job)
        if ended is None:
            return
        self.session.refresh()
        self.blockFinished.emit(ended[0])
        self.blockChanged.emit(ended[0])
        self._maybe_idle()

    def _failed_job(self, job: RenderJob, error: UserError) -> None:
        ended = self._end(job)
        if ended is None:
            return
        self._failed += 1
        project = self.session.project
        block = next((b for b in self.session.blocks if b.identity == ended[0]), None)
        if project is not None and block is not None:
            self.session.run(lambda: project.record_failure(block, error.code or "render_failed", error.message))
        self.blockChanged.emit(ended[0])
        self._maybe_idle()

    def _cancelled(self, job: RenderJob) -> None:
        ended = self._end(job)
        if ended is not None:
            self.blockChanged.emit(ended[0])
            self._maybe_idle()

    def _maybe_idle(self) -> None:
        if self.jobs:
            self._changed_overall()
            return
        self.settings.set(RENDER_INTERRUPTED, "")
        note = f"; {self._failed} block(s) failed (see the list)" if self._failed else ""
        self.progressChanged.emit("", 1.0)
        self.idle.emit(f"Episode rendered in {format_seconds(time.monotonic() - self._batch_started)}{note}")

    def _changed_overall(self) -> None:
        fraction = self._batch_done / self._batch_total if self._batch_total else 0.0
        self.progressChanged.emit(self._progress_text(fraction), fraction)


def _set_model(project: engine.EpisodeProject, key: str, settings: dict) -> None:
    if project.settings.model_key != key:
        project.update(model_key=key, engine=settings)


class EpisodePlayback(QObject):
    """Plays the episode from any block as the export joins it (``engine.join_blocks``: the same
    trims, pauses, chapter pauses and fades, without the loudness mastering), carrying on into
    blocks that are still rendering as they arrive (the player buffers meanwhile)."""

    playingBlock = Signal(int)  # index of the block being heard (-1: none)

    def __init__(self, session: EpisodeSession, player: AudioPlayer, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.player = session, player
        self.settings = engine.MasterSettings()  # the export's join; mastering is not applied here
        self.starts: list[tuple[float, int]] = []  # (seconds into the stream, block index)
        self.next = 0
        self.first = 0
        self._sent = 0  # samples of the join handed to the player
        self._current = -1
        self._takes: dict[int, np.ndarray] = {}  # take id -> samples, for the blocks being played
        session.blocksChanged.connect(lambda _b: self._feed())
        session.opened.connect(lambda _p: self._takes.clear())
        player.positionChanged.connect(self._position)
        player.stateChanged.connect(lambda _s: self._position(self.player.position))

    @property
    def active(self) -> bool:
        return self.player.source == self.source

    @property
    def source(self) -> tuple:
        return ("episode", str(self.session.path))

    def play_from(self, index: int = 0) -> None:
        blocks = self.session.blocks
        if not blocks:
            return
        index = max(0, min(index, len(blocks) - 1))
        expected = sum(b.seconds for b in blocks[index:])
        self.player.begin_stream(engine.TARGET_SAMPLE_RATE, self.source, expected)
        self.starts, self.first, self.next, self._sent = [], index, index, 0
        self._takes.clear()
        self._feed()
        self.player.play()

    def stop(self) -> None:
        if self.active:
            self.player.stop()

    def _ready_until(self, blocks: list) -> int:
        ready = self.next
        while ready < len(blocks) and blocks[ready].chosen is not None and not blocks[ready].needs_render:
            ready += 1
        return ready

    def _audio(self, take_id: int) -> np.ndarray:
        if take_id not in self._takes:
            self._takes[take_id] = np.asarray(self.session.project.take_audio(take_id), dtype=np.float32)
        return self._takes[take_id]

    def _feed(self) -> None:
        if not self.active or not self.player.streaming:
            return
        blocks = self.session.blocks
        ready = self._ready_until(blocks)
        if ready > self.next:
            self._append_join(blocks, ready, complete=ready >= len(blocks))
        if self.next >= len(blocks):
            self.player.end_stream()

    def _append_join(self, blocks: list, ready: int, complete: bool) -> None:
        """Join blocks ``first``..``ready`` as the export does and hand the player what is new. The
        last crossfade is held back until the next block (or the end) settles it."""
        playing = blocks[self.first:ready]
        chapters = {c.first_block - self.first for c in self.session.project.chapters()
                    if self.first < c.first_block < ready}
        joined, spans = engine.join_blocks([self._audio(b.chosen) for b in playing], chapters, self.settings,
                                           engine.TARGET_SAMPLE_RATE)
        hold = 0 if complete else round(self.settings.crossfade_seconds * engine.TARGET_SAMPLE_RATE)
        end = max(self._sent, joined.shape[0] - hold)
        if end > self._sent:
            self.player.append(joined[self._sent:end])
            self._sent = end
        self.starts = [(start, block.index) for (start, _end), block in zip(spans, playing)]
        self.next = ready

    def block_at(self, seconds: float) -> int:
        current = -1
        for start, index in self.starts:
            if start <= seconds + 1e-6:
                current = index
        return current

    def _position(self, seconds: float) -> None:
        index = self.block_at(seconds) if self.active and self.player.state != "stopped" else -1
        if index != self._current:
            self._current = index
            self.playingBlock.emit(index)
