"""Getting the model with no network: the Hub can't be reached, retries are reported, a cancel stops them.

Every "Hub" here is on 127.0.0.1: a port nobody listens on (connection refused), a listening socket that
accepts and then never answers (a black hole: what a dropped connection looks like), and one that accepts
and hangs up at once. ``download_repo`` is called in this process (``endpoint=`` points it at the port);
huggingface_hub itself is never reached, because the Hub is probed before it is asked for anything.

A call must return before a watchdog thread gives up on it (``WATCHDOG_S``): that bounds how long a user
without network waits, without asserting on speed.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from engine.errors import CancelledError, DownloadError, ModelNotFoundError
from engine.model.hub import DIA_REPO, RETRY_DELAYS_S, DownloadProgress, download_repo, resolve_model

WATCHDOG_S = 15.0


@pytest.fixture(autouse=True)
def online(monkeypatch):
    """The suite runs with HF_HUB_OFFLINE=1; these tests are about being online with no network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Listener:
    """A loopback socket that accepts connections and either holds them (black hole) or closes them."""

    hold: bool
    accepted: threading.Event = field(default_factory=threading.Event)
    connections: list[socket.socket] = field(default_factory=list)
    count: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed by close()
                return
            self.count += 1
            if self.hold:
                self.connections.append(conn)
            else:
                conn.close()
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def black_hole():
    listener = Listener(hold=True)
    yield listener
    listener.close()


@pytest.fixture
def hang_up():
    listener = Listener(hold=False)
    yield listener
    listener.close()


@pytest.fixture
def refused_url() -> str:
    with socket.socket() as s:  # bound, never listening, released: connections to it are refused
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def within_watchdog(call: Callable[[], object]) -> BaseException | object:
    """``call()``'s result or exception; fails if it has not returned after ``WATCHDOG_S``."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(WATCHDOG_S)
    assert not worker.is_alive(), f"still waiting for the Hub after {WATCHDOG_S:.0f} s"
    return outcome[0]


def download(url: str, tmp_path, notices: list[DownloadProgress], should_stop=None):
    return lambda: download_repo(DIA_REPO, endpoint=url, cache_dir=tmp_path / "cache", progress=notices.append,
                                 should_stop=should_stop)


def test_connection_refused_is_a_download_error(refused_url, tmp_path):
    notices: list[DownloadProgress] = []
    error = within_watchdog(download(refused_url, tmp_path, notices))
    assert isinstance(error, DownloadError) and error.code == "download_failed"
    message = str(error)
    assert "could not be reached" in message and "connection refused" in message and refused_url in message
    assert DIA_REPO in message and "network" in message and "folder" in message and "\n" not in message
    assert not (tmp_path / "cache").exists()  # nothing was written


def test_black_hole_is_a_download_error(black_hole, tmp_path):
    notices: list[DownloadProgress] = []
    error = within_watchdog(download(black_hole.url, tmp_path, notices))
    assert isinstance(error, DownloadError), error
    assert "could not be reached" in str(error) and "no answer within" in str(error)
    assert black_hole.count == len(RETRY_DELAYS_S) + 1  # one probe per try, then it gave up


def test_hang_up_without_an_answer_is_a_download_error(hang_up, tmp_path):
    error = within_watchdog(download(hang_up.url, tmp_path, []))
    assert isinstance(error, DownloadError) and "could not be reached" in str(error)


def test_each_retry_is_reported_with_its_delay(refused_url, tmp_path):
    notices: list[DownloadProgress] = []
    within_watchdog(download(refused_url, tmp_path, notices))
    assert [n.retry_in for n in notices] == list(RETRY_DELAYS_S)
    assert [(n.retry, n.retries) for n in notices] == [(i + 1, len(RETRY_DELAYS_S)) for i in range(len(notices))]
    for notice in notices:
        assert "Hugging Face Hub" in notice.problem and "connection refused" in notice.problem
        assert f"retrying in {notice.retry_in:.0f} s…" in notice.text and notice.text.startswith("Can't reach")


def test_a_cancel_stops_the_retries(hang_up, tmp_path):
    notices: list[DownloadProgress] = []
    error = within_watchdog(download(hang_up.url, tmp_path, notices, should_stop=lambda: bool(notices)))
    assert isinstance(error, CancelledError) and error.code == "cancelled"
    assert len(notices) == 1 and hang_up.count == 1  # no second try after the first retry notice


def test_a_cancel_stops_a_probe_that_waits_for_an_answer(black_hole, tmp_path):
    notices: list[DownloadProgress] = []
    error = within_watchdog(download(black_hole.url, tmp_path, notices, should_stop=black_hole.accepted.is_set))
    assert isinstance(error, CancelledError)
    assert notices == []  # it did not sit out the probe's timeout and schedule a retry


def test_cancelled_before_it_starts_reaches_nothing(hang_up, tmp_path):
    error = within_watchdog(download(hang_up.url, tmp_path, [], should_stop=lambda: True))
    assert isinstance(error, CancelledError) and hang_up.count == 0


def test_resolve_model_reports_the_unreachable_hub(refused_url, tmp_path):
    notices: list[DownloadProgress] = []
    error = within_watchdog(lambda: resolve_model(DIA_REPO, offline=False, cache_dir=tmp_path / "cache",
                                                  endpoint=refused_url, progress=notices.append))
    assert isinstance(error, DownloadError) and len(notices) == len(RETRY_DELAYS_S)


def test_offline_environment_never_probes(hang_up, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    error = within_watchdog(download(hang_up.url, tmp_path, []))
    assert isinstance(error, ModelNotFoundError) and "offline mode is on" in str(error)
    assert hang_up.count == 0


@pytest.mark.parametrize("make_error", [
    lambda: resolve_model(DIA_REPO, offline=True, cache_dir="/nonexistent-cache"),
    lambda: download_repo(DIA_REPO, endpoint="http://127.0.0.1:9"),
], ids=["offline-cache-miss", "offline-environment"])
def test_messages_do_not_start_with_the_repo_id(make_error, monkeypatch):
    """An interface capitalises a message's first letter: "Nari-labs/..." is not the repository's name."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        make_error()
    assert not str(err.value).startswith(DIA_REPO) and DIA_REPO in str(err.value)
