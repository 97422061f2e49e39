"""``dia-studio episode …``: long-form episodes from the command line.

    dia-studio episode render SCRIPT --project EP.diaproj -o OUT.(wav|flac|mp3|opus|m4a) [--cast NAME=VOICE]...
    dia-studio episode status --project EP.diaproj [--json]
    dia-studio episode regenerate --project EP.diaproj BLOCK [--seed N]
    dia-studio episode export --project EP.diaproj -o OUT [mastering and caption options]
    dia-studio episode choose --project EP.diaproj BLOCK TAKE
    dia-studio episode lock --project EP.diaproj BLOCK [TAKE] [--unlock]
    dia-studio episode keep-voice --project EP.diaproj BLOCK CHARACTER [--take N] [--to-library NAME]

``render`` creates or updates the project from the script, renders the blocks that need it on one
loaded model and exports. Run again after a kill or Ctrl-C, it continues where it stopped.
Options not given keep the project's values (the first run's, or the defaults). Errors print as
one line, ``error [code]: message``, as for ``render``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine.cli_voices import STT_MODEL_ENV
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

    p = sub.add_parser("choose", help="make one of a block's takes the one the episode uses")
    _add_project(p)
    p.add_argument("block", type=int, metavar="BLOCK", help="block index (see status)")
    p.add_argument("take", type=int, metavar="TAKE", help="take id (status lists each block's takes)")
    p.set_defaults(handler=cmd_choose)

    p = sub.add_parser("lock", help="lock a block on its chosen take (render and regenerate leave it alone)")
    _add_project(p)
    p.add_argument("block", type=int, metavar="BLOCK", help="block index (see status)")
    p.add_argument("take", type=int, nargs="?", metavar="TAKE", help="choose this take first (default: the chosen one)")
    p.add_argument("--unlock", action="store_true", help="unlock the block instead")
    p.set_defaults(handler=cmd_lock)

    p = sub.add_parser("keep-voice", help="give a character a voice cut from a take (needs the stt extra)",
                       description="Keep this voice: cut CHARACTER's clearest 3-10 s from a take of BLOCK (found "
                                   "with Whisper's word timestamps) and make it the character's voice, so every "
                                   "later block of theirs is conditioned on it. The block is locked on that take.")
    _add_project(p)
    p.add_argument("block", type=int, metavar="BLOCK", help="block index (see status)")
    p.add_argument("character", metavar="CHARACTER", help="a character who speaks in that block")
    p.add_argument("--take", type=int, default=None, metavar="N", help="take id (default: the block's chosen take)")
    p.add_argument("--to-library", metavar="NAME", help="also keep the voice in the voice library as NAME")
    _add_stt_model(p, "for the word timestamps")
    p.set_defaults(handler=cmd_keep_voice)

    for nested in sub.choices.values():  # as on every other command (engine.cli adds it to the first level)
        nested.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                            help="also print the libraries' log lines and warnings on the terminal")
    return episode


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _add_project(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", required=True, type=Path, metavar="EP.diaproj", help="the episode project file")


def _add_export_options(p: argparse.ArgumentParser) -> None:
    from engine.episode.captions import CAPTION_TIMINGS
    from engine.episode.master import LOUDNESS_PRESETS

    p.add_argument("--loudness", choices=list(LOUDNESS_PRESETS), default=None,
                   help="loudness target: podcast -16 LUFS, podcast-mono -19, broadcast -23, or off (default podcast)")
    p.add_argument("--stereo", dest="stereo", action="store_const", const=True, default=None,
                   help="dual-mono stereo (some podcast hosts refuse single-channel files)")
    p.add_argument("--mono", dest="stereo", action="store_const", const=False, help="one channel (the default)")
    p.add_argument("--pause-seconds", type=float, default=None, help="pause between blocks (default 0.4)")
    p.add_argument("--chapter-pause-seconds", type=float, default=None,
                   help="pause before a chapter (default 1.2)")
    p.add_argument("--captions", type=Path, metavar="OUT.vtt|OUT.srt", help="also write captions, one per turn")
    p.add_argument("--captions-timing", choices=list(CAPTION_TIMINGS), default="auto",
                   help="time captions by the words Whisper hears (stt: needs the stt extra), by the text's "
                        "length (estimate), or by Whisper when it and its model are installed (auto, the default)")
    _add_stt_model(p, "for --captions-timing stt or auto")
    p.add_argument("--chapters-json", type=Path, metavar="OUT.json", help="also write podcast:chapters JSON")


def _add_stt_model(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--stt-model", metavar="MODEL",
                   help=f"Whisper model {what}: a size (tiny.en, base.en, small …), a Hugging Face repo id or a "
                        f"folder (default: ${STT_MODEL_ENV} or base.en)")


def _stt_model(args) -> str:
    from engine.stt import DEFAULT_MODEL

    return getattr(args, "stt_model", None) or os.environ.get(STT_MODEL_ENV) or DEFAULT_MODEL


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
    _check_caption_timing(args)
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


def _caption_words(args):
    """The transcriber that times the captions, loaded before the mastering, and why there is none:
    ``(transcriber, None)``, or ``(None, why)`` when they are estimated, ``why`` ending the line that
    says so ("" when asked to estimate)."""
    from engine.episode.assemble import caption_transcriber
    from engine.errors import DiaStudioError
    from engine.stt import INSTALL_HINT, stt_available

    if args.captions is None or args.captions_timing == "estimate":
        return None, ""
    if args.captions_timing == "auto" and not stt_available():
        return None, f" (for timing by speech recognition: {INSTALL_HINT} and its Whisper model)"
    model = _stt_model(args)
    try:  # "stt" semantics for auto too, to hear why the Whisper model can't be had
        words = caption_transcriber("stt", model=model, allow_download=args.captions_timing == "stt")
    except DiaStudioError as exc:
        if args.captions_timing == "stt":
            raise
        return None, f", without Whisper. {exc.message.rstrip('.')}. {_whisper_hint(model)}"
    if not getattr(args, "quiet", False):
        print(f"Timing the captions with Whisper ({model})…", file=sys.stderr)
    return words, None


def _whisper_hint(model: str) -> str:
    """How to get the Whisper model ``model`` that timing captions by speech recognition needs."""
    if Path(model).expanduser().is_dir():
        return "To time captions by speech recognition, name a folder with a CTranslate2 Whisper model in --stt-model."
    return (f"To time captions by speech recognition, run again online with --captions-timing stt (it downloads "
            f"{model}), or name a downloaded model with --stt-model.")


def _check_caption_timing(args) -> None:
    """``--captions-timing stt`` without the stt extra fails now, not after the render."""
    from engine.stt import require_stt

    if args.captions is not None and args.captions_timing == "stt":
        require_stt("Captions timed by speech recognition")


def _captions_line(result, estimated_why: str | None) -> str:
    """What the captions are and how they were timed; ``estimated_why`` as ``_caption_words`` says it."""
    if estimated_why is not None:
        return f"Captions {result.captions}: timing estimated from the text{estimated_why}"
    if result.captions_estimated:
        return (f"Captions {result.captions}: timed by speech recognition, estimated in block(s) "
                f"{', '.join(map(str, result.captions_estimated))}")
    return f"Captions {result.captions}: timed by speech recognition"


def _export(project, output: Path, args, export: dict) -> int:
    from engine.cli import _ignore_interrupts
    from engine.episode.assemble import export_project

    words, estimated_why = _caption_words(args)
    result = export_project(project, output, settings=_master_settings(export), captions=args.captions,
                            chapters_json=args.chapters_json, captions_timing="estimate" if words is None else "stt",
                            transcriber=words)
    _ignore_interrupts()
    if not getattr(args, "quiet", False):
        loudness = f", {result.loudness_lufs:.1f} LUFS" if result.loudness_lufs is not None else ""
        blocks = len(project.blocks())
        print(f"Wrote {result.path}: {result.seconds:.1f} s, {blocks} blocks, "
              f"{result.chapters} chapters{loudness}", file=sys.stderr)
        if result.captions is not None:
            print(_captions_line(result, estimated_why), file=sys.stderr)
    return 0


def cmd_status(args) -> int:
    with _existing_project(args.project) as project:
        status = project.status()
        records = project.blocks()
    if args.json:
        print(json.dumps(status, ensure_ascii=False, indent=2))
        return 0
    starts = {c["first_block"]: c["title"] for c in status["chapters"]}
    for block, record in zip(status["blocks"], records):
        if block["index"] in starts:
            print(f"# {starts[block['index']]}")
        text = " ".join(block["text"].split())
        text = text if len(text) <= 60 else text[:59] + "…"
        takes = " ".join(f"{t.id}{'*' if t.id == record.chosen else ''}" for t in record.takes) or "-"
        print(f"{block['index']:>4}  {block['state']:<8} {block['seconds']:>6.1f} s  takes {takes:<12} {text}")
    done = sum(1 for b in status["blocks"] if b["state"] in ("done", "locked"))
    print(f"{done} of {len(status['blocks'])} blocks rendered, {status['seconds_total']:.1f} s in all "
          "(takes: ids, * the chosen one)")
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


def cmd_choose(args) -> int:
    with _existing_project(args.project) as project:
        project.choose(args.block, args.take)
        block = project.block(args.block)
    print(f"Block {args.block} now uses take {args.take}" + (" (it is locked on it)" if block.locked else ""),
          file=sys.stderr)
    return 0


def cmd_lock(args) -> int:
    with _existing_project(args.project) as project:
        if args.take is not None:
            project.choose(args.block, args.take)
        project.lock(args.block, not args.unlock)
        block = project.block(args.block)
    if args.unlock:
        print(f"Block {args.block} is unlocked (take {block.chosen} stays chosen)", file=sys.stderr)
    else:
        print(f"Block {args.block} is locked on take {block.chosen}", file=sys.stderr)
    return 0


def cmd_keep_voice(args) -> int:
    from engine import stt
    from engine.episode.script import clean_name
    from engine.episode.take_voice import cast_voice_from_take
    from engine.voices import VoiceLibrary

    stt.require_stt("Keeping a voice from a take")  # before anything else: says what to install
    character = clean_name(args.character)
    with _existing_project(args.project) as project:
        project.block(args.block)  # a bad index fails before Whisper loads
        transcriber = stt.WhisperTranscriber(model=_stt_model(args), allow_download=True)
        print(f"Finding {character}'s words with Whisper ({transcriber.model})…", file=sys.stderr)
        library = VoiceLibrary() if args.to_library else None
        try:
            voice = cast_voice_from_take(project, args.block, character, take_id=args.take, transcriber=transcriber,
                                         library=library, library_name=args.to_library)
        finally:
            if library is not None:
                library.close()
        block = project.block(args.block)
        again = sum(1 for b in project.blocks() if character in b.characters and b.needs_render)
    kept = f" and in the voice library as '{args.to_library}'" if args.to_library else ""
    print(f"{character} now speaks with {voice.duration:.1f} s cut from take {block.chosen} of block {args.block} "
          f"(\"{voice.transcript}\"), kept in the project{kept}. Block {args.block} is locked on that take; "
          f"{again} block(s) of {character} will render with the new voice at the next episode render.",
          file=sys.stderr)
    return 0
