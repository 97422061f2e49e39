"""The episode view with renders and voices on a Dia Studio server: nothing in it waits for the server
on the GUI thread (a silent server is a plain socket that never answers), answers apply only to the
episode still open, and blocks rendered on a server record the server's model, not this computer's."""

from __future__ import annotations

import json

import numpy as np
import pytest

import engine
from app.model_settings import LOCAL, RENDER_ON
from app.remote import SERVER_VOICE, RemoteLibrary, RemoteTarget
from engine.audio import resample
from tests.app.conftest import make_window
from tests.app.test_remote import (  # noqa: F401 - fixtures: a real server, a silent one
    EPISODE,
    FAILURE_SECONDS,
    black_hole,
    server,
    use_server,
    voice_clip,
)
from tests.engine.episode.test_take_voice import SR, Heard, lorem, synthetic_take

RENDER_TIMEOUT_MS = 120_000
TURNS = [("Mara", lorem(16, 1)), ("Theo", lorem(5, 2))]


def on(settings, target: RemoteTarget):
    return use_server(settings, target.url, target.token)


def open_episode(window, script: str = EPISODE):
    mode = window.episode
    assert mode.session.new(script)
    mode.show_episode(True)
    return mode


def open_with_a_take(window, tmp_path):
    """An episode whose first block (Mara, then Theo) has a take that a transcriber hears exactly."""
    take = synthetic_take(TURNS)
    path = tmp_path / "kept.diaproj"
    with engine.EpisodeProject(path) as project:
        project.update(script="".join(f"[{c}] {text}\n" for c, text in TURNS), model_key="tiny")
        block = project.blocks()[0]
        audio = resample(take.samples, SR, engine.TARGET_SAMPLE_RATE)
        project.add_take(block, engine.RenderResult(audio, engine.TARGET_SAMPLE_RATE, 1, engine.GenerationParams(seed=1),
                                                    block.model_text, np.zeros((8, 9), np.int64), "eos", (), {}),
                         choose=True)
    assert window.episode.open_any(path)
    return window.episode, Heard(take.heard)


@pytest.fixture
def silent_window(qtbot, model_settings, black_hole):  # noqa: F811
    return make_window(qtbot, on(model_settings, black_hole))


@pytest.fixture
def remote_window(qtbot, model_settings, server):  # noqa: F811
    return make_window(qtbot, use_server(model_settings, server.url, server.token))


def wait_for_message(qtbot, window):
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=FAILURE_SECONDS * 1000)
    return window.last_error


# --------------------------------------------------------------------------- casting a library voice

def test_a_voice_chosen_from_a_silent_server_is_fetched_in_the_background(qtbot, silent_window):
    window = silent_window
    mode = open_episode(window)
    mode.view.cast.voiceChosen.emit("Ann", ("library", 7))
    # the call returned before the server could answer: nothing was cast, no message yet
    assert window.last_error is None and mode.session.project.cast()["Ann"] is None
    assert "Getting the voice for Ann" in window.statusBar().currentMessage()
    error = wait_for_message(qtbot, window)
    assert error.code == "upstream_error" and "did not answer" in error.message
    assert mode.session.project.cast()["Ann"] is None
    assert mode.view.cast.combos["Ann"].currentData() is None  # the picker shows the cast as it is


def test_a_voice_chosen_from_the_servers_library_is_cast(qtbot, remote_window, tmp_path):
    window = remote_window
    ann = window.library.add(voice_clip(tmp_path / "ann-cast.wav", 215.0), speaker_name="Ann Cast",
                             transcript="A clear test tone.")
    mode = open_episode(window)
    mode.view.cast.voiceChosen.emit("Ann", ("library", ann.id))
    qtbot.waitUntil(lambda: mode.session.project.cast()["Ann"] is not None, timeout=FAILURE_SECONDS * 1000)
    voice = mode.session.project.cast()["Ann"]
    assert voice.name == "Ann Cast" and voice.library_uid == f"{SERVER_VOICE}{ann.id}"
    assert mode.session.project.voice_audio(voice.id).size > 0 and window.last_error is None


