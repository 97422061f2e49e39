"""Fixtures for the desktop app: isolated settings and data, tiny real checkpoints, the main window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

import engine
from app import settings as opts
from app.settings import Settings


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny random Dia checkpoint and DAC codec in the official layouts (built once)."""
    return engine.write_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(autouse=True)
def isolated_app_state(tmp_path, data_dir, monkeypatch):
    """Every test gets its own QSettings location and user data folder."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    yield


@pytest.fixture
def settings_path(tmp_path) -> Path:
    return tmp_path / "settings" / "Dia Studio.ini"


@pytest.fixture
def settings(settings_path) -> Settings:
    return Settings(QSettings(str(settings_path), QSettings.Format.IniFormat))


@pytest.fixture
def model_settings(settings, tiny_models) -> Settings:
    """Settings that point the app at the tiny checkpoints, rendering in float32."""
    settings.set(opts.MODEL_PATH, str(tiny_models[0]))
    settings.set(opts.CODEC_PATH, str(tiny_models[1]))
    settings.set(opts.DTYPE, "float32")
    settings.set(opts.THEME, "light")
    settings.set(opts.PARAMS, {"max_new_tokens": 256})
    settings.sync()
    return settings


def make_window(qtbot, settings: Settings):
    from app.main_window import MainWindow

    window = MainWindow(settings)
    qtbot.addWidget(window, before_close_func=lambda w: w.shutdown())
    window.show()
    qtbot.waitExposed(window)
    return window


@pytest.fixture
def window(qtbot, model_settings):
    """The real main window, shown off screen, wired to the tiny model."""
    return make_window(qtbot, model_settings)


def tone(seconds: float = 4.0, freq: float = 180.0, rate: int = 44100) -> np.ndarray:
    """A voice-like test signal: a few harmonics with a slow amplitude wobble."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2, 3))
    return (0.2 * wave * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.fixture
def voice_file(tmp_path) -> Path:
    import soundfile as sf

    path = tmp_path / "ann.wav"
    sf.write(path, tone(), 44100)
    return path
