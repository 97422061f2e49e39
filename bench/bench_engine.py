"""Dia Studio engine vs transformers, side by side in one run, on random full-size weights.

    .venv/bin/python bench/bench_engine.py [--steps 200] [--process-steps 512] [--skip-process]
                                           [--competing-load 2] [--only bf16,int8,int4]

Every configuration runs in its own process (clean peak RSS); each reports the foreign CPU load
seen during its run (other jobs on the machine skew timings: compare rows of the same run).
Numbers printed: median ms per decoder step, frames/s, real-time factor, time to the first
streamed audio chunk, peak RSS and peak anonymous memory, model load time; each mode's floor
(bytes of decoder weights streamed per step ÷ the machine's read bandwidth, probed on the same threads
just before each run: the native probe reads like the GEMVs do, without their arithmetic) and its
ms/step ÷ floor; with ``--competing-load N``, every engine again while N busy
processes run, and its slowdown; then whole `dia-studio render` vs a whole transformers render
process; then each quantised mode's agreement with bf16 and fp32 (logits and codes).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from engine.constants import FRAME_RATE  # noqa: E402 - after the path is set

WARM_UP_SCRIPT = "[S1] Warming up the kernels and the allocator. [S2] With another text than the one measured."
SCRIPT = ("[S1] Dia is an open weights text to dialogue model. [S2] You get full control over scripts and voices. "
          "[S1] Wow. Amazing. (laughs) [S2] Try it now on Git hub or Hugging Face.")
WEIGHTS = ROOT / "bench" / ".weights"  # random full-size checkpoints, written once (git-ignored)


# ------------------------------------------------------------------------------ measurement helpers
def _cpu_busy_jiffies() -> int:
    fields = open("/proc/stat").readline().split()[1:]
    values = list(map(int, fields))
    return sum(values) - values[3] - values[4]  # minus idle and iowait


class LoadMonitor:
    """Foreign CPU load (cores used by other processes) over a timed region."""

    def __enter__(self):
        self.t, self.busy = time.perf_counter(), _cpu_busy_jiffies()
        r = resource.getrusage(resource.RUSAGE_SELF)
        self.own = r.ru_utime + r.ru_stime
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t
        busy = (_cpu_busy_jiffies() - self.busy) / os.sysconf("SC_CLK_TCK")
        r = resource.getrusage(resource.RUSAGE_SELF)
        own = r.ru_utime + r.ru_stime - self.own
        self.foreign = max(busy - own, 0.0) / wall if wall > 0 else 0.0
        self.own_cores = own / wall if wall > 0 else 0.0


def peak_rss_gb() -> float:
    """Peak resident set (includes file pages mapped while reading the weights)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


class AnonPeak:
    """Peak anonymous memory (RssAnon: what the process really allocates), sampled every 20 ms."""

    def __init__(self) -> None:
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon:"):
                    self.peak = max(self.peak, int(line.split()[1]))
            self._stop.wait(0.02)

    def gb(self) -> float:
        return self.peak / 1024 / 1024


CPU_FLAGS = ("avx512f", "avx512_bf16", "avx512_vnni", "avx2", "fma")


def cpu_description() -> str:
    """The CPU model and which of the flags that matter here it has."""
    model, flags = "unknown CPU", set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return f"{model}; " + " ".join(f"{f}{'+' if f in flags else '-'}" for f in CPU_FLAGS)


class BusyLoad:
    """N processes that spin on a core each: a competing load while measuring."""

    def __init__(self, n: int) -> None:
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------ workers
def worker_bandwidth(args) -> dict:
    """Read bandwidth on PyTorch's threads: torch's sum, and the native read loop where built."""
    import torch

    from engine import native

    buf = torch.ones(256 << 20)  # 1 GiB of float32, far beyond any cache

    def best_gbs(fn) -> float:
        fn()
        times = []
        for _ in range(5):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return buf.numel() * 4 / min(times) / 1e9

    out = {"threads": torch.get_num_threads(), "torch_sum_gbs": best_gbs(lambda: buf.sum())}
    out["native_gbs"] = best_gbs(lambda: native.stream_sum(buf)) if native.available() else None
    return out


def _decoder_weight_bytes(model) -> int:
    """Bytes of the projections a decoder step streams (weights, scales, offsets)."""
    total = 0
    for owner, name in model.projections():
        module = getattr(owner, name)
        tensors = list(module.parameters()) + list(module.buffers())
        total += sum(t.numel() * t.element_size() for t in tensors)
    return total


