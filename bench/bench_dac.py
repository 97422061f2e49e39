"""DAC decode speed on this machine: random full-size 44.1 kHz weights, 10 s of codes.

    .venv/bin/python bench/bench_dac.py [--seconds 10] [--chunks 32,64,128,256] [--threads 2] [--repeats 2]

Prints × real time (audio seconds per wall second; ≥ 3 is the goal of issue 14) for a one-shot
decode and for the streaming decoder at several step sizes (what renders use), the largest
difference of each from the one-shot audio and from a float64 decode (random weights saturate the
output, so float32 rounding alone shows as ~1e-4), the CPU and the foreign load seen during each run
(other jobs on the machine slow it: compare rows of the same run), and the float32 throughput
the best row reached against the decoder's fixed work (≈ 137 GFLOP per audio second).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.model.dac import DacCodec, DacConfig
from engine.model.dac_stream import StreamingDacDecoder
from engine.testing import random_dac_state


def decoder_gflop_per_audio_second(config: DacConfig) -> float:
    """Multiply-adds ×2 of the decoder's convolutions per second of audio: the work no kernel skips.

    At a fixed float32 throughput this bounds the speed: × real time ≤ GFLOP/s ÷ this.
    """
    rate = config.frame_rate  # positions per second at the current layer
    width = config.decoder_dim
    flops = 2 * config.latent_dim * width * 7 * rate  # conv1
    for stride in config.decoder_rates:
        out = width // 2
        flops += 2 * width * out * 2 * stride * rate  # transposed conv (kernel 2·stride), per input position
        rate *= stride
        flops += 3 * 2 * out * out * (7 + 1) * rate  # three residual units: k7 + 1×1
        width = out
    return (flops + 2 * width * 7 * rate) / 1e9  # conv2


def _busy_jiffies() -> int:
    with open("/proc/stat") as stat:
        values = list(map(int, stat.readline().split()[1:]))
    return sum(values) - values[3] - values[4]


def timed(fn) -> tuple[float, float, object]:
    """(wall seconds, cores used by other processes meanwhile, result)."""
    busy, own = _busy_jiffies(), time.process_time()
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    foreign = ((_busy_jiffies() - busy) / os.sysconf("SC_CLK_TCK") - (time.process_time() - own)) / wall
    return wall, max(foreign, 0.0), out


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def stream(codec: DacCodec, codes: np.ndarray, chunk: int) -> np.ndarray:
    decoder = StreamingDacDecoder(codec, first_chunk_frames=min(16, chunk), chunk_frames=chunk)
    parts = [decoder.push(codes[i:i + chunk]) for i in range(0, len(codes), chunk)]
    return np.concatenate(parts + [decoder.flush()])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--chunks", default="32,64,128,256")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=2, help="best of this many runs per row")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    config = DacConfig()
    codec = DacCodec(config)
    codec.load_state_dict(random_dac_state(config, seed=1))
    codec.requires_grad_(False)
    frames = round(args.seconds * config.frame_rate)
    codes = torch.randint(0, config.codebook_size, (frames, config.n_codebooks),
                          generator=torch.Generator().manual_seed(0)).numpy()
    audio_s = frames / config.frame_rate
    codec.decode_numpy(codes[:32])  # warm-up
    exact = DacCodec(config)
    exact.load_state_dict(codec.state_dict())
    exact = exact.double().requires_grad_(False).decode_numpy(codes)  # float64: the rounding yardstick
    rows = []
    reference = None
    for name, run in [("one-shot", lambda: codec.decode_numpy(codes))] + [
            (f"stream chunk {c}", lambda c=c: stream(codec, codes, c)) for c in map(int, args.chunks.split(","))]:
        best = min((timed(run) for _ in range(args.repeats)), key=lambda r: r[0])
        wall, foreign, audio = best
        reference = audio if reference is None else reference
        rows.append({"name": name, "wall_s": wall, "x_real_time": audio_s / wall, "foreign_cores": foreign,
                     "max_abs_diff_vs_one_shot": float(np.abs(audio - reference).max()),
                     "max_abs_diff_vs_float64": float(np.abs(audio - exact).max())})
        print(f"{name}: {wall:.2f} s for {audio_s:.1f} s of audio = {audio_s / wall:.2f}× real time "
              f"(max |Δ| vs one-shot {rows[-1]['max_abs_diff_vs_one_shot']:.1e}, vs float64 "
              f"{rows[-1]['max_abs_diff_vs_float64']:.1e}; foreign load {foreign:.2f} cores)", flush=True)
    work = decoder_gflop_per_audio_second(config)
    best = max(r["x_real_time"] for r in rows)
    report = {"cpu": cpu_name(), "threads": args.threads, "torch": torch.__version__, "audio_s": audio_s,
              "gflop_per_audio_s": work, "rows": rows}
    print(f"{report['cpu']}, {args.threads} threads, torch {torch.__version__}; the decoder does {work:.0f} GFLOP per "
          f"audio second: the best row ran at {best * work:.0f} GFLOP/s, 3× real time needs {3 * work:.0f} GFLOP/s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
