"""Storage faults on real file systems: a full disk and a read-only medium give a typed
``storage_error`` that says what to do, never a traceback, and never a half-written voice or render.
The file systems are small tmpfs mounts (skipped where mounting isn't allowed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.errors import StorageError
from engine.history import RenderHistory
from engine.params import GenerationParams
from engine.voices import VoiceLibrary, load_audio
from tests.engine.test_voices_recovery import tone_file

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tmpfs mounts are Linux's")

SR = 44100


def mount(path: Path, size: str) -> Path:
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"can't mount a tmpfs here: {done.stderr.strip()}")
    return path


@pytest.fixture
def small_disk(tmp_path):
    path = mount(tmp_path / "small", "4m")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


class Medium(type(Path())):
    """A mounted tmpfs that a test fills, then makes read-only."""

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self)], check=True)


@pytest.fixture
def medium(tmp_path):
    path = Medium(mount(tmp_path / "medium", "16m"))
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def fill_disk(folder: Path) -> None:
    with open(folder / "ballast", "wb", buffering=0) as f:
        try:
            while True:
                f.write(bytes(4096))
        except OSError:  # ENOSPC: the disk is full
            pass


def test_a_full_disk_refuses_a_voice_with_a_storage_error(small_disk, tmp_path):
    clip = tone_file(tmp_path / "clip.wav", 200.0)
    with VoiceLibrary(small_disk / "lib") as lib:
        fill_disk(small_disk)
        with pytest.raises(StorageError, match="full") as info:
            lib.add(clip, speaker_name="Ann")
        assert info.value.code == "storage_error"
        (small_disk / "ballast").unlink()
        assert lib.list() == [] and list(lib.samples_dir.iterdir()) == []
        assert lib.add(clip, speaker_name="Ann").speaker_name == "Ann"  # fine once there is room


def test_a_full_disk_refuses_a_render_with_a_storage_error(small_disk):
    with RenderHistory(small_disk / "history") as history:
        fill_disk(small_disk)
        with pytest.raises(StorageError, match="full") as info:
            history.add(script="[S1] Hi.", audio_samples=np.full(SR * 5, 0.1, np.float32), sample_rate=SR,
                        params=GenerationParams(), seed=1, render_seconds=1.0)
        assert info.value.code == "storage_error"
        (small_disk / "ballast").unlink()
        assert len(history) == 0 and list(history.audio_dir.iterdir()) == []


def test_a_library_on_a_read_only_medium_lists_plays_and_exports(medium, tmp_path):
    clip = tone_file(tmp_path / "clip.wav", 200.0)
    with VoiceLibrary(medium / "lib") as lib:
        ann = lib.add(clip, speaker_name="Ann", transcript="Hello.")
    medium.read_only()
    with VoiceLibrary(medium / "lib") as lib:
        assert lib.read_only and [s.speaker_name for s in lib.list()] == ["Ann"]
        assert len(load_audio(lib.resolve("Ann"))) > 0
        assert lib.export_zip(tmp_path / "out.zip").is_file()
        for change in (lambda: lib.rename(ann.id, "Bo"), lambda: lib.delete(ann.id),
                       lambda: lib.add(clip, speaker_name="Cy"), lambda: lib.import_zip(tmp_path / "out.zip")):
            with pytest.raises(StorageError, match="read-only") as info:
                change()
            assert info.value.code == "storage_error"


def test_a_history_on_a_read_only_medium_lists_and_plays(medium):
    with RenderHistory(medium / "history") as history:
        entry = history.add(script="[S1] Hi.", audio_samples=np.full(SR, 0.1, np.float32), sample_rate=SR,
                            params=GenerationParams(), seed=1, render_seconds=1.0)
    medium.read_only()
    with RenderHistory(medium / "history") as history:
        assert [e.id for e in history.list()] == [entry.id] and len(history.load_audio(entry.id)) == SR
        with pytest.raises(StorageError, match="read-only"):
            history.set_label(entry.id, "x")


def test_an_export_to_a_full_disk_is_a_storage_error_and_leaves_nothing(small_disk):
    from engine.audio import write_audio

    fill_disk(small_disk)
    for name in ("take.wav", "take.flac", "take.mp3"):
        with pytest.raises(StorageError, match="full") as info:
            write_audio(small_disk / name, np.full(SR * 5, 0.1, np.float32), SR)
        assert info.value.code == "storage_error"
    assert [p.name for p in small_disk.iterdir()] == ["ballast"]
