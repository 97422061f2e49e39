"""The render worker: one long-lived QThread that owns the Dia engine, fed by a render queue.

The engine is loaded lazily by the first render (and again only when the model settings change).
Each job has a ``threading.Event`` the GUI sets to cancel; the engine polls it every step, so a
cancel takes effect within one decoder step. The worker never touches widgets: it reports through
signals, which Qt queues to the GUI thread.

Where a job renders is its ``remote``: None for this computer's engine, else a Dia Studio server
(``app.remote``), which streams audio and progress the same way, so nothing above the worker cares.
Jobs the local API server posts (``origin="api"``) carry their prepared request and a ``listener``
that gets their audio and outcome on the render thread; they share the one engine.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from PySide6.QtCore import QObject, QThread, Signal, Slot

import engine
from app.errors import UserError, describe
from app.remote import RemoteEngine, RemoteLibrary, RemoteTarget

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.05  # seconds between progress signals (the last one always goes out)
TAIL_SHARE = 0.03  # share of the bar left for the decode tail after the last decoder step
ETA_TIME_CONSTANT = 4.0  # seconds: how quickly the shown time left follows a new estimate
ETA_MIN_STEPS = 8  # no time left is shown before this many steps (the first ones are slow)
QUEUED, LOADING, RENDERING, DONE, FAILED, CANCELLED = "queued", "loading", "rendering", "done", "failed", "cancelled"
STATE_LABELS = {QUEUED: "Queued", LOADING: "Loading model", RENDERING: "Rendering", DONE: "Done",
                FAILED: "Failed", CANCELLED: "Cancelled"}
API = "api"
"""``RenderJob.origin`` of renders the local API server asked for (the server stores them, "via API")."""
_ids = itertools.count(1)


class JobListener(Protocol):
    """Follows one job on the render thread (the local API server waiting for its render)."""

    def audio(self, chunk: engine.AudioChunk) -> None: ...

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        """Called once: the job's result, or why there is none."""


@dataclass
class RenderJob:
    """One queued render: everything it needs, captured when it was queued."""

    script: str
    params: engine.GenerationParams
    options: engine.EngineOptions
    cast: dict[str, int | None] = field(default_factory=dict)  # "S1"/"S2" -> library voice id
    title: str = ""
    expected_steps: int = 0  # estimated decoder steps (for a progress bar that ends near 100 %)
    id: int = field(default_factory=lambda: next(_ids))
    stop: threading.Event = field(default_factory=threading.Event, repr=False)
    state: str = QUEUED
    fraction: float = 0.0
    detail: str = ""
    error: UserError | None = None
    entry_id: int | None = None
    seed: int | None = None
    queued_at: float = field(default_factory=time.time)
    work: Callable | None = field(default=None, repr=False)
    """Renders the job itself instead of ``script`` with ``cast`` (an episode block, which keeps its
    own takes, not in the history): ``work(engine, on_progress, on_audio, should_stop) -> RenderResult``;
    ``engine`` is the loaded ``DiaEngine``, or a ``RemoteEngine`` when the job renders on a server."""
    origin: str = ""  # API for the local API server's renders
    request: engine.RenderRequest | None = None  # prepared (voices assembled) instead of script + cast
    listener: JobListener | None = field(default=None, repr=False)
    remote: RemoteTarget | None = None  # the server it renders on (None: this computer); set when queued

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED, CANCELLED)


