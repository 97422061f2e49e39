"""Dia Studio on a GPU against transformers' ``DiaForConditionalGeneration.generate``, in one run.

    python bench/bench_gpu.py                         # CUDA, full-size random weights (≈ 3-5 min on an H200)
    python bench/bench_gpu.py --device cpu --tiny     # the tiny model on the CPU: proves the script runs

Random weights of the full Dia-1.6B geometry are built in memory on the device (speed does not
depend on the values); channel 0's EOS is suppressed in both engines so every render runs exactly
``--steps`` decoder steps. Prints per configuration: ms per step, frames/s, the real-time factor
(86.13 frames = 1 s of audio), × transformers per step, CUDA graph capture time, peak GPU memory,
the DAC decode speed on the same device; then each reduced precision against float32 on the same
device (``engine.precision``). ``--json`` writes everything. Goals (issue 14, H200): ≥ 430
frames/s for one render and ≥ 3× transformers bf16 per step.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.constants import FRAME_RATE
from engine.generate import generate_codes
from engine.model.config import DiaConfig
from engine.model.dac import DacCodec, DacConfig
from engine.model.dac_stream import WINDOW_FRAMES, StreamingDacDecoder
from engine.model.dia import DiaModel
from engine.model.tokenizer import encode_text
from engine.precision import check_against_float32, with_dtype
from engine.sampling import SamplingSettings
from engine.testing import (
    FULL_SIZE_SCALE,
    TINY_DAC,
    TINY_DIA,
    TINY_SCALE,
    random_dac_state,
)

SCRIPT = ("[S1] Dia is an open weights text to dialogue model. [S2] You get full control over scripts and voices. "
          "[S1] Wow. Amazing. (laughs) [S2] Try it now on Git hub or Hugging Face.")
GOAL_FRAMES_PER_S = 430
GOAL_VS_TRANSFORMERS = 3.0
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


# ------------------------------------------------------------------------------ models
def random_dia(cfg: DiaConfig, device: torch.device, scale: float, seed: int = 0) -> DiaModel:
    """Our model in float32 with random weights, built on the device (no file, no second copy)."""
    model = DiaModel(cfg, device=device, dtype=torch.float32)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif "embedding" in name:
                p.normal_(0.0, 1.0, generator=gen)
            else:
                p.normal_(0.0, scale, generator=gen)
    model.tune_for_device()
    return model.eval()


def random_dac(config: DacConfig, device: torch.device) -> DacCodec:
    codec = DacCodec(config)
    codec.load_state_dict(random_dac_state(config, seed=1))
    return codec.requires_grad_(False).to(device).eval()


# ------------------------------------------------------------------------------ timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None


def bench_ours(model: DiaModel, name: str, step_mode: str, steps: int, codec: DacCodec) -> dict:
    text = encode_text(SCRIPT)
    device = model.device
    generate_codes(model, text, SamplingSettings(max_new_tokens=48, seed=1), step_mode=step_mode)  # warm-up
    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    result = generate_codes(model, text, SamplingSettings(max_new_tokens=steps + 1, seed=7), step_mode=step_mode)
    sync(device)
    wall = time.perf_counter() - t0
    codes = result.codes.T.unsqueeze(0).to(device)
    with torch.inference_mode():
        codec.decode(codes[..., :8])  # warm-up
        sync(device)
        t1 = time.perf_counter()
        codec.decode(codes)
        sync(device)
    dac_s = time.perf_counter() - t1
    stream_s = streamed_decode_seconds(codec, result.codes, device)
    audio_s = result.codes.shape[0] / FRAME_RATE
    return {"name": name, "step_mode": step_mode, "steps": result.steps, "frames": int(result.codes.shape[0]),
            "ms_per_step": 1000 * result.decode_seconds / result.steps,
            "frames_per_s": result.steps / result.decode_seconds,
            "rtf": result.steps / result.decode_seconds / FRAME_RATE, "prefill_s": result.prefill_seconds,
            "graph_capture_s": result.graph_seconds, "render_wall_s": wall, "peak_gpu_gb": peak_gb(device),
            "dac_s": dac_s, "dac_x_real_time": audio_s / dac_s if dac_s > 0 else None,
            "dac_stream_x_real_time": audio_s / stream_s if stream_s > 0 else None}


def streamed_decode_seconds(codec: DacCodec, codes: torch.Tensor, device: torch.device) -> float:
    """Wall time of the decode a render does: the streaming decoder fed a window at a time."""
    decoder = StreamingDacDecoder(codec, first_chunk_frames=WINDOW_FRAMES)
    sync(device)
    t0 = time.perf_counter()
    for start in range(0, codes.shape[0], WINDOW_FRAMES):
        decoder.push(codes[start:start + WINDOW_FRAMES])
    decoder.flush()
    sync(device)
    return time.perf_counter() - t0


def bench_transformers(cfg: DiaConfig, device: torch.device, dtype: torch.dtype, steps: int, scale: float) -> dict:
    from transformers import DiaConfig as HFDiaConfig
    from transformers import DiaForConditionalGeneration

    with torch.device(device):
        model = DiaForConditionalGeneration(HFDiaConfig.from_dict(cfg.to_transformers_dict()))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("norm.weight"):
                p.normal_(0.0, 1.0 if "embed" in name else scale)
    model = model.to(dtype).eval()  # min_new_tokens keeps its EOS away (as in bench_engine.py)
    ids = torch.tensor([encode_text(SCRIPT)], device=device)
    bos = torch.full((1, 1, cfg.num_channels), cfg.bos_token_id, dtype=torch.long, device=device)

    def generate(n: int):
        torch.manual_seed(7)
        return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), decoder_input_ids=bos,
                              decoder_attention_mask=torch.ones(1, 1, dtype=torch.long, device=device),
                              max_new_tokens=n, min_new_tokens=n, do_sample=True, temperature=1.8, top_p=0.95,
                              top_k=45, guidance_scale=3.0)

    with torch.no_grad():
        generate(20)
        reset_peak(device)
        sync(device)
        t0 = time.perf_counter()
        generate(steps)
        sync(device)
    wall = time.perf_counter() - t0
    out = {"name": f"transformers {str(dtype).replace('torch.', '')}", "step_mode": "generate", "steps": steps,
           "ms_per_step": 1000 * wall / steps, "frames_per_s": steps / wall, "rtf": steps / wall / FRAME_RATE,
           "render_wall_s": wall, "peak_gpu_gb": peak_gb(device)}
    return out  # the model goes with this frame


# ------------------------------------------------------------------------------ main
def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"


def fmt(value, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="the tiny test geometry instead of Dia-1.6B")
    ap.add_argument("--steps", type=int, default=860, help="decoder steps per render (860 ≈ 10 s of audio)")
    ap.add_argument("--dtypes", default="bfloat16,float16")
    ap.add_argument("--agree-steps", type=int, default=64)
    ap.add_argument("--no-transformers", action="store_true")
    ap.add_argument("--no-loop", action="store_true", help="skip the per-step loop (no graphs) row")
    ap.add_argument("--json", help="write the results here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.set_grad_enabled(False)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32 for the agreement check
        torch.backends.cudnn.allow_tf32 = False
    cfg, scale, dac_cfg = (TINY_DIA, TINY_SCALE, TINY_DAC) if args.tiny else (DiaConfig(), FULL_SIZE_SCALE, DacConfig())
    t0 = time.perf_counter()
    reference = random_dia(cfg, device, scale)
    codec = random_dac(dac_cfg, device)
    print(f"{machine(device)}; {'tiny' if args.tiny else 'Dia-1.6B'} random weights built in "
          f"{time.perf_counter() - t0:.1f} s; {args.steps} steps per render ({args.steps / FRAME_RATE:.1f} s audio)",
          flush=True)
    rows, agreement = [], {}
    dtypes = [d for d in args.dtypes.split(",") if d]
    if not args.no_transformers:
        print("transformers bfloat16…", flush=True)
        rows.append(bench_transformers(cfg, device, torch.bfloat16, args.steps, scale))
    for i, name in enumerate(dtypes):
        model = with_dtype(reference, DTYPES[name])
        modes = ["static"] + (["loop"] if i == 0 and not args.no_loop else [])
        for mode in modes:
            graphs = " + CUDA graphs" if mode == "static" and device.type == "cuda" else ""
            print(f"ours {name} {mode}…", flush=True)
            handle = suppress_eos_handle(model, cfg)
            rows.append(bench_ours(model, f"ours {name} {mode}{graphs}", mode, args.steps, codec))
            handle.remove()
        print(f"agreement {name} vs float32…", flush=True)
        agreement[name] = check_against_float32(model, reference, steps=args.agree_steps,
                                                step_mode="static").to_dict()
        del model
    report = summarize(rows, agreement, machine(device), args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


def suppress_eos_handle(model: DiaModel, cfg: DiaConfig):
    """Channel 0's EOS logit (index eos of the C·V head output) → -inf, so every render runs all its steps.
    A plain in-place op, so a captured CUDA graph keeps it."""
    def hook(_module, _inputs, output):
        output[..., cfg.eos_token_id] = float("-inf")
        return output

    return model.head.register_forward_hook(hook)


def summarize(rows: list[dict], agreement: dict, where: str, args: argparse.Namespace) -> dict:
    base = next((r for r in rows if r["name"].startswith("transformers")), None)
    print(f"\n{where}")
    head = ("config", "ms/step", "×tf-bf16", "frames/s", "× real time", "graph s", "prefill s", "peak GPU GB",
            "DAC × real time", "streamed")
    print(" | ".join(head))
    for r in rows:
        ratio = base["ms_per_step"] / r["ms_per_step"] if base else None
        r["x_transformers"] = ratio
        print(" | ".join([r["name"], fmt(r["ms_per_step"], 2), fmt(ratio, 2), fmt(r["frames_per_s"]),
                          fmt(r["rtf"], 2), fmt(r.get("graph_capture_s"), 2), fmt(r.get("prefill_s"), 2),
                          fmt(r["peak_gpu_gb"], 2), fmt(r.get("dac_x_real_time"), 1),
                          fmt(r.get("dac_stream_x_real_time"), 1)]))
    best = max((r for r in rows if r["name"].startswith("ours")), key=lambda r: r["frames_per_s"], default=None)
    goals = {}
    if best is not None:
        goals = {"best": best["name"], "frames_per_s": best["frames_per_s"],
                 "frames_per_s_goal_met": best["frames_per_s"] >= GOAL_FRAMES_PER_S,
                 "x_transformers": best.get("x_transformers"),
                 "x_transformers_goal_met": None if base is None else best["x_transformers"] >= GOAL_VS_TRANSFORMERS}
        print(f"\nbest: {best['name']}: {best['frames_per_s']:.0f} frames/s (goal ≥ {GOAL_FRAMES_PER_S}), "
              f"×{fmt(best.get('x_transformers'), 2)} transformers per step (goal ≥ {GOAL_VS_TRANSFORMERS})")
    print("\nagainst float32 on the same device (teacher-forced logits; codes of greedy and seeded renders):")
    for name, a in agreement.items():
        print(f"  {name}: {json.dumps(a)}")
    return {"machine": where, "steps": args.steps, "tiny": args.tiny, "rows": rows, "agreement": agreement,
            "goals": goals}


if __name__ == "__main__":
    main()
