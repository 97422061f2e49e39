"""Screenshots of the real windows in light and dark palettes (test-output/*.png), plus readability
checks that don't need eyes: text colours keep contrast with their backgrounds in both themes."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

import engine
from app.library.recorder import RecorderDialog
from app.take import Take
from app.theme import apply_theme, editor_colors
from tests.app.conftest import make_window, tone
from tests.app.test_cast import add_voices

SCRIPT = ("[S1] Welcome back to Small Hours. (laughs)\n"
          "[S2] Thanks for having me! (giggles)\n"
          "[S1] So, tell us about the radio.\n"
          "[S2]")


def contrast(a, b) -> float:
    def lum(c):
        def ch(v):
            v /= 255
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
        return 0.2126 * ch(c.red()) + 0.7152 * ch(c.green()) + 0.0722 * ch(c.blue())

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.fixture
def restore_palette(qapp):
    style, palette = qapp.style().name(), qapp.palette()
    yield
    qapp.setStyle(style)
    qapp.setPalette(palette)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_editor_colours_are_readable(qapp, restore_palette, theme):
    apply_theme(qapp, theme)
    palette = QApplication.palette()
    base = palette.color(QPalette.ColorRole.Base)
    colors = editor_colors(palette)
    for name in ("s1", "s2", "cue", "unknown_cue", "error"):
        assert contrast(getattr(colors, name), base) >= 3.0, name
    assert contrast(palette.color(QPalette.ColorRole.Text), base) >= 7.0
    assert contrast(palette.color(QPalette.ColorRole.WindowText), palette.color(QPalette.ColorRole.Window)) >= 7.0


def test_screenshots_of_main_and_library_windows(qtbot, model_settings, voice_file, tmp_path, test_output_dir,
                                                 restore_palette, qapp):
    ann, bo = add_voices(voice_file, tmp_path)
    window = make_window(qtbot, model_settings)
    window.resize(1280, 860)
    window.params_panel.apply_preset("Default")  # a realistic 3072-frame budget for the meter
    window.document.set_text(SCRIPT)
    cursor = window.editor.textCursor()
    cursor.setPosition(window.editor.document().findBlockByNumber(1).position() + 29)
    window.editor.setTextCursor(cursor)
    params = engine.GenerationParams(max_new_tokens=256)
    for seed, seconds in ((1234, 6.0), (98765, 4.5)):
        take = window.history.add(script=SCRIPT, audio_samples=tone(seconds), sample_rate=44100, params=params,
                                  seed=seed, render_seconds=seconds * 3, cast={"S1": engine.CastMember(ann.id, "Ann")})
    window.history.set_starred(take.id, True)
    window.history.set_label(take.id, "warmer")
    window.history_panel.reload()
    window.player.load(tone(6.0), 44100, ("entry", 1))
    window.player.seek(2.2)
    window.take = Take("Welcome back to Small Hours.", SCRIPT, params.to_dict(), 1234)
    window.player_panel.set_title("Welcome back to Small Hours. · seed 1234")
    window.progress.setValue(1000)
    window.progress.setFormat("100%")
    window.progress_label.setText("Done: 6.0 s of audio in 18.0 s (seed 1234)")
    window.open_library()
    library = window.library_window
    library.resize(900, 520)
    assert library.select(bo.id)
    dialog = RecorderDialog(window.library, window.settings, window.tasks)
    qtbot.addWidget(dialog, before_close_func=lambda d: d.shutdown())
    dialog.meter.set_level(-12.0, -20.0)
    dialog.show()

    for theme in ("light", "dark"):
        window.set_theme(theme)
        qtbot.wait(50)
        assert window.grab().save(str(test_output_dir / f"main-window-{theme}.png"))
        assert library.grab().save(str(test_output_dir / f"library-window-{theme}.png"))
        assert dialog.grab().save(str(test_output_dir / f"recorder-{theme}.png"))
        settings_dialog = window.open_model_settings()
        qtbot.wait(20)
        assert settings_dialog.grab().save(str(test_output_dir / f"model-settings-{theme}.png"))
        settings_dialog.reject()
    window.set_theme("light")
    for name in ("main-window-light", "main-window-dark", "library-window-dark"):
        assert (test_output_dir / f"{name}.png").stat().st_size > 10_000
    library.close()
