"""How the episode view shares the window: the player is one row under it, with nothing wasted."""

from __future__ import annotations

from tests.app.episode.test_episode_view import open_episode
from tests.engine.episode.episode_fixtures import dialogue


def player_row(window) -> int:
    """The height of the player's one row of buttons, with its layout's margins."""
    margins = window.player_panel.layout().contentsMargins()
    return window.player_panel.play_button.sizeHint().height() + margins.top() + margins.bottom()


def test_in_the_episode_view_the_player_takes_only_its_one_row(window, qtbot):
    mode = open_episode(window, dialogue(4))
    window.resize(1366, 768)  # the splitter shares out the new height: the player row must not take any
    qtbot.wait(20)
    bottom = window.main_splitter.widget(1)
    assert window.player_panel.waveform.isHidden()
    assert bottom.height() <= player_row(window)
    assert window.main_splitter.sizes()[1] == bottom.height()
    mode.show_episode(False)  # back in the script view: the waveform and the render bar return
    qtbot.wait(20)
    assert not window.player_panel.waveform.isHidden() and bottom.height() > player_row(window)
