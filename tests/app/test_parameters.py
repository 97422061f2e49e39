"""The parameters panel: sliders and spin boxes from PARAM_SPECS, seed, presets, persistence."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt

import engine
from app import settings as opts
from app.panels.parameters import CUSTOM, SEED_MAX, ParametersPanel
from app.settings import Settings


def make_panel(qtbot, settings) -> ParametersPanel:
    panel = ParametersPanel(settings)
    qtbot.addWidget(panel)
    return panel


def test_controls_follow_the_specs_and_stay_in_step(qtbot, settings):
    panel = make_panel(qtbot, settings)
    assert panel.params() == engine.GenerationParams()
    for name, control in panel.controls.items():
        spec = engine.PARAM_SPECS[name]
        assert control.spin.minimum() == spec.minimum and control.spin.maximum() == spec.maximum
        assert spec.help in control.slider.toolTip() and spec.help in control.spin.toolTip()
        assert control.label.buddy() is control.spin
    temp = panel.controls["temperature"]
    temp.slider.setValue(temp.slider.minimum())
    assert temp.spin.value() == engine.PARAM_SPECS["temperature"].minimum
    temp.spin.setValue(1.25)
    assert temp.slider.value() == round((1.25 - 0.1) / 0.05)
    tokens = panel.controls["max_new_tokens"]
    qtbot.keyClick(tokens.slider, Qt.Key.Key_End)
    assert panel.params().max_new_tokens == 4096
    assert panel.params().temperature == 1.25


def test_seed_field_takes_63_bit_seeds_random_and_reuse(qtbot, settings):
    panel = make_panel(qtbot, settings)
    seed = panel.seed
    assert seed.random.isChecked() and panel.params().seed == -1
    seed.random.setChecked(False)
    seed.edit.clear()
    qtbot.keyClicks(seed.edit, str(SEED_MAX))
    assert panel.params().seed == SEED_MAX and seed.is_valid()
    seed.edit.setText("9223372036854775808")  # 2**63: one too many
    assert not seed.is_valid()
    qtbot.keyClicks(seed.edit, "x")  # letters are refused by the validator
    assert seed.edit.text() == "9223372036854775808"
    assert not seed.reuse.isEnabled()
    panel.set_last_seed(4242)
    assert seed.reuse.isEnabled() and "4242" in seed.last.text()
    seed.random.setChecked(True)
    qtbot.mouseClick(seed.reuse, Qt.MouseButton.LeftButton)
    assert not seed.random.isChecked() and panel.params().seed == 4242


def test_presets_user_presets_and_reset(qtbot, settings):
    panel = make_panel(qtbot, settings)
    assert panel.preset.currentText() == "Default"
    panel.apply_preset("Steady")
    assert panel.params().replace(seed=-1) == engine.PRESETS["Steady"]
    assert panel.preset.currentText() == "Steady"
    assert panel.preset.itemData(panel.preset.findText("Steady"), Qt.ItemDataRole.ToolTipRole) == engine.PRESET_NOTES["Steady"]
    panel.controls["cfg_scale"].spin.setValue(2.2)
    assert panel.preset.currentText() == CUSTOM
    name = panel.save_user_preset("  My   warm take ")
    assert name == "My warm take" and panel.preset.currentText() == name
    assert panel.delete_preset.isEnabled()
    panel.reset_to_defaults()
    assert panel.params() == engine.GenerationParams() and panel.preset.currentText() == "Default"
    panel.apply_preset(name)
    assert panel.params().cfg_scale == 2.2
    # presets never touch the seed
    panel.seed.set_seed(77)
    panel.apply_preset("Expressive")
    assert panel.params().seed == 77
    try:
        panel.save_user_preset("Default")
    except ValueError as exc:
        assert "built-in" in str(exc)
    else:
        raise AssertionError("a built-in name must be refused")
    panel.preset.setCurrentText(name)
    panel.delete_current_preset()
    assert panel.preset.findText(name) < 0


def test_values_and_presets_persist_across_a_restart_with_typed_reads(qtbot, settings_path):
    first = Settings(QSettings(str(settings_path), QSettings.Format.IniFormat))
    panel = make_panel(qtbot, first)
    panel.controls["top_p"].spin.setValue(0.8)
    panel.seed.set_seed(2**62)
    panel.set_last_seed(99)
    panel.save_user_preset("Mine")
    first.sync()
    # a new QSettings object on the same file reads strings back from the INI; types must survive
    second = Settings(QSettings(str(settings_path), QSettings.Format.IniFormat))
    assert isinstance(second.get(opts.LAST_SEED), int) and second.get(opts.LAST_SEED) == 99
    again = make_panel(qtbot, second)
    assert again.params().top_p == 0.8 and again.params().seed == 2**62
    assert again.seed.last_seed == 99
    assert "Mine" in again.user_presets()


def test_settings_typed_reads_fall_back_on_garbage(settings_path):
    settings_path.parent.mkdir(parents=True, exist_ok=True)
    settings_path.write_text("[render]\nlast_seed=not-a-number\nparams=\"{broken json\"\n"
                             "play_while_rendering=true\n[files]\nrecent=one\n", encoding="utf-8")
    s = Settings(QSettings(str(settings_path), QSettings.Format.IniFormat))
    assert s.get(opts.LAST_SEED) in (0, -1)  # Qt converts garbage to 0; never a str
    assert s.get(opts.PARAMS) == {}
    assert s.get(opts.PLAY_WHILE_RENDERING) is True
    assert s.get(opts.RECENT_FILES) == ["one"]  # a one-item list comes back as a string in INI files
