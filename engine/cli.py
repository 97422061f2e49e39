"""The ``dia-studio`` command-line subcommands (``render``, ``download``, ``voices`` ...).

Errors are printed as one clear line (``error [code]: message``) with exit status 2; never a traceback.
Ctrl-C anywhere prints ``Cancelled.`` and exits 130, leaving no partial output file.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from engine.constants import DEVICES, DTYPE_NAMES, SAMPLE_RATE
from engine.errors import DiaStudioError, InvalidParameterError, MissingInputError, StorageError
from engine.params import PARAM_SPECS, GenerationParams
from engine.requests import QUANTIZE_MODES

EXIT_ERROR = 2
EXIT_CANCELLED = 130  # the shell's convention for "ended by Ctrl-C" (128 + SIGINT)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dia-studio",
                                     description="Dia Studio: write and render spoken dialogue with Dia. "
                                                 "Without a subcommand the desktop app starts.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_render(sub)
    _add_download(sub)
    try:
        from engine.cli_voices import register
    except ImportError:  # the voice library commands are optional at import time
        pass
    else:
        register(sub)
    from engine.cli_episode import register as register_episode

    register_episode(sub)
    from engine.server.serve import register as register_serve

    register_serve(sub, _add_engine_options)
    for p in (parser, *sub.choices.values()):  # after the subcommand too, where people type it
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="also print the libraries' log lines (huggingface_hub's requests and retries, "
                            "warnings) on the terminal")
    return parser


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="Dia model folder, weight file or Hugging Face repo id (default nari-labs/Dia-1.6B-0626)")
    p.add_argument("--codec", help="DAC codec folder, weights.pth or repo id (default descript/dac_44khz)")
    p.add_argument("--dtype", default="auto", choices=list(DTYPE_NAMES))
    p.add_argument("--device", default="auto", choices=list(DEVICES))
    p.add_argument("--quantize", choices=[m for m in QUANTIZE_MODES if m],
                   help="quantised decoder weights: 'int8' is weight-only (activations kept to 16 bits per group; "
                        "the recommended mode), 'int8-dynamic' also quantises activations (FBGEMM/QNNPACK; only faster where "
                        "the native kernels are not built), 'int4' is group-wise int4 (fastest on a CPU with "
                        "the native kernels, least exact)")
    p.add_argument("--offline", action="store_true", help="never download; use local folders or the Hugging Face cache")


def _add_render(sub) -> None:
    p = sub.add_parser("render", help="render a dialogue script to an audio file")
    p.add_argument("script", help="script file ('-' reads standard input)")
    p.add_argument("-o", "--output", required=True, help="output file (.wav, .flac, .opus/.ogg, .mp3)")
    _add_engine_options(p)
    for tag in ("s1", "s2"):
        p.add_argument(f"--{tag}-voice", metavar="FILE", help=f"audio file to clone for [{tag.upper()}]")
        p.add_argument(f"--{tag}-transcript", metavar="TEXT", help=f"what is said in --{tag}-voice")
        p.add_argument(f"--{tag}", metavar="NAME_OR_ID", help=f"voice library sample to clone for [{tag.upper()}]")
    for name, spec in PARAM_SPECS.items():
        kind = int if spec.is_integer else float
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                       help=f"{spec.help} ({spec.minimum}–{spec.maximum}, default {spec.default})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_render)


def _add_download(sub) -> None:
    p = sub.add_parser("download", help="download the model and codec into the Hugging Face cache",
                       description="Download what rendering needs into the Hugging Face cache, once; after that "
                                   "Dia Studio works offline. Without arguments: the Dia model and the DAC codec.")
    p.add_argument("specs", nargs="*", metavar="REPO_OR_FOLDER",
                   help="what to download: Hugging Face repo ids (e.g. nari-labs/Dia-1.6B-0626, descript/dac_44khz); "
                        "a folder is checked and used as it is")
    p.add_argument("--model", default=None, help="Dia model repo id or folder (default nari-labs/Dia-1.6B-0626)")
    p.add_argument("--codec", default=None, help="DAC codec repo id or folder (default descript/dac_44khz)")
    p.set_defaults(handler=cmd_download)


def _read_script(arg: str) -> str:
    """The script text from a file or ``-`` (standard input), decoded by ``decode_script``'s rule."""
    from engine.script import MAX_SCRIPT_BYTES, decode_script

    if arg == "-":
        if sys.stdin is None:
            raise MissingInputError("no standard input to read the script from")
        return decode_script(sys.stdin.buffer.read(MAX_SCRIPT_BYTES + 1))
    path = Path(arg).expanduser()
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SCRIPT_BYTES + 1)  # bounded: a device or a huge file must not fill memory
    except FileNotFoundError:
        raise MissingInputError(f"script file {arg} not found") from None
    except IsADirectoryError:
        raise MissingInputError(f"{arg} is a folder, not a script file") from None
    except OSError as exc:
        raise MissingInputError(f"cannot read the script file {arg}: {exc.strerror or exc}") from None
    return decode_script(data)


