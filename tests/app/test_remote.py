"""The app as a client of a Dia Studio server: ``dia-studio serve`` with the tiny model in a subprocess on
127.0.0.1 (a free port); the real window renders and streams through it and its voice library is the
server's. An unreachable server or a wrong token is a clear message within seconds."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

import engine
from app import settings as opts
from app.episode.rendering import BlockWork
from app.library.window import LibraryWindow
from app.main_window import MainWindow
from app.model_settings import (
    RENDER_ON,
    SERVER,
    SERVER_TOKEN,
    SERVER_URL,
    ModelSettingsDialog,
    downloads_needed,
    engine_options,
    missing_model_message,
)
from app.panels.cast import LOADING
from app.remote import RemoteEngine, RemoteLibrary, RemoteTarget, listed_voice, server_model_key
from app.tasks import TaskRunner
from app.workers import CANCELLED, DONE, FAILED, RenderJob
from tests.app.conftest import make_window, tone
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
    qtbot.waitUntil(lambda: library_window.importing == 0 and library_window.waiting == 0, timeout=30000)
    assert library_window.last_error is None
    names = [s.speaker_name for s in library_window.model.samples]
    assert "ann" in names
    with server.client() as client:
        listed = client.get("/v1/voice/samples").json()["data"]
    ann = next(item for item in listed if item["speaker_name"] == "ann")
    # the cast offers the server's voice (listed again in the background after the change)
    qtbot.waitUntil(lambda: window.cast_panel.combos["S1"].findData(ann["id"]) >= 0, timeout=30000)

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
    qtbot.waitUntil(lambda: not window.cast_panel.loading, timeout=30000)
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
    # the voice list says so too
    qtbot.waitUntil(lambda: "Can't reach" in window.cast_panel.warning.text(), timeout=FAILURE_SECONDS * 1000)
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
    qtbot.waitUntil(lambda: "refused the token" in window.cast_panel.warning.text(), timeout=FAILURE_SECONDS * 1000)
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


def voice_clip(path, freq: float):
    """A voice file of its own (the server's library refuses a file it already holds)."""
    import soundfile as sf

    sf.write(path, tone(freq=freq), engine.TARGET_SAMPLE_RATE)
    return path


EPISODE = "[Ann] Hello there, and welcome to the show.\n[Bob] Thanks, it is good to be here."


def episode_with(path, voices: dict) -> engine.episode.BlockRecord:
    """An episode project at ``path`` cast with ``voices`` ({character: VoiceInput}); its first block."""
    with engine.EpisodeProject(path) as project:
        project.update(script=EPISODE, seed=77, params=engine.GenerationParams(max_new_tokens=1024), cast=voices)
        return project.blocks()[0]


def queue_block(window, path, block) -> tuple[RenderJob, BlockWork]:
    """The block's job, queued as the episode view queues it."""
    work = BlockWork(path, block.identity, block.seed)
    job = RenderJob(script=block.model_text, params=block.params, options=engine_options(window.settings),
                    title="Block 1", work=work)
    return window.queue.submit(job), work


def test_an_episode_block_renders_on_the_server_with_its_voices_and_seed(qtbot, remote_window, server, tmp_path):
    window = remote_window
    ann = window.library.add(voice_clip(tmp_path / "ann-episode.wav", 210.0), speaker_name="Ann",
                             transcript="A clear test tone.")
    voice = engine.VoiceInput("Ann", window.library.load_audio(ann), ann.transcript, "library", ann.uid)
    block = episode_with(tmp_path / "show.diaproj", {"Ann": voice})
    assert block.characters == ("Ann", "Bob")
    job, work = queue_block(window, tmp_path / "show.diaproj", block)
    qtbot.waitUntil(lambda: job.finished, timeout=120000)
    assert job.state == DONE, job.detail
    assert window.queue.worker.engine is None  # nothing was loaded on this computer
    with engine.EpisodeProject(tmp_path / "show.diaproj") as project:
        rendered = project.blocks()[0]
        assert rendered.chosen == work.take_id and [t.seed for t in rendered.takes] == [block.seed]
        assert project.take_audio(work.take_id).size > 0
    with server.client() as client:  # one request: Ann's server voice as S1, Bob a random voice, the block's seed
        newest = client.get("/v1/history", params={"limit": 1}).json()["data"][0]
    assert newest["seed"] == block.seed and newest["script"] == block.model_text
    assert newest["cast"]["S1"]["name"] == "Ann" and "S2" not in newest["cast"]


def test_an_episode_voice_that_is_not_on_the_server_is_a_clear_message_before_any_request(tmp_path, voice_file):
    import soundfile as sf

    samples, _rate = sf.read(voice_file, dtype="float32")
    block = episode_with(tmp_path / "show.diaproj",
                         {"Bob": engine.VoiceInput("Local Bob", samples, "A clear test tone.", "library", "a1b2c3")})
    remote = RemoteEngine(RemoteTarget(closed_port_url(), "a-token-of-twenty-chars"))  # never reached
    with engine.EpisodeProject(tmp_path / "show.diaproj") as project:
        with pytest.raises(engine.InvalidVoiceSampleError, match="Bob's voice “Local Bob” is on this computer"):
            remote.render_block(project, block.index, seed=block.seed)
        assert project.blocks()[0].takes == ()


@pytest.fixture
def black_hole():
    """A server on 127.0.0.1 that takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        yield RemoteTarget(f"http://127.0.0.1:{silent.getsockname()[1]}", "a-token-of-twenty-chars")


def library_window(qtbot, settings, target: RemoteTarget) -> LibraryWindow:
    tasks = TaskRunner()
    window = LibraryWindow(RemoteLibrary(target), settings, tasks)
    qtbot.addWidget(window, before_close_func=lambda w: (w.shutdown(), tasks.wait()))
    window.show()
    return window


def test_the_library_window_stays_responsive_while_the_server_does_not_answer(qtbot, settings, black_hole):
    window = library_window(qtbot, settings, black_hole)  # returns at once: the listing waits in the background
    assert window.waiting == 1 and window.busy_bar.isVisible()
    assert "Loading the voices" in window.busy_text.text() and "127.0.0.1" in window.busy_text.text()
    ticks_while_waiting = []
    timer = QTimer()
    timer.timeout.connect(lambda: window.waiting and ticks_while_waiting.append(1))
    timer.start(20)
    qtbot.waitUntil(lambda: window.waiting == 0, timeout=FAILURE_SECONDS * 1000)
    timer.stop()
    assert len(ticks_while_waiting) >= 3  # the event loop ran all along
    assert not window.busy_bar.isVisible()
    assert "Can't reach the Dia Studio server" in window.status.text() and "did not answer" in window.status.text()
    assert window.model.rowCount() == 0


def test_a_voice_played_from_a_silent_server_is_a_message_and_the_window_keeps_working(qtbot, settings, black_hole):
    window = library_window(qtbot, settings, black_hole)
    qtbot.waitUntil(lambda: window.waiting == 0, timeout=FAILURE_SECONDS * 1000)
    listed = {"id": 7, "speaker_name": "Ann", "transcript": "Hello.", "is_default": False, "duration": 4.0}
    window.model.set_samples([listed_voice(listed)])  # as if the server had listed it before going silent
    window.table.selectRow(0)
    window.play_selected()
    assert window.waiting == 1 and not window.delete_button.isEnabled()  # one change at a time
    window.name_edit.setText("still typing")  # the window takes input meanwhile
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=FAILURE_SECONDS * 1000)
    assert window.last_error.code == "upstream_error" and "did not answer" in window.last_error.message
    assert window.waiting == 0 and window.delete_button.isEnabled()


def test_the_library_window_edits_the_servers_voices_in_the_background(qtbot, settings, server, tmp_path):
    with RemoteLibrary(RemoteTarget(server.url, server.token)) as library:
        added = library.add(voice_clip(tmp_path / "edit-me.wav", 240.0), speaker_name="Edit me", transcript="")
    window = library_window(qtbot, settings, RemoteTarget(server.url, server.token))
    qtbot.waitUntil(lambda: window.waiting == 0 and window.select(added.id), timeout=30000)

    def change(button) -> None:  # the buttons wait while a call is in flight: one change at a time
        qtbot.waitUntil(lambda: window.waiting == 0 and button.isEnabled(), timeout=30000)
        with qtbot.waitSignal(window.libraryChanged, timeout=30000):
            button.click()

    window.name_edit.setText("Edited")
    change(window.rename_button)
    window.transcript_edit.setPlainText("A clear test tone.")
    change(window.save_transcript)
    change(window.default_button)
    qtbot.waitUntil(lambda: window.waiting == 0, timeout=30000)
    shown = window.selected()
    assert (shown.id, shown.speaker_name, shown.transcript, shown.is_default) == (
        added.id, "Edited", "A clear test tone.", True)
    with server.client() as client:
        stored = client.get(f"/v1/voice/samples/{added.id}").json()
    assert (stored["speaker_name"], stored["transcript"], stored["is_default"]) == ("Edited", "A clear test tone.", True)
    window.confirm = lambda *_args: True
    with qtbot.waitSignal(window.libraryChanged, timeout=30000):
        assert window.delete_selected()
    assert all(s.id != added.id for s in window.model.samples) and window.last_error is None


# --------------------------------------------------------------------------- the cast never waits for a server

class GatedServer:
    """A server on 127.0.0.1 that answers every request with ``body`` (JSON), but only once ``gate`` is set."""

    def __init__(self, body: dict) -> None:
        self.gate = threading.Event()
        self.answered = 0
        gated = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                gated.gate.wait()
                gated.answered += 1  # (the client may have hung up meanwhile: then nothing arrives)
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def handle(self) -> None:
                try:
                    super().handle()
                except ConnectionError:
                    pass

            def log_message(self, *_args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.target = RemoteTarget(f"http://127.0.0.1:{self.http.server_address[1]}", "a-token-of-twenty-chars")

    def stop(self) -> None:
        self.gate.set()
        self.http.shutdown()
        self.http.server_close()


def voices(*names: str, first_id: int = 7) -> dict:
    """A voice list as ``GET /v1/voice/samples`` answers it."""
    return {"object": "list", "data": [{"id": first_id + i, "speaker_name": name, "transcript": "Hello there.",
                                        "is_default": False, "duration": 4.0} for i, name in enumerate(names)]}


@pytest.fixture
def gated():
    servers: list[GatedServer] = []

    def start(body: dict) -> GatedServer:
        servers.append(GatedServer(body))
        return servers[-1]

    yield start
    for running in servers:
        running.stop()


def on(settings, target: RemoteTarget):
    return use_server(settings, target.url, target.token)


def combo_texts(window: MainWindow) -> list[str]:
    return [combo.itemText(i) for combo in window.cast_panel.combos.values() for i in range(combo.count())]


def test_the_cast_lists_a_silent_servers_voices_in_the_background(qtbot, model_settings, black_hole):
    window = make_window(qtbot, on(model_settings, black_hole))  # returns at once: the listing waits elsewhere
    cast = window.cast_panel
    assert cast.loading and not cast.combos["S1"].isEnabled()
    assert cast.combos["S1"].currentText() == LOADING and cast.warning.text() == LOADING
    ticks_while_waiting = []
    timer = QTimer()
    timer.timeout.connect(lambda: cast.loading and ticks_while_waiting.append(1))
    timer.start(20)
    qtbot.waitUntil(lambda: not cast.loading, timeout=FAILURE_SECONDS * 1000)
    timer.stop()
    assert len(ticks_while_waiting) >= 3  # the event loop ran all along
    assert "Can't reach the Dia Studio server" in cast.warning.text() and "did not answer" in cast.warning.text()
    assert cast.combos["S1"].isEnabled() and cast.cast() == {"S1": None, "S2": None}


def test_the_cast_keeps_the_users_choices_while_a_servers_voices_load(qtbot, model_settings, gated):
    server = gated(voices("Ann", "Bob", "Cy"))
    model_settings.set(opts.CAST_S1, 8)
    model_settings.set(opts.CAST_S2, 7)
    window = make_window(qtbot, on(model_settings, server.target))
    cast = window.cast_panel
    assert cast.loading and cast.cast() == {"S1": 8, "S2": 7}  # what a render made meanwhile would use
    server.gate.set()
    qtbot.waitUntil(lambda: not cast.loading, timeout=FAILURE_SECONDS * 1000)
    assert cast.cast() == {"S1": 8, "S2": 7} and cast.combos["S1"].currentText().startswith("Bob")

    cast.combos["S2"].setCurrentIndex(cast.combos["S2"].findData(9))  # the user picks Cy, then the list reloads
    cast.refresh()
    assert cast.loading and cast.cast() == {"S1": 8, "S2": 9}
    qtbot.waitUntil(lambda: not cast.loading, timeout=FAILURE_SECONDS * 1000)
    assert cast.cast() == {"S1": 8, "S2": 9} and model_settings.get(opts.CAST_S2) == 9


def test_a_late_voice_list_from_a_server_switched_away_from_is_ignored(qtbot, model_settings, gated):
    slow, fresh = gated(voices("Stale")), gated(voices("Fresh", first_id=20))
    window = make_window(qtbot, on(model_settings, slow.target))
    assert window.cast_panel.loading
    fresh.gate.set()
    on(model_settings, fresh.target)
    window.apply_render_target()
    qtbot.waitUntil(lambda: not window.cast_panel.loading, timeout=FAILURE_SECONDS * 1000)
    assert any(text.startswith("Fresh") for text in combo_texts(window))
    slow.gate.set()  # the first server answers at last
    qtbot.waitUntil(lambda: slow.answered == 1, timeout=FAILURE_SECONDS * 1000)
    qtbot.waitUntil(lambda: not window.tasks.busy, timeout=FAILURE_SECONDS * 1000)  # its answer was handed over
    assert not any(text.startswith("Stale") for text in combo_texts(window))
    assert list(window.cast_panel.samples) == [20] and not window.cast_panel.loading


def test_the_servers_model_key_names_the_server_and_its_model(server):
    key = json.loads(server_model_key(RemoteTarget(server.url + "/v1", server.token)))
    with server.client() as client:
        model = client.get("/v1/models").json()["data"][0]["id"]
    assert key == {"server": server.url, "model": model}
