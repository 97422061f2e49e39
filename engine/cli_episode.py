"""``dia-studio episode …``: long-form episodes from the command line.

    dia-studio episode render SCRIPT --project EP.diaproj -o OUT.(wav|flac|mp3|opus|m4a) [--cast NAME=VOICE]...
    dia-studio episode status --project EP.diaproj [--json]
    dia-studio episode regenerate --project EP.diaproj BLOCK [--seed N]
    dia-studio episode export --project EP.diaproj -o OUT [mastering and caption options]

``render`` creates or updates the project from the script, renders the blocks that need it on one
loaded model and exports. Run again after a kill or Ctrl-C, it continues where it stopped.
Options not given keep the project's values (the first run's, or the defaults). Errors print as
one line, ``error [code]: message``, as for ``render``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.errors import GenerationError, InvalidParameterError, MissingInputError
from engine.params import PARAM_SPECS

_SAMPLING = [name for name in PARAM_SPECS if name != "seed"]
_EXPORT_KEYS = ("loudness", "stereo", "pause_seconds", "chapter_pause_seconds")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``episode`` and its subcommands to the ``dia-studio`` parser."""
    from engine.cli import _add_engine_options

    episode = subparsers.add_parser("episode", help="render long episodes: chapters, many characters, takes",
                                    description="Long-form episodes kept in one project file (.diaproj).")
    episode.set_defaults(handler=lambda args: _usage(episode))
    sub = episode.add_subparsers(dest="episode_command", metavar="COMMAND")

    p = sub.add_parser("render", help="create or update a project from a script, render what is missing, export")
    p.add_argument("script", help="episode script file ('-' reads standard input)")
    _add_project(p)
    p.add_argument("-o", "--output", required=True, help="episode file (.wav, .flac, .mp3, .opus, .m4a)")
    p.add_argument("--cast", action="append", default=[], metavar="NAME=VOICE",
                   help="give a character a library voice (name or id); repeat for each character")
    p.add_argument("--seed", type=int, default=None, help="project seed: each block's seed derives from it")
    p.add_argument("--block-seconds", type=float, default=None, metavar="S",
                   help="target length of a block (default 15; Dia's guidance is 5-20 s)")
    _add_export_options(p)
    _add_engine_options(p)
    for name in _SAMPLING:
        spec = PARAM_SPECS[name]
        p.add_argument("--" + name.replace("_", "-"), type=int if spec.is_integer else float, default=None,
                       help=f"{spec.help} ({spec.minimum}–{spec.maximum}, default {spec.default})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_render)

    p = sub.add_parser("status", help="the blocks of a project: state, takes, length")
    _add_project(p)
    p.add_argument("--json", action="store_true", help="print JSON: blocks, chapters, seconds_total")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("regenerate", help="render one block again with a fresh seed, as a new take")
    _add_project(p)
    p.add_argument("block", type=int, metavar="BLOCK", help="block index (see status)")
    p.add_argument("--seed", type=int, default=None, help="the take's seed (default: a random one)")
    _add_engine_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_regenerate)

    p = sub.add_parser("export", help="master the chosen takes and write the episode")
    _add_project(p)
    p.add_argument("-o", "--output", required=True, help="episode file (.wav, .flac, .mp3, .opus, .m4a)")
    _add_export_options(p)
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(handler=cmd_export)
    return episode


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _add_project(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", required=True, type=Path, metavar="EP.diaproj", help="the episode project file")


def _add_export_options(p: argparse.ArgumentParser) -> None:
    from engine.episode.master import LOUDNESS_PRESETS

    p.add_argument("--loudness", choices=list(LOUDNESS_PRESETS), default=None,
                   help="loudness target: podcast -16 LUFS, podcast-mono -19, broadcast -23, or off (default podcast)")
    p.add_argument("--stereo", dest="stereo", action="store_const", const=True, default=None,
                   help="dual-mono stereo (some podcast hosts refuse single-channel files)")
    p.add_argument("--mono", dest="stereo", action="store_const", const=False, help="one channel (the default)")
    p.add_argument("--pause-seconds", type=float, default=None, help="pause between blocks (default 0.4)")
    p.add_argument("--chapter-pause-seconds", type=float, default=None,
                   help="pause before a chapter (default 1.2)")
    p.add_argument("--captions", type=Path, metavar="OUT.vtt|OUT.srt", help="also write captions (estimated timing)")
    p.add_argument("--chapters-json", type=Path, metavar="OUT.json", help="also write podcast:chapters JSON")


# --------------------------------------------------------------------------- helpers

def _existing_project(path: Path):
    from engine.episode.project import EpisodeProject

    if not path.expanduser().is_file():
        raise MissingInputError(f"there is no project at {path}: create it with dia-studio episode render")
    return EpisodeProject(path)


def _check_episode_output(arg: str) -> Path:
    from engine.episode.export import episode_format_for_path

    path = Path(arg).expanduser()
    episode_format_for_path(path)
    if path.is_dir():
        raise InvalidParameterError(f"-o {arg} is a folder: give a file name, such as {path / 'episode.mp3'}")
    return path


def _export_settings(args, stored: dict) -> dict:
    given = {key: getattr(args, key) for key in _EXPORT_KEYS if getattr(args, key, None) is not None}
    return {**{k: v for k, v in stored.items() if k in _EXPORT_KEYS}, **given}


def _master_settings(export: dict):
    from engine.episode.master import MasterSettings

    return MasterSettings(**export)


def _cast(args, characters: tuple[str, ...]) -> dict:
    """``--cast NAME=VOICE`` as project voices copied from the library."""
    from engine.episode.project import VoiceInput
    from engine.episode.script import clean_name
    from engine.errors import DiaStudioError
    from engine.voices import VoiceLibrary, load_audio

    wanted: dict[str, str] = {}
    for item in args.cast:
        name, sep, voice = item.partition("=")
        name = clean_name(name)
        if not sep or not name or not voice.strip():
            raise InvalidParameterError(f"--cast {item}: write NAME=VOICE, e.g. --cast \"Dr. Lee=Ann\"")
        if name not in characters:
            raise InvalidParameterError(f"--cast {item}: the script has no character {name} "
                                        f"(its characters: {', '.join(characters)})")
        wanted[name] = voice.strip()
    if not wanted:
        return {}
    cast = {}
    with VoiceLibrary() as library:
        for name, ref in wanted.items():
            sample = library.resolve(ref)
            if not sample.has_transcript:
                raise DiaStudioError(f"voice '{sample.speaker_name}' (id {sample.id}) has no transcript; cloning "
                                     "needs the words spoken in it (dia-studio voices transcript …)",
                                     code="invalid_voice_sample")
            cast[name] = VoiceInput(sample.speaker_name, load_audio(sample), sample.transcript, "library", sample.uid)
    return cast


def _engine_options(args, stored: dict | None = None):
    from engine.requests import EngineOptions

    stored = {k: v for k, v in (stored or {}).items() if v is not None}
    given = {"model": args.model, "codec": args.codec, "quantize": args.quantize,
             "offline": True if args.offline else None,
             "dtype": None if args.dtype == "auto" else args.dtype,
             "device": None if args.device == "auto" else args.device}
    merged = {**stored, **{k: v for k, v in given.items() if v is not None}}
    return EngineOptions(**{k: merged[k] for k in ("model", "codec", "device", "dtype", "quantize", "offline")
                            if k in merged})


def _load_engine(options, quiet: bool):
    from engine.cli import _DownloadBars
    from engine.pipeline import DiaEngine

    if not quiet:
        print("Loading the model…", file=sys.stderr)
    bars = _DownloadBars(enabled=not quiet)
    try:
        return DiaEngine.load(options, on_progress=lambda p: bars(p.download) if p.download else None)
    finally:
        bars.close()


class _Progress:
    """A tqdm bar over the queue's estimated audio seconds, with blocks and time left."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=round(p.audio_seconds_total, 1), unit="s", file=sys.stderr, desc="Rendering",
                            dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s audio{postfix}")
        self.bar.total = round(p.audio_seconds_total, 1)
        left = f", {p.eta_seconds:.0f} s left" if p.eta_seconds is not None else ""
        self.bar.set_postfix_str(f"block {p.blocks_done}/{p.blocks_total}{left}", refresh=False)
        # update() redraws at most every mininterval: a redraw per decoder step would flood the terminal
        self.bar.update(round(min(p.audio_seconds, p.audio_seconds_total), 1) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _warn_unvoiced(project) -> None:
    for character, voice in project.cast().items():
        if voice is None:
            print(f"warning: {character} has no voice sample: seed only, so the voice may drift from block to "
                  f"block; give one with --cast \"{character}=VOICE\"", file=sys.stderr)


# --------------------------------------------------------------------------- commands

def cmd_render(args) -> int:
    from engine.cli import _read_script
    from engine.episode.project import EpisodeProject
    from engine.episode.render import (
        engine_settings,
        model_key,
        pending_blocks,
        render_episode,
    )
    from engine.episode.script import parse_episode

    output = _check_episode_output(args.output)
    script = _read_script(args.script)
    characters = parse_episode(script).characters
    cast = _cast(args, characters)
    overrides = {name: getattr(args, name) for name in _SAMPLING if getattr(args, name) is not None}
    with EpisodeProject(args.project) as project:
        settings = project.settings
        options = _engine_options(args, settings.engine)
        export = _export_settings(args, settings.export)
        _master_settings(export)  # bad mastering values fail now, not after the render
        project.update(script=script, params=settings.params.replace(**overrides), seed=args.seed,
                       block_seconds=args.block_seconds, model_key=model_key(options),
                       engine=engine_settings(options), export=export, cast=cast)
        _warn_unvoiced(project)
        jobs = pending_blocks(project)
        if jobs:
            if not args.quiet:
                print(f"{len(jobs)} of {len(project.blocks())} blocks to render (project seed "
                      f"{project.settings.seed})", file=sys.stderr)
            engine = _load_engine(options, args.quiet)
            bar = _Progress(not args.quiet)
            try:
                summary = render_episode(project, engine, on_progress=bar)
            finally:
                bar.close()
            if summary.failed:
                lines = "; ".join(f"block {i}: {why}" for i, why in sorted(summary.failed.items()))
                raise GenerationError(f"{len(summary.failed)} block(s) failed ({lines}); run the command again to "
                                      "retry them, or edit them")
        return _export(project, output, args, export)


def _export(project, output: Path, args, export: dict) -> int:
    from engine.cli import _ignore_interrupts
    from engine.episode.assemble import export_project

    result = export_project(project, output, settings=_master_settings(export), captions=args.captions,
                            chapters_json=args.chapters_json)
    _ignore_interrupts()
    if not getattr(args, "quiet", False):
        loudness = f", {result.loudness_lufs:.1f} LUFS" if result.loudness_lufs is not None else ""
        print(f"Wrote {result.path}: {result.seconds:.1f} s, {len(project.blocks())} blocks, "
              f"{result.chapters} chapters{loudness}", file=sys.stderr)
    return 0


def cmd_status(args) -> int:
    with _existing_project(args.project) as project:
        status = project.status()
    if args.json:
        print(json.dumps(status, ensure_ascii=False, indent=2))
        return 0
    starts = {c["first_block"]: c["title"] for c in status["chapters"]}
    for block in status["blocks"]:
        if block["index"] in starts:
            print(f"# {starts[block['index']]}")
        text = " ".join(block["text"].split())
        text = text if len(text) <= 60 else text[:59] + "…"
        print(f"{block['index']:>4}  {block['state']:<8} {block['takes']:>2} take(s) {block['seconds']:>6.1f} s  {text}")
    done = sum(1 for b in status["blocks"] if b["state"] in ("done", "locked"))
    print(f"{done} of {len(status['blocks'])} blocks rendered, {status['seconds_total']:.1f} s in all")
    return 0


def cmd_regenerate(args) -> int:
    from engine.episode.render import regenerate_block

    with _existing_project(args.project) as project:
        project.block(args.block)  # a bad index fails before the model loads
        engine = _load_engine(_engine_options(args, project.settings.engine), args.quiet)
        bar = _Progress(not args.quiet)
        try:
            take = regenerate_block(project, engine, args.block, seed=args.seed, on_progress=bar)
        finally:
            bar.close()
        block = project.block(args.block)
        chosen = next(t for t in block.takes if t.id == take)
        print(f"Block {args.block}: take {take} (seed {chosen.seed}, {chosen.seconds:.1f} s) is now chosen",
              file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    output = _check_episode_output(args.output)
    with _existing_project(args.project) as project:
        export = _export_settings(args, project.settings.export)
        _master_settings(export)
        return _export(project, output, args, export)