def test_a_voice_that_arrives_after_the_episode_changed_is_not_cast(qtbot, remote_window, tmp_path):
    window = remote_window
    ann = window.library.add(voice_clip(tmp_path / "ann-late.wav", 225.0), speaker_name="Ann Late",
                             transcript="A clear test tone.")
    mode = open_episode(window)
    first = mode.session.path
    mode.view.cast.voiceChosen.emit("Ann", ("library", ann.id))
    assert mode.session.new(EPISODE)  # another episode, before the answer can arrive
    qtbot.waitUntil(lambda: not window.tasks.busy, timeout=FAILURE_SECONDS * 1000)
    assert mode.session.project.cast()["Ann"] is None
    with engine.EpisodeProject(first) as project:
        assert project.cast()["Ann"] is None


# --------------------------------------------------------------------------- keeping a voice from a take

def test_keeping_a_voice_for_a_silent_servers_library_happens_in_the_background(qtbot, silent_window, tmp_path):
    window = silent_window
    mode, heard = open_with_a_take(window, tmp_path)
    steps = mode.session.undo_stack.count()
    assert mode.session.keep_voice(0, "Mara", window.library, transcriber=heard)
    assert window.last_error is None and mode.session.project.cast()["Mara"] is None  # returned at once
    error = wait_for_message(qtbot, window)
    assert error.code == "upstream_error" and "did not answer" in error.message
    assert mode.session.project.cast()["Mara"] is None and mode.session.undo_stack.count() == steps


def test_a_voice_kept_from_a_take_goes_to_the_servers_library_once(qtbot, remote_window, server, tmp_path):
    window = remote_window
    mode, heard = open_with_a_take(window, tmp_path)
    session = mode.session
    assert session.keep_voice(0, "Mara", window.library, transcriber=heard)
    qtbot.waitUntil(lambda: session.project.cast()["Mara"] is not None, timeout=FAILURE_SECONDS * 1000)
    kept = session.project.cast()["Mara"]
    assert kept.source == "take" and kept.library_uid.startswith(SERVER_VOICE)
    assert session.blocks[0].locked
    with RemoteLibrary(RemoteTarget(server.url, server.token)) as library:
        count = len(library.list())
        assert library.get(int(kept.library_uid[len(SERVER_VOICE):])).speaker_name == "Mara"
    session.undo_stack.undo()
    assert session.project.cast()["Mara"] is None and not session.blocks[0].locked
    session.undo_stack.redo()  # the cut voice again: no second cut, no second upload
    assert session.project.cast()["Mara"].library_uid == kept.library_uid
    with RemoteLibrary(RemoteTarget(server.url, server.token)) as library:
        assert len(library.list()) == count


# --------------------------------------------------------------------------- the model that rendered the blocks

def test_an_episode_render_asks_a_silent_server_for_its_model_in_the_background(qtbot, silent_window):
    window = silent_window
    mode = open_episode(window)
    assert mode.renderer.render() == 0  # nothing queued yet: the server is asked first
    assert not mode.renderer.busy and window.last_error is None
    error = wait_for_message(qtbot, window)
    assert error.code == "upstream_error" and "did not answer" in error.message
    assert not mode.renderer.busy and window.queue.current is None


def test_blocks_rendered_on_a_server_count_as_another_models_on_this_computer(qtbot, remote_window, server):
    window = remote_window
    mode = open_episode(window)
    mode.session.run(lambda: mode.session.project.update(params=engine.GenerationParams(max_new_tokens=256)))
    assert mode.renderer.render() == 0
    qtbot.waitUntil(lambda: mode.renderer.busy, timeout=FAILURE_SECONDS * 1000)  # queued once the server answered
    qtbot.waitUntil(lambda: not mode.renderer.busy, timeout=RENDER_TIMEOUT_MS)
    project = mode.session.project
    assert engine.pending_blocks(project) == [] and all(b.chosen is not None for b in project.blocks())
    with server.client() as client:
        model = client.get("/v1/models").json()["data"][0]["id"]
    assert json.loads(project.settings.model_key) == {"server": server.url, "model": model}

    window.settings.set(RENDER_ON, LOCAL)  # back to this computer: every block needs this model's take
    window.apply_render_target()
    assert mode.renderer.render() == len(project.blocks())
    mode.renderer.stop()
