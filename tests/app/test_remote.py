"""The app as a client of a Dia Studio server: ``dia-studio serve`` with the tiny model in a subprocess on
127.0.0.1 (a free port); the real window renders and streams through it and its voice library is the
server's. An unreachable server or a wrong token is a clear message within seconds."""

from __future__ import annotations

import socket

import httpx
import pytest
from PySide6.QtWidgets import QMessageBox

import engine
from app import settings as opts
from app.model_settings import (
    RENDER_ON,
    SERVER,
    SERVER_TOKEN,
    SERVER_URL,
    ModelSettingsDialog,
    downloads_needed,
    missing_model_message,
)
from app.remote import RemoteEngine, RemoteLibrary, RemoteTarget
from app.tasks import TaskRunner
from app.workers import CANCELLED, DONE, FAILED
from tests.app.conftest import make_window
from tests.engine.server.conftest import Server

SCRIPT = "[S1] Hello over the network. [S2] It sounds close by."
FAILURE_SECONDS = 15  # a bound on waiting for the message: the client gives up on a connection after 4 s


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    """``dia-studio serve`` in a subprocess with its own data folder (its own voice library)."""
    running = Server(tiny_models[0].parent, tmp_path_factory.mktemp("remote-server-data"))
    yield running
    running.stop()


def use_server(settings, url: str, token: str):
    settings.set(RENDER_ON, SERVER)
    settings.set(SERVER_URL, url)
    settings.set(SERVER_TOKEN, token)
    settings.sync()
    return settings


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def remote_window(qtbot, model_settings, server):
    return make_window(qtbot, use_server(model_settings, server.url + "/v1", server.token))


def test_a_render_streams_from_the_server_into_the_player_and_the_local_history(qtbot, remote_window, server):
    window = remote_window
    events = []
    window.queue.audioChunk.connect(lambda job, chunk: events.append(("chunk", window.player.source)))
    window.queue.jobFinished.connect(lambda job, outcome: events.append(("done", None)))
    window.params_panel.seed.set_seed(21)
    window.document.set_text(SCRIPT)
    job = window.render()
    assert job.remote is not None and job.remote.base == server.url
    qtbot.waitUntil(lambda: job.finished, timeout=120000)
    assert job.state == DONE, job.detail
    assert window.queue.worker.engine is None  # nothing was loaded on this computer
    chunks = [e for e in events if e[0] == "chunk"]
    assert chunks and events[-1][0] == "done"  # audio streamed in before the render ended
    assert all(source == ("job", job.id) for _kind, source in chunks)  # into the player
    assert window.player.duration > 0 and window.take.seed == 21
    entry = window.history.get(job.entry_id)
    assert entry.seed == 21 and entry.model == server.url and entry.duration > 0
    with server.client() as client:  # the server keeps it too, marked as an API render
        stored = client.get("/v1/history").json()["data"]
    assert any(item["seed"] == 21 and item["label"] == "via API" for item in stored)


def test_the_voice_library_lists_adds_and_plays_the_servers_voices(qtbot, remote_window, server, voice_file):
    window = remote_window
    window.open_library()
    library_window = window.library_window
    assert isinstance(library_window.library, RemoteLibrary)
    library_window.import_files([voice_file])
    qtbot.waitUntil(lambda: library_window.importing == 0, timeout=30000)
    assert library_window.last_error is None
    names = [s.speaker_name for s in library_window.model.samples]
    assert "ann" in names
    with server.client() as client:
        listed = client.get("/v1/voice/samples").json()["data"]
    ann = next(item for item in listed if item["speaker_name"] == "ann")
    assert window.cast_panel.combos["S1"].findData(ann["id"]) >= 0  # the cast offers the server's voice

    sample = window.library.get(ann["id"])
    renamed = window.library.rename(sample.id, "Ann B")
    assert renamed.speaker_name == "Ann B"
    assert window.library.set_transcript(sample.id, "Hello there.").transcript == "Hello there."
    assert window.library.set_default(sample.id).is_default
    audio = window.library.load_audio(sample)
    assert audio.dtype.name == "float32" and audio.size / engine.TARGET_SAMPLE_RATE == pytest.approx(
        sample.duration, abs=0.05)
    window.library.set_default(None)
    assert not window.library.get(sample.id).is_default
    window.library.delete(sample.id)
    assert all(s.id != sample.id for s in window.library.list())


