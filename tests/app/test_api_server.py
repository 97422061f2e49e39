"""Tools ▸ Local API server: the engine's HTTP API served from inside the app, rendering with the app's
one engine (the real window, the tiny model, a real uvicorn server on 127.0.0.1, httpx as the client)."""

from __future__ import annotations

import io
import re
import socket
import threading

import httpx
import pytest
import soundfile as sf
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

import engine
from app import settings as opts
from app.api_server import API_SERVER_LAN, API_SERVER_ON, API_SERVER_PORT, LOOPBACK_HOST
from app.workers import API, CANCELLED, DONE
from tests.app.conftest import make_window

SCRIPT = "[S1] Hello from a script. [S2] And hello back."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK_HOST, 0))
        return sock.getsockname()[1]


def is_listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((LOOPBACK_HOST, port)) == 0


class Request(threading.Thread):
    """One HTTP call on its own thread: the window's event loop must keep running while it waits."""

    def __init__(self, method: str, url: str, **kwargs) -> None:
        super().__init__(daemon=True)
        self.method, self.url, self.kwargs = method, url, kwargs
        self.response: httpx.Response | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.response = httpx.request(self.method, self.url, timeout=120, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


@pytest.fixture
def counted_loads(monkeypatch):
    """Every ``DiaEngine.load`` the process makes (the real load, counted)."""
    loads = []
    real = engine.DiaEngine.load

    def load(*args, **kwargs):
        dia = real(*args, **kwargs)
        loads.append(dia)
        return dia

    monkeypatch.setattr(engine.DiaEngine, "load", load)
    return loads


def start_from_dialog(qtbot, window, port: int):
    dialog = window.open_api_server()
    dialog.port.setValue(port)
    qtbot.mouseClick(dialog.toggle, Qt.MouseButton.LeftButton)
    assert window.api_server.running, dialog.message.text()
    return dialog


def generation(window, port: int, body: dict) -> Request:
    """POST /v1/voice/generations to the app's server, with its token, on a thread of its own."""
    return Request("POST", f"http://{LOOPBACK_HOST}:{port}/v1/voice/generations",
                   headers={"Authorization": f"Bearer {window.api_server.token}"}, json=body)


def long_script(lines: int) -> str:
    """A dialogue of ``lines`` turns, longer than one render from about six."""
    return " ".join(f"[S{1 + i % 2}] This is line number {i} of a rather long conversation about the weather."
                    for i in range(lines))


def test_tools_menu_opens_the_api_server_dialog(qtbot, window):
    action = next(a for a in window.findChildren(type(window.menus.render_action))
                  if a.objectName() == "action_api_server")
    action.trigger()
    assert window.api_dialog is not None and window.api_dialog.isVisible()
    assert window.api_dialog.toggle.text() == "Start" and not window.api_server.running


def test_an_api_render_uses_the_apps_one_engine_shows_in_the_queue_and_the_history_via_api(
        qtbot, window, counted_loads, test_output_dir):
    port = free_port()
    dialog = start_from_dialog(qtbot, window, port)
    assert dialog.url.text() == f"http://{LOOPBACK_HOST}:{port}/v1"
    assert dialog.status.text().startswith(f"Running on port {port}")
    qtbot.mouseClick(dialog.copy_token, Qt.MouseButton.LeftButton)
    token = QApplication.clipboard().text()
    assert len(token) >= 16 and token == window.api_server.token
    dialog.grab().save(str(test_output_dir / "api-server-dialog.png"))

    # a render from the window first: it loads the one engine
    window.document.set_text("[S1] First the window renders.")
    job = window.render()
    qtbot.waitUntil(lambda: job.state == DONE, timeout=120000)
    assert len(counted_loads) == 1
    the_engine = window.queue.worker.engine

    seen = []
    window.queue.jobAdded.connect(seen.append)
    call = Request("POST", dialog.url.text() + "/voice/generations", headers={"Authorization": f"Bearer {token}"},
                   json={"input": SCRIPT, "max_new_tokens": 256, "seed": 5})
    qtbot.waitUntil(lambda: not call.is_alive(), timeout=120000)
    assert call.error is None and call.response.status_code == 200, call.response.text
    audio, rate = sf.read(io.BytesIO(call.response.content), dtype="float32")
    assert rate == engine.TARGET_SAMPLE_RATE and audio.size > 0

    api_jobs = [j for j in seen if j.origin == API]
    assert len(api_jobs) == 1 and api_jobs[0].state == DONE  # it waited in the app's queue
    assert api_jobs[0].title.startswith("via API")
    assert api_jobs[0] in window.queue.jobs
    assert len(counted_loads) == 1 and window.queue.worker.engine is the_engine  # no second model
    entry_id = int(call.response.headers["X-Dia-History-Id"])
    qtbot.waitUntil(lambda: any(e.id == entry_id for e in window.history_panel.model.rows), timeout=10000)
    shown = next(e for e in window.history_panel.model.rows if e.id == entry_id)
    assert shown.label == "via API" and shown.seed == 5


def test_stopping_the_server_closes_the_port_and_is_remembered(qtbot, window):
    port = free_port()
    dialog = start_from_dialog(qtbot, window, port)
    assert is_listening(port)
    assert window.settings.get(API_SERVER_ON) and window.settings.get(API_SERVER_PORT) == port
    qtbot.mouseClick(dialog.toggle, Qt.MouseButton.LeftButton)
    assert not window.api_server.running and not is_listening(port)
    assert dialog.toggle.text() == "Start" and dialog.status.text() == "Stopped" and dialog.url.text() == ""
    assert not window.settings.get(API_SERVER_ON)


def test_a_server_running_at_quit_starts_again_at_launch(qtbot, model_settings):
    port = free_port()
    model_settings.set(API_SERVER_ON, True)
    model_settings.set(API_SERVER_PORT, port)
    first = make_window(qtbot, model_settings)
    assert first.api_server.running and is_listening(port)
    first.shutdown()  # quitting stops it (the port is free again) but remembers it was running
    assert not is_listening(port) and model_settings.get(API_SERVER_ON)
    second = make_window(qtbot, model_settings)
    assert second.api_server.running and is_listening(port)
    health = httpx.get(f"http://{LOOPBACK_HOST}:{port}/health", timeout=10)
    assert health.status_code == 200


def test_the_token_is_required(qtbot, window):
    port = free_port()
    start_from_dialog(qtbot, window, port)
    call = Request("GET", f"http://{LOOPBACK_HOST}:{port}/v1/models", headers={"Authorization": "Bearer wrong"})
    qtbot.waitUntil(lambda: not call.is_alive(), timeout=10000)
    assert call.response.status_code == 401


def test_the_model_card_reports_the_precision_of_the_model_settings(qtbot, model_settings):
    model_settings.set(opts.QUANTIZE_MODE, "int8")  # the tiny model (folder "dia") in float32, int8 weights
    window = make_window(qtbot, model_settings)
    port = free_port()
    start_from_dialog(qtbot, window, port)
    models = httpx.get(f"http://{LOOPBACK_HOST}:{port}/v1/models", timeout=10,
                       headers={"Authorization": f"Bearer {window.api_server.token}"})
    assert [(card["id"], card["precision"]) for card in models.json()["data"]] == [("dia", "fp32-int8")]


def test_allowing_other_computers_is_off_by_default_and_warns(qtbot, window, test_output_dir):
    dialog = window.open_api_server()
    assert not dialog.lan.isChecked() and not window.settings.get(API_SERVER_LAN)
    assert not dialog.warning.isVisible()
    dialog.lan.setChecked(True)
    assert dialog.warning.isVisible() and "token" in dialog.warning.text()
    dialog.grab().save(str(test_output_dir / "api-server-dialog-network.png"))


def test_a_port_in_use_is_a_message_not_a_crash(qtbot, window):
    with socket.socket() as taken:
        taken.bind((LOOPBACK_HOST, 0))
        taken.listen(1)
        dialog = window.open_api_server()
        dialog.port.setValue(taken.getsockname()[1])
        qtbot.mouseClick(dialog.toggle, Qt.MouseButton.LeftButton)
    assert not window.api_server.running
    assert dialog.last_error is not None and "Choose another port" in dialog.last_error.message
    assert "can't start" in dialog.message.text()


def test_a_render_cancelled_in_the_app_tells_the_api_client(qtbot, window):
    port = free_port()
    start_from_dialog(qtbot, window, port)
    started = []
    window.queue.renderStarted.connect(started.append)
    call = generation(window, port, {"input": SCRIPT * 3, "max_new_tokens": 2048, "seed": 1})
    qtbot.waitUntil(lambda: bool(started), timeout=120000)
    window.queue.cancel(started[0].id)
    qtbot.waitUntil(lambda: not call.is_alive(), timeout=30000)
    assert call.response.status_code == 409
    assert call.response.json()["error"]["type"] == "cancelled"


def test_a_script_longer_than_one_render_goes_block_by_block_through_the_apps_engine(qtbot, window, counted_loads):
    port = free_port()
    start_from_dialog(qtbot, window, port)
    seen = []
    window.queue.jobAdded.connect(seen.append)
    call = generation(window, port, {"input": long_script(12), "max_new_tokens": 256, "seed": 3})
    qtbot.waitUntil(lambda: not call.is_alive(), timeout=300000)
    assert call.error is None and call.response.status_code == 200, call.response.text
    assert int(call.response.headers["X-Dia-Blocks"]) > 1
    assert [j.origin for j in seen] == [API] and seen[0].state == DONE  # one job held the engine for all blocks
    assert len(counted_loads) == 1


def test_cancelling_a_long_script_in_the_apps_queue_stops_it_and_tells_the_api_client(qtbot, window):
    port = free_port()
    start_from_dialog(qtbot, window, port)
    started = []
    window.queue.renderStarted.connect(started.append)
    call = generation(window, port, {"input": long_script(12), "max_new_tokens": 256, "seed": 3})
    qtbot.waitUntil(lambda: bool(started), timeout=120000)
    window.queue.cancel(started[0].id)  # the client is still connected: only the Queue asks to stop
    qtbot.waitUntil(lambda: not call.is_alive(), timeout=60000)
    assert call.error is None and call.response.status_code == 409, call.response.text
    assert call.response.json()["error"]["type"] == "cancelled"
    assert started[0].state == CANCELLED
    health = httpx.get(f"http://{LOOPBACK_HOST}:{port}/health", timeout=10).json()["queue"]
    assert health["rendering"] == 0 and health["waiting"] == 0


def queue_row_texts(window, qtbot) -> list[tuple[str, str]]:
    """(state, progress) as the Queue panel shows them for API jobs, each time a job changes."""
    table, shown = window.queue_panel.table, []

    def record(job) -> None:  # connected after the panel's own slot, so the row is up to date
        for row in range(table.rowCount()):
            if table.item(row, 1).text().startswith("via API"):
                shown.append((table.item(row, 2).text(), table.item(row, 3).text()))

    window.queue.jobChanged.connect(record)
    return shown


def test_an_api_render_shows_its_progress_in_the_queue(qtbot, window):
    port = free_port()
    start_from_dialog(qtbot, window, port)
    shown = queue_row_texts(window, qtbot)
    call = generation(window, port, {"input": "[S1] A short line to render.", "max_new_tokens": 256, "seed": 2})  # one render
    qtbot.waitUntil(lambda: not call.is_alive(), timeout=120000)
    assert call.response.status_code == 200, call.response.text
    rendering = [text for state, text in shown if state == "Rendering"]
    assert any(re.match(r"\d+% · \d+ frames/s", text) for text in rendering), rendering
    assert shown[-1][0] == "Done"


def test_a_long_api_script_shows_its_blocks_progress_in_the_queue(qtbot, window):
    port = free_port()
    start_from_dialog(qtbot, window, port)
    shown = queue_row_texts(window, qtbot)
    jobs = []
    window.queue.jobAdded.connect(jobs.append)
    fractions = []
    window.queue.jobChanged.connect(lambda job: fractions.append(job.fraction) if job.state == "rendering" else None)
    call = generation(window, port, {"input": long_script(6), "max_new_tokens": 256, "seed": 3})
    qtbot.waitUntil(lambda: not call.is_alive(), timeout=300000)
    assert call.response.status_code == 200, call.response.text
    blocks = int(call.response.headers["X-Dia-Blocks"])
    assert blocks > 1
    rendering = [text for state, text in shown if state == "Rendering"]
    for k in range(1, blocks + 1):  # each block named while it renders, with how far the script is
        assert any(re.match(rf"Block {k} of {blocks} · \d+%", text) for text in rendering), (k, rendering)
    assert fractions == sorted(fractions) and fractions[-1] > 0.5  # never backwards; most of it shown
    assert shown[-1][0] == "Done" and jobs[0].fraction == 1.0