class RenderEstimate:
    """One progress for a whole render (voice prompt, generation, decode tail) and a smoothed time left.

    Time-based: the work done is the time since the render started, the work left is the smoothed
    time the remaining decoder steps need, so the bar and the time left agree. Past the script's
    estimate the render can only run to the step cap: the bar then creeps towards it and the time
    left is that upper bound. The bar never moves backwards.
    """

    def __init__(self, expected_steps: int, started: float) -> None:
        self.expected_steps = max(1, expected_steps)
        self.started = started
        self.fraction = 0.0
        self.left: float | None = None  # smoothed seconds left
        self.overrun = False  # the render runs longer than the script's estimate
        self._overrun_from: tuple[int, float] | None = None  # (step, fraction) when the estimate ran out
        self._updated = started

    def update(self, p: engine.RenderProgress, now: float) -> None:
        """Take one progress report received at ``now`` (a monotonic clock, in seconds)."""
        if p.stage == "finish":
            self.fraction = max(self.fraction, 1.0 - TAIL_SHARE)
            self.left = None
        elif p.stage == "generate":
            self._generate(p, now)
        self._updated = now

    def _generate(self, p: engine.RenderProgress, now: float) -> None:
        cap = max(1, p.max_steps)
        expected = min(self.expected_steps, cap)
        if p.step >= expected and p.step < cap:
            self._creep(p)
            return
        if p.frames_per_second <= 0 or p.step < ETA_MIN_STEPS:
            return
        raw = max(0, expected - p.step) / p.frames_per_second
        self.left = raw if self.left is None else self._smooth(raw, now)
        elapsed = max(1e-6, now - self.started)
        self._advance((1.0 - TAIL_SHARE) * elapsed / (elapsed + self.left))

    def _creep(self, p: engine.RenderProgress) -> None:
        if self._overrun_from is None:
            self._overrun_from = (p.step, self.fraction)
        self.overrun = True
        first, start = self._overrun_from
        done = (p.step - first) / max(1, p.max_steps - first)
        self._advance(start + (1.0 - TAIL_SHARE - start) * done)
        self.left = p.eta_seconds  # the engine's upper bound: the steps left to the cap

    def _smooth(self, raw: float, now: float) -> float:
        predicted = max(0.0, self.left - (now - self._updated))
        weight = 1.0 - math.exp(-max(0.0, now - self._updated) / ETA_TIME_CONSTANT)
        return max(0.0, predicted + weight * (raw - predicted))

    def _advance(self, fraction: float) -> None:
        self.fraction = max(self.fraction, min(1.0 - TAIL_SHARE, fraction))


@dataclass(frozen=True)
class JobOutcome:
    result: engine.RenderResult
    entry: engine.HistoryEntry | None
    history_error: UserError | None = None


