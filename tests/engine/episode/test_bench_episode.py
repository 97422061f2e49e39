"""bench/bench_episode.py runs: its --tiny mode on the tiny random model (its figures are not checked)."""

from __future__ import annotations

import subprocess
import sys

from tests.engine.episode.episode_fixtures import ROOT, cli_env


def test_the_episode_benchmark_runs_on_the_tiny_model(tmp_path):
    report = tmp_path / "report.txt"
    run = subprocess.run([sys.executable, "bench/bench_episode.py", "--tiny", "--out", str(report)], cwd=ROOT,
                         env=cli_env(tmp_path / "data"), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    text = report.read_text(encoding="utf-8")
    assert text == run.stdout
    for phase in ("split", "prompt", "generate", "take writes", "queue", "read", "master", "write", "chapters json"):
        assert f"\n{phase} " in text
    assert "(0 failed)" in text and "overhead beyond generation:" in text and "load average" in text
