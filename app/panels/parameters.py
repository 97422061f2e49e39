"""Sampling parameters, producer first: presets, then what shapes a take (temperature, speed, the
longest take in seconds) and the seed; the raw sampling controls (CFG scale, top-p, CFG filter
top-k) wait in an "Advanced" section, collapsed until opened (remembered). A slider and spin box per
``engine.PARAM_SPECS`` entry."""

from __future__ import annotations

import logging

from PySide6.QtCore import QRegularExpression, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QRegularExpressionValidator, QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

import engine
from app import settings as opts
from app.settings import Option, Settings

log = logging.getLogger(__name__)

MAIN_PARAMS = ("temperature", "speed_factor", "max_new_tokens")
ADVANCED_PARAMS = ("cfg_scale", "top_p", "cfg_filter_top_k")
SLIDER_PARAMS = MAIN_PARAMS + ADVANCED_PARAMS
ADVANCED_OPEN = Option("render/advanced_open", False, bool)
SEED_MAX = 2**63 - 1
CUSTOM = "Custom"
PRESET_DIALOG_WIDTH = 420  # the title bar shows "Save preset — Dia Studio" whole


def seconds_for_tokens(tokens: int) -> float:
    """Seconds of audio a ``max_new_tokens`` budget allows (no voice prompt): the engine's numbers."""
    return engine.frames_to_seconds(max(0, int(tokens) - engine.DECODER_OVERHEAD_FRAMES))


def tokens_for_seconds(seconds: float) -> int:
    """The ``max_new_tokens`` that allows ``seconds`` of audio."""
    return round(engine.seconds_to_frames(max(0.0, seconds))) + engine.DECODER_OVERHEAD_FRAMES


class AudioLengthSpinBox(QSpinBox):
    """Holds ``max_new_tokens`` and shows (and takes) the seconds of audio they allow."""

    _NUMBER = QRegularExpression(r"^\s*(\d{0,4}(?:[.,]\d{0,2})?)\s*s?\s*$")

    def textFromValue(self, value: int) -> str:  # noqa: N802
        return f"{seconds_for_tokens(value):.1f} s"

    def valueFromText(self, text: str) -> int:  # noqa: N802
        match = self._NUMBER.match(text)
        number = match.captured(1).replace(",", ".") if match.hasMatch() else ""
        try:
            tokens = tokens_for_seconds(float(number))
        except ValueError:
            return self.value()
        return min(self.maximum(), max(self.minimum(), tokens))

    def validate(self, text: str, pos: int) -> QValidator.State:
        match = self._NUMBER.match(text)
        if not match.hasMatch():
            return QValidator.State.Invalid
        number = match.captured(1).replace(",", ".")
        if number in ("", "."):
            return QValidator.State.Intermediate
        tokens = tokens_for_seconds(float(number))
        return QValidator.State.Acceptable if self.minimum() <= tokens <= self.maximum() else \
            QValidator.State.Intermediate


class ParamControl:
    """A slider and a spin box kept in step for one parameter spec."""

    def __init__(self, spec: engine.ParamSpec, on_change) -> None:
        self.spec = spec
        self.steps = round((spec.maximum - spec.minimum) / spec.step)
        self.label = QLabel(spec.label)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, self.steps)
        self.slider.setObjectName(f"{spec.name}_slider")
        if spec.name == "max_new_tokens":
            self.spin: QAbstractSpinBox = AudioLengthSpinBox()
            self.spin.setRange(int(spec.minimum), int(spec.maximum))
            self.spin.setSingleStep(int(spec.step))
        elif spec.is_integer:
            self.spin = QSpinBox()
            self.spin.setRange(int(spec.minimum), int(spec.maximum))
            self.spin.setSingleStep(int(spec.step))
        else:
            self.spin = QDoubleSpinBox()
            self.spin.setDecimals(spec.decimals)
            self.spin.setRange(float(spec.minimum), float(spec.maximum))
            self.spin.setSingleStep(float(spec.step))
        self.spin.setObjectName(f"{spec.name}_spin")
        self.spin.setKeyboardTracking(False)
        self.spin.setMinimumWidth(78)
        self.spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        tip = f"{spec.help}\nRange {spec.minimum}–{spec.maximum}, default {spec.default}."
        if spec.name == "max_new_tokens":
            tip = (f"{spec.help}\nShown in seconds of audio: {seconds_for_tokens(spec.minimum):.1f}–"
                   f"{seconds_for_tokens(spec.maximum):.1f} s ({spec.minimum}–{spec.maximum} decoder steps), "
                   f"default {seconds_for_tokens(spec.default):.1f} s; a voice prompt takes its length from it.")
        for widget in (self.label, self.slider, self.spin):
            widget.setToolTip(tip)
        self.label.setBuddy(self.spin)
        self.slider.setAccessibleName(f"{spec.label} slider")
        self.spin.setAccessibleName(spec.label)
        self.spin.setAccessibleDescription(spec.help)
        self.slider.valueChanged.connect(self._slider_moved)
        self.spin.valueChanged.connect(self._spin_changed)
        self._on_change = on_change
        self.set_value(spec.default)

    def value(self):
        v = self.spin.value()
        return int(v) if self.spec.is_integer else round(float(v), self.spec.decimals)

    def set_value(self, value) -> None:
        with QSignalBlocker(self.spin), QSignalBlocker(self.slider):
            self.spin.setValue(value)
            self.slider.setValue(self._to_slider(self.spin.value()))

    def _to_slider(self, value) -> int:
        return max(0, min(self.steps, round((value - self.spec.minimum) / self.spec.step)))

    def _slider_moved(self, position: int) -> None:
        value = self.spec.minimum + position * self.spec.step
        with QSignalBlocker(self.spin):
            self.spin.setValue(int(round(value)) if self.spec.is_integer else round(value, self.spec.decimals))
        self._on_change()

    def _spin_changed(self, value) -> None:
        with QSignalBlocker(self.slider):
            self.slider.setValue(self._to_slider(value))
        self._on_change()


