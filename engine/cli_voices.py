"""``dia-studio voices …``: manage the voice library from the command line.

``register(subparsers)`` adds the ``voices`` command; each subcommand sets ``handler`` to a
function taking the parsed namespace and returning the exit code (0 ok, 2 an error or bad usage,
130 interrupted; as in ``engine/cli.py``). Errors print as ``error [code]: message`` on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine.errors import InvalidParameterError

STT_MODEL_ENV = "DIA_STUDIO_STT_MODEL"
EXIT_ERROR = 2


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``voices`` and its subcommands to the ``dia-studio`` parser."""
    voices = subparsers.add_parser("voices", help="manage the voice library used for cloning",
                                   description="Manage the local voice library used for voice cloning.")
    voices.add_argument("--library", type=Path, metavar="DIR",
                        help="library folder (default: <data dir>/voices; data dir: $DIA_STUDIO_DATA_DIR)")
    voices.set_defaults(handler=lambda args: _usage(voices))
    sub = voices.add_subparsers(dest="voices_command", metavar="COMMAND")

    p = sub.add_parser("list", help="list the voices")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("add", help="import an audio file as a voice",
                       description="Import WAV, FLAC, MP3, OGG, Opus, WebM or M4A. The clip is mixed to "
                                   "mono, resampled to 44.1 kHz, trimmed and loudness-normalised; "
                                   "3–10 s of speech clones best.")
    p.add_argument("file", type=Path)
    p.add_argument("--name", required=True, help="speaker name")
    _transcript_options(p)
    p.add_argument("--default", action="store_true", help="make it the default voice")
    p.set_defaults(handler=cmd_add)

    p = sub.add_parser("record", help="record a voice from the microphone")
    p.add_argument("--seconds", type=float, required=True, help="length of the recording (1–60)")
    p.add_argument("--name", required=True, help="speaker name")
    p.add_argument("--device", help="input device index or name (default: the system's)")
    _transcript_options(p)
    p.add_argument("--default", action="store_true", help="make it the default voice")
    p.set_defaults(handler=cmd_record)

    p = sub.add_parser("rename", help="rename a voice")
    p.add_argument("voice", help="voice id or name")
    p.add_argument("new_name")
    p.set_defaults(handler=cmd_rename)

    p = sub.add_parser("transcript", help="show, set or transcribe a voice's transcript")
    p.add_argument("voice", help="voice id or name")
    p.add_argument("text", nargs="?", help="the words spoken in the clip (omit to show the transcript)")
    p.add_argument("--transcribe", action="store_true", help="transcribe the clip with Whisper")
    p.add_argument("--clear", action="store_true", help="remove the transcript")
    _stt_options(p)
    p.set_defaults(handler=cmd_transcript)

    p = sub.add_parser("set-default", help="make a voice the default")
    p.add_argument("voice", nargs="?", help="voice id or name")
    p.add_argument("--clear", action="store_true", help="no default voice")
    p.set_defaults(handler=cmd_set_default)

    p = sub.add_parser("remove", help="delete a voice and its files")
    p.add_argument("voice", help="voice id or name")
    p.set_defaults(handler=cmd_remove)

    p = sub.add_parser("export", help="export voices to a zip")
    p.add_argument("zip", type=Path)
    p.add_argument("voices", nargs="*", help="voice ids or names (default: all)")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("import", help="import voices from an exported zip (skips ones already here)")
    p.add_argument("zip", type=Path)
    p.set_defaults(handler=cmd_import)
    return voices


def _transcript_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--transcript", help="the exact words spoken in the clip")
    group.add_argument("--transcribe", action="store_true", help="transcribe the clip with Whisper")
    _stt_options(p)


def _stt_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stt-model", metavar="MODEL",
                   help=f"Whisper model for --transcribe: a size (tiny.en, base.en, small …), a Hugging "
                        f"Face repo id or a folder (default: ${STT_MODEL_ENV} or base.en)")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_ERROR


def _library(args: argparse.Namespace):
    """Open the library; what its check on open recovered or moved aside is told on stderr."""
    from engine.voices import VoiceLibrary

    library = VoiceLibrary(getattr(args, "library", None))
    if library.open_report.notice:
        print(f"notice: {library.open_report.notice}", file=sys.stderr)
    return library


def _transcriber(args: argparse.Namespace):
    from engine.stt import DEFAULT_MODEL, WhisperTranscriber

    model = getattr(args, "stt_model", None) or os.environ.get(STT_MODEL_ENV) or DEFAULT_MODEL
    return WhisperTranscriber(model=model, allow_download=True)


def _show_added(sample) -> None:
    print(f"Added voice {sample.id} '{sample.speaker_name}' ({sample.duration:.1f} s, {sample.original_format})"
          + (" as the default" if sample.is_default else "") + ".")
    if sample.transcript:
        print(f"Transcript: {sample.transcript}")
    for note in sample.warnings:
        print(f"warning: {note}", file=sys.stderr)


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:.1f}s"


