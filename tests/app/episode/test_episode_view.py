"""The episode view on the real window with the tiny model: projects, blocks, rendering through the
app's one render queue, takes, locks, undo, export, command line, crash and resume, screenshots."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QTextCursor

import engine
from app import settings as opts
from app.episode.session import LAST_PROJECT, RENDER_INTERRUPTED
from app.launcher import opens_in_window
from app.main import files_to_open
from tests.app.conftest import make_window
from tests.engine.episode.episode_fixtures import dialogue

ROOT = Path(__file__).resolve().parents[3]
OUTPUT = ROOT / "test-output"
RENDER_TIMEOUT_MS = 300_000


def wait_rendered(qtbot, mode) -> None:
    qtbot.waitUntil(lambda: not mode.renderer.busy, timeout=RENDER_TIMEOUT_MS)


def open_episode(window, script: str):
    mode = window.episode
    assert mode.session.new(script)
    mode.show_episode(True)
    return mode


@pytest.fixture(scope="module")
def rendered_project(tmp_path_factory, tiny_models) -> Path:
    """An 8-line, three-character episode with two chapters, every block rendered once (by the engine)."""
    path = tmp_path_factory.mktemp("episode") / "rendered.diaproj"
    options = engine.EngineOptions(model=str(tiny_models[0]), codec=str(tiny_models[1]), dtype="float32")
    dia = engine.DiaEngine.load(options)
    with engine.EpisodeProject(path) as project:
        project.update(script=dialogue(8, chapter_every=4),
                       params=engine.GenerationParams(max_new_tokens=256))
        engine.render_episode(project, dia)
    return path


def open_copy(window, source: Path, tmp_path: Path):
    target = tmp_path / "show.diaproj"
    shutil.copyfile(source, target)
    assert window.episode.open_any(target)
    return window.episode


def states(mode) -> list[str]:
    return [b.state for b in mode.session.blocks]


def test_a_forty_line_three_character_script_opens_as_blocks_with_its_cast(window):
    mode = open_episode(window, dialogue(40))
    blocks = mode.session.blocks
    assert len(blocks) > 1 and all(len(b.characters) <= 2 for b in blocks)
    assert set(mode.view.cast.combos) == {"Mara", "Theo", "Dr. Lee"}
    assert mode.view.model.rowCount() == len(blocks)
    assert not mode.view.cast.warning.isHidden()  # seed-only characters drift: said so
    assert "Mara" in mode.view.cast.warning.text()


def test_the_editor_checks_the_episode_syntax(window, qtbot):
    mode = open_episode(window, "# One\n[Mara] Hello there.\n---\n[Theo] Hi.\n")
    mode.view.editor.check_now()
    assert not mode.view.editor.issues
    mode.view.editor.setPlainText("[Mara] Fine.\n[S3] Not a speaker.\n")
    mode.view.editor.check_now()
    assert any(i.is_error and i.line == 2 for i in mode.view.editor.issues)


def test_selecting_a_block_selects_its_text_and_the_cursor_selects_its_block(window):
    mode = open_episode(window, dialogue(40))
    last = len(mode.session.blocks) - 1
    mode.view.select_block(last)
    selected = mode.view.editor.textCursor().selectedText()
    assert mode.session.blocks[last].turns[0][1] in selected
    cursor = mode.view.editor.textCursor()
    cursor.setPosition(0)
    mode.view.editor.setTextCursor(cursor)
    assert mode.view.selected_block() == 0


def test_render_all_renders_every_block_on_the_one_queue_and_plays_across_blocks(window, qtbot):
    mode = open_episode(window, dialogue(12, chapter_every=6))
    first_seen = []
    mode.renderer.blockFinished.connect(
        lambda _i: first_seen.append((window.player.duration, mode.renderer.busy)) if not first_seen else None)
    queued = mode.renderer.render()
    assert queued == len(mode.session.blocks) > 1
    assert {j.title.split(" ·")[0] for j in window.queue.jobs} == {f"Block {i + 1}" for i in range(queued)}
    mode.playback.play_from(0)  # before anything is rendered: it waits for block 1, then carries on
    wait_rendered(qtbot, mode)
    assert states(mode) == ["done"] * queued
    assert first_seen[0][1], "the first block was playable while later blocks still rendered"
    assert first_seen[0][0] > 0
    # what is heard is the export's join (its pauses, chapter pauses and fades), streamed block by block
    project = mode.session.project
    chapters = {c.first_block for c in project.chapters() if c.first_block > 0}
    joined, spans = engine.join_blocks([project.take_audio(b.chosen) for b in mode.session.blocks], chapters,
                                       engine.MasterSettings(), engine.TARGET_SAMPLE_RATE)
    np.testing.assert_array_equal(window.player.samples().reshape(-1), joined)
    assert [start for start, _i in mode.playback.starts] == [start for start, _end in spans]
    assert [i for _start, i in mode.playback.starts] == list(range(queued))
    assert not window.player.streaming


def test_editing_one_turn_changes_only_its_block(window, rendered_project, tmp_path):
    mode = open_copy(window, rendered_project, tmp_path)
    assert set(states(mode)) == {"done"}
    editor = mode.view.editor
    block = editor.document().findBlockByNumber(2)  # "[Theo] Line number 1, fine."
    cursor = QTextCursor(block)
    cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock)
    cursor.insertText(" Really")
    assert mode.session.commit()
    edited = next(b.index for b in mode.session.blocks if "Line number 1, fine. Really" in b.text)
    assert [b.index for b in mode.session.blocks if b.state == "changed"] == [edited]
    assert all(b.state == "done" for b in mode.session.blocks if b.index != edited)


def test_regenerate_switch_takes_and_lock_each_undo_and_redo(window, rendered_project, tmp_path, qtbot):
    mode = open_copy(window, rendered_project, tmp_path)
    session, stack = mode.session, mode.session.undo_stack
    first = session.blocks[0].chosen
    mode.view.select_block(0)
    mode.view.regenerate.click()
    wait_rendered(qtbot, mode)
    block = session.blocks[0]
    assert len(block.takes) == 2 and block.chosen != first
    assert mode.view.take_label.text() == "‹ 2/2 ›"
    second = block.chosen

    mode.view.previous_take.click()
    assert session.blocks[0].chosen == first
    stack.undo()
    assert session.blocks[0].chosen == second
    stack.redo()
    assert session.blocks[0].chosen == first

    mode.view.lock.click()
    assert session.blocks[0].locked and session.blocks[0].state == "locked"
    assert not mode.view.regenerate.isEnabled()
    stack.undo()
    assert not session.blocks[0].locked
    stack.redo()
    assert session.blocks[0].locked


def test_cast_changes_and_typing_undo_and_redo_on_the_same_stack(window, tmp_path):
    mode = open_episode(window, dialogue(6))
    session, stack = mode.session, mode.session.undo_stack
    voice = engine.VoiceInput("Ann", _tone(), "Hello there, this is my voice.")
    session.set_cast("Mara", voice)
    assert session.project.cast()["Mara"].name == "Ann"
    mode.view.editor.moveCursor(QTextCursor.MoveOperation.End)
    mode.view.editor.insertPlainText("[Theo] One more line.\n")
    assert session.commit()
    assert "One more line" in session.project.script
    stack.undo()
    assert session.commit() and "One more line" not in session.project.script
    stack.undo()
    assert session.project.cast()["Mara"] is None
    stack.redo()
    assert session.project.cast()["Mara"].name == "Ann"


def test_keep_this_voice_without_speech_to_text_says_what_to_install(window, rendered_project, tmp_path,
                                                                      monkeypatch):
    mode = open_copy(window, rendered_project, tmp_path)
    monkeypatch.setattr(engine, "stt_available", lambda: False)
    assert not mode.session.keep_voice(0, "Mara")
    assert "faster-whisper" in window.last_error.message


def test_export_writes_the_episode_with_chapters_and_captions(window, rendered_project, tmp_path, qtbot):
    mode = open_copy(window, rendered_project, tmp_path)
    dialog = mode.open_export()
    dialog.path.setText(str(tmp_path / "show.flac"))
    dialog.format.setCurrentText("FLAC")
    dialog.captions.setCurrentText("SubRip (.srt)")
    with qtbot.waitSignal(dialog.exported, timeout=120_000) as done:
        dialog.export_button.click()
    result = done.args[0]
    assert result.path == tmp_path / "show.flac" and result.path.stat().st_size > 0
    assert result.chapters == 2
    assert (tmp_path / "show.srt").read_text(encoding="utf-8").startswith("1\n")
    assert (tmp_path / "show.chapters.json").is_file()
    assert "LUFS" in dialog.measured.text()
    assert not list(tmp_path.glob("*.part*"))  # written atomically, nothing left beside it


def test_save_as_copies_the_project_and_it_is_remembered(window, model_settings, tmp_path):
    mode = open_episode(window, dialogue(6))
    untitled = mode.session.path
    assert mode.session.save_as(tmp_path / "mine")
    assert mode.session.path == tmp_path / "mine.diaproj"
    assert not untitled.exists()
    assert model_settings.get(opts.RECENT_FILES)[0] == str(tmp_path / "mine.diaproj")
    with engine.EpisodeProject(tmp_path / "mine.diaproj") as copy:
        assert "Line number 5" in copy.script


def test_the_command_line_opens_a_project_or_a_script(window, rendered_project, tmp_path):
    assert opens_in_window("EP.diaproj") and opens_in_window("notes.txt") and not opens_in_window("render")
    assert files_to_open(["-platform", "offscreen", "EP.diaproj"]) == ["EP.diaproj"]
    target = tmp_path / "ep.diaproj"
    shutil.copyfile(rendered_project, target)
    assert window.episode.open_any(str(target)) and window.episode.active
    script = tmp_path / "short.txt"
    script.write_text("[S1] Just one line.", encoding="utf-8")
    assert window.episode.open_any(str(script)) and not window.episode.active
    assert window.document.text() == "[S1] Just one line."


def test_a_short_script_becomes_a_one_block_episode(window):
    window.document.set_text("[S1] Hello there. [S2] Hi!")
    window.episode.script_to_episode()
    assert window.episode.active and len(window.episode.session.blocks) == 1


def test_typing_is_kept_after_a_restart_even_while_the_script_has_an_error(qtbot, model_settings):
    window = make_window(qtbot, model_settings)
    mode = open_episode(window, dialogue(4))
    path = mode.session.path
    mode.view.editor.moveCursor(QTextCursor.MoveOperation.End)
    mode.view.editor.insertPlainText("[S3] broken")
    window.close()  # no commit possible: the text has an error
    again = make_window(qtbot, model_settings)
    assert again.episode.active and again.episode.session.path == path
    assert again.episode.view.editor.toPlainText().endswith("[S3] broken")


CRASH_SCRIPT = """
import os, sys
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
app = QApplication([])
from app.settings import Settings
from app.main_window import MainWindow
settings = Settings(QSettings(sys.argv[1], QSettings.Format.IniFormat))
window = MainWindow(settings)
window.show()
mode = window.episode
assert mode.open_any(sys.argv[2])
mode.renderer.blockFinished.connect(lambda _i: print("block done", flush=True))
mode.renderer.render()
app.exec()
"""


def test_killed_mid_render_the_project_is_intact_and_the_render_resumes(qtbot, model_settings, settings_path,
                                                                         rendered_project, tmp_path, data_dir):
    project = tmp_path / "crash.diaproj"
    with engine.EpisodeProject(project) as fresh:
        fresh.update(script=dialogue(12, chapter_every=6), params=engine.GenerationParams(max_new_tokens=256))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "OMP_NUM_THREADS": "1", "DIA_STUDIO_DATA_DIR": str(data_dir)}
    child = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(settings_path), str(project)], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout.readline().strip() == "block done"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(60)
    model_settings.sync()
    with engine.EpisodeProject(project) as after:
        blocks = after.blocks()
        assert 1 <= sum(1 for b in blocks if b.state == "done") < len(blocks)
    assert model_settings.get(RENDER_INTERRUPTED) == str(project)
    assert model_settings.get(LAST_PROJECT) == str(project)

    window = make_window(qtbot, model_settings)
    mode = window.episode
    assert mode.active and mode.session.path == project
    assert not mode.view.resume_button.isHidden()
    mode.view.resume_button.click()
    wait_rendered(qtbot, mode)
    assert set(states(mode)) == {"done"}
    assert model_settings.get(RENDER_INTERRUPTED) == ""


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshot_of_the_episode_view(qtbot, model_settings, rendered_project, tmp_path, theme):
    model_settings.set(opts.THEME, theme)
    from PySide6.QtWidgets import QApplication

    from app.theme import apply_theme

    apply_theme(QApplication.instance(), theme)
    try:
        window = make_window(qtbot, model_settings)
        mode = open_copy(window, rendered_project, tmp_path)
        mode.view.select_block(1)
        window.resize(1366, 768)
        qtbot.wait(50)
        OUTPUT.mkdir(exist_ok=True)
        assert window.grab().save(str(OUTPUT / f"episode-{theme}.png"))
        if theme == "light":
            window.setGeometry(0, 0, 1366, 768)
            assert window.grab().save(str(OUTPUT / "episode-1366x768.png"))
    finally:
        apply_theme(QApplication.instance(), "light")


def test_screenshot_while_rendering(window, qtbot):
    mode = open_episode(window, dialogue(12, chapter_every=6))
    window.resize(1366, 768)
    mode.renderer.render()
    qtbot.waitUntil(lambda: any(mode.renderer.live(b.identity) == ("rendering", mode.renderer.live(b.identity)[1])
                                for b in mode.session.blocks if mode.renderer.live(b.identity)) and
                    window.queue.current is not None and window.queue.current.fraction > 0.1,
                    timeout=RENDER_TIMEOUT_MS)
    OUTPUT.mkdir(exist_ok=True)
    assert window.grab().save(str(OUTPUT / "episode-rendering.png"))
    mode.renderer.stop()
    qtbot.waitUntil(lambda: not mode.renderer.busy, timeout=RENDER_TIMEOUT_MS)


def _tone():
    from tests.app.conftest import tone

    return tone(3.0)
