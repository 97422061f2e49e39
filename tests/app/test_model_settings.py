"""Model settings: locations and their status, download with progress and cancel, device options; the
question a render asks before it would download the model."""

from __future__ import annotations

import socket
import time

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QLabel, QLineEdit, QMessageBox, QPushButton

import engine
from app import settings as opts
from app.model_settings import (
    ModelSettingsDialog,
    ask_before_download,
    engine_options,
    location_status,
    missing_model_message,
)
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
    dialog.quantize.setCurrentIndex(dialog.quantize.findData("int8"))
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


# -- a new user with no network: nothing in the Hugging Face cache, and the Hub's port refuses connections


@pytest.fixture
def empty_cache(monkeypatch, tmp_path):
    """An empty Hugging Face cache folder (not the user's, which may hold the model).

    huggingface_hub reads its cache folder and endpoint when imported: they are set on its constants here
    (configuration, not a stand-in for anything under test).
    """
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def no_network(monkeypatch, empty_cache):
    """Online mode, an empty cache, and a Hub on a loopback port nobody listens on. The suite's HF_HUB_OFFLINE=1
    stays in force inside huggingface_hub, so only Dia Studio's own probe reaches out, and only to that port."""
    import huggingface_hub.constants as hf_constants

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hf_constants, "ENDPOINT", endpoint)
    return empty_cache


def answer_question(button_text: str | None, seen: dict, screenshot=None) -> None:
    """Once the modal question is up: note what it says, then press the button whose text starts so."""

    def act() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, act)
            return
        seen.update(text=" ".join((box.text() + " " + box.informativeText()).replace("\u00a0", " ").split()),
                    cache=box.informativeText(), buttons=[b.text().replace("\u00a0", " ") for b in box.buttons()])
        if screenshot is not None:
            box.grab().save(str(screenshot))
        if button_text is None:
            box.reject()
            return
        next(b for b in box.buttons() if b.text().startswith(button_text)).click()

    QTimer.singleShot(0, act)


SCRIPT = "[S1] Hello there, how are you today? [S2] Fine, thanks."


def test_render_without_the_model_asks_first_and_cancel_starts_nothing(qtbot, settings, no_network,
                                                                       test_output_dir):
    window = make_window(qtbot, settings)
    window.document.set_text(SCRIPT)
    seen: dict = {}
    answer_question("Cancel", seen, test_output_dir / "download_question.png")
    window.render_button.click()
    assert "6.4 GB" in seen["text"] and "300 MB" in seen["text"]
    assert engine.DIA_REPO in seen["text"] and engine.DAC_REPO in seen["text"]
    assert str(no_network) in seen["cache"]
    assert [b for b in seen["buttons"] if b.startswith("Download")] and "Folder…" in seen["buttons"]
    assert "Cancel" in seen["buttons"]
    assert window.queue.jobs == [] and not window.queue.busy and window.load_dialog is None
    assert not no_network.exists()  # nothing was downloaded, not even started


def test_render_question_folder_uses_the_chosen_folders(qtbot, settings, no_network, tiny_models, monkeypatch):
    chosen = []

    def choose(parent, title, start):
        chosen.append(title)
        return str(tiny_models[0] if engine.DIA_REPO in title else tiny_models[1])

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(choose))
    settings.set(opts.PARAMS, {"max_new_tokens": 256})
    settings.set(opts.DTYPE, "float32")
    window = make_window(qtbot, settings)
    window.document.set_text(SCRIPT)
    answer_question("Folder…", {})
    with qtbot.waitSignal(window.queue.jobFinished, timeout=120000):
        window.render_button.click()
    assert len(chosen) == 2
    assert settings.get(opts.MODEL_PATH) == str(tiny_models[0]) and settings.get(opts.CODEC_PATH) == str(tiny_models[1])
    job = window.queue.jobs[-1]
    assert job.options.model == str(tiny_models[0]) and job.options.codec == str(tiny_models[1])


def test_render_question_folder_cancelled_starts_nothing(qtbot, settings, no_network, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a: ""))
    window = make_window(qtbot, settings)
    window.document.set_text(SCRIPT)
    answer_question("Folder…", {})
    window.render_button.click()
    assert window.queue.jobs == [] and settings.get(opts.MODEL_PATH) == ""


def test_download_answer_lets_the_render_go_ahead(qtbot, settings, no_network):
    settings.set(opts.CODEC_PATH, str(no_network))  # only the model is missing: the question says so
    no_network.mkdir()
    seen: dict = {}
    answer_question("Download", seen)
    assert ask_before_download(None, settings) is True
    assert engine.DIA_REPO in seen["text"] and engine.DAC_REPO not in seen["text"]
    assert "Download (≈ 6.4 GB)" in seen["buttons"]


