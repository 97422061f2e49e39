"""``python -m app --self-test`` builds the real window off screen and reports every check; the
``dia-studio`` command's own options (``--version``, ``--help``) and its routing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def dia_studio(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python -m app ARGS`` in a fresh process, the way the ``dia-studio`` command runs."""
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env or dict(os.environ),
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_python_m_app_self_test(tmp_path):
    report = tmp_path / "report.json"
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "DIA_STUDIO_DATA_DIR": str(tmp_path / "data"),
           "TMPDIR": str(tmp_path / "tmp")}
    out = dia_studio(f"--self-test={report}", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(report.read_text(encoding="utf-8"))
    from app.self_test import CHECKS, STATES

    assert data["ok"] and set(data["checks"]) == set(CHECKS)
    assert all(check["state"] in STATES and check["ok"] == (check["state"] != "failed")
               for check in data["checks"].values())
    assert data["counts"]["failed"] == 0 and sum(data["counts"].values()) == len(CHECKS)
    assert data["checks"]["render"]["detail"]["seconds"] > 0
    assert data["checks"]["window"]["detail"]["screenshot_bytes"] > 10_000
    assert out.stdout.splitlines()[0].startswith("Dia Studio self-test: ")  # the summary, with the states
    assert out.stdout.splitlines()[-1] == f"Report: {report}"
    assert "Traceback" not in out.stderr
    assert list((tmp_path / "tmp").glob("dia-studio-self-test-*")) == []


def test_version_prints_the_version():
    import engine

    out = dia_studio("--version", timeout=60)
    assert out.returncode == 0
    assert out.stdout.strip() == f"dia-studio {engine.__version__}"


def test_help_lists_the_self_test_version_and_subcommands():
    out = dia_studio("--help", timeout=60)
    assert out.returncode == 0
    for word in ("--self-test", "--version", "render", "download", "voices"):
        assert word in out.stdout, word


def test_launcher_routes_subcommands_to_the_cli_and_nothing_to_the_window(monkeypatch):
    from app import launcher

    calls = []
    monkeypatch.setattr("engine.cli.main", lambda argv: calls.append(("cli", argv)) or 0)
    monkeypatch.setattr("app.main.main", lambda argv: calls.append(("app", argv)) or 0)
    assert launcher.main(["voices", "list"]) == 0
    assert launcher.main([]) == 0
    assert launcher.main(["--self-test=r.json"]) == 0
    assert calls == [("cli", ["voices", "list"]), ("app", []), ("app", ["--self-test=r.json"])]


def test_self_test_report_path_with_or_without_equals_sign():
    from app.main import self_test_request

    assert self_test_request(["--self-test=r.json"]) == (True, "r.json", [])
    assert self_test_request(["--self-test", "r.json"]) == (True, "r.json", [])
    assert self_test_request(["--self-test"]) == (True, None, [])
    assert self_test_request(["-style", "fusion"]) == (False, None, ["-style", "fusion"])