def _first_audio_of_retake(engine, request) -> float | None:
    """Seconds to the first audio of another take of a text just rendered (cancelled once it plays)."""
    from engine import CancelledError

    heard = []
    start = time.perf_counter()
    try:
        engine.render(request, on_audio=lambda _chunk: heard.append(time.perf_counter()),
                      should_stop=lambda: bool(heard))
    except CancelledError:
        pass
    return heard[0] - start if heard else None


def worker_ours(args) -> dict:
    if args.kernels == "torch":
        os.environ["DIA_STUDIO_NATIVE"] = "0"  # PyTorch's own kernels only (engine.native off)
    import bench.no_eos  # noqa: F401  (fixed-length renders on random weights)
    from engine import CancelledError, DiaEngine, EngineOptions, GenerationParams, RenderRequest, native

    anon = AnonPeak()
    t0 = time.perf_counter()
    engine = DiaEngine.load(EngineOptions(model=args.dia, codec=args.dac, dtype=args.dtype, device="cpu",
                                          quantize=args.quantize or None))
    load = time.perf_counter() - t0
    params = GenerationParams(max_new_tokens=args.steps + 1, seed=7)
    stamps, first_chunk = [], []
    # warm-up: 20 steps of a render, then cancelled (kernels and allocator warm, as for transformers)
    calls = {"n": 0}

    def stop_after_20() -> bool:
        calls["n"] += 1
        return calls["n"] > 20

    try:  # another text: the measured render's text is new to the engine (a retake's is measured after)
        engine.render(RenderRequest(WARM_UP_SCRIPT, GenerationParams(max_new_tokens=256, seed=1)),
                      should_stop=stop_after_20)
    except CancelledError:
        pass
    start = time.perf_counter()
    with LoadMonitor() as mon:
        result = engine.render(
            RenderRequest(SCRIPT, params),
            on_progress=lambda p: stamps.append(time.perf_counter()) if p.stage == "generate" else None,
            on_audio=lambda c: first_chunk.append(time.perf_counter()) if not first_chunk else None)
    wall = time.perf_counter() - start
    retake = RenderRequest(SCRIPT, GenerationParams(max_new_tokens=256, seed=8))
    retake_first_audio = _first_audio_of_retake(engine, retake)
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    frames = result.codes.shape[0]
    return {
        "name": f"ours {args.dtype}{' ' + args.quantize if args.quantize else ''}"
                + (" (PyTorch kernels)" if args.kernels == "torch" else ""),
        "native_isa": native.isa(), "weight_bytes": _decoder_weight_bytes(engine.model),
        "load_s": load, "prefill_s": result.timings["prefill"], "ms_per_step": 1000 * statistics.median(steps),
        "steps": len(stamps), "frames": frames, "frames_per_s": len(stamps) / result.timings["generate"],
        "wall_s": wall, "rtf": frames / FRAME_RATE / wall, "first_audio_s": first_chunk[0] - start if first_chunk else None,
        "retake_first_audio_s": retake_first_audio, "decode_tail_s": result.timings["decode"],
        "peak_rss_gb": peak_rss_gb(), "peak_anon_gb": anon.gb(),
        "foreign_cores": mon.foreign, "own_cores": mon.own_cores,
    }


