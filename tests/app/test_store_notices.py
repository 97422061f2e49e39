"""When opening the render history or the voice library recovered a lost database, the main window
says so at start, and keeps saying it until the user dismisses it (not a passing status message)."""

from __future__ import annotations

from pathlib import Path

import engine
from tests.app.conftest import make_window, tone


def lose(database: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)


def test_a_lost_history_database_is_announced_until_dismissed(qtbot, settings, data_dir):
    with engine.RenderHistory() as history:
        entry = history.add(script="[S1] Keep me.", audio_samples=tone(0.5), sample_rate=44100,
                            params=engine.GenerationParams(seed=4), seed=4, render_seconds=1.0)
    lose(data_dir / "history" / "history.sqlite3")
    window = make_window(qtbot, settings)
    assert window.notice.isVisible()
    assert "Render history: recovered 1 render from the files kept next to the audio." in window.notice_text.text()
    assert [e.id for e in window.history_panel.model.entries] == [entry.id]
    window.statusBar().showMessage("Something else", 10)  # later status messages don't take it away
    qtbot.waitUntil(lambda: window.statusBar().currentMessage() == "")
    assert window.notice.isVisible()
    window.notice_button.click()
    assert not window.notice.isVisible()


def test_a_lost_voice_library_database_is_announced(qtbot, settings, data_dir, voice_file):
    with engine.VoiceLibrary() as library:
        library.add(voice_file, speaker_name="Ann", transcript="Hello there.")
    lose(data_dir / "voices" / "library.sqlite3")
    window = make_window(qtbot, settings)
    assert window.notice.isVisible() and window.notice_text.text().startswith("ⓘ Voice library: recovered 1 voice")
    assert [s.speaker_name for s in window.cast_panel.samples.values()] == ["Ann"]


def test_a_clean_start_shows_no_notice(qtbot, settings, data_dir):
    window = make_window(qtbot, settings)
    assert not window.notice.isVisible() and window.notice_text.text() == ""