def test_a_cloned_render_sends_the_servers_voice(qtbot, remote_window, server, voice_file):
    window = remote_window
    voice = window.library.add(voice_file, speaker_name="Cloned", transcript="A clear test tone.")
    window.cast_panel.refresh()
    window.cast_panel.set_cast({"S1": voice.id, "S2": None})
    window.params_panel.controls["max_new_tokens"].spin.setValue(1024)  # room for the 4 s prompt
    window.document.set_text(SCRIPT)
    job = window.render()
    qtbot.waitUntil(lambda: job.finished, timeout=120000)
    assert job.state == DONE, job.detail
    assert window.history.get(job.entry_id).cast["S1"].name == "Cloned"
    with server.client() as client:
        newest = client.get("/v1/history", params={"limit": 1}).json()["data"][0]
    assert newest["cast"]["S1"]["name"] == "Cloned"


def test_cancelling_a_remote_render_stops_it_on_the_server(qtbot, remote_window, server):
    window = remote_window
    window.params_panel.controls["max_new_tokens"].spin.setValue(4096)
    window.document.set_text(SCRIPT * 4)
    job = window.render()
    qtbot.waitUntil(lambda: job.state == "rendering" and job.detail != "Starting…", timeout=60000)
    window.renderer.cancel()
    qtbot.waitUntil(lambda: job.finished, timeout=FAILURE_SECONDS * 1000)
    assert job.state == CANCELLED

    def idle() -> bool:
        queue = httpx.get(server.url + "/health", timeout=5).json()["queue"]
        return queue["rendering"] == 0 and queue["waiting"] == 0

    qtbot.waitUntil(idle, timeout=30000)  # the server noticed the client leave and stopped rendering


def test_an_unreachable_server_is_a_clear_message_within_seconds(qtbot, model_settings):
    window = make_window(qtbot, use_server(model_settings, closed_port_url(), "a-token-of-twenty-chars"))
    assert "Can't reach" in window.cast_panel.warning.text()  # the voice list says so too
    window.document.set_text(SCRIPT)
    job = window.render()
    qtbot.waitUntil(lambda: job.finished, timeout=FAILURE_SECONDS * 1000)
    assert job.state == FAILED and job.error.code == "upstream_error"
    assert "Can't reach the Dia Studio server" in job.error.message
    box = window.findChild(QMessageBox, "error_box")
    assert box is not None and "Can't reach" in box.text()


def test_a_server_that_never_answers_is_a_message_not_a_hang():
    with socket.socket() as silent:  # takes connections (the kernel's backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        target = RemoteTarget(f"http://127.0.0.1:{silent.getsockname()[1]}", "a-token-of-twenty-chars")
        with pytest.raises(engine.GenerationError, match="did not answer in time"):
            RemoteEngine(target).render(SCRIPT, engine.GenerationParams(max_new_tokens=256), {})


def test_a_wrong_token_is_an_auth_error(qtbot, model_settings, server):
    window = make_window(qtbot, use_server(model_settings, server.url, "not-the-right-token-at-all"))
    window.document.set_text(SCRIPT)
    job = window.render()
    qtbot.waitUntil(lambda: job.finished, timeout=FAILURE_SECONDS * 1000)
    assert job.state == FAILED and job.error.code == "unauthorized"
    assert "refused the token" in job.error.message
    with pytest.raises(engine.DiaStudioError) as refused:
        RemoteLibrary(RemoteTarget(server.url, "not-the-right-token-at-all")).list()
    assert refused.value.code == "unauthorized"


def test_a_server_address_that_is_not_a_url_is_refused_before_any_request():
    with pytest.raises(engine.InvalidParameterError, match="not a web address"):
        RemoteLibrary(RemoteTarget("192.168.1.20:8765", "a-token-of-twenty-chars"))
    with pytest.raises(engine.InvalidParameterError, match="token"):
        RemoteLibrary(RemoteTarget("http://127.0.0.1:8765", " "))


def test_model_settings_offers_render_on_a_server(qtbot, settings, test_output_dir):
    dialog = ModelSettingsDialog(settings, TaskRunner())
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.on_local.isChecked() and not dialog.server_fields.isVisible()
    dialog.on_server.setChecked(True)
    assert dialog.server_fields.isVisible() and not dialog.local_groups[0].isEnabled()
    dialog.server_url.setText("http://127.0.0.1:8765")
    dialog.server_token.setText("secret-token-0123456789")
    dialog.grab().save(str(test_output_dir / "model-settings-server.png"))
    dialog.accept()
    assert settings.get(RENDER_ON) == SERVER and settings.get(SERVER_URL) == "http://127.0.0.1:8765"
    assert settings.get(SERVER_TOKEN) == "secret-token-0123456789"


def test_rendering_on_a_server_needs_no_local_model(qtbot, settings):
    settings.set(opts.MODEL_PATH, "/nowhere/dia")
    assert missing_model_message(settings) != ""
    use_server(settings, "http://127.0.0.1:8765", "secret-token-0123456789")
    assert missing_model_message(settings) == "" and downloads_needed(settings) == []