class EngineWorker(QObject):
    """Runs on the render thread. Owns the ``DiaEngine``; renders one job at a time."""

    loading = Signal(int)  # job id
    loadProgress = Signal(int, object)  # job id, engine.LoadProgress
    loaded = Signal(str)  # what was loaded
    started = Signal(int)
    progress = Signal(int, object)  # job id, engine.RenderProgress
    audio = Signal(int, object)  # job id, engine.AudioChunk
    finished = Signal(int, object)  # job id, JobOutcome
    failed = Signal(int, object)  # job id, UserError
    cancelled = Signal(int)

    def __init__(self, history: Callable[[], engine.RenderHistory | None],
                 library: Callable[[], engine.VoiceLibrary | None]) -> None:
        super().__init__()
        self._history = history
        self._library = library
        self.engine: engine.DiaEngine | None = None

    @Slot(object)
    def run_job(self, job: RenderJob) -> None:
        try:
            if job.stop.is_set():
                raise engine.CancelledError("cancelled before it started")
            result, cast = self._render(job)
            stored = job.work is None and job.origin != API  # the API server stores its own renders
            entry, history_error = self._store(job, result, cast) if stored else (None, None)
            _tell(job, result)
            self.finished.emit(job.id, JobOutcome(result, entry, history_error))
        except engine.CancelledError as exc:
            _tell(job, error=exc)
            self.cancelled.emit(job.id)
        except BaseException as exc:  # every failure becomes a message, never a traceback
            _tell(job, error=exc)
            self.failed.emit(job.id, describe(exc))

    def _render(self, job: RenderJob) -> tuple[engine.RenderResult, dict[str, engine.CastMember]]:
        """Render on this computer's engine or on the job's server: the result and its cast."""
        last = [0.0]

        def on_progress(p: engine.RenderProgress) -> None:
            now = time.monotonic()
            if p.stage != "generate" or now - last[0] >= PROGRESS_INTERVAL or p.step >= p.max_steps:
                last[0] = now
                self.progress.emit(job.id, p)

        def on_audio(chunk: engine.AudioChunk) -> None:
            if job.listener is not None:
                job.listener.audio(chunk)
            self.audio.emit(job.id, chunk)

        if job.remote is not None:
            self.started.emit(job.id)
            remote = RemoteEngine(job.remote)
            if job.work is not None:  # an episode block: its work renders on the server (RemoteEngine.render_block)
                return job.work(remote, on_progress, on_audio, job.stop.is_set), {}
            result = remote.render(job.script, job.params, job.cast, on_progress=on_progress,
                                   on_audio=on_audio, should_stop=job.stop.is_set)
            return result, self._remote_cast(job)
        dia = self._ensure_engine(job)
        if job.work is not None:
            self.started.emit(job.id)
            return job.work(dia, on_progress, on_audio, job.stop.is_set), {}
        request = job.request or engine.RenderRequest(job.script, job.params, self._voice(job))
        self.started.emit(job.id)
        result = dia.render(request, on_progress=on_progress, on_audio=on_audio, should_stop=job.stop.is_set)
        speakers = getattr(request.voice, "speakers", {}) or {}
        return result, {tag: engine.CastMember(s.id, s.speaker_name) for tag, s in speakers.items()}

    def _remote_cast(self, job: RenderJob) -> dict[str, engine.CastMember]:
        """The names of the server's voices the job used (for the history), as far as they are known."""
        chosen = {tag: vid for tag, vid in job.cast.items() if vid is not None}
        samples = {}
        if chosen:
            try:
                with RemoteLibrary(job.remote) as library:
                    samples = {s.id: s for s in library.list()}
            except engine.DiaStudioError:
                pass
        return {tag: engine.CastMember(vid, samples[vid].speaker_name if vid in samples else f"voice {vid}")
                for tag, vid in chosen.items()}

    @Slot()
    def warm_up(self) -> None:
        """Import the model code (torch) here, so the first Render click doesn't freeze the window."""
        try:
            engine.DiaEngine  # noqa: B018 - the attribute access imports engine.pipeline and torch
        except Exception as exc:  # noqa: BLE001 - reported again, clearly, by the first render
            log.warning("preloading the engine failed: %s", exc)

    @Slot()
    def unload(self) -> None:
        """Drop the loaded model (its memory is freed); the next render loads it again."""
        self.engine = None

    def _ensure_engine(self, job: RenderJob) -> engine.DiaEngine:
        if self.engine is not None and self.engine.options == job.options:
            return self.engine
        self.engine = None  # free the old weights before loading new ones
        self.loading.emit(job.id)
        self.engine = engine.DiaEngine.load(job.options, on_progress=lambda p: self.loadProgress.emit(job.id, p),
                                            should_stop=job.stop.is_set)
        self.loaded.emit(f"Model loaded in {self.engine.load_seconds:.1f} s")
        return self.engine

    def _voice(self, job: RenderJob):
        chosen = {tag: vid for tag, vid in job.cast.items() if vid is not None}
        if not chosen:
            return None
        library = self._library()
        if library is None:
            raise engine.StorageError("The voice library can't be opened.")
        return engine.assemble_prompt(library, chosen)

    def _store(self, job: RenderJob, result: engine.RenderResult, cast: dict[str, engine.CastMember]) -> tuple:
        history = self._history()
        if history is None:
            return None, UserError("The render was not saved", "The history can't be opened.")
        options = job.options
        model = job.remote.base if job.remote is not None else options.model or engine.DIA_REPO
        try:
            entry = history.add(script=job.script, audio_samples=result.audio, sample_rate=result.sample_rate,
                                params=result.params, seed=result.seed,
                                render_seconds=result.timings.get("total", 0.0), cast=cast,
                                model=model, stop_reason=result.stop_reason,
                                warnings=result.warnings)
            return entry, None
        except BaseException as exc:  # the audio is still delivered even if saving fails
            return None, describe(exc)


def _tell(job: RenderJob, result: Any = None, error: BaseException | None = None) -> None:
    if job.listener is not None:
        job.listener.finish(result, error)


