"""``dia-studio download``: what it accepts, what it prints, and how it behaves without network.

The command runs in a real subprocess (``python -m app.launcher download ...``) against the fake Hub of
``test_hub`` on 127.0.0.1, or against a loopback port nobody listens on. No real host is ever contacted.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine.cli import build_parser, download_targets
from engine.errors import ModelNotFoundError
from engine.model.hub import DAC_REPO, DIA_REPO, RETRY_DELAYS_S, resolve_model
from tests.engine.test_hub import (
    SHARDED_NEEDED,
    SHARDED_REPO,
    SINGLE_REPO,
    fake_hub,  # noqa: F401 - the fixture behind ``hub``
    repo_cache,
    socket_bound_but_closed,
)

ROOT = Path(__file__).resolve().parents[2]
WATCHDOG_S = 20  # the subprocess's own start-up (imports) comes on top of the engine's bounded wait
RAW_LIBRARY_LINES = re.compile(r"\[Retry \d+/\d+\]|thrown while requesting|Traceback")


@pytest.fixture
def hub(request):
    """``test_hub``'s fake Hub on 127.0.0.1 (its ``fake_hub`` fixture)."""
    return request.getfixturevalue("fake_hub")


def cli_env(hf_home: Path, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE_")) and k.lower() not in
           {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}}
    env.update({"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": endpoint, "HF_HOME": str(hf_home),
                "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "NO_PROXY": "127.0.0.1,localhost",
                "PYTHONPATH": str(ROOT)})
    return env


def download(hf_home: Path, endpoint: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.launcher", "download", *args], cwd=ROOT,
                          env=cli_env(hf_home, endpoint), capture_output=True, text=True, timeout=WATCHDOG_S * 3,
                          check=False)


def parse(*argv: str):
    return build_parser().parse_args(["download", *argv])


# -- what it accepts


def test_the_command_the_offline_message_recommends_parses():
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(DIA_REPO, offline=True, cache_dir="/nonexistent-cache")
    command = re.search(r"dia-studio (download [^)\s]+)", str(err.value)).group(1)
    assert download_targets(build_parser().parse_args(command.split())) == [DIA_REPO]


@pytest.mark.parametrize("argv, expected", [
    ((), [DIA_REPO, DAC_REPO]),
    ((DIA_REPO,), [DIA_REPO]),
    ((DAC_REPO,), [DAC_REPO]),
    ((DIA_REPO, DAC_REPO), [DIA_REPO, DAC_REPO]),
    (("~/models/dia", "~/models/dac"), ["~/models/dia", "~/models/dac"]),
    (("--model", "~/models/dia"), ["~/models/dia", DAC_REPO]),
    (("--codec", "~/models/dac"), [DIA_REPO, "~/models/dac"]),
    ((DIA_REPO, "--codec", "~/models/dac"), [DIA_REPO, "~/models/dac"]),
    ((DIA_REPO, DIA_REPO), [DIA_REPO]),
], ids=["defaults", "model-repo", "codec-repo", "both-repos", "folders", "model-option", "codec-option",
        "mixed", "duplicate"])
def test_what_download_fetches(argv, expected):
    assert download_targets(parse(*argv)) == expected


def test_download_repo_ids_given_as_arguments(hub, tmp_path):
    run = download(tmp_path, hub.hub_url, SHARDED_REPO, SINGLE_REPO)
    assert run.returncode == 0, run.stderr
    snapshot = repo_cache(tmp_path, SHARDED_REPO) / "snapshots"
    assert sorted(p.name for p in next(snapshot.iterdir()).iterdir()) == sorted(SHARDED_NEEDED)
    assert (repo_cache(tmp_path, SINGLE_REPO) / "snapshots").is_dir()
    assert f"Downloading {SHARDED_REPO}" in run.stderr and str(tmp_path / "hub") in run.stderr
    assert f"{SHARDED_REPO}: ready in" in run.stderr and f"{SINGLE_REPO}: ready in" in run.stderr

    again = download(tmp_path, hub.hub_url, SHARDED_REPO)  # already there: nothing to announce
    assert again.returncode == 0 and "Downloading" not in again.stderr and "ready in" in again.stderr


def test_download_accepts_a_folder(hub, tmp_path):
    folder = tmp_path / "my-dia"
    folder.mkdir()
    run = download(tmp_path, hub.hub_url, str(folder))
    assert run.returncode == 0, run.stderr
    assert f"ready in {folder}" in run.stderr and hub.take_requests() == []


def test_a_missing_folder_is_one_clear_error(hub, tmp_path):
    run = download(tmp_path, hub.hub_url, str(tmp_path / "nope"))
    assert run.returncode == 2 and run.stderr.strip().splitlines()[-1].startswith("error [model_not_found]:")
    assert "does not exist" in run.stderr and "Traceback" not in run.stderr


# -- without network


def test_without_network_it_says_so_and_shows_the_retries(tmp_path):
    with socket_bound_but_closed() as port:
        run = download(tmp_path, f"http://127.0.0.1:{port}", DIA_REPO)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    retries = [line for line in lines if "retrying in" in line]
    assert [re.search(r"retrying in (\d+) s", line).group(1) for line in retries] == \
        [f"{d:.0f}" for d in RETRY_DELAYS_S]
    assert all("connection refused" in line and "Ctrl+C" in line for line in retries)
    assert lines[-1].startswith("error [download_failed]:") and "could not be reached" in lines[-1]
    assert not RAW_LIBRARY_LINES.search(run.stderr), run.stderr


def stop_at_first_retry(hf_home: Path, endpoint: str, *args: str) -> tuple[int, str]:
    """Run ``download``, press Ctrl+C (SIGINT) once a retry is announced; the exit code and all of stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "app.launcher", "download", *args], cwd=ROOT,
                            env=cli_env(hf_home, endpoint), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    watchdog = threading.Timer(WATCHDOG_S * 2, proc.kill)
    watchdog.start()
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if "retrying in" in line.lower() and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        return proc.wait(), "".join(seen)
    finally:
        watchdog.cancel()


def test_ctrl_c_stops_the_retries(tmp_path):
    with socket_bound_but_closed() as port:
        code, stderr = stop_at_first_retry(tmp_path, f"http://127.0.0.1:{port}", DIA_REPO)
    assert code == 130 and "cancelled" in stderr.strip().splitlines()[-1].lower(), stderr
    assert stderr.count("retrying in") == 1


def test_library_log_lines_stay_off_the_terminal(hub, tmp_path):
    hub.failures[("HEAD", "config.json")] = 500  # huggingface_hub retries this, logging each try
    code, stderr = stop_at_first_retry(tmp_path, hub.hub_url, SHARDED_REPO)
    assert code == 130, stderr
    assert "HTTP 500: retrying in" in stderr  # the CLI's own line, from the retry notice
    assert not RAW_LIBRARY_LINES.search(stderr), stderr


def test_verbose_shows_library_log_lines(hub, tmp_path):
    hub.failures[("HEAD", "config.json")] = 500
    code, stderr = stop_at_first_retry(tmp_path, hub.hub_url, SHARDED_REPO, "--verbose")
    assert code == 130, stderr
    assert "huggingface_hub" in stderr and "HTTP Error 500 thrown while requesting" in stderr