def worker_hf(args) -> dict:
    import torch
    from transformers import DacModel, DiaForConditionalGeneration

    torch.set_grad_enabled(False)
    anon = AnonPeak()
    t0 = time.perf_counter()
    dtype = getattr(torch, args.dtype)
    model = DiaForConditionalGeneration.from_pretrained(args.dia, dtype=dtype).eval()
    dac = DacModel.from_pretrained(args.dac).eval()
    load = time.perf_counter() - t0
    ids = torch.tensor([list(SCRIPT.replace("[S1]", "\x01").replace("[S2]", "\x02").encode())])
    bos = torch.full((1, 1, 9), 1026, dtype=torch.long)
    times, marks = [], {}
    model.register_forward_pre_hook(lambda *_: marks.__setitem__("t", time.perf_counter()))
    model.register_forward_hook(lambda *_: times.append(time.perf_counter() - marks["t"]))

    def generate(n):
        torch.manual_seed(7)
        return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), decoder_input_ids=bos,
                              decoder_attention_mask=torch.ones(1, 16, dtype=torch.long), max_new_tokens=n,
                              min_new_tokens=n, do_sample=True, temperature=1.8, top_p=0.95, top_k=45,
                              guidance_scale=3.0)

    generate(20)  # warm-up
    times.clear()
    start = time.perf_counter()
    with LoadMonitor() as mon:
        codes = generate(args.steps + 1)[0]
        gen = time.perf_counter() - start
        delays = [0, 8, 9, 10, 11, 12, 13, 14, 15]
        frames = codes.shape[0] - 1 - 16
        undelayed = torch.stack([codes[1 + d:1 + d + frames, c] for c, d in enumerate(delays)], dim=1).clamp(0, 1023)
        t1 = time.perf_counter()
        dac.decode(audio_codes=undelayed.T.unsqueeze(0))
        dec = time.perf_counter() - t1
    wall = time.perf_counter() - start
    return {
        "name": f"transformers {args.dtype}", "load_s": load, "prefill_s": times[0],
        "ms_per_step": 1000 * statistics.median(times[1:]), "steps": len(times), "frames": frames,
        "frames_per_s": len(times) / gen, "wall_s": wall, "rtf": frames / FRAME_RATE / wall, "first_audio_s": wall,
        "decode_tail_s": dec, "peak_rss_gb": peak_rss_gb(), "peak_anon_gb": anon.gb(), "foreign_cores": mon.foreign,
        "own_cores": mon.own_cores,
    }


def worker_agree(args) -> dict:
    """Each int8 mode against bf16 on the same weights: teacher-forced logits and generated codes."""
    import torch

    import bench.no_eos  # noqa: F401
    from engine import native
    from engine.generate import generate_codes
    from engine.model.checkpoint import load_dia
    from engine.model.layers import Linear
    from engine.model.tokenizer import encode_text
    from engine.sampling import SamplingSettings

    text = encode_text(SCRIPT)
    ids = torch.tensor([text])
    ids = torch.cat([ids, torch.zeros_like(ids)])
    tokens = torch.randint(0, 1024, (1, 64, 9), generator=torch.Generator().manual_seed(0)).repeat(2, 1, 1)
    tokens[:, 0] = 1026

    def run(model):
        # teacher-forced, one frame per call: the per-step (two-row) kernels, as in a render
        state = model.start_decoder(model.encode(ids), None, 64)
        logits = torch.stack([model.decode(tokens[:, t:t + 1], state)[0] for t in range(tokens.shape[1])])
        greedy = generate_codes(model, text, SamplingSettings(temperature=0.0, max_new_tokens=args.steps + 1)).codes
        sampled = generate_codes(model, text, SamplingSettings(max_new_tokens=args.steps + 1, seed=7)).codes
        return logits, greedy, sampled

    def compare(a, b) -> dict:
        finite = torch.isfinite(a[0]) & torch.isfinite(b[0])  # the bench patch removes channel 0's EOS logit
        differ = (a[1] != b[1]).any(dim=1).nonzero()
        return {"logit_max_rel_diff": round(((a[0] - b[0])[finite].abs().max() / a[0][finite].abs().max()).item(), 4),
                "logit_argmax_agreement": round((a[0].argmax(-1) == b[0].argmax(-1)).float().mean().item(), 4),
                "greedy_code_agreement": round((a[1] == b[1]).float().mean().item(), 4),
                "greedy_first_divergent_frame": int(differ[0]) if len(differ) else None,
                "sampled_code_agreement": round((a[2] == b[2]).float().mean().item(), 4)}

    ref = run(load_dia(args.dia, dtype=torch.float32))
    model = load_dia(args.dia, dtype=torch.bfloat16)
    bf16 = run(model)  # native GEMV where built: float32 activations
    for module in model.modules():
        if isinstance(module, Linear):
            module.native_rows = 0
    bf16_torch = run(model)  # PyTorch's bf16 GEMV: bf16 activations, bf16 outputs
    del model
    out = {"frames": int(bf16[1].shape[0]), "native": native.isa(), "bf16 vs fp32": compare(ref, bf16),
           "bf16 (PyTorch kernels) vs fp32": compare(ref, bf16_torch)}
    for mode in ("int8", "int8-dynamic", "int4"):
        model = load_dia(args.dia, dtype=torch.bfloat16)
        kernel = model.quantize(mode)
        got = run(model)
        out[f"{mode} ({kernel}) vs bf16"] = compare(bf16, got)
        out[f"{mode} ({kernel}) vs fp32"] = compare(ref, got)
        del model
    return out


