"""The app's own files: what the user exports follows the umask (0644 under 022), what is private
(the draft, the settings INI, the log) is 0600 in 0700 folders; settings keep large integers exactly."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from app import settings as opts
from app.settings import Settings

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


# --------------------------------------------------------------------------- exports follow the umask


def test_a_saved_script_gets_the_usual_permissions(qtbot, window, tmp_path, umask_022):
    window.editor.setPlainText("[S1] Hello. [S2] Hi!")
    path = tmp_path / "out" / "dialogue.txt"
    assert window.files.write(path)
    assert path.read_text(encoding="utf-8") == "[S1] Hello. [S2] Hi!"
    assert mode(path) == 0o644


def test_exported_audio_gets_the_usual_permissions(qtbot, window, tmp_path, umask_022):
    window.player.load(np.zeros(44100, np.float32), 44100)
    path = tmp_path / "take.wav"
    with qtbot.waitSignal(window.exporter.exportFinished, timeout=20000):
        window.exporter.export_current(path)
    assert mode(path) == 0o644


# --------------------------------------------------------------------------- private data is private


def test_the_draft_is_private(qtbot, window, data_dir, umask_022):
    window.editor.setPlainText("[S1] Unsaved thoughts.")
    window.document.save_draft()
    assert mode(data_dir / "draft.json") == 0o600


def test_the_settings_file_is_private(tmp_path, umask_022):
    path = tmp_path / "config" / "Dia Studio" / "Dia Studio.ini"
    settings = Settings(QSettings(str(path), QSettings.Format.IniFormat))
    settings.set(opts.LAST_DIR, "/home/someone/scripts")
    settings.sync()
    assert "scripts" in path.read_text(encoding="utf-8")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700


def test_a_settings_file_left_readable_is_tightened(tmp_path, umask_022):
    path = tmp_path / "old.ini"
    path.write_text("[files]\nlast_dir=/home/someone\n", encoding="utf-8")
    assert mode(path) == 0o644
    settings = Settings(QSettings(str(path), QSettings.Format.IniFormat))
    assert settings.get(opts.LAST_DIR) == "/home/someone"
    assert mode(path) == 0o600


@pytest.fixture
def app_log(data_dir):
    """The app's log set up as at start-up; its handler removed afterwards."""
    from app.main import setup_logging

    root = logging.getLogger()
    before = list(root.handlers)
    path = setup_logging()
    yield path
    for handler in root.handlers:
        if handler not in before:
            root.removeHandler(handler)
            handler.close()


def test_the_log_file_is_private(umask_022, app_log):
    logging.getLogger("app").info("a message about /home/someone/voice.wav")
    assert mode(app_log) == 0o600 and mode(app_log.parent) == 0o700


def test_a_rotated_log_file_is_private_too(umask_022, app_log):
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "baseFilename", "") == str(app_log))
    logging.getLogger("app").info("before rotation")
    handler.doRollover()
    logging.getLogger("app").info("after rotation")
    assert mode(app_log) == 0o600
    assert mode(app_log.with_name(app_log.name + ".1")) == 0o600


# --------------------------------------------------------------------------- settings keep integers exactly


@pytest.mark.parametrize("seed", [3000982715, 2**63 - 1, 0])
def test_the_last_seed_survives_a_restart_exactly(tmp_path, seed):
    first = tmp_path / "first.ini"
    settings = Settings(QSettings(str(first), QSettings.Format.IniFormat))
    settings.set(opts.LAST_SEED, seed)
    settings.sync()
    # A copy under a new name is read from the file itself, as after a restart (Qt caches a file it has open).
    restarted = shutil.copy(first, tmp_path / "restarted.ini")
    assert Settings(QSettings(str(restarted), QSettings.Format.IniFormat)).get(opts.LAST_SEED) == seed


def test_an_unreadable_integer_setting_falls_back_to_its_default(tmp_path):
    path = tmp_path / "bad.ini"
    path.write_text("[render]\nlast_seed=soon\n", encoding="utf-8")
    assert Settings(QSettings(str(path), QSettings.Format.IniFormat)).get(opts.LAST_SEED) == opts.LAST_SEED.default
