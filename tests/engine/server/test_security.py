"""Who may call the server and what it accepts: token, Host, CORS, body limits, no leaks."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.engine.server.conftest import (
    ROOT,
    TOKEN,
    GatedBackend,
    ThreadServer,
    voice_clip,
)


@pytest.fixture
def api(tmp_path):
    running = ThreadServer(GatedBackend(), tmp_path)
    yield running
    running.stop()


@pytest.mark.parametrize("path", ["/v1/models", "/v1/voice/samples", "/v1/history", "/openapi.json",
                                  "/v1/audio/voices", "/no/such/route"])
@pytest.mark.parametrize("auth", [None, "Bearer wrong-token-0123456789", TOKEN, f"Basic {TOKEN}"])
def test_every_endpoint_but_health_needs_the_bearer_token(api, path, auth):
    response = httpx.get(api.url + path, headers={"Authorization": auth} if auth else {})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "unauthorized" and response.headers["www-authenticate"] == "Bearer"


def test_health_needs_no_token(api):
    assert httpx.get(api.url + "/health").json()["status"] == "ok"


def test_unknown_route_with_token_is_typed_404(api):
    response = httpx.get(api.url + "/v2/nothing", headers=api.headers)
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found"


def test_a_request_for_another_host_name_is_refused(api):
    response = httpx.get(api.url + "/health", headers={"Host": "evil.example:80"})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_host"


def test_no_cors_unless_asked(api, tmp_path):
    origin = "http://localhost:3000"
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in httpx.options(api.url + "/v1/audio/speech", headers=preflight).headers
    allowed = ThreadServer(GatedBackend(), tmp_path / "cors", cors_origins=(origin,))
    try:
        answer = httpx.options(allowed.url + "/v1/audio/speech", headers=preflight)
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == origin
    finally:
        allowed.stop()


def test_upload_over_ten_megabytes_is_413(api):
    response = httpx.post(api.url + "/v1/voice/samples", headers=api.headers, timeout=60,
                          files={"file": ("big.wav", b"\0" * (10 * 1024 * 1024 + 1), "audio/wav")},
                          data={"speaker_name": "Big"})
    assert response.status_code == 413 and response.json()["error"]["type"] == "request_too_large"


def test_undecodable_upload_is_audio_decode_failed(api):
    response = httpx.post(api.url + "/v1/voice/samples", headers=api.headers,
                          files={"file": ("../../etc/passwd.wav", b"not audio at all", "audio/wav")},
                          data={"speaker_name": "Nope"})
    assert response.status_code == 400 and response.json()["error"]["type"] == "audio_decode_failed"
    assert "/etc" not in response.text


def test_voice_sample_crud(api):
    with api.client() as c:
        added = c.post("/v1/voice/samples", files={"file": ("ann.wav", voice_clip(), "audio/wav")},
                       data={"speaker_name": "Ann"}).json()
        assert set(added) == {"id", "speaker_name", "transcript", "has_transcript", "is_default", "duration",
                              "warnings"}
        changed = c.patch(f"/v1/voice/samples/{added['id']}",
                          json={"speaker_name": "Ann B", "transcript": "Hello.", "is_default": True}).json()
        assert (changed["speaker_name"], changed["transcript"], changed["is_default"]) == ("Ann B", "Hello.", True)
        assert [s["speaker_name"] for s in c.get("/v1/voice/samples").json()["data"]] == ["Ann B"]
        assert c.delete(f"/v1/voice/samples/{added['id']}").json() == {"id": added["id"], "deleted": True}
        assert c.get(f"/v1/voice/samples/{added['id']}").json()["error"]["type"] == "not_found"
        assert c.get("/v1/voice/samples/99999999999999999999").status_code == 400


def _serve(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", "serve", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, **(env or {})})


def test_serve_refuses_a_network_host_without_allow_remote(tmp_path):
    proc = _serve("--host", "0.0.0.0", "--token", TOKEN, env={"DIA_STUDIO_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 2 and "--allow-remote" in proc.stderr and "Traceback" not in proc.stderr


def test_token_is_never_logged(server):
    with server.client() as c:
        c.get("/v1/models")
        httpx.get(server.url + "/v1/models", headers={"Authorization": "Bearer a-wrong-token-123456789"})
    assert server.token not in "".join(server.stderr) and "a-wrong-token" not in "".join(server.stderr)