def cmd_list(args: argparse.Namespace) -> int:
    with _library(args) as library:
        samples = library.list()
    if args.json:
        print(json.dumps([s.to_dict() for s in samples], indent=2, ensure_ascii=False))
        return 0
    if not samples:
        print("The voice library is empty. Add a voice with: dia-studio voices add FILE --name NAME")
        return 0
    width = max(4, *(len(s.speaker_name) for s in samples))
    fmt_width = max(6, *(len(s.original_format) for s in samples))
    print(f"{'id':>4}  {'name':<{width}}  {'length':>6}  {'format':<{fmt_width}}  transcript")
    for s in samples:
        text = s.transcript if len(s.transcript) <= 50 else s.transcript[:47] + "..."
        mark = "*" if s.is_default else " "
        print(f"{s.id:>4}{mark} {s.speaker_name:<{width}}  {_fmt_seconds(s.duration):>6}  "
              f"{s.original_format:<{fmt_width}}  {text or '(none: needed for cloning)'}")
    if any(s.is_default for s in samples):
        print("* default voice")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from engine import audio
    from engine.voices import read_clip

    transcript = args.transcript or ""
    if args.transcribe:
        clip = read_clip(args.file)
        transcriber = _transcriber(args)
        print(f"Transcribing with Whisper ({transcriber.model})…", file=sys.stderr)
        transcript = transcriber.transcribe(clip.samples, audio.TARGET_SAMPLE_RATE)
    with _library(args) as library:
        sample = library.add(args.file, speaker_name=args.name, transcript=transcript,
                             make_default=args.default)
    _show_added(sample)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from engine import audio, recorder
    from engine.voices import prepare_clip

    if not 1.0 <= args.seconds <= recorder.MAX_RECORD_SECONDS:
        raise InvalidParameterError(f"--seconds must be between 1 and {recorder.MAX_RECORD_SECONDS:g}.")
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    interactive = sys.stderr.isatty()

    def meter(level, seconds: float) -> None:
        if interactive:
            bars = int(max(0.0, min(1.0, (level.peak_dbfs + 60.0) / 60.0)) * 30)
            print(f"\r{seconds:5.1f}s [{'#' * bars:<30}] {level.peak_dbfs:6.1f} dBFS", end="", file=sys.stderr)

    print(f"Recording {args.seconds:g} s: speak now.", file=sys.stderr)
    take = recorder.record(args.seconds, device=device, on_level=meter)
    if interactive:
        print(file=sys.stderr)
    if take.overflows:
        print(f"warning: {take.overflows} blocks of audio were lost (the machine was busy).", file=sys.stderr)
    transcript = args.transcript or ""
    if args.transcribe:
        clip = prepare_clip(audio.DecodedAudio(take.samples, take.sample_rate, "recording", "flac"), "recording")
        transcript = _transcriber(args).transcribe(clip.samples, audio.TARGET_SAMPLE_RATE)
    with _library(args) as library:
        sample = library.add(take.samples, sample_rate=take.sample_rate, speaker_name=args.name,
                             transcript=transcript, make_default=args.default)
    _show_added(sample)
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    with _library(args) as library:
        sample = library.rename(args.voice, args.new_name)
    print(f"Voice {sample.id} is now '{sample.speaker_name}'.")
    return 0


def cmd_transcript(args: argparse.Namespace) -> int:
    chosen = sum([args.text is not None, args.transcribe, args.clear])
    if chosen > 1:
        raise InvalidParameterError("Give a transcript, --transcribe or --clear, not several.")
    with _library(args) as library:
        sample = library.resolve(args.voice)
        if chosen == 0:
            print(sample.transcript or "(no transcript)")
            return 0
        if args.transcribe:
            from engine import audio
            from engine.voices import load_audio

            text = _transcriber(args).transcribe(load_audio(sample), audio.TARGET_SAMPLE_RATE)
        else:
            text = "" if args.clear else args.text
        sample = library.set_transcript(sample.id, text)
    print(f"Transcript of voice {sample.id} '{sample.speaker_name}': {sample.transcript or '(none)'}")
    return 0


def cmd_set_default(args: argparse.Namespace) -> int:
    if bool(args.voice) == bool(args.clear):
        raise InvalidParameterError("Name a voice, or pass --clear.")
    with _library(args) as library:
        sample = library.set_default(None if args.clear else args.voice)
    print("No default voice." if sample is None else f"Default voice: {sample.id} '{sample.speaker_name}'.")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    with _library(args) as library:
        sample = library.resolve(args.voice)
        library.delete(sample.id)
    print(f"Removed voice {sample.id} '{sample.speaker_name}'.")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with _library(args) as library:
        ids = [library.resolve(v).id for v in args.voices] or None
        count = len(ids) if ids else len(library)
        path = library.export_zip(args.zip, ids)
    print(f"Exported {count} voice{'s' if count != 1 else ''} to {path}.")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    with _library(args) as library:
        report = library.import_zip(args.zip)
    for sample in report.added:
        print(f"Imported voice {sample.id} '{sample.speaker_name}'.")
    if report.skipped:
        print(f"Skipped {len(report.skipped)} already in the library: {', '.join(report.skipped)}.")
    if not report.added and not report.skipped:
        print("The zip holds no voices.")
    return 0