def test_no_question_when_nothing_would_be_downloaded(qtbot, settings, tiny_models, no_network, monkeypatch):
    settings.set(opts.MODEL_PATH, str(tiny_models[0]))
    settings.set(opts.CODEC_PATH, str(tiny_models[1]))
    assert ask_before_download(None, settings) is True  # folders: nothing to ask (a modal box would block here)
    settings.set(opts.MODEL_PATH, "")
    settings.set(opts.OFFLINE, True)
    assert ask_before_download(None, settings) is True  # offline: loading fails with its own message instead
    settings.set(opts.OFFLINE, False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert ask_before_download(None, settings) is True


def test_download_without_network_shows_the_retries_and_cancel_stops_them(qtbot, settings, no_network,
                                                                           test_output_dir):
    tasks = TaskRunner()
    dialog = ModelSettingsDialog(settings, tasks)
    qtbot.addWidget(dialog, before_close_func=lambda d: tasks.wait())
    dialog.show()
    dialog.download_button.click()
    qtbot.waitUntil(lambda: "retrying in" in dialog.progress_label.text(), timeout=15000)
    dialog.grab().save(str(test_output_dir / "model_settings_retrying.png"))
    text = dialog.progress_label.text()
    assert text.startswith("Can't reach the Hugging Face Hub") and "connection refused" in text
    assert dialog.cancel_download.isVisible()
    with qtbot.waitSignal(dialog.downloadFinished, timeout=15000) as blocker:
        dialog.cancel_download.click()
    assert blocker.args == [False] and "cancelled" in dialog.progress_label.text()


def test_download_without_network_fails_with_a_message(qtbot, settings, no_network):
    tasks = TaskRunner()
    dialog = ModelSettingsDialog(settings, tasks)
    qtbot.addWidget(dialog, before_close_func=lambda d: tasks.wait())
    with qtbot.waitSignal(dialog.downloadFinished, timeout=30000) as blocker:
        dialog.download_button.click()
    assert blocker.args == [False]
    assert dialog.last_error.code == "download_failed" and "could not be reached" in dialog.last_error.message
    assert engine.DIA_REPO in dialog.progress_label.text()  # as it is spelled: not "Nari-labs/..."


def test_form_stays_readable_after_a_failed_download(qtbot, settings, empty_cache, test_output_dir):
    """The suite runs offline: the real download fails at once, with a message long enough to wrap."""
    tasks = TaskRunner()
    dialog = ModelSettingsDialog(settings, tasks)
    qtbot.addWidget(dialog, before_close_func=lambda d: tasks.wait())
    dialog.show()
    qtbot.waitExposed(dialog)
    with qtbot.waitSignal(dialog.downloadFinished, timeout=10000):
        dialog.download_button.click()
    qtbot.wait(50)  # let the layout settle as a user would see it
    assert engine.DIA_REPO in dialog.progress_label.text()  # not capitalised to "Nari-labs"
    dialog.grab().save(str(test_output_dir / "model_settings_download_failed.png"))
    for widget in dialog.findChildren(QLineEdit) + dialog.findChildren(QPushButton):
        if widget.isVisible():
            assert widget.height() >= widget.minimumSizeHint().height(), widget.objectName() or widget.text()
    for label in dialog.findChildren(QLabel):
        if label.isVisible() and label.wordWrap() and label.text():
            assert label.height() >= label.heightForWidth(label.width()), label.text()
    dialog.resize(460, dialog.height())  # narrower: the wrapped text needs more lines, the dialog grows
    qtbot.wait(50)
    assert dialog.progress_label.height() >= dialog.progress_label.heightForWidth(dialog.progress_label.width())


def test_render_download_without_network_shows_the_retries_and_cancel_stops_them(qtbot, settings, no_network):
    window = make_window(qtbot, settings)
    window.document.set_text(SCRIPT)
    answer_question("Download", {})
    window.render_button.click()
    qtbot.waitUntil(lambda: window.load_dialog is not None and "retrying in" in window.load_dialog.labelText(),
                    timeout=30000)
    assert "Can't reach the Hugging Face Hub" in window.load_dialog.labelText()
    cancel = next(b for b in window.load_dialog.findChildren(QPushButton) if b.text() == "Cancel")
    with qtbot.waitSignal(window.queue.jobCancelled, timeout=15000):
        cancel.click()
    assert not no_network.exists()


def test_every_engine_weight_mode_can_be_chosen(qtbot, settings):
    dialog = ModelSettingsDialog(settings, TaskRunner())
    qtbot.addWidget(dialog)
    offered = [dialog.quantize.itemData(i) for i in range(dialog.quantize.count())]
    assert offered == list(dict.fromkeys(m or "" for m in engine.QUANTIZE_MODES)) and "int4" in offered
    dialog.quantize.setCurrentIndex(offered.index("int4"))
    dialog.accept()
    assert engine_options(settings).quantize == "int4"
    again = ModelSettingsDialog(settings, TaskRunner())
    qtbot.addWidget(again)
    assert again.quantize.currentData() == "int4"


def test_the_int8_checkbox_of_older_settings_is_kept(settings):
    settings.set(opts.QUANTIZE, True)
    assert engine_options(settings).quantize == "int8"
    settings.set(opts.QUANTIZE_MODE, "")
    assert engine_options(settings).quantize is None
