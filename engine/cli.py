"""The ``dia-studio`` command-line subcommands (``render``, ``download``, ``voices`` ...).

Errors are printed as one clear line (``error [code]: message``) with exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.errors import DiaStudioError
from engine.params import PARAM_SPECS, GenerationParams

EXIT_ERROR = 2


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
    return parser


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="Dia model folder, weight file or Hugging Face repo id (default nari-labs/Dia-1.6B-0626)")
    p.add_argument("--codec", help="DAC codec folder, weights.pth or repo id (default descript/dac_44khz)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--quantize", choices=["int8", "int8-dynamic"],
                   help="int8 decoder weights: 'int8' is weight-only (float32 activations; the recommended "
                        "mode), 'int8-dynamic' also quantises activations (FBGEMM/QNNPACK; only faster where "
                        "the native kernels are not built)")
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
    p = sub.add_parser("download", help="download the model and codec into the Hugging Face cache")
    p.add_argument("--model", default=None)
    p.add_argument("--codec", default=None)
    p.set_defaults(handler=cmd_download)


def _read_script(arg: str) -> str:
    if arg == "-":
        return sys.stdin.read()
    path = Path(arg)
    if not path.is_file():
        raise DiaStudioError(f"script file {arg} not found", code="missing_input")
    return path.read_text(encoding="utf-8")


def _voice_from_args(args):
    """The voice prompt from --s1-voice/--s2-voice files or --s1/--s2 library voices (or None)."""
    from engine.audio import decode_audio
    from engine.voice_prompt import PromptPart, combine_parts

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
        decoded = decode_audio(Path(file))
        parts.append(PromptPart(tag, decoded.samples, decoded.sample_rate,
                                getattr(args, f"{tag.lower()}_transcript") or "", f"--{tag.lower()}-voice {file}"))
    if library_refs:
        from engine.voices import VoiceLibrary, load_audio

        with VoiceLibrary() as library:
            for tag, ref in library_refs.items():
                sample = library.resolve(ref)
                parts.append(PromptPart(tag, load_audio(sample), 44100, sample.transcript,
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
    from engine.audio import write_audio
    from engine.pipeline import DiaEngine, EngineOptions, RenderRequest

    overrides = {name: getattr(args, name) for name in PARAM_SPECS if getattr(args, name) is not None}
    params = GenerationParams.from_dict(overrides)
    script = _read_script(args.script)
    voice = _voice_from_args(args)
    options = EngineOptions(model=args.model, codec=args.codec, device=args.device, dtype=args.dtype,
                            quantize=args.quantize, offline=True if args.offline else None)
    if not args.quiet:
        print("Loading the model…", file=sys.stderr)
    downloads = _DownloadBars(enabled=not args.quiet)
    try:
        engine = DiaEngine.load(options, on_progress=lambda p: downloads(p.download) if p.download else None)
    finally:
        downloads.close()
    bar = _Bar(not args.quiet)
    try:
        result = engine.render(RenderRequest(script, params, voice), on_progress=bar)
    finally:
        bar.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    metadata = {"title": "Dia Studio render", "comment": _describe(result), "software": "Dia Studio"}
    # WAV keeps the model's samples exactly (32-bit float); other formats use their usual depth
    depth = 32 if Path(args.output).suffix.lower() == ".wav" else 16
    write_audio(args.output, result.audio, result.sample_rate, metadata=metadata, bit_depth=depth)
    if not args.quiet:
        print(f"Wrote {args.output}: {result.duration:.2f} s, seed {result.seed}, "
              f"{result.timings['total']:.1f} s to render", file=sys.stderr)
    return 0


def _describe(result) -> str:
    import json

    return json.dumps({"seed": result.seed, **result.params.to_dict(), "seed_used": result.seed}, sort_keys=True)


class _DownloadBars:
    """One byte progress bar per downloaded file, on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bars: dict = {}

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(p.filename)
        if bar is None:
            bar = self.bars[p.filename] = tqdm(total=p.file_total, unit="B", unit_scale=True, desc=p.filename,
                                               file=sys.stderr)
        bar.update(p.file_bytes - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def cmd_download(args) -> int:
    from engine.model.hub import DAC_REPO, DIA_REPO, resolve_model

    for repo in (args.model or DIA_REPO, args.codec or DAC_REPO):
        bars = _DownloadBars()
        try:
            path = resolve_model(repo, offline=False, progress=bars)
        finally:
            bars.close()
        print(f"{repo}: {path}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    try:
        return args.handler(args)
    except DiaStudioError as exc:
        print(f"error [{exc.code}]: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
