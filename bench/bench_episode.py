"""What an episode costs beyond the sum of its blocks' generation (a benchmark, not a test).

    .venv/bin/python bench/bench_episode.py [--minutes 3] [--max-new-tokens 256] [--quantize int8]
    .venv/bin/python bench/bench_episode.py --tiny          # the tiny random model: checks that it runs

Renders a three-character script of about ``--minutes`` minutes (chapters, two characters with a
voice sample, one seed only) into a fresh project on random full-size weights (written once into
bench/.weights/, as bench_engine.py does), then exports it (MP3, podcast loudness, chapters JSON).
Random weights never stop by themselves (bench/no_eos.py), and each block generates only
``--max-new-tokens`` frames so the run takes minutes on 2 cores; the blocks are split for the
project's real length (15 s) all the same.

Phases, timed around the library's own calls (the engine and the project are wrapped; the export
reports its phases in ``ExportResult.timings``): split (the project update: parse, split,
identities, voices copied in), prompt (DAC encoding of each voice, once), generate (every
``engine.render``: the blocks' generation), take writes (takes and voice codes into the project),
queue (the rest of ``render_episode``), read, master (join and loudness), write (MP3 with
chapters), chapters json. Overhead = everything but generate; the goal is under 3 % of the total.
The model load is reported apart: one render pays it too.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WEIGHTS = ROOT / "bench" / ".weights"  # random full-size checkpoints, written once (git-ignored)
GOAL_PERCENT = 3.0
CHARACTERS = ("Mara", "Theo", "Dr. Lee")
SENTENCES = [
    "Welcome back to the show, it is good to have you here again.",
    "Today we are talking about gardens, bread and the weather in the spring.",
    "I planted tomatoes last week, and the frost nearly took all of them.",
    "That is the risk with an early start, but the light in April is wonderful.",
    "Our listeners sent in more questions than we can answer in one hour.",
    "Let us start with the one about sourdough, since it came up so often.",
    "The secret is patience: a starter needs a few days before it is lively.",
    "And a warm kitchen helps, although not everyone has one in March.",
    "Right, so what would you tell someone who has never baked at all?",
    "Begin with a simple loaf, weigh everything, and write down what you did.",
]
PHASES = ("split", "prompt", "generate", "take writes", "queue", "read", "master", "write", "chapters json")
AUDIO_PHASES = ("generate", "take writes", "read", "master", "write")
"""Phases whose cost grows with the audio's length (used to project full-length blocks)."""


# ------------------------------------------------------------------------------ the episode
def episode_script(minutes: float) -> str:
    """A dialogue of about ``minutes`` of speech (the editor's estimate): Mara and Theo, Dr. Lee every
    fifth line, a chapter heading about every minute."""
    from engine.script import estimate_budget

    lines, seconds, chapters, n = [], 0.0, 0, 0
    while seconds < minutes * 60.0:
        if seconds >= 60.0 * chapters:
            chapters += 1
            lines.append(f"# Part {chapters}")
        name = CHARACTERS[2] if n % 5 == 4 else CHARACTERS[n % 2]
        text = SENTENCES[n % len(SENTENCES)]
        lines.append(f"[{name}] {text}")
        seconds += estimate_budget(f"[S1] {text}").estimated_seconds
        n += 1
    return "\n".join(lines) + "\n"


def voice(name: str, pitch: float):
    """A 4 s voiced sample standing in for a recording (the bench measures cost, not likeness)."""
    import numpy as np

    from engine.episode.project import SAMPLE_RATE, VoiceInput

    t = np.arange(int(SAMPLE_RATE * 4.0)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * pitch * h * t) / h for h in (1, 2, 3))
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    return VoiceInput(name, (0.2 * tone * syllables).astype(np.float32), f"Hello, this is {name} speaking today.")


