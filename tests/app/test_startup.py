"""``python -m app --self-test`` builds the real window off screen and reports every check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_python_m_app_self_test(tmp_path):
    report = tmp_path / "report.json"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "DIA_STUDIO_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-m", "app", f"--self-test={report}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(report.read_text(encoding="utf-8"))
    from app.self_test import CHECKS

    assert data["ok"] and set(data["checks"]) == set(CHECKS)
    assert data["checks"]["render"]["detail"]["seconds"] > 0
    assert Path(data["checks"]["window"]["detail"]).stat().st_size > 10_000
    assert "Traceback" not in out.stderr


def test_launcher_routes_subcommands_to_the_cli_and_nothing_to_the_window(monkeypatch):
    from app import launcher

    calls = []
    monkeypatch.setattr("engine.cli.main", lambda argv: calls.append(("cli", argv)) or 0)
    monkeypatch.setattr("app.main.main", lambda argv: calls.append(("app", argv)) or 0)
    assert launcher.main(["voices", "list"]) == 0
    assert launcher.main([]) == 0
    assert calls == [("cli", ["voices", "list"]), ("app", [])]
