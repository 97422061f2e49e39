"""Long-form episodes: scripts of any length with named characters and chapters, split into blocks
that each fit one render, kept with all their takes in one ``.diaproj`` project file, rendered as
a queue on one loaded model, then joined, mastered and exported.

    from engine.episode import EpisodeProject, render_episode, export_project
    with EpisodeProject("ep.diaproj") as project:
        project.update(script=text, cast={"Mara": VoiceInput(...)})
        render_episode(project, engine, on_progress=print, should_stop=cancel.is_set)
        export_project(project, "ep.mp3", captions="ep.vtt")

Modules: ``script`` (syntax), ``split`` (blocks), ``project`` (the file), ``render`` (the queue),
``assemble`` (export glue) over ``master``, ``export`` and ``captions``, ``take_voice`` (a voice
from a take). Names
load lazily.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "engine.episode.script": ["EpisodeScript", "EpisodeTurn", "EpisodeChapter", "parse_episode", "check_episode",
                              "is_character_name"],
    "engine.episode.split": ["Block", "BlockTurn", "SplitSettings", "VoiceCost", "split_episode",
                             "DEFAULT_BLOCK_SECONDS"],
    "engine.episode.project": ["EpisodeProject", "BlockRecord", "TakeInfo", "ProjectVoice", "VoiceInput",
                               "ChapterRecord", "ProjectSettings", "PROJECT_SUFFIX"],
    "engine.episode.render": ["render_episode", "regenerate_block", "pending_blocks", "EpisodeProgress",
                              "RenderSummary", "model_key", "engine_settings"],
    "engine.episode.assemble": ["export_project", "ExportResult"],
    "engine.episode.master": ["MasterSettings", "master_episode", "LOUDNESS_PRESETS", "join_blocks"],
    "engine.episode.export": ["EpisodeMetadata", "embed_cover", "COVER_FORMATS", "cover_image_type"],
    "engine.episode.captions": ["estimate_captions"],
    "engine.episode.take_voice": ["voice_from_take", "cast_voice_from_take", "cast_kept_voice", "save_to_library", "TakeVoice",
                                  "align_words"],
    "engine.errors": ["ProjectCorruptError"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.episode' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
