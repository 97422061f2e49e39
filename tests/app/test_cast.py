"""Cast: library voices for [S1]/[S2] in the main window, transcript warnings, cloned renders."""

from __future__ import annotations

import engine
from app import settings as opts
from tests.app.conftest import make_window
from tests.app.test_render import set_script


def add_voices(voice_file, tmp_path):
    import soundfile as sf

    from tests.app.conftest import tone

    other = tmp_path / "bo.wav"
    sf.write(other, tone(3.0, 240.0), 44100)
    with engine.VoiceLibrary() as library:
        ann = library.add(voice_file, speaker_name="Ann", transcript="Hello, this is Ann speaking.", make_default=True)
        bo = library.add(other, speaker_name="Bo")
    return ann, bo


def test_default_voice_preselected_warnings_and_cloned_render(qtbot, model_settings, voice_file, tmp_path):
    ann, bo = add_voices(voice_file, tmp_path)
    window = make_window(qtbot, model_settings)
    cast = window.cast_panel
    assert cast.cast() == {"S1": ann.id, "S2": None}  # the library's default speaks S1
    assert cast.combos["S1"].currentText().startswith("Ann ★")
    assert "no transcript" in cast.combos["S2"].itemText(cast.combos["S2"].findData(bo.id))
    assert not cast.warning.isVisible()
    assert "voice prompt" in window.script_panel.budget_view.estimate.text()

    # Bo has no transcript: a warning, and a render explains what to do
    cast.combos["S2"].setCurrentIndex(cast.combos["S2"].findData(bo.id))
    assert cast.warning.isVisible() and "Bo ([S2]) has no transcript" in cast.warning.text()
    set_script(qtbot, window, "[S1] Nice to meet you. [S2] Likewise, I'm sure.")
    with qtbot.waitSignal(window.queue.jobFailed, timeout=60000):
        window.render()
    assert window.last_error.title == "A voice has no transcript" and window.last_error.action == "voice_library"
    assert "Bo" in window.last_error.message

    # fix it in the library window; the cast panel follows
    window.open_library()
    lib_window = window.library_window
    assert lib_window.select(bo.id)
    lib_window.transcript_edit.setPlainText("Well, here I am.")
    lib_window.save_selected_transcript()
    assert not cast.warning.isVisible()
    assert cast.cast() == {"S1": ann.id, "S2": bo.id}

    # the voice prompt counts against max_new_tokens: a failed render here would say so, and 256
    # positions cannot hold ~7 s of prompt, so give this render room
    failures = []
    window.queue.jobFailed.connect(lambda job, error: failures.append(error))
    window.params_panel.controls["max_new_tokens"].spin.setValue(1024)
    with qtbot.waitSignal(window.queue.jobFinished, timeout=120000) as blocker:
        window.render()
    assert failures == []
    job, outcome = blocker.args
    assert outcome.entry.cast_label == "S1 Ann · S2 Bo"
    assert outcome.result.model_text.startswith("[S1] Hello, this is Ann speaking.\n[S2] Well, here I am.\n")
    assert window.take.cast == {"S1": "Ann", "S2": "Bo"}
    lib_window.close()

    # the choice survives a restart
    window.close()
    again = make_window(qtbot, model_settings)
    assert again.cast_panel.cast() == {"S1": ann.id, "S2": bo.id}
    assert model_settings.get(opts.CAST_S2) == bo.id


def test_deleted_voice_falls_back_to_random(qtbot, settings, voice_file, tmp_path):
    ann, bo = add_voices(voice_file, tmp_path)
    settings.set(opts.CAST_S1, bo.id)
    settings.set(opts.CAST_S2, 9999)
    window = make_window(qtbot, settings)
    assert window.cast_panel.cast() == {"S1": bo.id, "S2": None}
    window.library.delete(bo.id)
    window.cast_panel.refresh()
    assert window.cast_panel.cast() == {"S1": None, "S2": None}
