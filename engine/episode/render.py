"""Rendering an episode: a queue of block jobs on one loaded ``DiaEngine``.

``render_episode`` renders every block that has no take for its identity (new, edited, or whose
voices, parameters or model changed), in order, storing each take as soon as it is finished: a
cancel (``should_stop``, polled between decoder steps) or a kill loses only the block in flight,
and the next call resumes there. Each block renders with its derived seed, so a resumed episode
is the same audio as an uninterrupted one.

Voices: every block is conditioned on its characters' samples, S1's clip, a gap, then S2's, with
their tagged transcripts (``engine.voice_prompt.combine_parts``). Each voice's DAC codes are
encoded once per project (clip then gap, padded to whole frames) and stored in it; a block's
prompt codes are the cached codes joined.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.episode.project import (
    HOP,
    SAMPLE_RATE,
    BlockRecord,
    EpisodeProject,
    ProjectVoice,
)
from engine.errors import CancelledError, DiaStudioError, InvalidParameterError
from engine.model.hub import DAC_REPO, DIA_REPO
from engine.params import resolve_seed
from engine.requests import EngineOptions, RenderProgress, RenderRequest
from engine.voice_prompt import GAP_SECONDS, PromptPart, VoicePrompt, combine_parts

GAP_FRAMES = round(GAP_SECONDS * SAMPLE_RATE / HOP)
"""The prompt gap between two voices, in whole codec frames."""


@dataclass(frozen=True)
class EpisodeProgress:
    """Where a render queue is. ``audio_seconds*`` are estimates until blocks finish."""

    blocks_done: int
    blocks_total: int
    block: int | None
    """Index of the block being rendered (None once the queue is done)."""
    audio_seconds: float
    audio_seconds_total: float
    elapsed: float
    eta_seconds: float | None
    stage: str = "generate"
    """``prompt`` (encoding a voice), ``generate``, ``block_done`` or ``done``."""


@dataclass
class RenderSummary:
    rendered: list[int] = field(default_factory=list)
    """Indexes of the blocks that got a take."""
    failed: dict[int, str] = field(default_factory=dict)
    """Block index → why its render failed (the others went on)."""
    elapsed: float = 0.0


def model_key(options: EngineOptions) -> str:
    """What of the engine's options determines the audio (part of every block's identity)."""
    return json.dumps({"model": options.model or DIA_REPO, "codec": options.codec or DAC_REPO,
                       "dtype": options.dtype, "quantize": options.quantize or ""}, sort_keys=True)


def engine_settings(options: EngineOptions) -> dict:
    """The options a project remembers to load the same engine again (``regenerate``)."""
    return {"model": options.model, "codec": options.codec, "device": options.device, "dtype": options.dtype,
            "quantize": options.quantize, "offline": options.offline}


class _Prompts:
    """Voice prompts of blocks, from each voice's codes cached in the project."""

    def __init__(self, project: EpisodeProject, engine, report: Callable[[str], None]) -> None:
        self.project = project
        self.engine = engine
        self.codec = engine.options.codec or DAC_REPO
        self.cast = project.cast()
        self.report = report
        self.audio: dict[int, np.ndarray] = {}

    def _audio(self, voice: ProjectVoice) -> np.ndarray:
        if voice.id not in self.audio:
            self.audio[voice.id] = self.project.voice_audio(voice.id)
        return self.audio[voice.id]

    def _codes(self, voice: ProjectVoice) -> tuple[np.ndarray, int]:
        cached = self.project.voice_codes(voice.id, self.codec)
        if cached is not None:
            return cached
        self.report("prompt")
        clip = self._audio(voice)
        padded = np.concatenate([clip, np.zeros(GAP_FRAMES * HOP, dtype=np.float32)])
        codes = self.engine.encode_prompt(VoicePrompt(padded, SAMPLE_RATE, voice.transcript)).numpy()
        clip_frames = min(clip.size // HOP, codes.shape[0])
        self.project.store_voice_codes(voice.id, self.codec, codes, clip_frames)
        return codes, clip_frames

    def for_block(self, block: BlockRecord) -> tuple[VoicePrompt | None, np.ndarray | None]:
        voiced = [(f"S{i + 1}", self.cast.get(c)) for i, c in enumerate(block.characters)]
        voiced = [(tag, voice) for tag, voice in voiced if voice is not None]
        if not voiced:
            return None, None
        parts, pieces = [], []
        for n, (tag, voice) in enumerate(voiced):
            codes, clip_frames = self._codes(voice)
            last = n == len(voiced) - 1
            pieces.append(codes[:clip_frames] if last else codes[:clip_frames + GAP_FRAMES])
            parts.append(PromptPart(tag, self._audio(voice), SAMPLE_RATE, voice.transcript,
                                    f"Voice '{voice.name}' of {block.characters[int(tag[1]) - 1]}"))
        return combine_parts(parts), np.concatenate(pieces)


class _Clock:
    """Overall progress: blocks, audio seconds and time left, from the blocks' estimates."""

    def __init__(self, jobs: Sequence[BlockRecord], report: Callable[[EpisodeProgress], None]) -> None:
        self.total = len(jobs)
        self.estimated = sum(b.estimated_seconds for b in jobs) or 1e-9
        self.report = report
        self.t0 = time.perf_counter()
        self.done = 0
        self.done_estimate = 0.0
        self.audio = 0.0

    def emit(self, block: BlockRecord | None, stage: str, fraction: float = 0.0) -> None:
        elapsed = time.perf_counter() - self.t0
        progress = self.done_estimate + (block.estimated_seconds * fraction if block else 0.0)
        eta = elapsed / progress * (self.estimated - progress) if progress > 0 else None
        current = self.audio + (block.estimated_seconds * fraction if block else 0.0)
        self.report(EpisodeProgress(self.done, self.total, block.index if block else None, current,
                                    max(self.estimated, current), elapsed, max(0.0, eta) if eta is not None else None,
                                    stage))

    def finished(self, block: BlockRecord, seconds: float) -> None:
        self.done += 1
        self.done_estimate += block.estimated_seconds
        self.audio += seconds
        self.emit(block, "block_done", 0.0)


def _render_block(engine, prompts: _Prompts, block: BlockRecord, seed: int, clock: _Clock,
                  should_stop: Callable[[], bool] | None):
    voice, codes = prompts.for_block(block)
    request = RenderRequest(block.model_text, block.params.replace(seed=seed), voice)

    def progress(p: RenderProgress) -> None:
        if p.stage == "generate" and p.max_steps:
            clock.emit(block, "generate", min(1.0, p.step / p.max_steps))

    return engine.render(request, on_progress=progress, should_stop=should_stop, prompt_codes=codes)


def _prepare(project: EpisodeProject, engine) -> None:
    key = model_key(engine.options)
    if project.settings.model_key != key:
        project.update(model_key=key, engine=engine_settings(engine.options))


def pending_blocks(project: EpisodeProject) -> list[BlockRecord]:
    """The blocks ``render_episode`` would render: no take for their identity, not locked (one per identity)."""
    seen: set[str] = set()
    jobs = []
    for block in project.blocks():
        if block.needs_render and block.identity not in seen:
            seen.add(block.identity)
            jobs.append(block)
    return jobs


class _InOrder:
    """Hands each block's audio (its chosen take) to a callback in block order, as soon as the
    block and every block before it have one."""

    def __init__(self, project: EpisodeProject, callback: Callable[[int, np.ndarray], None]) -> None:
        self.project = project
        self.callback = callback
        self.blocks = project.blocks()
        self.rendered: dict[str, int] = {}
        """Identity → the take just rendered for it (blocks that share an identity share it)."""
        self.next = 0

    def add(self, identity: str, take_id: int) -> None:
        self.rendered[identity] = take_id
        self.flush()

    def flush(self) -> None:
        while self.next < len(self.blocks):
            block = self.blocks[self.next]
            take = self.rendered.get(block.identity) if block.needs_render else block.chosen
            if take is None:
                return
            self.callback(block.index, self.project.take_audio(take))
            self.next += 1


def render_episode(project: EpisodeProject, engine, *, on_progress: Callable[[EpisodeProgress], None] | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   on_block_audio: Callable[[int, np.ndarray], None] | None = None,
                   stop_on_error: bool = False) -> RenderSummary:
    """Render every block that needs it, in order, on ``engine`` (a loaded ``DiaEngine``).

    A block whose render fails (``GenerationError`` ...) is marked ``failed`` and the queue goes on,
    or, with ``stop_on_error``, its error is raised; ``should_stop`` returning True raises
    ``CancelledError`` with every finished take kept. ``on_block_audio(index, samples)`` gets every
    block's audio (its chosen take) in block order, each as soon as it and all blocks before it have
    one, so a caller can play or stream the episode while it renders (a failed block holds back
    the blocks after it).
    """
    _prepare(project, engine)
    jobs = pending_blocks(project)
    clock = _Clock(jobs, on_progress or (lambda _p: None))
    prompts = _Prompts(project, engine, lambda stage: clock.emit(None, stage))
    in_order = _InOrder(project, on_block_audio) if on_block_audio is not None else None
    if in_order is not None:
        in_order.flush()  # the blocks that already have their take
    summary = RenderSummary()
    for block in jobs:
        if should_stop is not None and should_stop():
            raise CancelledError("the episode render was cancelled; finished blocks are kept")
        try:
            result = _render_block(engine, prompts, block, block.seed, clock, should_stop)
        except CancelledError:
            raise
        except DiaStudioError as exc:
            project.record_failure(block, exc.code, str(exc))
            if stop_on_error:
                raise
            summary.failed[block.index] = f"{exc.code}: {exc}"
            clock.finished(block, 0.0)
            continue
        take = project.add_take(block, result)
        summary.rendered.append(block.index)
        if in_order is not None:
            in_order.add(block.identity, take)
        clock.finished(block, result.duration)
    clock.emit(None, "done")
    summary.elapsed = time.perf_counter() - clock.t0
    return summary


def regenerate_block(project: EpisodeProject, engine, index: int, *, seed: int | None = None,
                     on_progress: Callable[[EpisodeProgress], None] | None = None,
                     should_stop: Callable[[], bool] | None = None) -> int:
    """Render block ``index`` again with a fresh seed (random unless given), add the take and choose it.
    Returns the take's id. A locked block is refused."""
    _prepare(project, engine)
    block = project.block(index)
    if block.locked:
        raise InvalidParameterError(f"block {index} is locked on take {block.chosen}: unlock it to regenerate it")
    clock = _Clock([block], on_progress or (lambda _p: None))
    prompts = _Prompts(project, engine, lambda stage: clock.emit(None, stage))
    result = _render_block(engine, prompts, block, resolve_seed(-1 if seed is None else seed), clock, should_stop)
    take = project.add_take(block, result, choose=True)
    clock.finished(block, result.duration)
    return take


__all__ = ["EpisodeProgress", "RenderSummary", "engine_settings", "model_key", "pending_blocks", "regenerate_block",
           "render_episode"]
