"""The self-test's checks: three states (ok, warning, failed), the read-only check of the user's real
data folder, missing native kernels, the real API server, and a report path that can't be written."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.self_test import (
    CHECKS,
    FAILED,
    OK,
    WARNING,
    check_api_server,
    check_cpu_kernels,
    check_user_data,
    run_check,
    summary,
)

ROOT = Path(__file__).resolve().parents[2]


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under ``folder`` with its size, modification time and mode."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_mode)
            for p in sorted(folder.rglob("*"))}


def real_library(folder: Path) -> None:
    """A data folder as the app leaves it: a voice library and a render history with one take."""
    import engine

    engine.VoiceLibrary(folder / "voices").close()
    with engine.RenderHistory(folder / "history") as history:
        history.add(script="[S1] Hi.", audio_samples=np.zeros(4410, np.float32), sample_rate=44100,
                    params=engine.GenerationParams(seed=1), seed=1, render_seconds=0.1, model="tiny")


# --------------------------------------------------------------------------- states


def test_a_check_that_raises_is_failed_with_its_error():
    def broken():
        raise OSError("disk on fire")

    entry = run_check(broken)
    assert entry["state"] == FAILED and entry["ok"] is False
    assert entry["message"] == "OSError: disk on fire"


def test_the_summary_names_each_state():
    checks = {"qt": run_check(lambda: "Qt 6"), "audio": {"state": WARNING, "ok": True, "detail": "none",
                                                          "message": "No audio output found."},
              "render": {"state": FAILED, "ok": False, "detail": "boom", "message": "RuntimeError: boom"}}
    lines = summary(checks)
    assert lines[0] == "Dia Studio self-test: 1 ok, 1 warning, 1 failed"
    assert lines[1].split()[:3] == ["ok", "qt", "Qt"]
    assert lines[2].split()[:2] == ["warning", "audio"] and lines[2].endswith("No audio output found.")
    assert lines[3].split()[:2] == ["failed", "render"] and lines[3].endswith("RuntimeError: boom")


# --------------------------------------------------------------------------- native kernels


@pytest.fixture
def reload_native():
    """Forget which native library was loaded, before and after the test (engine.native caches it)."""
    from engine import native

    native._load.cache_clear()
    yield native
    native._load.cache_clear()


def test_missing_native_kernel_sources_are_a_warning_not_a_crash(reload_native, tmp_path, monkeypatch):
    # A bundle built without the kernels ships neither the library nor kernels.cpp.
    monkeypatch.setattr(reload_native, "SOURCES", (tmp_path / "kernels.cpp", tmp_path / "kernels_simd.inc"))
    import engine

    assert engine.cpu_kernels() == "PyTorch"
    entry = run_check(check_cpu_kernels)
    assert entry["state"] == WARNING, entry
    assert entry["message"].startswith("PyTorch kernels in use")
    assert entry["detail"]["kernels"] == "PyTorch" and entry["detail"]["isa"] is None


def test_disabled_native_kernels_are_a_warning(reload_native, monkeypatch):
    monkeypatch.setenv("DIA_STUDIO_NATIVE", "0")
    entry = run_check(check_cpu_kernels)
    assert entry["state"] == WARNING
    assert "PyTorch kernels in use" in entry["message"] and "DIA_STUDIO_NATIVE=0" in entry["message"]


# --------------------------------------------------------------------------- the user's real data folder


def test_a_healthy_library_passes_and_is_left_untouched(tmp_path):
    folder = tmp_path / "real"
    real_library(folder)
    before = snapshot(folder)
    entry = run_check(lambda: check_user_data(folder))
    assert entry["state"] == OK, entry
    assert entry["detail"]["databases"] == {"voices/library.sqlite3": "ok", "history/history.sqlite3": "ok"}
    assert snapshot(folder) == before  # read only: no file created, written or re-moded


def test_a_corrupt_library_database_fails_naming_the_file(tmp_path):
    folder = tmp_path / "real"
    real_library(folder)
    database = folder / "voices" / "library.sqlite3"
    database.write_bytes(b"not a database at all " * 500)
    entry = run_check(lambda: check_user_data(folder))
    assert entry["state"] == FAILED
    assert str(database) in entry["message"] and "damaged" in entry["message"]


def test_a_damaged_history_database_fails(tmp_path):
    folder = tmp_path / "real"
    real_library(folder)
    with sqlite3.connect(folder / "history" / "history.sqlite3") as conn:  # enough pages to cut in half
        conn.execute("CREATE TABLE padding (x BLOB)")
        conn.executemany("INSERT INTO padding VALUES (?)", [(os.urandom(500),) for _ in range(400)])
    conn.close()
    database = folder / "history" / "history.sqlite3"
    database.write_bytes(database.read_bytes()[: database.stat().st_size // 2])
    entry = run_check(lambda: check_user_data(folder))
    assert entry["state"] == FAILED and "history.sqlite3" in entry["message"]


def test_a_data_folder_that_is_a_file_fails(tmp_path):
    folder = tmp_path / "real"
    folder.write_text("oops")
    entry = run_check(lambda: check_user_data(folder))
    assert entry["state"] == FAILED and "is a file" in entry["message"]


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root may write anywhere; POSIX modes")
def test_an_unwritable_data_folder_fails(tmp_path):
    folder = tmp_path / "real"
    real_library(folder)
    folder.chmod(0o500)
    try:
        entry = run_check(lambda: check_user_data(folder))
    finally:
        folder.chmod(0o700)
    assert entry["state"] == FAILED and "not writable" in entry["message"]


def test_a_data_folder_not_created_yet_is_fine(tmp_path):
    entry = run_check(lambda: check_user_data(tmp_path / "not-yet"))
    assert entry["state"] == OK and entry["detail"]["created"] is False
    assert not (tmp_path / "not-yet").exists()


# --------------------------------------------------------------------------- the API server


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> tuple[Path, Path]:
    from engine import write_tiny_models

    return write_tiny_models(tmp_path_factory.mktemp("self-test-models"))


def is_listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_api_server_check_answers_over_http_and_stops(tiny_models, tmp_path):
    import engine

    entry = run_check(lambda: check_api_server(tiny_models, tmp_path / "api"))
    assert entry["state"] == OK, entry
    detail = entry["detail"]
    assert detail["health"] == "ok" and detail["models"] == ["dia"] and detail["unauthorized"] == 401
    assert detail["speech"]["sample_rate"] == engine.TARGET_SAMPLE_RATE and detail["speech"]["bytes"] >= 44
    assert not is_listening(detail["port"])  # stopped, its socket closed


def test_an_api_server_port_that_cannot_be_bound_fails_with_what_to_do(tiny_models, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        entry = run_check(lambda: check_api_server(tiny_models, tmp_path / "api", port=port))
    assert entry["state"] == FAILED and entry["ok"] is False
    assert entry["message"].startswith(f"RuntimeError: the API server can't start: Can't listen on 127.0.0.1:{port}")
    assert "Choose another port" in entry["message"] and "Traceback" not in entry["message"]


def test_an_api_server_missing_from_the_install_fails_naming_the_module(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as in a bundle built without it: the import fails
    entry = run_check(lambda: check_api_server(tiny_models, tmp_path / "api"))
    assert entry["state"] == FAILED
    assert entry["message"].startswith("RuntimeError: the API server is missing from this install (")
    assert "uvicorn" in entry["message"] and entry["message"].endswith("reinstall Dia Studio")


# --------------------------------------------------------------------------- the command


def run_self_test(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    full_env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "DIA_STUDIO_DATA_DIR": str(tmp_path / "data"),
                "TMPDIR": str(temp), **env}
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_a_report_in_a_missing_folder_is_a_one_line_error(tmp_path):
    out = run_self_test(tmp_path, f"--self-test={tmp_path / 'missing' / 'r.json'}")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    expected = (f"dia-studio --self-test: can't write the report to {tmp_path / 'missing' / 'r.json'}: "
                f"the folder {tmp_path / 'missing'} does not exist; create it or choose another path")
    assert out.stderr.strip().splitlines() == [expected]


def test_warnings_show_in_the_printed_report_and_summary_and_pass(tmp_path):
    # No native kernels and no audio output: both work around it, so warnings, exit status 0.
    no_outputs = tmp_path / "no-outputs.conf"
    no_outputs.write_text("pcm.nothing { type hw card 99 }\n")  # an ALSA setup without sound cards
    out = run_self_test(tmp_path, "--self-test", DIA_STUDIO_NATIVE="0", ALSA_CONFIG_PATH=str(no_outputs))
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)  # without a path the JSON goes to stdout, the summary to stderr
    assert report["ok"] is True and report["counts"]["failed"] == 0
    assert list(report["checks"]) == list(CHECKS)
    assert report["checks"]["api_server"]["state"] == OK
    assert report["checks"]["cpu_kernels"]["state"] == WARNING
    assert report["checks"]["audio"]["state"] == WARNING
    assert report["checks"]["audio"]["message"].startswith("No audio output found")
    lines = out.stderr.splitlines()
    assert any(line.split()[:2] == ["warning", "cpu_kernels"] and "PyTorch kernels in use" in line for line in lines)
    assert any(line.split()[:2] == ["warning", "audio"] for line in lines)
    assert "Traceback" not in out.stderr
    assert list((tmp_path / "tmp").glob("dia-studio-self-test-*")) == []  # its temp folder is removed