def _check_output(arg: str) -> Path:
    """The ``-o`` file, checked before anything slow: an audio type this machine can write, not a
    folder, and in a folder that exists (or can be made) and takes new files."""
    from engine.audio import export_formats, format_for_path
    from engine.files import temp_path_for

    path = Path(arg).expanduser()
    fmt = format_for_path(path)
    if fmt not in ("wav", "flac") and fmt not in export_formats():
        raise InvalidParameterError(f"this machine's FFmpeg cannot encode {fmt}; use one of "
                                    + ", ".join(export_formats()))
    if path.is_dir():
        raise InvalidParameterError(f"-o {arg} is a folder: give a file name, such as "
                                    f"{path / ('render' + path.suffix)}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # write_audio creates the missing ones
        folder = folder.parent
    if not folder.is_dir():
        raise StorageError(f"cannot write {arg}: {folder} is a file, not a folder")
    probe = temp_path_for(folder / path.name)  # a name the next write's stale-file sweep removes
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise StorageError(f"cannot write to the folder {folder}: {exc.strerror or exc}; "
                           "choose another place for -o") from None
    return path


def _voice_from_args(args):
    """The voice prompt from --s1-voice/--s2-voice files or --s1/--s2 library voices (or None)."""
    from engine.voice_prompt import PromptPart, combine_parts
    from engine.voices import read_voice_audio

    files, library_refs = {}, {}
    for tag in ("S1", "S2"):
        file, library = getattr(args, f"{tag.lower()}_voice"), getattr(args, tag.lower())
        if file and library:
            raise DiaStudioError(f"use either --{tag.lower()}-voice or --{tag.lower()}, not both",
                                 code="invalid_voice_sample")
        if file:
            files[tag] = file
        elif library:
            library_refs[tag] = library
    parts = []
    for tag, file in files.items():
        decoded = read_voice_audio(Path(file), f"--{tag.lower()}-voice {Path(file).name}")
        parts.append(PromptPart(tag, decoded.samples, decoded.sample_rate,
                                getattr(args, f"{tag.lower()}_transcript") or "", f"--{tag.lower()}-voice {file}"))
    if library_refs:
        from engine.voices import VoiceLibrary, load_audio

        with VoiceLibrary() as library:
            for tag, ref in library_refs.items():
                sample = library.resolve(ref)
                parts.append(PromptPart(tag, load_audio(sample), SAMPLE_RATE, sample.transcript,
                                        f"Voice '{sample.speaker_name}' (id {sample.id})"))
    return combine_parts(parts) if parts else None


class _Bar:
    """A tqdm progress bar on stderr fed by render progress events."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def __call__(self, p) -> None:
        if not self.enabled or p.stage != "generate":
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=p.max_steps, unit="frame", file=sys.stderr, desc="Rendering", dynamic_ncols=True)
        self.bar.set_postfix_str(f"{p.audio_seconds:.1f}s audio, {p.frames_per_second:.1f} frames/s")
        self.bar.update(p.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_render(args) -> int:
    from engine.requests import EngineOptions, RenderRequest, prepare_text
    from engine.script import parse_script

    # Everything checkable without the model is checked first: a bad parameter, output path,
    # script or voice must fail in a second, not after a model load and a render.
    overrides = {name: getattr(args, name) for name in PARAM_SPECS if getattr(args, name) is not None}
    params = GenerationParams.from_dict(overrides)
    output = _check_output(args.output)
    script = _read_script(args.script)
    parse_script(script)  # before decoding voice files; prepare_text re-checks with their transcripts
    voice = _voice_from_args(args)
    request = RenderRequest(script, params, voice)
    prepare_text(request)
    options = EngineOptions(model=args.model, codec=args.codec, device=args.device, dtype=args.dtype,
                            quantize=args.quantize, offline=True if args.offline else None)

    # engine.pipeline imports torch: only once the request is known to be good.
    from engine.pipeline import DiaEngine

    if not args.quiet:
        print("Loading the model…", file=sys.stderr)
    downloads = _DownloadBars(enabled=not args.quiet)
    try:
        engine = DiaEngine.load(options, on_progress=lambda p: downloads(p.download) if p.download else None)
    finally:
        downloads.close()
    bar = _Bar(not args.quiet)
    try:
        result = engine.render(request, on_progress=bar)
    finally:
        bar.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    _write_output(output, result)
    _ignore_interrupts()  # the file is complete: a Ctrl-C now would only misreport it as cancelled
    if not args.quiet:
        print(f"Wrote {args.output}: {result.duration:.2f} s, seed {result.seed}, "
              f"{result.timings['total']:.1f} s to render", file=sys.stderr)
    return 0


def _write_output(path: Path, result) -> None:
    """Write the render atomically (a Ctrl-C or a failure leaves no partial file)."""
    from engine.audio import write_audio

    metadata = {"title": "Dia Studio render", "comment": _describe(result), "software": "Dia Studio"}
    # WAV keeps the model's samples exactly (32-bit float); other formats use their usual depth
    depth = 32 if path.suffix.lower() == ".wav" else 16
    try:
        write_audio(path, result.audio, result.sample_rate, metadata=metadata, bit_depth=depth)
    except OSError as exc:
        raise StorageError(f"could not write {path}: {exc.strerror or exc}") from None


def _describe(result) -> str:
    import json

    # The seed actually used, never the -1 that asked for a random one.
    return json.dumps({**result.params.to_dict(), "seed": result.seed, "seed_used": result.seed}, sort_keys=True)


class _DownloadBars:
    """One byte progress bar per downloaded file, and a line per retry, on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bars: dict = {}

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if p.retry_in is not None:  # retries are always shown: they are why nothing moves
            tqdm.write(f"{p.text} Press Ctrl+C to stop.", file=sys.stderr)
            return
        bar = self.bars.get(p.filename)
        if bar is None:
            bar = self.bars[p.filename] = tqdm(total=p.file_total, unit="B", unit_scale=True, desc=p.filename,
                                               file=sys.stderr)
        bar.update(p.file_bytes - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def download_targets(args) -> list[str]:
    """What ``download`` fetches: the named repos/folders, else the model and codec (defaults for those not given)."""
    from engine.model.hub import DAC_REPO, DIA_REPO

    named = [*args.specs, *(spec for spec in (args.model, args.codec) if spec)]
    if args.specs:
        return list(dict.fromkeys(named))
    return [args.model or DIA_REPO, args.codec or DAC_REPO]


def cmd_download(args) -> int:
    from engine.model.hub import DOWNLOAD_BYTES, cached_snapshot, hub_cache_dir, looks_like_path, resolve_model

    for spec in download_targets(args):
        if not looks_like_path(spec) and not Path(spec).expanduser().exists() and cached_snapshot(spec) is None:
            size = f" (≈ {DOWNLOAD_BYTES[spec] / 1e9:.1f} GB)" if spec in DOWNLOAD_BYTES else ""
            print(f"Downloading {spec}{size} into {hub_cache_dir()}…", file=sys.stderr)
        bars = _DownloadBars()
        try:
            path = resolve_model(spec, offline=False, progress=bars)
        finally:
            bars.close()
        print(f"{spec}: ready in {path}", file=sys.stderr)
    return 0


_log_handler: logging.Handler | None = None


def setup_logging(verbose: bool) -> None:
    """Library log lines and Python warnings go to the terminal only with ``--verbose`` (the CLI reports
    progress and retries itself)."""
    global _log_handler
    root = logging.getLogger()
    if _log_handler is not None:
        root.removeHandler(_log_handler)
    if verbose:
        _log_handler = logging.StreamHandler(sys.stderr)
        _log_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.setLevel(logging.INFO)
    else:
        _log_handler = logging.NullHandler()  # keeps Python's last-resort handler from printing warnings
    root.addHandler(_log_handler)
    logging.captureWarnings(True)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _ignore_interrupts() -> None:
    """Make Ctrl-C do nothing from here on (signal handlers can only be set on the main thread)."""
    if _in_main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _exit_ignores_interrupts() -> None:
    """Make the interpreter's exit ignore Ctrl-C: an interrupted atexit callback (torch's, tqdm's ...)
    prints a traceback. Registered again on every run so that it is the last one registered, i.e.
    the first to run at exit."""
    atexit.unregister(_ignore_interrupts)
    atexit.register(_ignore_interrupts)


def _exit_without_collecting() -> None:
    """Skip the cycle collector at exit: Python's finalisation runs it over every object still alive,
    several times, and with torch loaded that took ~0.75 s after a render (measured with perf; the
    process has nothing left to collect that the OS does not reclaim). Freezing them first makes
    those passes cheap; objects are still released, and atexit callbacks still run."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def _interrupt_once(signum, frame) -> None:
    """SIGINT handler: the first Ctrl-C cancels (KeyboardInterrupt), and before anything else runs,
    later ones are ignored, so a second press while the command unwinds cannot land in the middle of
    the cancellation and print a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run one ``dia-studio`` subcommand; returns the exit status (0, 2 on an error, 130 on Ctrl-C).

    The process's entry point: once a render's file is written or Ctrl-C was handled, Ctrl-C stays
    ignored, as the process is only exiting (and a traceback or a second message must not appear).
    """
    previous = signal.signal(signal.SIGINT, _interrupt_once) if _in_main_thread() else None
    try:
        return _run(argv)
    except KeyboardInterrupt:
        _ignore_interrupts()
        print("Cancelled.", file=sys.stderr)
        return EXIT_CANCELLED
    finally:
        if previous is not None and signal.getsignal(signal.SIGINT) is _interrupt_once:
            signal.signal(signal.SIGINT, previous)  # a caller in the same process gets its handler back
        _exit_without_collecting()
        _exit_ignores_interrupts()


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    setup_logging(getattr(args, "verbose", False))
    try:
        return args.handler(args)
    except DiaStudioError as exc:
        print(f"error [{exc.code}]: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - a bug: still one line, the traceback only with --verbose
        if getattr(args, "verbose", False):
            import traceback

            traceback.print_exc()
        print(f"error [internal_error]: {type(exc).__name__}: {exc} (this is a bug in Dia Studio; "
              "--verbose shows the details for a report)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
