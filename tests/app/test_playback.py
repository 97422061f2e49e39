"""Playback on the ALSA null device (unpaced): whole clips, streamed renders, seek, no device."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from app import playback
from app.panels.player import PlayerPanel, clock
from app.playback import BUFFERING, PAUSED, PLAYING, STOPPED, AudioPlayer
from tests.app.conftest import tone

needs_device = pytest.mark.skipif(not playback.available_outputs()[0], reason="no audio output device")


@pytest.fixture
def player(qtbot):
    p = AudioPlayer()
    yield p
    p.shutdown()


@needs_device
def test_plays_a_clip_to_the_end(qtbot, player):
    player.load(tone(1.0), 44100)
    assert player.duration == pytest.approx(1.0)
    states = []
    player.stateChanged.connect(states.append)
    with qtbot.waitSignal(player.finished, timeout=10000):
        assert player.play()
    assert states[0] == PLAYING and player.state == STOPPED and player.position == 0.0
    # playing again starts from the beginning
    with qtbot.waitSignal(player.finished, timeout=10000):
        player.play()


@needs_device
def test_streamed_audio_buffers_until_enough_arrives(qtbot, player):
    player.begin_stream(44100, source="job", expected_seconds=3)
    assert player.streaming and player.duration == 0
    player.play()
    assert player.state == BUFFERING  # nothing to play yet
    player.append(np.zeros(1000, np.float32))
    assert player.state == BUFFERING  # not enough ahead of the playhead
    player.append(tone(1.0))
    assert player.state == PLAYING
    qtbot.waitUntil(lambda: player.state == BUFFERING, timeout=10000)  # the unpaced device caught up
    player.append(tone(0.5), start=player.samples().size)
    final = np.concatenate([np.zeros(1000, np.float32), tone(1.0), tone(0.5), tone(0.5)])
    with qtbot.waitSignal(player.finished, timeout=10000):
        player.end_stream(final)
    assert not player.streaming
    np.testing.assert_array_equal(player.samples(), final)


@needs_device
def test_pause_seek_and_stop(qtbot, player):
    player.load(tone(2.0), 44100)
    player.seek(1.5)
    assert player.position == pytest.approx(1.5)
    player.seek(99)
    assert player.position == pytest.approx(2.0)
    player.play()
    player.pause()
    assert player.state in (PAUSED, STOPPED)
    player.stop()
    assert player.state == STOPPED and player.position == 0.0


def test_no_output_device_is_explained_once_and_renders_dont_try_to_play(qtbot, window, monkeypatch):
    def nothing():
        return [], "No audio output found: connect speakers or headphones, then restart Dia Studio."

    monkeypatch.setattr(playback, "available_outputs", nothing)
    monkeypatch.setattr("app.panels.player.available_outputs", nothing)
    window.player_panel.refresh_devices()
    assert not window.player_panel.has_output
    assert window.player_panel.device_combo.currentText() == "No audio output"
    window.player.set_device("nothing here")
    window.player.load(tone(0.5), 44100)
    with qtbot.waitSignal(window.player.error) as blocker:
        window.player.play()
    assert blocker.args[0].startswith("No audio output found")
    window.player.clear()
    window.last_error = None
    # a render with "play while rendering" on does not try (and fail) to play
    window.params_panel.seed.set_seed(3)
    with qtbot.waitSignal(window.queue.jobFinished, timeout=120000):
        window.render()
    assert window.player.state == STOPPED and window.player.duration > 0
    assert window.last_error is None


def test_no_portaudio_is_a_message_not_a_crash(qtbot, player, monkeypatch):
    monkeypatch.setattr(playback, "load_sounddevice", lambda: None)
    devices, status = playback.available_outputs()
    assert devices == [] and "PortAudio" in status
    player.load(tone(0.5), 44100)
    with qtbot.waitSignal(player.error) as blocker:
        assert not player.play()
    assert "unavailable" in blocker.args[0]
    assert player.state == STOPPED
    panel = PlayerPanel(player)
    qtbot.addWidget(panel)
    assert not panel.device_combo.isEnabled() and panel.device_combo.currentText() == "No audio output"


@needs_device
def test_a_bad_output_device_is_reported(qtbot, player):
    player.load(tone(0.5), 44100)
    player.set_device("no such device anywhere")
    with qtbot.waitSignal(player.error) as blocker:
        assert not player.play()
    assert "Choose another output device" in blocker.args[0]


def test_waveform_click_seeks_and_keys_step(qtbot, player):
    panel = PlayerPanel(player)
    qtbot.addWidget(panel)
    panel.resize(600, 160)
    panel.show()
    qtbot.waitExposed(panel)
    assert not panel.play_button.isEnabled()
    player.load(tone(4.0), 44100)
    assert panel.play_button.isEnabled() and panel.time_label.text() == "0:00.0 / 0:04.0"
    wave = panel.waveform
    env = wave.envelope(wave.width())
    assert env is not None and env.shape == (wave.width(), 2) and env.max() > 0.1
    qtbot.mouseClick(wave, Qt.MouseButton.LeftButton, pos=QPoint(wave.width() // 2, wave.height() // 2))
    assert player.position == pytest.approx(2.0, abs=0.05)
    wave.setFocus()
    qtbot.keyClick(wave, Qt.Key.Key_Right)
    assert player.position == pytest.approx(3.0, abs=0.05)
    qtbot.keyClick(wave, Qt.Key.Key_Home)
    assert player.position == 0.0
    assert clock(75.25) == "1:15.2"
