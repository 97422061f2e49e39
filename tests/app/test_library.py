"""The voice library window and the recorder dialog, on a real library and the ALSA null device."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent

import engine
from app.library import recorder as recorder_module
from app.library.recorder import IDLE, PREVIEW, RecorderDialog
from app.library.window import LibraryWindow
from app.tasks import TaskRunner
from tests.app.conftest import tone

needs_input = pytest.mark.skipif(not engine.input_status().available, reason="no input device")


@pytest.fixture
def library(data_dir):
    lib = engine.VoiceLibrary()
    yield lib
    lib.close()


@pytest.fixture
def tasks(qtbot):
    runner = TaskRunner()
    yield runner
    runner.wait()


@pytest.fixture
def library_window(qtbot, library, settings, tasks):
    window = LibraryWindow(library, settings, tasks)
    qtbot.addWidget(window, before_close_func=lambda w: w.shutdown())
    window.show()
    qtbot.waitExposed(window)
    return window


def wait_changed(qtbot, window, action, timeout=20000):
    with qtbot.waitSignal(window.libraryChanged, timeout=timeout):
        action()


def test_import_edit_transcript_rename_default_play_and_delete(qtbot, library_window, library, voice_file,
                                                                monkeypatch):
    w = library_window
    assert w.model.rowCount() == 0 and w.empty_hint.isVisible()
    wait_changed(qtbot, w, lambda: w.import_files([voice_file]))
    assert w.model.rowCount() == 1 and not w.empty_hint.isVisible()
    sample = w.selected()
    assert sample.speaker_name == "ann" and not sample.has_transcript
    assert w.model.index(0, 2).data() == "missing"
    assert "No transcript yet" in w.info.text()
    assert "Add its transcript" in w.status.text()

    # transcript
    w.transcript_edit.setPlainText("[S1]  Hello,   this is   Ann.")
    assert w.save_transcript.isEnabled()
    wait_changed(qtbot, w, w.save_transcript.click)
    assert library.get(sample.id).transcript == "Hello, this is Ann."  # the tag and spaces are cleaned
    assert w.model.index(0, 2).data() == "✓" and not w.save_transcript.isEnabled()
    # a transcript with another speaker's tag is refused with a message, nothing changes
    w.transcript_edit.setPlainText("Hi [S2] there")
    w.save_selected_transcript()
    assert w.last_error is not None and "one speaker" in w.last_error.message
    assert library.get(sample.id).transcript == "Hello, this is Ann."

    # rename and default
    w.name_edit.setText("Ann Smith")
    wait_changed(qtbot, w, w.rename_button.click)
    assert library.get(sample.id).speaker_name == "Ann Smith"
    wait_changed(qtbot, w, w.default_button.click)
    assert library.default().id == sample.id and w.model.index(0, 3).data() == "★"
    assert w.default_button.text() == "Remove default"

    # play on the null device
    with qtbot.waitSignal(w.player.finished, timeout=10000):
        w.play_button.click()

    # importing the same file twice is refused clearly
    w.last_error = None
    w.import_files([voice_file])
    qtbot.waitUntil(lambda: w.last_error is not None, timeout=20000)
    assert "already in the library" in w.last_error.message

    # delete asks first
    monkeypatch.setattr(w, "confirm", lambda *a: False)
    assert not w.delete_selected() and len(library) == 1
    monkeypatch.setattr(w, "confirm", lambda *a: True)
    assert w.delete_selected()
    assert len(library) == 0 and w.model.rowCount() == 0


def test_typed_edits_are_kept_when_the_selection_moves(qtbot, library_window, library, voice_file, tmp_path):
    import soundfile as sf

    other = tmp_path / "zed.wav"
    sf.write(other, tone(3.0, 300.0), 44100)
    a = library.add(voice_file, speaker_name="Ann")
    z = library.add(other, speaker_name="Zed")
    library_window.refresh(a.id)
    library_window.transcript_edit.setPlainText("Typed but not saved.")
    library_window.name_edit.setText("Zara")  # renaming re-sorts the list after Zed
    with qtbot.waitSignal(library_window.libraryChanged, timeout=5000):
        assert library_window.select(z.id)
    assert library.get(a.id).transcript == "Typed but not saved."
    assert library.get(a.id).speaker_name == "Zara"
    assert library_window.selected().id == z.id  # the re-sorted list keeps the user's selection
    assert library_window.transcript_edit.toPlainText() == ""
    assert "Saved the transcript and name" in library_window.status.text()


def test_drop_files_to_import_with_sidecar_transcript(qtbot, library_window, library, voice_file, tmp_path):
    voice_file.with_suffix(".txt").write_text("Words from the sidecar file.", encoding="utf-8")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(voice_file)), QUrl.fromLocalFile(str(tmp_path / "notes.pdf"))])
    event = QDropEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    wait_changed(qtbot, library_window, lambda: library_window.dropEvent(event))
    (sample,) = library.list()
    assert sample.transcript == "Words from the sidecar file."


def test_export_and_import_zip(qtbot, library_window, library, voice_file, tmp_path, tasks):
    library.add(voice_file, speaker_name="Ann", transcript="Hi.")
    library_window.refresh()
    zip_path = tmp_path / "voices.zip"
    library_window.export_zip(zip_path)
    tasks.wait()
    qtbot.waitUntil(lambda: "Exported 1 voice" in library_window.status.text(), timeout=5000)
    assert zip_path.is_file()
    wait_changed(qtbot, library_window, lambda: library_window.import_zip(zip_path))
    assert "Imported 0 voices; 1 already here" in library_window.status.text()


def test_transcribe_fills_the_editor_for_review(qtbot, library_window, library, voice_file):
    class FakeTranscriber:
        def transcribe(self, samples, rate):
            assert rate == 44100 and samples.size > 0
            return "words heard by whisper"

    library.add(voice_file, speaker_name="Bo")
    library_window.refresh()
    library_window.stt_available = True
    library_window.transcriber = FakeTranscriber()
    library_window._update_buttons()  # noqa: SLF001
    library_window.transcribe_button.click()
    qtbot.waitUntil(lambda: library_window.transcript_edit.toPlainText() == "words heard by whisper", timeout=10000)
    assert library.list()[0].transcript == ""  # not saved until the user confirms
    assert library_window.save_transcript.isEnabled()


@needs_input
def test_recorder_on_the_null_device_records_by_frame_count_and_keeps_a_refused_take(
        qtbot, library, settings, tasks):
    dialog = RecorderDialog(library, settings, tasks)
    qtbot.addWidget(dialog, before_close_func=lambda d: d.shutdown())
    dialog.show()
    assert dialog.available and dialog.device.count() >= 1
    assert dialog.sentence.text() in recorder_module.SENTENCES
    dialog.seconds.setValue(1.5)
    dialog.countdown.setValue(0)
    with qtbot.waitSignal(dialog.stateChanged, timeout=10000, check_params_cb=lambda s: s == PREVIEW):
        dialog.record_button.click()
    take = dialog.recording
    assert take is not None and take.frames == int(1.5 * take.sample_rate)  # stopped by frame count
    assert "silent" in dialog.status.text()  # the null device delivers zeros
    assert dialog.transcript.toPlainText() == dialog.sentence.text()  # the sentence just read
    assert dialog.play_button.isEnabled() and not dialog.save_button.isEnabled()  # needs a name
    dialog.name.setText("Null")
    assert dialog.save_button.isEnabled()
    with qtbot.waitSignal(dialog.stateChanged, timeout=10000, check_params_cb=lambda s: s == PREVIEW):
        dialog.save_button.click()
    assert "silent" in dialog.last_error.message
    assert dialog.recording is take and len(library) == 0  # nothing lost, nothing stored
    # closing with an unsaved take asks first
    asked = []
    dialog.confirm = lambda title, text: asked.append(title) or False
    dialog.reject()
    assert asked == ["Discard the take?"] and dialog.isVisible()
    dialog.confirm = lambda title, text: True
    dialog.reject()
    assert not dialog.isVisible()


class ToneRecorder:
    """Stands in for engine.Recorder: delivers a voice-like tone in blocks, ended by frame count."""

    def __init__(self, device=None, sample_rate=44100):
        self.sample_rate = 44100
        self.frames = 0
        self.target = 0
        self.stopped = False

    def start(self, *, seconds=None, frames=None):
        self.target = frames or int(seconds * self.sample_rate)
        self.signal = tone(self.target / self.sample_rate)

    @property
    def running(self):
        return not self.stopped and self.frames < self.target

    @property
    def seconds_recorded(self):
        return self.frames / self.sample_rate

    def poll(self):
        if self.frames >= self.target:
            return None
        block = self.signal[self.frames:self.frames + 22050]
        self.frames += block.size
        return engine.Level(float(20 * np.log10(np.abs(block).max())), -20.0)

    def stop(self):
        self.stopped = True
        return engine.Recording(self.signal[:self.frames, None], self.sample_rate)


def test_recorder_countdown_level_meter_and_save(qtbot, library, settings, tasks):
    dialog = RecorderDialog(library, settings, tasks, recorder_factory=ToneRecorder)
    qtbot.addWidget(dialog, before_close_func=lambda d: d.shutdown())
    dialog.show()
    dialog.available = True
    dialog.seconds.setValue(3.0)
    dialog.countdown.setValue(1)
    states = []
    dialog.stateChanged.connect(states.append)
    dialog.record_button.click()
    assert dialog.state == "countdown" and "starts in 1" in dialog.status.text()
    qtbot.waitUntil(lambda: dialog.state == PREVIEW, timeout=10000)
    assert states == ["countdown", "recording", PREVIEW]
    assert dialog.meter.max_peak_db > -20  # the meter saw the signal
    assert dialog.recording.frames == 3 * 44100
    dialog.name.setText("Cleo")
    dialog.transcript.setPlainText("My own words.")
    with qtbot.waitSignal(dialog.saved, timeout=20000) as blocker:
        dialog.save_button.click()
    sample = blocker.args[0]
    assert sample.speaker_name == "Cleo" and sample.transcript == "My own words."
    assert dialog.state == IDLE and len(library) == 1
    assert library.get(sample.id).original_filename == "recording.flac"


def test_no_microphone_is_explained(qtbot, library, settings, tasks, monkeypatch):
    monkeypatch.setattr(engine, "input_status",
                        lambda: engine.InputStatus(False, "No microphone found. Connect one, then restart Dia Studio."))
    dialog = RecorderDialog(library, settings, tasks)
    qtbot.addWidget(dialog)
    assert not dialog.record_button.isEnabled()
    assert "No microphone found" in dialog.status.text()
