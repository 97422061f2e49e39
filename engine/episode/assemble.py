"""From a project's chosen takes to a delivered episode: join and master, export with chapters,
captions and a ``podcast:chapters`` sidecar (``master``, ``export`` and ``captions`` do the work)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.episode.project import (
    SAMPLE_RATE,
    BlockRecord,
    ChapterRecord,
    EpisodeProject,
)
from engine.errors import DiaStudioError, InvalidParameterError, MissingInputError

if TYPE_CHECKING:
    from engine.episode.master import JoinedEpisode
    from engine.stt import WordTranscriber


@dataclass(frozen=True)
class ExportResult:
    path: Path
    seconds: float
    loudness_lufs: float | None
    true_peak_dbtp: float | None
    chapters: int
    captions: Path | None = None
    chapters_json: Path | None = None
    captions_estimated: tuple[int, ...] | None = None
    """Blocks whose caption timing is estimated (all of them without speech-to-text); None: no captions."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent in each phase: ``read`` (the takes), ``master``, ``write`` (the episode file),
    ``captions``, ``chapters_json``."""


def _chapters(chapters: list[ChapterRecord], spans: list[tuple[float, float]], duration: float):
    from engine.episode.export import Chapter

    starts: dict[int, str] = {}
    for chapter in chapters:
        if chapter.first_block < len(spans):
            starts.setdefault(chapter.first_block, chapter.title)  # an empty chapter gives way
    ordered = sorted(starts.items())
    out = []
    for n, (block, title) in enumerate(ordered):
        start = 0.0 if block == 0 else spans[block][0]
        end = spans[ordered[n + 1][0]][0] if n + 1 < len(ordered) else duration
        if end > start:
            out.append(Chapter(title, start, end))
    return out


def _generator_comment(project: EpisodeProject, settings) -> str:
    from engine import __version__

    project_settings = project.settings
    return json.dumps({"generator": f"Dia Studio {__version__}", "seed": project_settings.seed,
                       "params": {k: v for k, v in project_settings.params.to_dict().items() if k != "seed"},
                       "block_seconds": project_settings.block_seconds, "master": asdict(settings)},
                      sort_keys=True)


def _missing(blocks: list[BlockRecord]) -> None:
    missing = [b.index for b in blocks if b.chosen is None]
    if not blocks:
        raise MissingInputError("the project has no blocks: give it a script and render it first")
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
        raise MissingInputError(f"{len(missing)} block(s) have no take yet ({shown}): render them first "
                                "(dia-studio episode render)")


class _Phases:
    """Seconds per phase of an export (``ExportResult.timings``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, work: Callable[[], object]):
        t0 = time.perf_counter()
        try:
            return work()
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


def caption_transcriber(timing: str, transcriber: WordTranscriber | None = None, *, model: str | None = None,
                        allow_download: bool = False) -> WordTranscriber | None:
    """The word transcriber captions are timed with (``transcriber``, else Whisper's ``model``, by
    default ``stt.DEFAULT_MODEL``), or None to estimate them.

    ``stt`` insists (``MissingDependencyError`` without faster-whisper, ``ModelNotFoundError`` without
    its model); ``auto`` uses it only when both are at hand; ``estimate`` never does."""
    from engine.episode.captions import CAPTION_TIMINGS

    if timing not in CAPTION_TIMINGS:
        raise InvalidParameterError(f"Unknown caption timing '{timing}'; use one of {', '.join(CAPTION_TIMINGS)}.")
    if timing == "estimate":
        return None
    if transcriber is not None:
        return transcriber
    from engine import stt

    if timing == "stt":
        stt.require_stt("Captions timed by speech recognition")
    elif not stt.stt_available():
        return None
    whisper = stt.WhisperTranscriber(model=model or stt.DEFAULT_MODEL, allow_download=allow_download)
    try:
        whisper.load()
    except DiaStudioError:
        if timing == "stt":
            raise
        return None  # auto: the Whisper model is not downloaded
    return whisper


def _write_captions(path: str | os.PathLike, blocks: list[BlockRecord], joined: JoinedEpisode,
                    transcriber: WordTranscriber | None) -> tuple[Path, tuple[int, ...]]:
    from engine.episode.captions import (
        estimate_captions,
        stt_captions,
        timing_note,
        write_captions,
    )

    turns = [list(b.turns) for b in blocks]
    if transcriber is None:
        return (write_captions(path, estimate_captions(turns, joined.block_spans), estimated=True),
                tuple(b.index for b in blocks))
    rate = joined.sample_rate
    audio = [joined.samples[round(a * rate):round(b * rate), 0] for a, b in joined.block_spans]
    captions, estimated = stt_captions(turns, audio, joined.block_spans, rate, transcriber)
    return write_captions(path, captions, estimated=bool(estimated), note=timing_note(estimated)), tuple(estimated)


def export_project(project: EpisodeProject, output: str | os.PathLike, *, settings=None, metadata=None,
                   captions: str | os.PathLike | None = None,
                   chapters_json: str | os.PathLike | None = None, captions_timing: str = "auto",
                   transcriber: WordTranscriber | None = None) -> ExportResult:
    """Master the chosen takes (``MasterSettings``) and write the episode with its chapters and
    metadata; optionally captions (.vtt/.srt) and a chapters JSON. Every file is written atomically.

    Captions are timed per ``captions_timing`` (``caption_transcriber``; ``transcriber`` replaces the
    default Whisper model). Raises ``MissingInputError`` while a block has no take."""
    from engine.episode.export import (
        EpisodeMetadata,
        export_episode,
        write_chapters_json,
    )
    from engine.episode.master import MasterSettings, master_episode

    settings = settings or MasterSettings()
    phases = _Phases()
    blocks = project.blocks()
    _missing(blocks)
    words = caption_transcriber(captions_timing, transcriber) if captions is not None else None
    chapter_records = project.chapters()
    takes = phases.run("read", lambda: [project.take_audio(b.chosen) for b in blocks])
    chapter_starts = {c.first_block for c in chapter_records if 0 < c.first_block < len(blocks)}
    joined = phases.run("master", lambda: master_episode(takes, chapter_starts, settings, SAMPLE_RATE))
    duration = joined.samples.shape[0] / float(joined.sample_rate)
    chapters = _chapters(chapter_records, joined.block_spans, duration)
    if metadata is None:
        title = chapter_records[0].title if chapter_records else project.path.stem
        metadata = EpisodeMetadata(title=title)
    if not metadata.comment:
        metadata = EpisodeMetadata(**{**asdict(metadata), "comment": _generator_comment(project, settings)})
    path = phases.run("write", lambda: export_episode(output, joined, metadata=metadata, chapters=chapters))
    caption_path, estimated = None, None
    if captions is not None:
        caption_path, estimated = phases.run("captions", lambda: _write_captions(captions, blocks, joined, words))
    json_path = phases.run("chapters_json", lambda: write_chapters_json(chapters_json, chapters)) \
        if chapters_json is not None else None
    return ExportResult(Path(path), duration, joined.loudness_lufs, joined.true_peak_dbtp, len(chapters),
                        caption_path, json_path, estimated, phases.seconds)


__all__ = ["ExportResult", "caption_transcriber", "export_project"]
