"""Model settings: locations and their status, download with progress and cancel, device options."""

from __future__ import annotations

import time

import engine
from app import settings as opts
from app.model_settings import ModelSettingsDialog, engine_options, location_status, missing_model_message
from app.tasks import TaskRunner
from tests.app.conftest import make_window

FAKE_REPO = "someone/not-a-real-dia"


def fake_download(total_mb: int = 20, delay: float = 0.02):
    calls = []

    def download(repo, *, progress=None, should_stop=None, cache_dir=None):
        calls.append(repo)
        total = total_mb * 1_000_000
        for i in range(1, 51):
            if should_stop is not None and should_stop():
                raise engine.CancelledError(f"download of {repo} cancelled")
            time.sleep(delay)
            if progress is not None:
                progress(engine.DownloadProgress("model.safetensors", total * i // 50, total, 0, 2))
        return repo

    return download, calls


def test_status_of_folders_and_repos(tmp_path, tiny_models):
    assert location_status(str(tiny_models[0]), engine.DIA_REPO).ready
    missing = location_status(str(tmp_path / "nope"), engine.DIA_REPO)
    assert not missing.ready and missing.kind == "missing_folder"
    repo = location_status(FAKE_REPO, engine.DIA_REPO)
    assert not repo.ready and repo.kind == "not_downloaded" and repo.repo == FAKE_REPO


def test_options_are_saved_and_used_for_the_next_load(qtbot, settings, tiny_models):
    settings.set(opts.MODEL_PATH, FAKE_REPO)
    settings.set(opts.CODEC_PATH, str(tiny_models[1]))
    message = missing_model_message(settings)
    assert FAKE_REPO in message and "download it once" in message
    tasks = TaskRunner()
    dialog = ModelSettingsDialog(settings, tasks)
    qtbot.addWidget(dialog)
    assert dialog.model_status.text().startswith("✗") and dialog.codec_status.text().startswith("✓")
    assert dialog.download_button.isEnabled()
    assert "Detected" in dialog.detected.text() and "“auto” uses" in dialog.detected.text()
    dialog.model_edit.setText(str(tiny_models[0]))
    assert dialog.model_status.text().startswith("✓") and not dialog.download_button.isEnabled()
    dialog.device.setCurrentText("cpu")
    dialog.dtype.setCurrentText("float32")
    dialog.quantize.setChecked(True)
    dialog.offline.setChecked(True)
    dialog.accept()
    options = engine_options(settings)
    assert options == engine.EngineOptions(model=str(tiny_models[0]), codec=str(tiny_models[1]), device="cpu",
                                           dtype="float32", quantize="int8", offline=True)
    assert missing_model_message(settings) == ""


def test_download_shows_progress_and_can_be_cancelled(qtbot, settings, monkeypatch, tiny_models):
    download, calls = fake_download(delay=0.05)
    monkeypatch.setattr(engine, "download_repo", download)
    settings.set(opts.MODEL_PATH, FAKE_REPO)
    settings.set(opts.CODEC_PATH, str(tiny_models[1]))
    tasks = TaskRunner()
    dialog = ModelSettingsDialog(settings, tasks)
    qtbot.addWidget(dialog, before_close_func=lambda d: tasks.wait())
    dialog.show()
    dialog.download_button.click()
    assert dialog.downloading and dialog.cancel_download.isVisible()
    qtbot.waitUntil(lambda: "MB" in dialog.progress_label.text(), timeout=10000)
    assert dialog.progress.maximum() == 1000 and dialog.progress.value() > 0
    with qtbot.waitSignal(dialog.downloadFinished, timeout=10000) as blocker:
        dialog.cancel_download.click()
    assert blocker.args == [False]
    assert "cancelled" in dialog.progress_label.text() and not dialog.downloading
    assert calls == [FAKE_REPO]
    # offline mode forbids downloading
    dialog.offline.setChecked(True)
    assert not dialog.download_button.isEnabled()


def test_download_from_the_missing_model_banner(qtbot, settings, monkeypatch, tiny_models):
    download, calls = fake_download(delay=0.0)
    settings.set(opts.MODEL_PATH, FAKE_REPO)
    settings.set(opts.CODEC_PATH, str(tiny_models[1]))
    window = make_window(qtbot, settings)
    assert window.banner.isVisible() and FAKE_REPO in window.banner_text.text()
    window.banner_button.click()
    dialog = window.model_dialog
    assert dialog.isVisible()

    def download_and_cache(repo, **kw):
        result = download(repo, **kw)
        monkeypatch.setattr(engine, "cached_snapshot", lambda r, **_: tiny_models[0] if r == FAKE_REPO else None)
        return result

    monkeypatch.setattr(engine, "download_repo", download_and_cache)
    with qtbot.waitSignal(dialog.downloadFinished, timeout=20000) as blocker:
        dialog.download_button.click()
    assert blocker.args == [True] and calls == [FAKE_REPO]
    assert "Downloaded" in dialog.progress_label.text()
    assert not window.banner.isVisible()  # the model is there now
    dialog.accept()


def test_download_failure_is_a_message(qtbot, settings, monkeypatch):
    def broken(repo, **kw):
        raise engine.DownloadError("downloading config.json from someone/not-a-real-dia failed: no network")

    monkeypatch.setattr(engine, "download_repo", broken)
    settings.set(opts.MODEL_PATH, FAKE_REPO)
    tasks = TaskRunner()
    dialog = ModelSettingsDialog(settings, tasks)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.downloadFinished, timeout=10000):
        dialog.download_button.click()
    assert dialog.last_error.title == "The download failed"
    assert "no network" in dialog.progress_label.text()