class RenderQueue(QObject):
    """The GUI-side queue: jobs run one after another on the worker thread; each has a state."""

    jobAdded = Signal(object)  # RenderJob
    jobChanged = Signal(object)  # RenderJob
    jobRemoved = Signal(int)
    loadingStarted = Signal(object)  # RenderJob
    loadProgress = Signal(object, object)  # RenderJob, engine.LoadProgress
    loadingFinished = Signal(str)
    renderStarted = Signal(object)  # RenderJob
    renderProgress = Signal(object, object)  # RenderJob, engine.RenderProgress
    audioChunk = Signal(object, object)  # RenderJob, engine.AudioChunk
    jobFinished = Signal(object, object)  # RenderJob, JobOutcome
    jobFailed = Signal(object, object)  # RenderJob, UserError
    jobCancelled = Signal(object)  # RenderJob
    busyChanged = Signal(bool)
    _dispatch = Signal(object)
    _unload = Signal()
    _warm_up = Signal()

    def __init__(self, history: Callable[[], engine.RenderHistory | None],
                 library: Callable[[], engine.VoiceLibrary | None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.jobs: list[RenderJob] = []
        self.current: RenderJob | None = None
        self.remote: RemoteTarget | None = None
        """Where new jobs render: None for this computer, else a Dia Studio server."""
        self.thread = QThread()
        self.thread.setObjectName("dia-render")
        self.worker = EngineWorker(history, library)
        self.worker.moveToThread(self.thread)
        self._dispatch.connect(self.worker.run_job)
        self._unload.connect(self.worker.unload)
        self._warm_up.connect(self.worker.warm_up)
        w = self.worker
        w.loading.connect(self._on_loading)
        w.loadProgress.connect(lambda jid, p: self._with_job(jid, lambda job: self.loadProgress.emit(job, p)))
        w.loaded.connect(self.loadingFinished)
        w.started.connect(self._on_started)
        w.progress.connect(self._on_progress)
        w.audio.connect(lambda jid, chunk: self._with_job(jid, lambda job: self.audioChunk.emit(job, chunk)))
        w.finished.connect(self._on_finished)
        w.failed.connect(self._on_failed)
        w.cancelled.connect(self._on_cancelled)
        self._estimates: dict[int, RenderEstimate] = {}
        self.clock: Callable[[], float] = time.monotonic  # tests may drive progress with their own clock
        self.thread.start()
        self._closed = False
        self._warm_up.emit()

    # -- API

    @property
    def busy(self) -> bool:
        return self.current is not None

    @property
    def pending(self) -> list[RenderJob]:
        return [j for j in self.jobs if j.state == QUEUED]

    def job(self, job_id: int) -> RenderJob | None:
        return next((j for j in self.jobs if j.id == job_id), None)

    def submit(self, job: RenderJob) -> RenderJob:
        if self._closed:
            raise RuntimeError("the render queue is shut down")
        # the API server's renders use this computer's engine: their voices are this computer's library
        job.remote = self.remote if job.origin != API else None
        self.jobs.append(job)
        self.jobAdded.emit(job)
        self._next()
        return job

    def cancel(self, job_id: int) -> None:
        job = self.job(job_id)
        if job is None or job.finished:
            return
        job.stop.set()
        if job is not self.current:  # still queued: cancelled at once
            _tell(job, error=engine.CancelledError("cancelled before it started"))
            self._set(job, CANCELLED, 0.0, "Cancelled")
            self.jobCancelled.emit(job)
        else:
            job.detail = "Cancelling…"
            self.jobChanged.emit(job)

    def cancel_current(self) -> None:
        if self.current is not None:
            self.cancel(self.current.id)

    def cancel_all(self) -> None:
        for job in list(self.jobs):
            self.cancel(job.id)

    def remove(self, job_id: int) -> None:
        """Forget a finished job (a queued one is cancelled first)."""
        job = self.job(job_id)
        if job is None or job is self.current:
            return
        if not job.finished:
            self.cancel(job_id)
        self.jobs.remove(job)
        self.jobRemoved.emit(job_id)

    def clear_finished(self) -> None:
        for job in [j for j in self.jobs if j.finished]:
            self.remove(job.id)

    def unload_model(self) -> None:
        self._unload.emit()

    def shutdown(self, timeout_ms: int = 60000) -> bool:
        """Cancel everything and stop the worker thread (returns False if it did not stop in time)."""
        self._closed = True
        self.cancel_all()
        self.thread.quit()
        stopped = self.thread.wait(timeout_ms)
        if not stopped:
            log.error("the render thread did not stop within %d ms", timeout_ms)
        return stopped

    # -- internals

    def _with_job(self, job_id: int, fn) -> None:
        job = self.job(job_id)
        if job is not None:
            fn(job)

    def _set(self, job: RenderJob, state: str, fraction: float | None = None, detail: str | None = None) -> None:
        job.state = state
        if fraction is not None:
            job.fraction = fraction
        if detail is not None:
            job.detail = detail
        self.jobChanged.emit(job)

    def _next(self) -> None:
        if self.current is not None or self._closed:
            return
        job = next((j for j in self.jobs if j.state == QUEUED), None)
        if job is None:
            return
        self.current = job
        self.busyChanged.emit(True)
        self._set(job, RENDERING, 0.0, "Starting…")
        self._dispatch.emit(job)

    def _done(self, job: RenderJob) -> None:
        self._estimates.pop(job.id, None)
        if job is self.current:
            self.current = None
            self.busyChanged.emit(False)
        self._next()

    def _on_loading(self, job_id: int) -> None:
        job = self.job(job_id)
        if job is not None:
            self._set(job, LOADING, 0.0, "Loading the model…")
            self.loadingStarted.emit(job)

    def _on_started(self, job_id: int) -> None:
        job = self.job(job_id)
        if job is not None:
            self._estimates[job.id] = RenderEstimate(job.expected_steps or 1, self.clock())
            self._set(job, RENDERING, 0.0, "Preparing…")
            self.renderStarted.emit(job)

    def _on_progress(self, job_id: int, p: engine.RenderProgress) -> None:
        job = self.job(job_id)
        if job is None or job.stop.is_set():
            return
        estimate = self._estimates.setdefault(job.id, RenderEstimate(job.expected_steps or 1, self.clock()))
        estimate.update(p, self.clock())
        self._set(job, RENDERING, estimate.fraction, progress_detail(p, estimate))
        self.renderProgress.emit(job, p)

    def _on_finished(self, job_id: int, outcome: JobOutcome) -> None:
        job = self.job(job_id)
        if job is None:
            return
        job.seed = outcome.result.seed
        job.entry_id = outcome.entry.id if outcome.entry is not None else None
        self._set(job, DONE, 1.0, f"{outcome.result.duration:.1f} s of audio, seed {outcome.result.seed}, "
                                  f"{outcome.result.timings.get('total', 0.0):.1f} s to render")
        self.jobFinished.emit(job, outcome)
        self._done(job)

    def _on_failed(self, job_id: int, error: UserError) -> None:
        job = self.job(job_id)
        if job is None:
            return
        job.error = error
        self._set(job, FAILED, 0.0, error.message)
        self.jobFailed.emit(job, error)
        self._done(job)

    def _on_cancelled(self, job_id: int) -> None:
        job = self.job(job_id)
        if job is None:
            return
        self._set(job, CANCELLED, 0.0, "Cancelled")
        self.jobCancelled.emit(job)
        self._done(job)


def progress_detail(p: engine.RenderProgress, estimate: RenderEstimate) -> str:
    """What the render bar says next to the bar: stage, speed, audio so far, time left."""
    if p.stage == "prompt":
        return "Encoding the voice prompt…"
    if p.stage == "finish":
        return "Finishing the audio…"
    parts = [f"{estimate.fraction:.0%}", f"{p.frames_per_second:.0f} frames/s", f"{p.audio_seconds:.1f} s of audio"]
    if estimate.overrun:
        parts.append("longer than the script's estimate" + (f", at most {format_seconds(estimate.left)} left"
                                                            if estimate.left is not None else ""))
    elif estimate.left is not None:
        parts.append(f"≈ {format_seconds(estimate.left)} left" if estimate.left >= 1 else "almost done")
    else:
        parts.append("estimating the time left…")
    return " · ".join(parts)


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
