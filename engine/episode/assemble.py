"""From a project's chosen takes to a delivered episode: join and master, export with chapters,
captions and a ``podcast:chapters`` sidecar (``master``, ``export`` and ``captions`` do the work)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.episode.project import (
    SAMPLE_RATE,
    BlockRecord,
    ChapterRecord,
    EpisodeProject,
)
from engine.errors import MissingInputError


@dataclass(frozen=True)
class ExportResult:
    path: Path
    seconds: float
    loudness_lufs: float | None
    true_peak_dbtp: float | None
    chapters: int
    captions: Path | None = None
    chapters_json: Path | None = None


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


def export_project(project: EpisodeProject, output: str | os.PathLike, *, settings=None, metadata=None,
                   captions: str | os.PathLike | None = None,
                   chapters_json: str | os.PathLike | None = None) -> ExportResult:
    """Master the chosen takes (``MasterSettings``) and write the episode with its chapters and
    metadata; optionally estimated captions (.vtt/.srt) and a chapters JSON. Every file is written
    atomically. Raises ``MissingInputError`` while a block has no take."""
    from engine.episode.captions import estimate_captions, write_captions
    from engine.episode.export import (
        EpisodeMetadata,
        export_episode,
        write_chapters_json,
    )
    from engine.episode.master import MasterSettings, master_episode

    settings = settings or MasterSettings()
    blocks = project.blocks()
    _missing(blocks)
    chapter_records = project.chapters()
    takes = [project.take_audio(b.chosen) for b in blocks]
    chapter_starts = {c.first_block for c in chapter_records if 0 < c.first_block < len(blocks)}
    joined = master_episode(takes, chapter_starts, settings, SAMPLE_RATE)
    duration = joined.samples.shape[0] / float(joined.sample_rate)
    chapters = _chapters(chapter_records, joined.block_spans, duration)
    if metadata is None:
        title = chapter_records[0].title if chapter_records else project.path.stem
        metadata = EpisodeMetadata(title=title)
    if not metadata.comment:
        metadata = EpisodeMetadata(**{**asdict(metadata), "comment": _generator_comment(project, settings)})
    path = export_episode(output, joined, metadata=metadata, chapters=chapters)
    caption_path = None
    if captions is not None:
        turns = [list(b.turns) for b in blocks]
        caption_path = write_captions(captions, estimate_captions(turns, joined.block_spans), estimated=True)
    json_path = write_chapters_json(chapters_json, chapters) if chapters_json is not None else None
    return ExportResult(Path(path), duration, joined.loudness_lufs, joined.true_peak_dbtp, len(chapters),
                        caption_path, json_path)


__all__ = ["ExportResult", "export_project"]
