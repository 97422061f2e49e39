"""``engine.server.BackgroundServer``: real uvicorn on a thread, on 127.0.0.1, with tiny ASGI apps and
httpx as the client. Apps that block or wait on an event the test controls stand in for a server
that is slow to start or to stop, so nothing here depends on timing."""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx
import pytest

from engine import DiaStudioError
from engine.server import BackgroundServer, ServerStartError, bind_socket

HOST = "127.0.0.1"


async def hello(scope, receive, send) -> None:
    """Answers every request with 200 "hello"."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def url(sock: socket.socket) -> str:
    return f"http://{HOST}:{sock.getsockname()[1]}"


def accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((HOST, port)) == 0


@pytest.fixture
def sock():
    bound = bind_socket(HOST, 0)
    yield bound
    bound.close()


def test_start_returns_once_the_server_answers_http(sock):
    server = BackgroundServer(hello, sock, lifespan="off", log_level="warning")
    server.start()
    try:
        response = httpx.get(url(sock) + "/anything", timeout=10)  # no retry: it serves already
        assert response.status_code == 200 and response.text == "hello"
        assert server.running
    finally:
        server.stop()


def test_stop_ends_the_thread_and_closes_the_port(sock):
    server = BackgroundServer(hello, sock, lifespan="off", log_level="warning")
    server.start()
    port = sock.getsockname()[1]
    assert server.stop() is True
    assert not server.running and not accepts_connections(port)
    assert server.error is None


def test_stop_gives_up_after_its_bound_when_the_server_cannot_stop(sock):
    entered, release = threading.Event(), threading.Event()

    async def stuck(scope, receive, send) -> None:
        entered.set()
        release.wait()  # blocks the server's event loop: it can't see that it should stop
        await hello(scope, receive, send)

    server = BackgroundServer(stuck, sock, lifespan="off", log_level="warning", stop_timeout=0.2)
    server.start()
    call = threading.Thread(target=lambda: httpx.get(url(sock), timeout=60), daemon=True)
    call.start()
    assert entered.wait(30)
    try:
        assert server.stop() is False  # returned, though uvicorn is still running
        assert server.running
    finally:
        release.set()
    server.stop_timeout = 30
    assert server.stop() is True
    call.join(30)


def test_an_app_whose_startup_fails_is_a_start_error_saying_why(sock):
    async def failing(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "the voice library is locked"})

    server = BackgroundServer(failing, sock, log_config=None, log_level="warning")
    with pytest.raises(ServerStartError) as err:
        server.start()
    assert isinstance(err.value, DiaStudioError) and err.value.code == "server_start_failed"
    assert err.value.message.startswith("the API server did not start: ")
    assert "the voice library is locked" in err.value.message
    assert not server.running


def test_a_socket_uvicorn_cannot_serve_on_is_a_start_error_naming_the_exception():
    closed = bind_socket(HOST, 0)
    closed.close()
    server = BackgroundServer(hello, closed, lifespan="off", log_config=None, log_level="warning")
    with pytest.raises(ServerStartError, match=r"the API server did not start: OSError: "):
        server.start()
    assert isinstance(server.error, OSError) and not server.running


def test_a_failed_start_never_reaches_the_threads_traceback_printer(sock, monkeypatch):
    printed = []
    monkeypatch.setattr(threading, "excepthook", printed.append)
    sock.close()
    with pytest.raises(ServerStartError):
        BackgroundServer(hello, sock, lifespan="off", log_config=None, log_level="warning").start()
    assert printed == []


def test_a_server_not_serving_within_the_start_timeout_is_a_start_error(sock):
    release = threading.Event()

    async def slow_startup(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            while not release.is_set():
                await asyncio.sleep(0.01)
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await hello(scope, receive, send)

    server = BackgroundServer(slow_startup, sock, log_config=None, log_level="warning", start_timeout=0.2,
                              stop_timeout=0.2)
    try:
        with pytest.raises(ServerStartError, match=r"it was not serving within 0.2 s"):
            server.start()
    finally:
        release.set()
    server.stop_timeout = 30
    assert server.stop() is True  # it was told to stop, so it ends once its startup does
