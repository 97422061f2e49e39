"""Rendering without a window: builds jobs from a script, parameters and cast (with the engine's
budget), queues them, and follows each render: streaming into the player, the take it becomes,
progress, cancel, failures and the history entry it leaves.

Views listen to the signals; the controller never touches a widget, so tests drive it with a real
queue and player and no window.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

import engine
from app.errors import UserError
from app.model_settings import engine_options
from app.now_playing import NowPlaying
from app.playback import BUFFERING, PLAYING, AudioPlayer
from app.settings import Settings
from app.take import Take, cast_names, entry_cast_names, take_warnings
from app.workers import API, JobOutcome, RenderJob, RenderQueue

UNKNOWN_LENGTH_SECONDS = 10.0  # what the live waveform expects when a job has no estimate


def expected_steps(budget: engine.Budget) -> int:
    """Decoder steps a render is expected to take: the speech's frames plus the decoder's overhead
    (the voice prompt is prefilled, not stepped)."""
    return budget.estimated_frames - budget.prompt_frames + engine.DECODER_OVERHEAD_FRAMES


class RenderController(QObject):
    """Turns scripts into queued jobs and follows them into the player and the history."""

    jobShown = Signal(object)  # RenderJob: the current job's state, progress or detail changed
    resultShown = Signal(str, bool)  # how the last render ended, and whether it is done
    streamExpected = Signal(float)  # seconds of audio the streaming render is expected to give
    seedUsed = Signal(object)  # int: seeds go up to 2^63 - 1, past a C int
    historyChanged = Signal(object)  # id of the new history entry, or None
    errorRaised = Signal(object)  # UserError
    statusMessage = Signal(str, int)  # text, milliseconds
    scriptFailed = Signal(str, int, int)  # the failed job's script, line, column
    queuedBehind = Signal(int)  # a new job waits behind this many renders

    def __init__(self, queue: RenderQueue, player: AudioPlayer, now_playing: NowPlaying, settings: Settings,
                 voices: Callable[[], dict] = dict, follow: Callable[[], bool] = lambda: False,
                 parent: QObject | None = None) -> None:
        """``voices``: the library's samples by id (to name the cast); ``follow``: play while rendering."""
        super().__init__(parent)
        self.queue = queue
        self.player = player
        self.now_playing = now_playing
        self.settings = settings
        self.voices = voices
        self.follow = follow
        queue.renderStarted.connect(self._render_started)
        queue.jobChanged.connect(self._job_changed)
        queue.audioChunk.connect(self._audio_chunk)
        queue.jobFinished.connect(self._job_finished)
        queue.jobFailed.connect(self._job_failed)
        queue.jobCancelled.connect(self._job_cancelled)

    # -- jobs

    def build_job(self, script: str, params: engine.GenerationParams, cast: dict[str, int | None],
                  prompt_seconds: float = 0.0) -> RenderJob:
        """A job for ``script``; its expected length comes from the engine's budget."""
        budget = engine.estimate_budget(script, prompt_seconds=prompt_seconds, max_new_tokens=params.max_new_tokens)
        return RenderJob(script=script, params=params, options=engine_options(self.settings), cast=dict(cast),
                         title=engine.make_title(script), expected_steps=expected_steps(budget))

    def submit(self, job: RenderJob) -> RenderJob:
        """Queue ``job``; says how many renders are ahead of it."""
        ahead = len(self.queue.pending) + (1 if self.queue.busy else 0)
        self.queue.submit(job)
        if ahead:
            self.statusMessage.emit(f"Queued: {ahead} render{'s' if ahead != 1 else ''} ahead of it", 5000)
            self.queuedBehind.emit(ahead)
        return job

    def cancel(self) -> None:
        """Stop the render in progress (queued ones stay queued)."""
        self.queue.cancel_current()

    # -- following a render

    def _render_started(self, job: RenderJob) -> None:
        """Stream the render into the player (live waveform, partial kept on cancel) unless another
        take is playing; play along when asked to."""
        if job.work is not None or job.origin == API:  # an episode block, an API render: not the user's take
            return
        take = self.now_playing.take
        if self.player.state in (PLAYING, BUFFERING) and (take is None or take.job_id is None):
            return
        take = Take(job.title, job.script, job.params.to_dict(), None, cast_names(job.cast, self.voices()),
                    job.options.model or engine.DIA_REPO, job_id=job.id)
        expected = job.expected_steps / engine.FRAMES_PER_SECOND if job.expected_steps else UNKNOWN_LENGTH_SECONDS
        self.player.begin_stream(engine.TARGET_SAMPLE_RATE, ("job", job.id), expected)
        self.streamExpected.emit(expected / max(0.5, job.params.speed_factor))
        self.now_playing.show(take, f"Rendering: {job.title}")
        if self.follow():
            self.player.play()

    def _job_changed(self, job: RenderJob) -> None:
        if job.work is not None:  # an episode block: the episode view follows it
            return
        if job is self.queue.current:
            self.jobShown.emit(job)

    def _audio_chunk(self, job: RenderJob, chunk: engine.AudioChunk) -> None:
        if job.work is not None:  # an episode block: the episode view follows it
            return
        if self.player.source == ("job", job.id):
            self.player.append(chunk.samples, chunk.start)

    def _job_finished(self, job: RenderJob, outcome: JobOutcome) -> None:
        if job.work is not None or job.origin == API:  # an episode block, an API render: not the user's take
            return
        result, entry = outcome.result, outcome.entry
        self.seedUsed.emit(result.seed)
        warnings = take_warnings(result.stop_reason, result.warnings)
        names = entry_cast_names(entry) if entry is not None else cast_names(job.cast, self.voices())
        take = Take(entry.title if entry else engine.make_title(job.script), job.script, result.params.to_dict(),
                    result.seed, names, job.options.model or engine.DIA_REPO, entry.id if entry else None, job.id,
                    warnings=warnings)
        shown = False
        if self.player.source == ("job", job.id):
            self.player.end_stream(result.audio)
            shown = True
        elif self.player.state != PLAYING:
            self.player.load(result.audio, result.sample_rate, ("job", job.id))
            shown = True
        if shown:
            self.now_playing.show(take, f"{take.title} · seed {result.seed}", warnings)
        note = f" · ⚠ {warnings[0].split(':')[0]}" if warnings else ""  # in full above the waveform
        self.resultShown.emit(f"Done: {result.duration:.1f} s of audio in "
                              f"{result.timings.get('total', 0):.1f} s (seed {result.seed}){note}", True)
        self.historyChanged.emit(entry.id if entry is not None else None)
        if outcome.history_error is not None:
            self.errorRaised.emit(outcome.history_error)

    def _job_failed(self, job: RenderJob, error: UserError) -> None:
        if job.work is not None or job.origin == API:  # an episode block, an API render: their own callers say it
            return
        if self.player.source == ("job", job.id):
            self.player.end_stream()
        self.resultShown.emit(f"Failed: {error.title}", False)
        if error.action == "script" and error.line is not None:
            self.scriptFailed.emit(job.script, error.line, error.column or 1)
        if error.action == "model_settings" and self.queue.pending:
            # every queued render would fail the same way: don't stack up identical messages
            for pending in self.queue.pending:
                self.queue.cancel(pending.id)
            error = UserError(error.title, error.message, error.hint + " The queued renders were cancelled.",
                              error.code, error.line, error.column, error.action)
        self.errorRaised.emit(error)

    def _job_cancelled(self, job: RenderJob) -> None:
        if job.work is not None:  # an episode block: the episode view follows it
            return
        if job.state != "cancelled":
            return
        if self.player.source == ("job", job.id):
            self.player.end_stream()
            take = self.now_playing.take
            if take is not None and take.job_id == job.id:
                take.partial = True
                take.title = f"{take.title} (cancelled, partial)"
                self.now_playing.set_title(take.title)
        if self.queue.current is None or self.queue.current is job:
            self.resultShown.emit("Cancelled", False)
        self.statusMessage.emit("Render cancelled", 4000)
