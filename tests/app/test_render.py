"""Rendering in the real window with the tiny checkpoint: progress, cancel, streaming playback,
export with metadata, history, queue and error messages."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

import engine
from app import settings as opts
from app.playback import STOPPED
from app.workers import ETA_MIN_STEPS
from tests.app.conftest import make_window

SCRIPT = "[S1] Hello there, how are you today? [S2] Fine, thanks. (laughs)"


def set_script(qtbot, window, text: str = SCRIPT) -> None:
    window.editor.selectAll()
    window.editor.setFocus()
    qtbot.keyClicks(window.editor, text)
    window.editor.check_now()


def test_render_cancel_render_again_play_export_and_find_it_in_history(qtbot, window, tmp_path, test_output_dir):
    set_script(qtbot, window)
    assert window.editor.issues == []
    window.params_panel.seed.set_seed(11)
    window.params_panel.controls["max_new_tokens"].spin.setValue(256)
    assert window.params_panel.params().max_new_tokens == 256

    # 1. render, see the model load and progress, then cancel within a step
    loads, progress = [], []
    window.queue.loadingStarted.connect(lambda job: loads.append(window.load_dialog is not None))
    window.queue.renderProgress.connect(lambda job, p: progress.append(p))
    with qtbot.waitSignal(window.queue.renderProgress, timeout=60000,
                          # the bar moves once the time left can be estimated (not before ETA_MIN_STEPS)
                          check_params_cb=lambda job, p: p.stage == "generate" and p.step >= ETA_MIN_STEPS):
        qtbot.mouseClick(window.render_button, Qt.MouseButton.LeftButton)
    assert loads == [True]  # the load progress dialog was shown for the first render
    assert window.load_dialog is None  # and closed once rendering began
    job = window.queue.current
    assert job is not None and job.state == "rendering"
    assert window.cancel_button.isEnabled()
    assert window.render_button.text() == "Queue render"
    assert "frames/s" in window.progress_label.text() and window.progress.value() > 0
    assert window.player.source == ("job", job.id)  # playback follows the render
    window.grab().save(str(test_output_dir / "main-window-rendering.png"))
    steps_at_cancel = progress[-1].step
    started = time.monotonic()
    with qtbot.waitSignal(window.queue.jobCancelled, timeout=10000):
        qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    assert time.monotonic() - started < 5
    assert job.state == "cancelled" and window.progress_label.text() == "Cancelled"
    assert max(p.step for p in progress) <= steps_at_cancel + 5  # stopped within a few steps
    assert len(window.history) == 0  # a cancelled render is not stored
    assert not window.cancel_button.isEnabled()

    # 2. render again: streaming chunks reach the player while the render is still running
    chunk_states, finished, player_states = [], [], []
    window.queue.audioChunk.connect(lambda j, c: chunk_states.append((j.state, window.player.duration)))
    window.player.stateChanged.connect(
        lambda s: player_states.append((s, window.queue.current is not None and window.queue.current.state)))
    window.queue.jobFinished.connect(lambda j, outcome: finished.append(outcome))
    with qtbot.waitSignal(window.queue.jobFinished, timeout=120000):
        job2 = window.render()
    assert job2 is not None and job2.state == "done"
    outcome = finished[-1]
    result = outcome.result
    assert result.seed == 11 and result.params.max_new_tokens == 256
    assert chunk_states and all(state == "rendering" for state, _ in chunk_states)
    assert ("playing", "rendering") in player_states  # playback started while the render ran
    assert window.progress.value() == 1000 and window.progress_label.text().startswith("Done")
    assert window.params_panel.seed.last_seed == 11
    np.testing.assert_array_equal(window.player.samples(), result.audio)
    assert not window.player.streaming and window.player.duration == pytest.approx(result.duration)
    assert window.player_panel.export_button.isEnabled()

    # 3. the history has it, with script, cast, parameters, seed and timings
    entry = outcome.entry
    assert entry is not None and len(window.history) == 1
    assert entry.script == SCRIPT and entry.seed == 11 and entry.params.max_new_tokens == 256
    assert entry.duration == pytest.approx(result.duration, abs=1e-3) and entry.render_seconds > 0
    assert entry.cast_label == "S1 random voice · S2 random voice"
    panel = window.history_panel
    assert panel.model.rowCount() == 1 and panel.selected().id == entry.id
    panel.search.setText("how are you")
    panel.reload()
    assert panel.model.rowCount() == 1
    panel.search.setText("no such words")
    panel.reload()
    assert panel.model.rowCount() == 0 and panel.count.text() == "0 of 1 renders"
    panel.search.setText("11")
    panel.reload()
    assert panel.model.rowCount() == 1

    # 4. play on the (unpaced) null audio device to the end
    window.player.stop()  # the streamed playback of the render may still be running
    states = []
    window.player.stateChanged.connect(states.append)
    with qtbot.waitSignal(window.player.finished, timeout=20000):
        qtbot.mouseClick(window.player_panel.play_button, Qt.MouseButton.LeftButton)
    assert "playing" in states and window.player.state == STOPPED

    # 5. export: the file holds the audio and the render's settings in its metadata
    out = tmp_path / "take.flac"
    with qtbot.waitSignal(window.exporter.exportFinished, timeout=20000):
        window.exporter.export_current(out)
    decoded = engine.decode_audio(out)
    assert decoded.sample_rate == 44100 and decoded.frames == result.audio.shape[0]
    tags = engine.read_metadata(out)
    comment = json.loads(tags["comment"])
    assert comment["seed"] == 11 and comment["params"]["max_new_tokens"] == 256 and comment["script"] == SCRIPT
    assert tags["title"].startswith("Hello there")
    assert window.settings.get(opts.EXPORT_FORMAT) == "flac"
    if "opus" in engine.export_formats():
        with qtbot.waitSignal(window.exporter.exportFinished, timeout=20000):
            window.exporter.export_entry(entry, tmp_path / "take.opus")
        assert json.loads(engine.read_metadata(tmp_path / "take.opus")["comment"])["seed"] == 11


def test_queue_restore_rerender_and_delete_from_history(qtbot, window, monkeypatch):
    set_script(qtbot, window, "[S1] First take of the day. [S2] Go on.")
    window.params_panel.seed.set_seed(5)
    with qtbot.waitSignal(window.queue.jobFinished, timeout=120000):
        first = window.render()
    entry = window.history.list()[0]

    # change everything on screen, then restore the take's settings
    set_script(qtbot, window, "[S1] Something else entirely.")
    window.params_panel.reset_to_defaults()
    window.restore_entry(entry)
    assert window.editor.toPlainText() == entry.script
    assert window.params_panel.params() == entry.reproducible_params
    window.editor.undo()  # restoring is undoable
    assert window.editor.toPlainText() == "[S1] Something else entirely."

    # queue two renders: the second waits while the first runs
    done = []
    window.queue.jobFinished.connect(lambda job, outcome: done.append(job.id))
    a = window.history_actions.rerender(entry)
    b = window.history_actions.rerender(entry)
    assert a.state in ("rendering", "loading") and b.state == "queued"
    assert window.queue_panel.state_of(b.id) == "Queued"
    assert window.tabs.currentWidget() is window.queue_panel
    qtbot.waitUntil(lambda: len(done) == 2, timeout=180000)
    assert done == [a.id, b.id]
    assert window.queue_panel.state_of(a.id) == "Done" and window.queue_panel.state_of(b.id) == "Done"
    # the same seed and settings give the same take
    takes = window.history.list()
    assert len(takes) == 3 and {t.seed for t in takes} == {5}
    assert np.array_equal(window.history.load_audio(takes[0]), window.history.load_audio(takes[2]))
    # play a take from the history (stop the streamed take first: its end must not be mistaken for this one's)
    window.player.stop()
    window.history_actions.play(takes[1])
    qtbot.waitUntil(lambda: window.player.source == ("entry", takes[1].id), timeout=20000)
    assert window.take.entry_id == takes[1].id
    window.queue_panel.clear_button.click()
    assert window.queue_panel.table.rowCount() == 0
    assert first.state == "done"

    # delete asks first; "no" keeps the take
    monkeypatch.setattr(window, "confirm", lambda *a: False)
    assert not window.history_actions.delete(takes[0])
    monkeypatch.setattr(window, "confirm", lambda *a: True)
    assert window.history_actions.delete(takes[0])
    assert len(window.history) == 2 and not takes[0].audio_path.exists()
    assert window.history_panel.model.rowCount() == 2


def test_a_script_with_errors_is_not_rendered(qtbot, window):
    set_script(qtbot, window, "[S2] I speak first. [S1] Wrong.")
    assert window.render() is None
    assert window.queue.jobs == []
    assert window.editor.textCursor().position() == 0  # the cursor jumps to the error
    assert "Fix the script first" in window.progress_label.text()


def test_missing_model_is_explained_not_a_traceback(qtbot, settings, tmp_path):
    settings.set(opts.MODEL_PATH, str(tmp_path / "no-such-model"))
    settings.set(opts.PARAMS, {"max_new_tokens": 256})
    window = make_window(qtbot, settings)
    assert window.banner.isVisible()
    assert "does not exist" in window.banner_text.text() and "Model settings" in window.banner_text.text()
    set_script(qtbot, window, SCRIPT)
    with qtbot.waitSignal(window.queue.jobFailed, timeout=60000):
        job = window.render()
    assert job.state == "failed"
    error = window.last_error
    assert error.title == "The Dia model isn't available" and error.action == "model_settings"
    assert "Traceback" not in error.message and "no-such-model" in error.message
    boxes = [w for w in window.findChildren(QMessageBox) if w.isVisible()]
    assert boxes and any(b.text() == error.message for b in boxes)
    assert window.load_dialog is None
    assert window.progress_label.text() == "Failed: The Dia model isn't available"
    for box in boxes:
        box.close()