class SeedControl(QWidget):
    """A seed up to 2**63-1 (too large for QSpinBox), "random", and "reuse last seed"."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        spec = engine.PARAM_SPECS["seed"]
        self.label = QLabel("Seed")
        self.edit = QLineEdit()
        self.edit.setObjectName("seed_edit")
        self.edit.setValidator(QRegularExpressionValidator(QRegularExpression(r"\d{0,19}"), self.edit))
        self.edit.setPlaceholderText("random")
        self.edit.setAccessibleName("Seed")
        self.edit.setToolTip(f"{spec.help}\nA whole number from 0 to {SEED_MAX}.")
        self.label.setBuddy(self.edit)
        self.random = QCheckBox("Random")
        self.random.setObjectName("seed_random")
        self.random.setToolTip("Pick a new random seed for every render (the seed used is shown and kept in the history).")
        self.reuse = QPushButton("Reuse last")
        self.reuse.setObjectName("seed_reuse")
        self.reuse.setToolTip("Fix the seed of the last render, to get the same take again or vary one setting.")
        self.reuse.setEnabled(False)
        self.last = QLabel("")
        self.last.setObjectName("last_seed")
        self.last.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.last_seed: int | None = None
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(self.random)
        row.addWidget(self.reuse)
        self.random.toggled.connect(self._random_toggled)
        self.edit.textChanged.connect(self._edited)
        self.reuse.clicked.connect(self.reuse_last)
        self.set_seed(engine.SEED_RANDOM)

    def seed(self) -> int:
        """-1 for random; else the typed seed (clamped to the valid range)."""
        if self.random.isChecked() or not self.edit.text().strip():
            return engine.SEED_RANDOM
        return min(int(self.edit.text()), SEED_MAX)

    def is_valid(self) -> bool:
        text = self.edit.text().strip()
        return self.random.isChecked() or not text or int(text) <= SEED_MAX

    def set_seed(self, seed: int) -> None:
        with QSignalBlocker(self.random), QSignalBlocker(self.edit):
            random = seed is None or seed < 0
            self.random.setChecked(random)
            self.edit.setEnabled(not random)
            self.edit.setText("" if random else str(seed))
        self.changed.emit()

    def set_last_seed(self, seed: int | None) -> None:
        self.last_seed = seed
        self.reuse.setEnabled(seed is not None)
        self.last.setText("" if seed is None else f"Last seed: {seed}")

    def reuse_last(self) -> None:
        if self.last_seed is not None:
            self.set_seed(self.last_seed)

    def _random_toggled(self, checked: bool) -> None:
        self.edit.setEnabled(not checked)
        if not checked and not self.edit.text():
            self.edit.setText(str(self.last_seed if self.last_seed is not None else 0))
        self.changed.emit()

    def _edited(self, text: str) -> None:
        valid = not text or int(text) <= SEED_MAX
        self.edit.setStyleSheet("" if valid else "color: #d03030;")
        self.edit.setToolTip(self.edit.toolTip().split("\n⚠")[0] + ("" if valid else f"\n⚠ At most {SEED_MAX}."))
        self.changed.emit()


class ParametersPanel(QWidget):
    """The render parameters, presets (built-in and the user's own) and reset."""

    paramsChanged = Signal(object)  # GenerationParams

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.controls: dict[str, ParamControl] = {}
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(2)

        self.preset = QComboBox()
        self.preset.setObjectName("preset_combo")
        self.preset.setAccessibleName("Preset")
        self.preset.setToolTip("Named parameter sets; the seed is not part of a preset.")
        preset_label = QLabel("Preset")
        preset_label.setBuddy(self.preset)
        self.save_preset = QPushButton("Save…")
        self.save_preset.setObjectName("save_preset")
        self.save_preset.setToolTip("Save the current parameters as your own preset.")
        self.delete_preset = QPushButton("Delete")
        self.delete_preset.setObjectName("delete_preset")
        self.delete_preset.setToolTip("Delete the selected preset of your own.")
        preset_row = QHBoxLayout()
        preset_row.addWidget(self.preset, 1)
        preset_row.addWidget(self.save_preset)
        preset_row.addWidget(self.delete_preset)
        grid.addWidget(preset_label, 0, 0)
        grid.addLayout(preset_row, 0, 1, 1, 2)

        for row, name in enumerate(MAIN_PARAMS, start=1):
            self._add_control(grid, name, row)
        self.seed = SeedControl()
        self.seed.changed.connect(self._changed)
        seed_row = len(MAIN_PARAMS) + 1
        grid.addWidget(self.seed.label, seed_row, 0)
        grid.addWidget(self.seed, seed_row, 1, 1, 2)
        grid.addWidget(self.seed.last, seed_row + 1, 1)
        self.reset = QPushButton("Reset to defaults")
        self.reset.setObjectName("reset_params")
        self.reset.setToolTip("Set every parameter to its default (the seed becomes random).")
        grid.addWidget(self.reset, seed_row + 1, 2)
        grid.setColumnStretch(1, 1)

        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setObjectName("advanced_toggle")
        self.advanced_toggle.setText("Advanced: CFG scale, top-p, CFG filter top-k")
        self.advanced_toggle.setAccessibleName("Advanced sampling parameters")
        self.advanced_toggle.setToolTip("The raw sampling controls; presets set them for you.")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setAutoRaise(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced = QWidget()
        self.advanced.setObjectName("advanced_params")
        advanced_grid = QGridLayout(self.advanced)
        advanced_grid.setContentsMargins(0, 0, 0, 0)
        advanced_grid.setHorizontalSpacing(8)
        advanced_grid.setVerticalSpacing(2)
        for row, name in enumerate(ADVANCED_PARAMS):
            self._add_control(advanced_grid, name, row)
        advanced_grid.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid)
        layout.addWidget(self.advanced_toggle)
        layout.addWidget(self.advanced)
        self.advanced_toggle.toggled.connect(self._show_advanced)
        self._show_advanced(settings.get(ADVANCED_OPEN))

        self.preset.activated.connect(self._preset_chosen)
        self.save_preset.clicked.connect(self.ask_save_preset)
        self.delete_preset.clicked.connect(self.delete_current_preset)
        self.reset.clicked.connect(self.reset_to_defaults)
        self._fill_presets()
        self._restore()
        self._set_tab_order()

    def _add_control(self, grid: QGridLayout, name: str, row: int) -> None:
        control = ParamControl(engine.PARAM_SPECS[name], self._changed)
        self.controls[name] = control
        grid.addWidget(control.label, row, 0)
        grid.addWidget(control.slider, row, 1)
        grid.addWidget(control.spin, row, 2)

    def _show_advanced(self, on: bool) -> None:
        """Open or close the Advanced section (remembered for the next start)."""
        with QSignalBlocker(self.advanced_toggle):
            self.advanced_toggle.setChecked(on)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.advanced.setVisible(on)
        self.settings.set(ADVANCED_OPEN, on)

    def _set_tab_order(self) -> None:
        chain = [self.preset, self.save_preset, self.delete_preset]
        for name in MAIN_PARAMS:
            chain += [self.controls[name].slider, self.controls[name].spin]
        chain += [self.seed.edit, self.seed.random, self.seed.reuse, self.reset, self.advanced_toggle]
        for name in ADVANCED_PARAMS:
            chain += [self.controls[name].slider, self.controls[name].spin]
        self.last_in_tab_order = chain[-1]
        for a, b in zip(chain, chain[1:]):
            QWidget.setTabOrder(a, b)

    # -- values

    def params(self) -> engine.GenerationParams:
        values = {name: control.value() for name, control in self.controls.items()}
        return engine.GenerationParams(**values, seed=self.seed.seed())

    def set_params(self, params: engine.GenerationParams, *, include_seed: bool = True) -> None:
        for name, control in self.controls.items():
            control.set_value(getattr(params, name))
        if include_seed:
            self.seed.set_seed(params.seed)
        self._changed()

    def set_last_seed(self, seed: int) -> None:
        self.seed.set_last_seed(seed)
        self.settings.set(opts.LAST_SEED, int(seed))

    def reset_to_defaults(self) -> None:
        self.set_params(engine.GenerationParams())

    def _changed(self) -> None:
        params = self.params()
        self._sync_preset_combo(params)
        self.settings.set(opts.PARAMS, params.to_dict())
        self.paramsChanged.emit(params)

    def _restore(self) -> None:
        stored = self.settings.get(opts.PARAMS)
        try:
            params = engine.GenerationParams.from_dict(stored) if stored else engine.GenerationParams()
        except engine.DiaStudioError as exc:
            log.warning("stored parameters are invalid (%s); using the defaults", exc)
            params = engine.GenerationParams()
        last = self.settings.get(opts.LAST_SEED)
        if last >= 0:
            self.seed.set_last_seed(last)
        self.set_params(params)

    # -- presets

    def user_presets(self) -> dict[str, engine.GenerationParams]:
        presets = {}
        for name, data in self.settings.get(opts.USER_PRESETS).items():
            try:
                presets[str(name)] = engine.GenerationParams.from_dict(data)
            except (engine.DiaStudioError, TypeError, AttributeError):
                log.warning("ignoring the damaged preset %r", name)
        return presets

    def all_presets(self) -> dict[str, engine.GenerationParams]:
        return {**engine.PRESETS, **self.user_presets()}

    def _fill_presets(self) -> None:
        with QSignalBlocker(self.preset):
            self.preset.clear()
            for name in engine.PRESETS:
                self.preset.addItem(name)
                self.preset.setItemData(self.preset.count() - 1, engine.PRESET_NOTES.get(name, ""),
                                        Qt.ItemDataRole.ToolTipRole)
            for name in self.user_presets():
                if name in engine.PRESETS:
                    continue
                self.preset.addItem(name)
                self.preset.setItemData(self.preset.count() - 1, "Your preset", Qt.ItemDataRole.ToolTipRole)
            self.preset.addItem(CUSTOM)
            self.preset.setItemData(self.preset.count() - 1, "The current values match no preset.",
                                    Qt.ItemDataRole.ToolTipRole)
        self._sync_preset_combo(self.params())

    def _sync_preset_combo(self, params: engine.GenerationParams) -> None:
        match = CUSTOM
        for name, preset in self.all_presets().items():
            if preset.replace(seed=params.seed) == params:
                match = name
                break
        with QSignalBlocker(self.preset):
            self.preset.setCurrentText(match)
        self.delete_preset.setEnabled(match in self.user_presets() and match not in engine.PRESETS)

    def apply_preset(self, name: str) -> None:
        preset = self.all_presets().get(name)
        if preset is not None:
            self.set_params(preset, include_seed=False)

    def _preset_chosen(self, index: int) -> None:
        name = self.preset.itemText(index)
        if name == CUSTOM:
            self._sync_preset_combo(self.params())
        else:
            self.apply_preset(name)

    def save_user_preset(self, name: str) -> str:
        """Store the current parameters (seed excluded) under ``name``; returns the cleaned name."""
        name = " ".join(name.split())[:60]
        if not name or name == CUSTOM or name in engine.PRESETS:
            raise ValueError(f"Choose another name: '{name or '(empty)'}' is taken by a built-in preset."
                             if name else "A preset needs a name.")
        stored = self.settings.get(opts.USER_PRESETS)
        stored[name] = self.params().replace(seed=engine.SEED_RANDOM).to_dict()
        self.settings.set(opts.USER_PRESETS, stored)
        self._fill_presets()
        return name

    def preset_name_dialog(self) -> QInputDialog:
        """Asks for a preset's name; wide enough for its title and a long name."""
        dialog = QInputDialog(self)
        dialog.setObjectName("preset_name_dialog")
        dialog.setWindowTitle("Save preset")
        dialog.setLabelText("Name of the new preset (the seed is not saved with it):")
        dialog.setInputMode(QInputDialog.InputMode.TextInput)
        dialog.setMinimumWidth(PRESET_DIALOG_WIDTH)
        return dialog

    def ask_save_preset(self) -> None:
        dialog = self.preset_name_dialog()
        if dialog.exec() != QInputDialog.DialogCode.Accepted:
            return
        try:
            self.save_user_preset(dialog.textValue())
        except ValueError as exc:
            QMessageBox.information(self, "Save preset", str(exc))

    def delete_current_preset(self) -> None:
        name = self.preset.currentText()
        stored = self.settings.get(opts.USER_PRESETS)
        if name in stored:
            del stored[name]
            self.settings.set(opts.USER_PRESETS, stored)
            self._fill_presets()