def run_process(cmd: list[str], env: dict | None = None) -> dict:
    start = time.perf_counter()
    busy0 = _cpu_busy_jiffies()
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed:\n{proc.stderr[-3000:]}")
    busy = (_cpu_busy_jiffies() - busy0) / os.sysconf("SC_CLK_TCK")
    return {"wall_s": wall, "busy_cores": busy / wall}


# ------------------------------------------------------------------------------ orchestration
def spawn(worker: str, **kwargs) -> dict:
    """Run a worker in its own process; returns its JSON result."""
    cmd = [sys.executable, __file__, "--worker", worker]
    for k, v in kwargs.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {worker} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def competing_load(args, configs, dia: str, dac: str, rows: list[dict]) -> dict:
    """Each config once more under N busy processes; prints and returns the slowdown vs unloaded."""
    unloaded = {r["name"]: r["ms_per_step"] for r in rows}
    out = {}
    print(f"\nUnder a competing load of {args.competing_load} busy processes "
          f"(one observation each; slowdown = loaded ÷ unloaded best ms/step):")
    for worker, dtype, quantize, kernels in configs:
        # ours twice: with the thread governor (engine/threads.py, the default) and without it
        for governor in ("1", "0") if worker == "ours" else ("1",):
            os.environ["DIA_STUDIO_THREAD_GOVERNOR"] = governor
            try:
                with BusyLoad(args.competing_load):
                    r = spawn(worker, dia=dia, dac=dac, dtype=dtype, quantize=quantize, steps=args.steps,
                              kernels=kernels)
            finally:
                os.environ.pop("DIA_STUDIO_THREAD_GOVERNOR", None)
            slowdown = r["ms_per_step"] / unloaded[r["name"]]
            name = r["name"] + (" (thread governor off)" if governor == "0" else "")
            out[name] = {"ms_per_step": r["ms_per_step"], "slowdown": slowdown, "own_cores": r["own_cores"]}
            print(f"  {name}: {fmt(r['ms_per_step'])} ms/step, ×{slowdown:.2f} slower "
                  f"(own {r['own_cores']:.2f} cores)", flush=True)
    return out


def print_step_table(report: dict) -> None:
    """The per-step table of a run (``--table FILE`` prints it again from the saved JSON).

    Floors divide each mode's weight bytes per step by the machine's read bandwidth: the median of the
    probes taken before every run (this VM's bandwidth drifts 25-48 GB/s over minutes, and a single
    probe can catch a fast moment the run after it does not get). Each run's own probe is printed too.
    """
    rows, runs = report["rows"], report["runs"]
    probes = [r["bandwidth_gbs"] for rs in runs.values() for r in rs if r.get("bandwidth_gbs")]
    first = report["bandwidth"]
    gbs = statistics.median(probes) if probes else max(v for v in (first["torch_sum_gbs"], first["native_gbs"]) if v)
    base = next(r for r in rows if r["name"] == "transformers bfloat16")
    dense = {r["name"].split()[1]: r["weight_bytes"] for r in rows
             if "weight_bytes" in r and len(r["name"].split()) == 2}
    for r in rows:  # transformers streams the same projections as our unquantised model of its dtype
        r.setdefault("weight_bytes", dense.get(r["name"].split()[1]))
        r["floor_ms"] = 1000 * r["weight_bytes"] / (gbs * 1e9) if r.get("weight_bytes") else None
        r["read_gbs"] = r["weight_bytes"] / (r["ms_per_step"] / 1000) / 1e9 if r.get("weight_bytes") else None
    print(f"\nPer-step benchmark: {report['steps']} decoder steps ({report['steps'] / FRAME_RATE:.2f} s of audio), "
          f"random {'TINY (smoke test)' if report.get('tiny') else 'full-size Dia-1.6B'} weights, CPU "
          f"{report['cpu']}; best of {report.get('repeats', 2)} alternating runs; floors at the median probe, "
          f"{gbs:.1f} GB/s (probes {', '.join(fmt(v) for v in probes)})")
    head = ("config", "ms/step", "×tf-bf16", "run's probe GB/s", "weights GB/s", "floor ms", "÷floor", "frames/s",
            "RTF", "1st audio s", "retake 1st audio s", "load s", "prefill s", "peak RSS GB", "peak anon GB", "foreign cores")
    print(" | ".join(head))
    for r in rows:
        ratio = r["ms_per_step"] / r["floor_ms"] if r.get("floor_ms") else None
        print(" | ".join([r["name"], fmt(r["ms_per_step"]), fmt(base["ms_per_step"] / r["ms_per_step"], 2),
                          fmt(r.get("bandwidth_gbs")), fmt(r.get("read_gbs")), fmt(r.get("floor_ms")), fmt(ratio, 2),
                          fmt(r["frames_per_s"], 2), fmt(r["rtf"], 3), fmt(r["first_audio_s"]),
                          fmt(r.get("retake_first_audio_s")), fmt(r["load_s"]),
                          fmt(r["prefill_s"], 2), fmt(r["peak_rss_gb"], 2), fmt(r["peak_anon_gb"], 2),
                          fmt(r["foreign_cores"], 2)]))
    for name, rs in runs.items():
        print(f"  {name}: ms/step per run " + ", ".join(fmt(r["ms_per_step"]) for r in rs))


