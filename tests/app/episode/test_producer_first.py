"""Producer first (issue 11): presets before the raw sampling controls, length in seconds, History and
Queue in docks, the episode's timeline, takes compared A/B with stars and labels, the export dialog's
measured loudness and cover image, and episode playback that is the export's join."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from mutagen.id3 import ID3
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QDockWidget

import engine
from app.panels.parameters import ADVANCED_OPEN, ADVANCED_PARAMS, MAIN_PARAMS, ParametersPanel
from tests.app.conftest import make_window
from tests.app.episode.test_episode_view import open_copy
from tests.engine.episode.episode_fixtures import dialogue

ROOT = Path(__file__).resolve().parents[3]
OUTPUT = ROOT / "test-output"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, tiny_models) -> Path:
    """An 8-line, three-character episode with two chapters; block 0 has two takes."""
    path = tmp_path_factory.mktemp("producer") / "rendered.diaproj"
    options = engine.EngineOptions(model=str(tiny_models[0]), codec=str(tiny_models[1]), dtype="float32")
    dia = engine.DiaEngine.load(options)
    with engine.EpisodeProject(path) as project:
        project.update(script=dialogue(8, chapter_every=4), params=engine.GenerationParams(max_new_tokens=256))
        engine.render_episode(project, dia)
        engine.regenerate_block(project, dia, 0, seed=99)
    return path


# -- 1. presets first, the raw controls in Advanced, length in seconds

def test_presets_come_first_and_the_raw_sampling_controls_wait_in_a_closed_advanced_section(qtbot, settings):
    panel = ParametersPanel(settings)
    qtbot.addWidget(panel)
    panel.show()
    assert not panel.advanced_toggle.isChecked() and panel.advanced.isHidden()
    assert all(panel.advanced.isAncestorOf(panel.controls[name].spin) for name in ADVANCED_PARAMS)
    assert not any(panel.advanced.isAncestorOf(panel.controls[name].spin) for name in MAIN_PARAMS)
    assert panel.preset.mapTo(panel, QPoint(0, 0)).y() < min(
        panel.controls[name].spin.mapTo(panel, QPoint(0, 0)).y() for name in MAIN_PARAMS)


def test_the_advanced_section_remembers_being_open(qtbot, settings):
    panel = ParametersPanel(settings)
    qtbot.addWidget(panel)
    panel.advanced_toggle.click()
    assert not panel.advanced.isHidden() and settings.get(ADVANCED_OPEN)
    again = ParametersPanel(settings)
    qtbot.addWidget(again)
    assert again.advanced_toggle.isChecked() and not again.advanced.isHidden()


def test_the_longest_take_is_shown_and_typed_in_seconds_from_the_engines_numbers(qtbot, settings):
    panel = ParametersPanel(settings)
    qtbot.addWidget(panel)
    spin = panel.controls["max_new_tokens"].spin
    spin.setValue(3072)
    seconds = (3072 - engine.DECODER_OVERHEAD_FRAMES) / engine.FRAME_RATE
    assert spin.text() == f"{seconds:.1f} s" == "35.5 s"
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin, "12 s")
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    assert panel.params().max_new_tokens == round(12 * engine.FRAME_RATE) + engine.DECODER_OVERHEAD_FRAMES
    assert spin.text() == "12.0 s"


# -- 2. History and Queue get room

def test_history_and_queue_are_resizable_docks_tabbed_below(window):
    docks = {d.windowTitle(): d for d in window.findChildren(QDockWidget)}
    assert set(docks) == {"History", "Queue"}
    assert docks["History"].widget() is window.history_panel and docks["Queue"].widget() is window.queue_panel
    assert window.dockWidgetArea(docks["History"]) == Qt.DockWidgetArea.BottomDockWidgetArea
    assert docks["Queue"] in window.tabifiedDockWidgets(docks["History"])
    assert docks["History"].features() & QDockWidget.DockWidgetFeature.DockWidgetFloatable
    window.tabs.setCurrentWidget(window.queue_panel)
    assert window.tabs.currentWidget() is window.queue_panel and not docks["Queue"].visibleRegion().isEmpty()
    view = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    toggles = {a.text(): a for a in view.actions()}
    toggles["Queue"].trigger()  # View → Queue closes it; again brings it back
    assert docks["Queue"].isHidden()
    toggles["Queue"].trigger()
    assert not docks["Queue"].isHidden()


def test_a_closed_dock_stays_closed_after_a_restart(qtbot, model_settings):
    first = make_window(qtbot, model_settings)
    first.tabs.docks[1].close()
    first.close()
    second = make_window(qtbot, model_settings)
    assert second.tabs.docks[1].isHidden() and not second.tabs.docks[0].isHidden()


def player_row(window) -> int:
    """The height of the player's one row of buttons, with its layout's margins."""
    margins = window.player_panel.layout().contentsMargins()
    return window.player_panel.play_button.sizeHint().height() + margins.top() + margins.bottom()


def test_in_the_episode_view_the_player_is_one_row_and_the_episode_gets_the_height(window, qtbot):
    window.resize(1366, 768)
    window.episode.new_episode()
    assert window.episode.active
    assert window.player_panel.waveform.isHidden()
    assert window.player_panel.height() < 0.12 * window.height()
    window.resize(1366, 900)  # the splitter shares out the new height: the player row must not take any
    qtbot.wait(20)
    bottom = window.main_splitter.widget(1)
    assert bottom.height() <= player_row(window) and window.main_splitter.sizes()[1] == bottom.height()
    window.episode.show_episode(False)  # back in the script view: the waveform and the render bar return
    qtbot.wait(20)
    assert not window.player_panel.waveform.isHidden() and bottom.height() > player_row(window)


# -- 3. the timeline

def test_the_timeline_puts_blocks_where_the_export_joins_them_with_chapters_and_line_markers(window, rendered,
                                                                                             tmp_path):
    mode = open_copy(window, rendered, tmp_path)
    project, blocks = mode.session.project, mode.session.blocks
    chapters = {c.first_block for c in project.chapters() if c.first_block > 0}
    joined, spans = engine.join_blocks([project.take_audio(b.chosen) for b in blocks], chapters,
                                       engine.MasterSettings(), engine.TARGET_SAMPLE_RATE)
    layout = mode.view.overview.layout_
    assert layout.duration == pytest.approx(joined.shape[0] / engine.TARGET_SAMPLE_RATE, abs=0.02)
    for (start, end), (s, e) in zip(layout.spans, spans):
        assert start == pytest.approx(s, abs=0.02) and end == pytest.approx(e, abs=0.02)
    assert [title for _t, title in layout.chapters] == ["Chapter 1", "Chapter 2"]
    assert layout.chapters[1][0] == layout.spans[next(c.first_block for c in project.chapters()
                                                       if c.title == "Chapter 2")][0]
    assert len(layout.turns) == sum(len(b.turns) for b in blocks) == 8  # a marker per script line
    assert [t for t, _who in layout.turns] == sorted(t for t, _who in layout.turns)


def test_zoom_shows_less_of_the_episode_and_the_ruler_ticks_get_finer(window, rendered, tmp_path):
    mode = open_copy(window, rendered, tmp_path)
    timeline = mode.view.timeline
    canvas = timeline.canvas
    canvas.resize(800, canvas.height())
    whole = canvas.visible
    coarse = engine_tick(canvas)
    timeline.zoom_in.click()
    timeline.zoom_in.click()
    assert canvas.visible == pytest.approx(whole / 4)
    assert engine_tick(canvas) < coarse
    assert timeline.scrollbar.isVisibleTo(timeline)
    timeline.zoom_fit.click()
    assert canvas.visible == pytest.approx(whole) and canvas.start == 0


def engine_tick(canvas) -> float:
    from app.episode.timeline import tick_step

    return tick_step(canvas.visible / canvas.width())


def test_a_click_on_the_timeline_plays_the_episode_from_there(window, rendered, tmp_path, qtbot):
    mode = open_copy(window, rendered, tmp_path)
    canvas = mode.view.overview
    canvas.resize(800, canvas.height())
    start, end = canvas.layout_.spans[2]
    x = round(canvas.x_of(start + (end - start) / 2))
    sent_to = []  # where the player was sent (seek reports it at once), whatever pace the audio thread keeps
    window.player.positionChanged.connect(sent_to.append)
    with qtbot.waitSignal(canvas.seekRequested) as seek:
        qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x, canvas.height() // 2))
    window.player.positionChanged.disconnect(sent_to.append)
    index, into = seek.args
    assert index == 2 and into == pytest.approx((end - start) / 2, abs=2 * canvas.visible / canvas.width())
    # it plays the episode from block 2, sent to the clicked moment (the null audio device of the tests
    # once consumed 15 s of a stream within 86 ms of the click, so the playhead itself is not a measure)
    assert mode.playback.active and mode.playback.first == 2
    assert any(abs(seconds - into) <= 0.05 for seconds in sent_to)
    assert mode.view.selected_block() == 2


# -- 4. takes: A/B, stars and labels

def test_a_star_and_a_label_on_a_take_are_kept_in_the_project_file(window, rendered, tmp_path, qtbot):
    mode = open_copy(window, rendered, tmp_path)
    mode.view.select_block(0)
    chosen = mode.session.blocks[0].chosen
    mode.view.star.click()
    mode.view.take_name.setFocus()
    mode.view.take_name.setText("warmer read")
    qtbot.keyClick(mode.view.take_name, Qt.Key.Key_Return)
    with engine.EpisodeProject(mode.session.path) as again:
        take = next(t for t in again.blocks()[0].takes if t.id == chosen)
        assert take.starred and take.label == "warmer read"
    assert "★" in mode.view.take_label.text()
    mode.view.star.click()
    assert not next(t for t in mode.session.blocks[0].takes if t.id == chosen).starred


def test_switching_a_to_b_carries_on_at_the_same_moment(window, rendered, tmp_path):
    mode = open_copy(window, rendered, tmp_path)
    mode.view.select_block(0)
    block = mode.session.blocks[0]
    assert len(block.takes) == 2 and mode.view.compare.count() == 1
    assert mode.switch_ab() == "A" and window.player.source == ("episode-take", block.chosen)
    window.player.pause()  # paused, so the position stands still while we look
    # the tiny model's takes differ in length from one CPU to another: pick moments inside both
    shorter = min(len(mode.session.project.take_audio(t.id)) for t in block.takes) / engine.TARGET_SAMPLE_RATE
    later, earlier = shorter * 0.8, shorter * 0.4
    window.player.seek(later)
    assert mode.switch_ab() == "B"
    assert window.player.source == ("episode-take", mode.view.compare.currentData())
    assert window.player.position == pytest.approx(later, abs=1e-3) and window.player.state != "playing"
    window.player.seek(earlier)
    assert mode.switch_ab() == "A" and window.player.position == pytest.approx(earlier, abs=1e-3)
    assert mode.view.hearing.text() == "Hearing A"


# -- 5. the export dialog

def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x80\x80" * 2))
            + chunk(b"IEND", b""))


def test_the_export_dialog_measures_the_episode_before_exporting(window, rendered, tmp_path, qtbot):
    mode = open_copy(window, rendered, tmp_path)
    dialog = mode.open_export()
    qtbot.waitUntil(lambda: dialog.measurement is not None, timeout=60_000)
    project = mode.session.project
    blocks = project.blocks()
    expected = engine.master_episode([project.take_audio(b.chosen) for b in blocks],
                                     {c.first_block for c in project.chapters() if c.first_block > 0},
                                     engine.MasterSettings(loudness="off"), engine.TARGET_SAMPLE_RATE)
    assert dialog.measurement.loudness_lufs == pytest.approx(expected.loudness_lufs)
    text = dialog.loudness_now.text()
    assert f"{expected.loudness_lufs:.1f} LUFS as rendered" in text and "dBTP" in text
    assert "-16 LUFS" in text  # what the chosen preset makes of it
    assert dialog.measure_progress.isHidden() and dialog.result is None  # nothing exported yet


def test_an_episode_with_blocks_left_to_render_says_so_instead_of_a_loudness(window, qtbot):
    window.episode.session.new(dialogue(4))
    window.episode.show_episode(True)
    dialog = window.episode.open_export()
    qtbot.waitUntil(lambda: dialog.loudness_now.text().startswith("Not measured"), timeout=30_000)
    assert "render them" in dialog.loudness_now.text()


def test_the_export_carries_a_cover_where_the_format_has_one(window, rendered, tmp_path, qtbot):
    mode = open_copy(window, rendered, tmp_path)
    dialog = mode.open_export()
    image = tmp_path / "cover.png"
    image.write_bytes(png())
    dialog.format.setCurrentText("WAV")
    assert not dialog.cover.isEnabled()
    dialog.format.setCurrentText("MP3")
    assert dialog.cover.isEnabled()
    dialog.path.setText(str(tmp_path / "show.mp3"))
    dialog.cover.setText(str(image))
    dialog.captions.setCurrentText("None")
    with qtbot.waitSignal(dialog.exported, timeout=120_000):
        dialog.export_button.click()
    [cover] = ID3(tmp_path / "show.mp3").getall("APIC")
    assert cover.data == png() and cover.mime == "image/png"


def test_a_cover_that_is_not_an_image_stops_the_export_with_a_message(window, rendered, tmp_path, qtbot):
    mode = open_copy(window, rendered, tmp_path)
    dialog = mode.open_export()
    bad = tmp_path / "cover.png"
    bad.write_bytes(b"not an image")
    dialog.path.setText(str(tmp_path / "show.mp3"))
    dialog.cover.setText(str(bad))
    dialog.export_button.click()
    qtbot.waitUntil(lambda: dialog.export_button.isEnabled(), timeout=60_000)
    assert "PNG or JPEG" in dialog.measured.text()
    assert not (tmp_path / "show.mp3").exists()


# -- 6. what you hear is what you export

def test_playing_from_a_block_is_the_exports_join_of_the_blocks_from_there(window, rendered, tmp_path):
    mode = open_copy(window, rendered, tmp_path)
    project, blocks = mode.session.project, mode.session.blocks
    mode.playback.play_from(1)
    chapters = {c.first_block - 1 for c in project.chapters() if c.first_block > 1}
    joined, spans = engine.join_blocks([project.take_audio(b.chosen) for b in blocks[1:]], chapters,
                                       engine.MasterSettings(), engine.TARGET_SAMPLE_RATE)
    assert not window.player.streaming
    np.testing.assert_array_equal(window.player.samples().reshape(-1), joined)
    assert mode.playback.starts == [(s, b.index) for (s, _e), b in zip(spans, blocks[1:])]


def test_screenshot_of_the_timeline_zoomed_in(window, rendered, tmp_path, qtbot):
    mode = open_copy(window, rendered, tmp_path)
    window.resize(1366, 768)
    mode.view.select_block(0)
    mode.view.timeline.zoom_in.click()
    qtbot.wait(50)
    OUTPUT.mkdir(exist_ok=True)
    assert mode.view.grab().save(str(OUTPUT / "episode-timeline-zoomed.png"))
