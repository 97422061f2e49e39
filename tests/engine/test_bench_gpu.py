"""bench/bench_gpu.py runs end to end on the CPU with the tiny model, so it is ready for a GPU machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]


def test_bench_gpu_runs_on_the_cpu_with_the_tiny_model(tmp_path):
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_gpu.py"), "--device", "cpu", "--tiny", "--steps", "40",
         "--agree-steps", "20", "--dtypes", "bfloat16", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    names = [r["name"] for r in report["rows"]]
    assert names == ["transformers bfloat16", "ours bfloat16 static", "ours bfloat16 loop"]
    for row in report["rows"]:
        assert row["steps"] == 40 and row["frames_per_s"] > 0 and row["rtf"] > 0
    ours = report["rows"][1]
    assert ours["frames"] == 40 - 15  # EOS suppressed: the render runs all its steps
    assert ours["dac_x_real_time"] > 0 and ours["dac_stream_x_real_time"] > 0 and ours["x_transformers"] > 0
    agreement = report["agreement"]["bfloat16"]
    assert agreement["step_mode"] == "static" and agreement["argmax_agreement"] >= 0.9
    assert "frames/s" in proc.stdout and "against float32" in proc.stdout