def fmt(v, digits=1):
    return "—" if v is None else f"{v:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker")
    ap.add_argument("--table", metavar="FILE", help="print the per-step table of a saved --json run and exit")
    ap.add_argument("--dia")
    ap.add_argument("--dac")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--quantize", default="")
    ap.add_argument("--kernels", default="native", choices=["native", "torch"])
    ap.add_argument("--steps", type=int, default=300, help="decoder steps per render (≥ 255: max_new_tokens ≥ 256)")
    ap.add_argument("--process-steps", type=int, default=512, help="decoder steps of the whole-process renders")
    ap.add_argument("--skip-process", action="store_true")
    ap.add_argument("--process-only", action="store_true", help="only the whole-process comparison")
    ap.add_argument("--process-repeats", type=int, default=1, help="alternating rounds of whole processes; best kept")
    ap.add_argument("--fp32", action="store_true", help="also run both engines in float32 (slow)")
    ap.add_argument("--repeats", type=int, default=2, help="rounds over all configs (alternating); best is kept")
    ap.add_argument("--json", help="write all results to this file")
    ap.add_argument("--only", help="comma-separated per-step configs to run besides transformers bf16 "
                                   "(bf16, int8, int8-dynamic, int4, torch-kernels); default: all")
    ap.add_argument("--competing-load", type=int, default=0, metavar="N",
                    help="also run every config once more while N busy processes compete for the cores")
    ap.add_argument("--skip-agreement", action="store_true")
    ap.add_argument("--tiny", action="store_true",
                    help="tiny random models: checks the bench runs (numbers mean nothing)")
    args = ap.parse_args()
    if args.worker:
        result = {"ours": worker_ours, "hf": worker_hf, "agree": worker_agree,
                  "bandwidth": worker_bandwidth}[args.worker](args)
        print(json.dumps(result))
        return
    if args.table:
        report = json.loads(Path(args.table).read_text())
        report.setdefault("repeats", len(next(iter(report["runs"].values()))))
        print_step_table(report)
        return

    from engine.testing import write_full_size_models

    if args.tiny:
        from engine.testing import write_tiny_models

        tiny = Path(tempfile.mkdtemp(prefix="dia-bench-"))
        atexit.register(shutil.rmtree, tiny, ignore_errors=True)
        dia, dac = map(str, write_tiny_models(tiny))
    else:
        dia, dac = map(str, write_full_size_models(WEIGHTS))
    configs = [("hf", "bfloat16", "", "native"), ("ours", "bfloat16", "", "native"),
               ("ours", "bfloat16", "int8", "native"), ("ours", "bfloat16", "int8-dynamic", "native"),
               ("ours", "bfloat16", "int4", "native"), ("ours", "bfloat16", "", "torch")]
    if args.only:
        keep = {"bf16": ("", "native"), "int8": ("int8", "native"), "int8-dynamic": ("int8-dynamic", "native"),
                "int4": ("int4", "native"), "torch-kernels": ("", "torch")}
        wanted = {keep[name] for name in args.only.split(",")}
        configs = [c for c in configs if c[0] == "hf" or (c[2], c[3]) in wanted]
    if args.fp32:
        configs += [("hf", "float32", "", "native"), ("ours", "float32", "", "native")]
    print(f"CPU: {cpu_description()}", flush=True)
    bandwidth = spawn("bandwidth")
    print(f"read bandwidth on {bandwidth['threads']} threads: torch sum {fmt(bandwidth['torch_sum_gbs'])} GB/s, "
          f"native read loop {fmt(bandwidth['native_gbs'])} GB/s (probed again before every run; floors use "
          "the median probe)", flush=True)
    runs: dict[str, list[dict]] = {}
    for round_ in range(0 if args.process_only else args.repeats):  # alternating: slow phases hit every config
        for worker, dtype, quantize, kernels in configs:
            print(f"round {round_ + 1}: {worker} {dtype} {quantize} {kernels}…", file=sys.stderr, flush=True)
            probe = spawn("bandwidth")  # the bandwidth drifts: probed before every run (see print_step_table)
            r = spawn(worker, dia=dia, dac=dac, dtype=dtype, quantize=quantize, steps=args.steps, kernels=kernels)
            r["bandwidth_gbs"] = max(v for v in (probe["torch_sum_gbs"], probe["native_gbs"]) if v)
            runs.setdefault(r["name"], []).append(r)
    rows = [min(rs, key=lambda r: r["ms_per_step"]) for rs in runs.values()]
    report = {"steps": args.steps, "cpu": cpu_description(), "bandwidth": bandwidth, "rows": rows, "runs": runs,
              "repeats": args.repeats, "tiny": args.tiny}
    if not args.process_only:
        print_step_table(report)
    if args.competing_load and not args.process_only:
        report["competing_load"] = competing_load(args, configs, dia, dac, rows)

    if not args.skip_agreement and not args.process_only:
        print("\nagreement on the same weights (random full-size weights have tiny logit margins, so even bf16 "
              "vs fp32 disagrees often: read the int8 rows against the bf16-vs-fp32 row):", flush=True)
        agree = spawn("agree", dia=dia, dac=dac, steps=min(args.steps, 150))
        print(json.dumps(agree, indent=1))
        report["agreement"] = agree

    if not args.skip_process:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "script.txt"
            script.write_text(SCRIPT)
            n = args.process_steps
            ours_cmd = [sys.executable, "-c", "import bench.no_eos, sys; from app.launcher import main; "
                        "sys.exit(main(sys.argv[1:]))", "render", str(script), "-o", str(Path(tmp) / "ours.wav"),
                        "--model", dia, "--codec", dac, "--dtype", "bfloat16", "--device", "cpu", "--seed", "7",
                        "--max-new-tokens", str(n + 1), "--quiet"]
            hf_cmd = [sys.executable, str(ROOT / "bench" / "hf_render.py"), dia, dac, str(script),
                      str(Path(tmp) / "hf.wav"), str(n + 1), "bfloat16"]
            rounds: dict[str, list[dict]] = {}
            for round_ in range(args.process_repeats):  # alternating, like the per-step rounds
                for name, cmd in (("transformers process bf16", hf_cmd), ("dia-studio render bf16", ours_cmd),
                                  ("dia-studio render --quantize int8", ours_cmd + ["--quantize", "int8"]),
                                  ("dia-studio render --quantize int4", ours_cmd + ["--quantize", "int4"])):
                    print(f"process round {round_ + 1}: {name}…", file=sys.stderr, flush=True)
                    rounds.setdefault(name, []).append(run_process(cmd))
        processes = {name: min(runs_, key=lambda p: p["wall_s"]) for name, runs_ in rounds.items()}
        hf_wall = processes["transformers process bf16"]["wall_s"]
        print(f"\nWhole process (load, generate {n} steps = {n / FRAME_RATE:.1f} s audio, decode, write), "
              f"best of {args.process_repeats}:")
        for name, p in processes.items():
            each = " / ".join(f"{r['wall_s']:.1f}" for r in rounds[name])
            print(f"{name}: {p['wall_s']:.1f} s  (×{hf_wall / p['wall_s']:.2f} vs transformers; "
                  f"machine busy {p['busy_cores']:.2f} cores; rounds {each} s)")
        report["processes"] = processes
        report["process_rounds"] = rounds
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