# ------------------------------------------------------------------------------ timing wrappers
class Clock:
    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)

    def time(self, phase: str, work, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return work(*args, **kwargs)
        finally:
            self.seconds[phase] += time.perf_counter() - t0


class TimedEngine:
    """The loaded engine, timing ``render`` (generate) and ``encode_prompt`` (prompt), each block
    limited to about ``steps`` frames after its voice prompt."""

    def __init__(self, engine, clock: Clock, steps: int) -> None:
        self.engine, self.clock, self.steps = engine, clock, steps
        self.options = engine.options
        self.frames = 0

    def render(self, request, **kwargs):
        from engine.params import PARAM_SPECS

        # max_new_tokens caps every decoder position, the voice prompt's included
        codes = kwargs.get("prompt_codes")
        limit = min(PARAM_SPECS["max_new_tokens"].maximum, self.steps + (0 if codes is None else int(codes.shape[0])))
        short = dataclasses.replace(request, params=request.params.replace(max_new_tokens=limit))
        result = self.clock.time("generate", self.engine.render, short, **kwargs)
        self.frames += result.codes.shape[0]
        return result

    def encode_prompt(self, prompt):
        return self.clock.time("prompt", self.engine.encode_prompt, prompt)


def timed_project(path: Path, clock: Clock):
    from engine.episode.project import EpisodeProject

    class TimedProject(EpisodeProject):
        def add_take(self, *args, **kwargs):
            return clock.time("take writes", super().add_take, *args, **kwargs)

        def store_voice_codes(self, *args, **kwargs):
            return clock.time("take writes", super().store_voice_codes, *args, **kwargs)

    return TimedProject(path)


# ------------------------------------------------------------------------------ the run
def run(args, dia: str, dac: str, folder: Path) -> str:
    import bench.no_eos  # noqa: F401  (random weights: every block generates exactly --max-new-tokens)
    from engine.episode.assemble import export_project
    from engine.episode.master import MasterSettings
    from engine.episode.render import render_episode
    from engine.params import GenerationParams
    from engine.pipeline import DiaEngine
    from engine.requests import EngineOptions

    options = EngineOptions(model=dia, codec=dac, device="cpu", dtype=args.dtype, quantize=args.quantize or None)
    load0 = time.perf_counter()
    engine = DiaEngine.load(options)
    load = time.perf_counter() - load0
    clock = Clock()
    script = episode_script(args.minutes)
    cast = {"Mara": voice("Mara", 190.0), "Theo": voice("Theo", 120.0)}  # Dr. Lee: seed only
    timed = TimedEngine(engine, clock, args.max_new_tokens)
    with LoadMonitor() as monitor, timed_project(folder / "bench.diaproj", clock) as project:
        clock.time("split", project.update, script=script, params=GenerationParams(), seed=7, cast=cast)
        blocks = project.blocks()
        t0 = time.perf_counter()
        summary = render_episode(project, timed)
        clock.seconds["queue"] = (time.perf_counter() - t0) - sum(clock.seconds[p] for p in
                                                                    ("prompt", "generate", "take writes"))
        result = export_project(project, folder / "episode.mp3", settings=MasterSettings(loudness="podcast"),
                                chapters_json=folder / "chapters.json")
    for phase in ("read", "master", "write"):
        clock.seconds[phase] = result.timings[phase]
    clock.seconds["chapters json"] = result.timings["chapters_json"]
    estimated = sum(b.estimated_seconds for b in blocks)
    return report(args, clock.seconds, load, monitor, blocks=len(blocks), failed=len(summary.failed),
                  frames=timed.frames, audio=result.seconds, estimated=estimated, lines=script.count("\n["))


def report(args, seconds: dict[str, float], load: float, monitor, *, blocks: int, failed: int, frames: int,
           audio: float, estimated: float, lines: int) -> str:
    total = sum(seconds.values())
    overhead = total - seconds["generate"]
    out = [f"Episode benchmark: {'tiny random model' if args.tiny else 'random full-size Dia-1.6B-0626 + DAC'}, "
           f"CPU, dtype {args.dtype}, quantize {args.quantize or 'none'}, {os.cpu_count()} cores",
           f"script: {lines} turns, 3 characters (2 with a voice sample), ~{estimated / 60:.1f} min by the estimate, "
           f"{blocks} blocks ({failed} failed); each block limited to {args.max_new_tokens} positions after its "
           f"voice prompt ({frames} frames generated in all) -> {audio:.1f} s of episode audio",
           f"load average before/after: {monitor.load_before} / {monitor.load_after}; foreign CPU load during the run "
           f"{monitor.foreign:.2f} cores (other jobs on this shared machine), own {monitor.own_cores:.2f}",
           f"model load {load:.1f} s (not counted: one render pays it too)",
           "",
           f"{'phase':<14} {'seconds':>9} {'share':>8}"]
    for phase in PHASES:
        out.append(f"{phase:<14} {seconds[phase]:>9.2f} {100 * seconds[phase] / total:>7.2f}%")
    out += [f"{'total':<14} {total:>9.2f} {100.0:>7.2f}%", "",
            f"overhead beyond generation: {overhead:.2f} s = {100 * overhead / total:.2f} % of the total "
            f"(goal < {GOAL_PERCENT:g} %: {'met' if 100 * overhead / total < GOAL_PERCENT else 'NOT met'})"]
    if audio > 0 and frames > 0:
        scale = estimated / audio  # full-length blocks: the audio-length phases grow, the fixed ones do not
        projected = {p: s * scale if p in AUDIO_PHASES else s for p, s in seconds.items()}
        p_total = sum(projected.values())
        p_over = p_total - projected["generate"]
        out.append(f"projected for full-length blocks (audio-length phases x{scale:.1f}, an extrapolation): "
                   f"overhead {p_over:.1f} s of {p_total:.0f} s = {100 * p_over / p_total:.2f} %")
    return "\n".join(out) + "\n"


class LoadMonitor:
    """bench_engine's foreign-load monitor, plus the load average before and after."""

    def __enter__(self):
        from bench.bench_engine import LoadMonitor as Foreign

        self.load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
        self.inner = Foreign().__enter__()
        return self

    def __exit__(self, *exc):
        self.inner.__exit__(*exc)
        self.foreign, self.own_cores = self.inner.foreign, self.inner.own_cores
        self.load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny random model and a short script (a smoke run)")
    parser.add_argument("--minutes", type=float, default=None, help="script length (default 3; 0.4 with --tiny)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="frames each block generates (256-4096)")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16 ... (default bfloat16; float32 with --tiny)")
    parser.add_argument("--quantize", default=None, help="int8, int4 ... (default none)")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    args.minutes = args.minutes if args.minutes is not None else (0.4 if args.tiny else 3.0)
    args.dtype = args.dtype or ("float32" if args.tiny else "bfloat16")
    with tempfile.TemporaryDirectory(prefix="bench-episode-") as tmp:
        folder = Path(tmp)
        if args.tiny:
            from engine.testing import write_tiny_models

            dia, dac = write_tiny_models(folder / "models")
        else:
            from engine.testing import write_full_size_models

            print("Writing random full-size weights into bench/.weights (once)…", file=sys.stderr)
            dia, dac = write_full_size_models(WEIGHTS)
        text = run(args, str(dia), str(dac), folder)
    print(text, end="")
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
