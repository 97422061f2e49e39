"""What a new user meets in the window: readable meters and messages, one voice-length rule, dialogs
in the right order and on screen, keyboard on lists, take warnings that stay, devices found late."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QFileDialog

import engine
from app import playback
from app import settings as opts
from app.library.recorder import RecorderDialog
from app.library.window import LibraryWindow
from app.panels.history import SCRIPT
from app.panels.parameters import ParametersPanel
from app.playback import OutputDevice
from app.take import Take, suggested_file_name
from app.tasks import TaskRunner
from tests.app.conftest import make_window, tone
from tests.app.test_render import set_script

CAPPED = ("The render reached Max audio length and was cut off: the end of the script may be missing. "
          "Raise Max audio length or split the script.")


def add_entry(window, *, stop_reason: str = "eos", title_words: str = "Hello there") -> engine.HistoryEntry:
    return window.history.add(script=f"[S1] {title_words}.", audio_samples=tone(1.0), sample_rate=44100,
                              params=engine.GenerationParams(max_new_tokens=256), seed=4321, render_seconds=2.0,
                              stop_reason=stop_reason)


# -- item 10: meters and messages


def test_budget_share_is_written_beside_the_bar_not_across_its_fill(qtbot, window):
    view = window.script_panel.budget_view
    window.document.set_text("[S1] Hello there, how are you today? [S2] Fine, thanks.")
    assert not view.bar.isTextVisible() and not window.progress.isTextVisible()
    share = view.budget.estimated_frames / view.budget.frame_budget
    assert view.share.text() == f"{share:.0%} of one render" and view.share.isVisible()


def test_a_long_status_message_wraps_instead_of_being_cut(qtbot, window):
    message = "Restored the settings of “" + "a very long take title " * 6 + "” (seed 42); Ctrl+Z brings it back."
    window.statusBar().showMessage(message, 10000)
    label = window.statusBar().label
    qtbot.waitUntil(lambda: label.height() >= label.heightForWidth(label.width()), timeout=2000)
    assert window.statusBar().currentMessage() == message and label.text() == message
    assert QFontMetrics(label.font()).horizontalAdvance(message) > label.width()  # needs two lines, gets them
    assert label.heightForWidth(label.width()) > QFontMetrics(label.font()).height()


# -- item 11: one voice-length rule, read from the engine; import actions named by what they do


def test_voice_length_rule_comes_from_the_engine(qtbot, data_dir, settings):
    low, high = engine.RECOMMENDED_SECONDS
    with engine.VoiceLibrary() as library:
        tasks = TaskRunner()
        window = LibraryWindow(library, settings, tasks)
        qtbot.addWidget(window, before_close_func=lambda w: w.shutdown())
        hint = window.empty_hint.text()
        assert f"{low:g}–{high:g} seconds" in hint and "5–10" not in hint
        assert f"under {engine.MIN_SECONDS:g} s" in hint and f"over {engine.MAX_SECONDS:g} s" in hint
        assert window.import_action.text() == "Add voice from audio file…"
        assert "zip" in window.import_zip_action.text() and "zip" in window.export_action.text()
        assert window.import_action.text() != window.import_zip_action.text()
        dialog = RecorderDialog(library, settings, tasks)
        qtbot.addWidget(dialog, before_close_func=lambda d: d.shutdown())
        assert (dialog.seconds.minimum(), dialog.seconds.maximum()) == (engine.MIN_SECONDS, engine.MAX_SECONDS)
        assert f"{low:g}–{high:g} seconds" in dialog.seconds.toolTip() and "5–10" not in dialog.seconds.toolTip()
        tasks.wait()


# -- item 12: the order of questions; Esc


def test_unsaved_changes_are_asked_about_before_the_file_dialog(qtbot, settings, tmp_path, monkeypatch):
    window = make_window(qtbot, settings)
    target = tmp_path / "other.txt"
    target.write_text("[S1] Other.", encoding="utf-8")
    window.editor.moveCursor(window.editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(window.editor, " changed")
    order = []
    monkeypatch.setattr(window, "ask_unsaved", lambda name: order.append("save?") or "discard")
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: order.append("pick file") or (str(target), "")))
    window.files.ask_open()
    assert order == ["save?", "pick file"]
    assert window.editor.toPlainText() == "[S1] Other."
    # "cancel" on the question: no file dialog at all
    qtbot.keyClicks(window.editor, " again")
    order.clear()
    monkeypatch.setattr(window, "ask_unsaved", lambda name: order.append("save?") or "cancel")
    window.files.ask_open()
    assert order == ["save?"]


def test_esc_closes_the_voice_library_window(qtbot, window):
    window.open_library()
    library = window.library_window
    qtbot.waitExposed(library)
    library.activateWindow()
    qtbot.waitUntil(library.isActiveWindow, timeout=5000)
    qtbot.keyClick(library.table, Qt.Key.Key_Escape)
    assert not library.isVisible()


# -- item 13: the preset from the hosted API page


def test_podcast_dialogue_preset_has_the_documented_values(qtbot, settings):
    panel = ParametersPanel(settings)
    qtbot.addWidget(panel)
    index = panel.preset.findText("Podcast dialogue")
    assert index >= 0 and panel.preset.itemData(index, Qt.ItemDataRole.ToolTipRole)
    panel.apply_preset("Podcast dialogue")
    params = panel.params()
    assert (params.cfg_scale, params.temperature, params.top_p, params.cfg_filter_top_k, params.speed_factor) == (
        4.0, 1.3, 0.95, 35, 0.94)
    assert panel.preset.currentText() == "Podcast dialogue"


# -- item 17: a take cut off by the length cap keeps its warning


def test_a_render_cut_off_by_the_length_cap_keeps_a_warning_in_player_and_history(qtbot, window):
    set_script(qtbot, window, "[S1] Hi.")
    window.params_panel.seed.set_seed(8)
    with qtbot.waitSignal(window.queue.jobFinished, timeout=120000) as blocker:
        window.render()
    assert blocker.args[1].result.stop_reason == "max_new_tokens"  # the tiny model runs to the cap
    assert window.player_panel.warning.isVisible() and CAPPED in window.player_panel.warning.text()
    assert "⚠" in window.progress_label.text()
    window.statusBar().showMessage("Something else happened", 10)  # later messages don't take it away
    qtbot.waitUntil(lambda: window.statusBar().currentMessage() == "", timeout=5000)
    assert window.player_panel.warning.isVisible()
    model = window.history_panel.model
    assert model.data(model.index(0, SCRIPT)).startswith("⚠ ")
    assert CAPPED in model.data(model.index(0, SCRIPT), Qt.ItemDataRole.ToolTipRole)
    # played again from the history, it still carries the warning; a clean take does not
    clean = add_entry(window)
    window.history_panel.reload()
    with qtbot.waitSignal(window.player.durationChanged, timeout=10000):
        window.history_actions.play(clean)
    qtbot.waitUntil(lambda: window.take is not None and window.take.entry_id == clean.id, timeout=5000)
    assert not window.player_panel.warning.isVisible()
    capped = window.history.get(blocker.args[1].entry.id)
    window.history_actions.play(capped)
    qtbot.waitUntil(lambda: window.take.entry_id == capped.id, timeout=5000)
    assert window.player_panel.warning.isVisible()


# -- item 19: export and list polish


def test_exported_metadata_carries_the_real_seed_only(qtbot, window, tmp_path):
    entry = window.history.add(script="[S1] Hello.", audio_samples=tone(1.0), sample_rate=44100,
                               params=engine.GenerationParams(seed=engine.SEED_RANDOM), seed=987654, render_seconds=1.0)
    with qtbot.waitSignal(window.exporter.exportFinished, timeout=20000):
        window.exporter.export_entry(entry, tmp_path / "take.flac")
    comment = json.loads(engine.read_metadata(tmp_path / "take.flac")["comment"])
    assert comment["seed"] == 987654 and comment["params"]["seed"] == 987654
    assert json.loads(Take("t", params={"seed": -1}, seed=5).metadata()["comment"])["params"]["seed"] == 5


def test_suggested_export_name_ends_on_a_whole_word(qtbot, window, monkeypatch):
    title = "Welcome back to Small Hours, the show about what we do when nobody is watching"
    offered = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: offered.append(a[2]) or ("", "")))
    window.exporter.ask_path(title)
    stem = offered[0].rsplit("/", 1)[-1].rsplit(".", 1)[0]
    assert stem == "Welcome back to Small Hours the show"
    assert title.replace(",", "").startswith(stem + " ")
    assert suggested_file_name("") == "dialogue" and suggested_file_name("a/b: c?") == "a b c"


def test_preset_name_dialog_is_wide_enough_for_its_title(qtbot, settings):
    panel = ParametersPanel(settings)
    qtbot.addWidget(panel)
    dialog = panel.preset_name_dialog()
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    title = f"{dialog.windowTitle()} — Dia Studio"
    assert dialog.width() >= QFontMetrics(dialog.font()).horizontalAdvance(title) + 150  # title bar buttons
    dialog.reject()


def test_voice_library_opens_fully_on_screen(qtbot, window):
    available = window.screen().availableGeometry()
    window.move(available.right() - 200, available.bottom() - 150)  # the main window near a corner
    window.open_library()
    library = window.library_window
    qtbot.waitExposed(library)
    assert available.contains(library.frameGeometry()), (library.frameGeometry(), available)


def test_enter_plays_and_delete_deletes_a_history_row(qtbot, window, monkeypatch):
    entry = add_entry(window)
    window.history_panel.reload()
    table = window.history_panel.table
    assert window.history_panel.select(entry.id)
    table.setFocus()
    with qtbot.waitSignal(window.player.durationChanged, timeout=10000):
        qtbot.keyClick(table, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.player.source == ("entry", entry.id), timeout=5000)
    asked = []
    monkeypatch.setattr(window, "confirm", lambda title, text: asked.append(title) or True)
    qtbot.keyClick(table, Qt.Key.Key_Delete)
    assert asked == ["Delete this take?"] and len(window.history) == 0


def test_the_library_default_voice_becomes_s1_when_s1_was_never_chosen(qtbot, model_settings, voice_file):
    window = make_window(qtbot, model_settings)
    cast = window.cast_panel
    with engine.VoiceLibrary() as library:
        ann = library.add(voice_file, speaker_name="Ann", transcript="Hello, this is Ann speaking.")
    cast.refresh()
    cast.combos["S2"].setCurrentIndex(cast.combos["S2"].findData(ann.id))  # a hand-picked S2 only
    window.open_library()
    assert window.library_window.select(ann.id)
    window.library_window.toggle_default()  # Ann becomes the library's default
    assert cast.cast()["S1"] == ann.id and cast.cast()["S2"] == ann.id
    assert model_settings.get(opts.CAST_S1) == -2  # still "not chosen": it keeps following the default


# -- item 20: devices that appear later; no output device


def test_opening_the_output_list_finds_a_device_plugged_in_later(qtbot, window, monkeypatch):
    outputs = [[], "No audio output found: connect speakers or headphones, then open the Output list again."]
    monkeypatch.setattr("app.panels.player.available_outputs", lambda: (list(outputs[0]), outputs[1]))
    combo = window.player_panel.device_combo
    window.player_panel.refresh_devices()
    assert combo.currentText() == "No audio output" and combo.isEnabled()  # openable, so it can rescan
    outputs[:] = [[OutputDevice(7, "USB headset", "ALSA", False)], ""]
    combo.showPopup()
    assert [combo.itemText(i) for i in range(combo.count())] == ["System default", "USB headset (ALSA)"]
    combo.hidePopup()
    assert window.player_panel.has_output


def test_rescanning_waits_while_audio_is_in_use(qtbot, tmp_path):
    owner = object()
    playback.hold_audio(owner)
    try:
        assert playback.audio_in_use() and not playback.rescan_devices()
    finally:
        playback.release_audio(owner)
    assert not playback.audio_in_use()
    if playback.load_sounddevice() is not None:
        assert playback.rescan_devices()
        assert playback.available_outputs()[1] == "" or playback.available_outputs()[0] == []
    nodes = tmp_path / "snd"
    nodes.mkdir()
    watcher = playback.DeviceWatcher(nodes=nodes)
    with qtbot.waitSignal(watcher.changed, timeout=5000):
        (nodes / "pcmC1D0p").write_bytes(b"")  # a device node appears


def test_opening_the_microphone_list_finds_a_microphone_plugged_in_later(qtbot, data_dir, settings, monkeypatch):
    status = [engine.InputStatus(False, "No microphone found. Connect one, then restart Dia Studio.")]
    monkeypatch.setattr(engine, "input_status", lambda: status[0])
    with engine.VoiceLibrary() as library:
        tasks = TaskRunner()
        dialog = RecorderDialog(library, settings, tasks)
        qtbot.addWidget(dialog, before_close_func=lambda d: d.shutdown())
        assert not dialog.record_button.isEnabled()
        mic = engine.InputDevice(3, "USB mic", "ALSA", 1, 44100.0, True)
        status[0] = engine.InputStatus(True, "Ready to record from USB mic.", (mic,))
        dialog.device.showPopup()
        dialog.device.hidePopup()
        assert dialog.record_button.isEnabled() and dialog.device.currentText().startswith("USB mic")
        tasks.wait()


def test_without_an_output_device_a_render_still_streams_and_a_cancel_keeps_the_partial(qtbot, window,
                                                                                       monkeypatch):
    def nothing():
        return [], "No audio output found: connect speakers or headphones, then open the Output list again."

    monkeypatch.setattr("app.panels.player.available_outputs", nothing)
    window.player_panel.refresh_devices()
    assert not window.player_panel.has_output
    set_script(qtbot, window, "[S1] Hi.")
    live = []

    def first_chunk(job, _chunk) -> None:  # look at the player mid-render, then cancel
        if not live:
            live.append((window.player.source, window.player.streaming, window.player_panel.waveform.span_seconds()))
            window.queue.cancel(job.id)

    window.queue.audioChunk.connect(first_chunk)
    with qtbot.waitSignal(window.queue.jobCancelled, timeout=120000):
        job = window.render()
    assert live == [(("job", job.id), True, live[0][2])] and live[0][2] > 0  # the live waveform
    assert window.player.duration > 0 and window.player.source == ("job", job.id)
    assert window.take.partial and "(cancelled, partial)" in window.player_panel.title.text()
    assert window.player.state == "stopped" and window.last_error is None
