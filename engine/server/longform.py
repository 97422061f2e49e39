"""Scripts longer than one render, through the long-form episode engine.

The script becomes a temporary episode project: S1 and S2 are its characters, the request's library
voices their cast, the request's parameters the project's, and the request's seed the project seed,
from which every block's seed derives (the same request gives the same audio). The project renders
on the backend's one engine inside the request's one queue slot: its progress is counted in blocks,
and a cancel (the client went away) stops it between decoder steps. The project is deleted after.

Joining: the blocks are mastered as ``master_episode`` masters an episode with ``loudness="off"``,
mono (each block's edge silence trimmed to a little, a pause between blocks, equal-power fades at
every edge, the true-peak ceiling; no loudness change, so the level is a single render's). Every
one of those steps reaches less than a pause away, so they are applied block by block: a block's
audio is final, and streamed, as soon as the block is rendered.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine import (
    TARGET_SAMPLE_RATE,
    AudioChunk,
    EpisodeProgress,
    EpisodeProject,
    GenerationParams,
    MasterSettings,
    RenderResult,
    SplitSettings,
    VoiceCost,
    VoiceInput,
    load_audio,
    master_episode,
    parse_episode,
    render_episode,
    resolve_seed,
    split_episode,
)
from engine.server.backend import EngineRunner

JOIN = MasterSettings(loudness="off", stereo=False)
"""How the blocks are joined: the episode engine's pauses and fades, the level left as rendered."""
PROJECT_NAME = "request.diaproj"


@dataclass(frozen=True)
class LongPlan:
    """A checked long script, ready for the queue."""

    script: str
    params: GenerationParams
    """The request's parameters; ``seed`` is the project seed (resolved: never random)."""
    cast: dict[str, VoiceInput] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def plan_long(text: str, params: GenerationParams, voices: Mapping[str, object]) -> LongPlan:
    """Split-check ``text`` with its voices (``{"S1": VoiceSample, ...}``) and gather what its render
    needs (blocking: reads the voices' audio). Raises ``request_too_large`` when a voice prompt
    leaves a block no room, with the script's other typed errors."""
    cast = {tag: VoiceInput(s.speaker_name, load_audio(s), s.transcript, source="library", library_uid=s.uid)
            for tag, s in voices.items()}
    costs = {tag: VoiceCost(v.samples.size / TARGET_SAMPLE_RATE, v.transcript) for tag, v in cast.items()}
    episode = parse_episode(text)
    split_episode(episode, costs, SplitSettings(max_new_tokens=params.max_new_tokens))  # its errors now, not queued
    unvoiced = [c for c in episode.characters if c not in cast]
    warnings = tuple(f"{c} has no voice sample, so its voice may change from block to block: give it one in "
                     "'speakers'" for c in unvoiced)
    return LongPlan(text, params.replace(seed=resolve_seed(params.seed)), cast, warnings)


class Joiner:
    """Rendered blocks in, in order; the joined episode out, one finished piece per block."""

    def __init__(self, sample_rate: int = TARGET_SAMPLE_RATE, settings: MasterSettings = JOIN) -> None:
        self.sample_rate = sample_rate
        self.settings = settings
        fade = round(settings.crossfade_seconds * sample_rate)
        # master_episode starts a block a pause after the one before ends, less the fade
        self.gap = max(0, round(settings.pause_seconds * sample_rate) - fade)
        self.pieces: list[np.ndarray] = []
        self.frames = 0

    def add(self, samples: np.ndarray) -> np.ndarray:
        """The episode's next samples: the pause, then the block mastered (empty for a silent block)."""
        mastered = master_episode([samples], (), self.settings, self.sample_rate).samples[:, 0]
        if mastered.size == 0:
            return mastered
        lead = np.zeros(self.gap if self.frames else 0, dtype=np.float32)
        piece = np.concatenate([lead, mastered])
        self.pieces.append(piece)
        self.frames += piece.size
        return piece

    def audio(self) -> np.ndarray:
        """Everything joined so far."""
        return np.concatenate(self.pieces) if self.pieces else np.zeros(0, dtype=np.float32)


def render_long(plan: LongPlan, backend: EngineRunner, *, on_audio: Callable[[AudioChunk], None] | None,
                should_stop: Callable[[], bool], on_blocks: Callable[[int, int], None]) -> RenderResult:
    """Render a long script on ``backend``'s engine as one result (its audio the joined blocks);
    ``on_audio`` gets each block's piece as soon as it is joined, ``on_blocks`` (done, total); the
    backend's runner is told the whole progress."""
    return backend.with_engine(lambda engine, report: _render(engine, plan, on_audio, should_stop, on_blocks, report))


def _render(engine, plan: LongPlan, on_audio, should_stop, on_blocks, report) -> RenderResult:
    started = time.perf_counter()
    joiner = Joiner()

    def block_audio(_index: int, samples: np.ndarray) -> None:
        start = joiner.frames
        piece = joiner.add(samples)
        if on_audio is not None and piece.size:
            on_audio(AudioChunk(piece, start))

    def progress(p: EpisodeProgress) -> None:
        on_blocks(p.blocks_done, p.blocks_total)
        report(p)

    with tempfile.TemporaryDirectory(prefix="dia-api-") as folder:  # private (0700): it holds voice copies
        with EpisodeProject(Path(folder) / PROJECT_NAME) as project:
            project.update(script=plan.script, params=plan.params, seed=plan.params.seed, cast=plan.cast)
            render_episode(project, engine, on_progress=progress, should_stop=should_stop,
                           on_block_audio=block_audio, stop_on_error=True)
            takes = [next(t for t in b.takes if t.id == b.chosen) for b in project.blocks()]
    stops = [t.stop_reason for t in takes if t.stop_reason != "eos"]
    warnings = dict.fromkeys([*plan.warnings, *(w for t in takes for w in t.warnings)])
    return RenderResult(joiner.audio(), joiner.sample_rate, plan.params.seed, plan.params, plan.script,
                        np.zeros((0, 0), dtype=np.int64),  # the blocks' codes stay with their takes
                        stops[0] if stops else "eos", tuple(warnings),
                        {"total": time.perf_counter() - started})
