"""One model, one queue: order, a full queue, cancellation by disconnect, 20 clients at once, and a
server killed mid-render."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.engine.server.conftest import Server, voice_clip


def _post(server, text: str, results: dict) -> None:
    with server.client() as c:
        results[text] = c.post("/v1/voice/generations", json={"input": text})


def _wait(condition) -> None:
    """Wait for a condition the server will reach (no time limit of its own: pytest's run has one)."""
    event = threading.Event()
    while not condition():
        event.wait(0.02)


def test_requests_render_in_order_and_a_full_queue_is_429(gated):
    results: dict = {}
    threads = [threading.Thread(target=_post, args=(gated, f"[S1] Request {i}.", results)) for i in range(3)]
    threads[0].start()
    _wait(lambda: gated.backend.running.is_set())
    for t in threads[1:]:
        t.start()
        ahead = threads.index(t)
        _wait(lambda ahead=ahead: httpx.get(gated.url + "/health").json()["queue"]["waiting"] >= ahead)
    full = httpx.post(gated.url + "/v1/voice/generations", headers=gated.headers, json={"input": "[S1] One more."})
    assert full.status_code == 429 and full.json()["error"]["type"] == "queue_full"
    assert int(full.headers["retry-after"]) >= 1
    gated.backend.release(3)
    for t in threads:
        t.join()
    assert all(r.status_code == 200 for r in results.values())
    assert gated.backend.finished == [f"[S1] Request {i}." for i in range(3)]


def test_a_client_that_disconnects_cancels_its_render(gated):
    with httpx.Client(base_url=gated.url, headers=gated.headers) as c, \
            c.stream("POST", "/v1/audio/speech", json={"model": "gated", "input": "Bye.", "voice": None}) as r:
        assert r.status_code == 200
        next(r.iter_bytes())  # the first audio arrived: the render is running
    _wait(lambda: gated.backend.stopped == ["Bye."])
    assert gated.backend.finished == []


def test_twenty_concurrent_clients_are_served_or_told_to_retry(tiny_models, tmp_path):
    server = Server(tiny_models, tmp_path / "data", "--queue-size", "2")
    try:
        def call(i: int) -> int:
            with server.client() as c:
                return c.post("/v1/voice/generations", json={"input": f"[S1] Client {i}."}).status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(call, range(20)))
        assert set(statuses) <= {200, 429} and 200 in statuses and 429 in statuses
        assert httpx.get(server.url + "/health").json()["status"] == "ok"
        assert server.proc.poll() is None
    finally:
        server.stop()


def test_killed_mid_render_the_library_and_history_survive(tiny_models, tmp_path):
    data = tmp_path / "data"
    server = Server(tiny_models, data)
    with server.client() as c:
        voice = c.post("/v1/voice/samples", files={"file": ("ann.wav", voice_clip(), "audio/wav")},
                       data={"speaker_name": "Ann", "transcript": "Hello there."}).json()
        done = c.post("/v1/voice/generations", json={"input": "[S1] Kept."})
        assert done.status_code == 200
        with c.stream("POST", "/v1/audio/speech", json={"model": "dia", "input": "Lost.", "voice": "Ann",
                                                        "max_new_tokens": 512}) as r:
            next(r.iter_bytes())
            server.kill()  # SIGKILL while the model is generating
    restarted = Server(tiny_models, data)
    try:
        with restarted.client() as c:
            assert [s["id"] for s in c.get("/v1/voice/samples").json()["data"]] == [voice["id"]]
            history = c.get("/v1/history").json()["data"]
            assert [h["script"] for h in history] == ["[S1] Kept."]
            assert c.get(f"/v1/history/{history[0]['id']}/audio").status_code == 200
            assert c.post("/v1/voice/generations", json={"input": "[S1] Again.", "speakers": {"S1": voice["id"]},
                                                          "max_new_tokens": 384}).status_code == 200
    finally:
        restarted.stop()
