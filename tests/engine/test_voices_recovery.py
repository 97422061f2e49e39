"""The voice library never deletes a voice: a lost database is rebuilt from the sample folders,
what can't be recovered is moved aside, stored paths never reach outside the library, and the
user's data is private."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.errors import InvalidVoiceSampleError, StorageError
from engine.voices import SIDECAR, VoiceLibrary, load_audio

SR = 44100


def tone_file(path: Path, freq: float, seconds: float = 3.0) -> Path:
    """A short, distinct, voice-like clip (a tone with a syllable-rate envelope)."""
    t = np.arange(int(seconds * SR)) / SR
    signal = 0.3 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    sf.write(path, signal.astype(np.float32), SR, subtype="PCM_16")
    return path


@pytest.fixture
def clips(tmp_path) -> list[Path]:
    return [tone_file(tmp_path / f"clip{i}.wav", 180.0 + 40 * i) for i in range(3)]


def fill(root: Path, clips: list[Path]) -> list:
    """Three voices, edited after adding (rename, transcript, default) so the sidecars must follow."""
    with VoiceLibrary(root) as lib:
        ann = lib.add(clips[0], speaker_name="Ann", transcript="Hello.")
        bo = lib.add(clips[1], speaker_name="Bo", make_default=True)
        cy = lib.add(clips[2], speaker_name="Cy")
        lib.rename(bo.id, "Bo Lee")
        lib.set_transcript(cy.id, "Cy speaking.")
        lib.set_default(ann.id)
        return lib.list()


def lose_database(root: Path, how: str) -> None:
    db = root / "library.sqlite3"
    if how == "emptied":
        db.write_bytes(b"")
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def modes(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("how", ["emptied", "deleted"])
def test_a_lost_database_is_rebuilt_from_the_sample_folders(tmp_path, clips, how):
    root = tmp_path / "lib"
    before = fill(root, clips)
    lose_database(root, how)
    with VoiceLibrary(root) as lib:
        after = lib.list()
        report = lib.open_report
    assert [s.to_dict() for s in after] == [s.to_dict() for s in before]  # ids, names, transcripts, default
    assert sorted(report.recovered) == ["Ann", "Bo Lee", "Cy"] and report.moved_aside == []
    assert report.notice == "Voice library: recovered 3 voices from the files kept next to the audio."
    for s in after:
        assert s.paths.original.read_bytes() in {c.read_bytes() for c in clips}
        assert len(load_audio(s)) / SR == pytest.approx(s.duration, abs=1e-3)


def test_a_folder_that_cant_be_recovered_is_moved_aside_not_deleted(tmp_path, clips):
    root = tmp_path / "lib"
    ann, *_ = fill(root, clips)
    (ann.paths.folder / SIDECAR).write_text("{ not json")
    lose_database(root, "deleted")
    with VoiceLibrary(root) as lib:
        assert sorted(s.speaker_name for s in lib.list()) == ["Bo Lee", "Cy"]
        report = lib.open_report
    assert report.moved_aside == [ann.uid] and report.recovery_dir == root / "recovery"
    kept = root / "recovery" / ann.uid
    assert (kept / "voice.flac").is_file() and (kept / ann.paths.original.name).read_bytes() == clips[0].read_bytes()
    assert "moved 1 item that couldn't be recovered to" in report.notice and str(root / "recovery") in report.notice


def test_old_libraries_get_their_sidecars_on_open(tmp_path, clips):
    root = tmp_path / "lib"
    samples = fill(root, clips)
    for s in samples:
        (s.paths.folder / SIDECAR).unlink()
    with VoiceLibrary(root):
        pass
    for s in samples:
        data = json.loads((s.paths.folder / SIDECAR).read_text())
        assert (data["id"], data["speaker_name"], data["is_default"]) == (s.id, s.speaker_name, int(s.is_default))


def test_an_interrupted_delete_is_undone(tmp_path, clips):
    """A delete killed after renaming the folder but before its commit keeps the voice."""
    root = tmp_path / "lib"
    ann, *_ = fill(root, clips)
    ann.paths.folder.rename(root / "samples" / f".trash-{ann.uid}-{'0' * 32}")
    with VoiceLibrary(root) as lib:
        assert lib.open_report.restored == [ann.uid]
        assert lib.get(ann.id).paths.audio.is_file()


def test_a_row_with_a_relative_uid_never_touches_outside_the_library(tmp_path, clips):
    root = tmp_path / "lib"
    fill(root, clips)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    with sqlite3.connect(root / "library.sqlite3") as conn:
        conn.execute("UPDATE voices SET uid = '../../victim' WHERE speaker_name = 'Cy'")
    with VoiceLibrary(root) as lib:
        assert [s.speaker_name for s in lib.list()] == ["Ann", "Bo Lee"]  # the damaged row is skipped
        assert len(lib.open_report.damaged_rows) == 1
        with pytest.raises(StorageError) as info:
            lib.delete("Cy")
        assert info.value.code == "storage_error"
    assert (victim / "precious.txt").read_text() == "keep me"


def test_a_symlinked_sample_folder_is_never_followed(tmp_path, clips):
    root = tmp_path / "lib"
    ann, *_ = fill(root, clips)
    outside = tmp_path / "outside"
    ann.paths.folder.rename(outside)
    ann.paths.folder.symlink_to(outside, target_is_directory=True)
    with VoiceLibrary(root) as lib:
        assert "Ann" not in [s.speaker_name for s in lib.list()]
        with pytest.raises(StorageError):
            lib.delete(ann.id)
        lib.check(stale_after=0)
    assert (outside / "voice.flac").is_file() and (outside / SIDECAR).is_file()


def test_one_damaged_row_does_not_hide_the_others(tmp_path, clips):
    root = tmp_path / "lib"
    fill(root, clips)
    with sqlite3.connect(root / "library.sqlite3") as conn:
        conn.execute("UPDATE voices SET duration = 'x' WHERE speaker_name = 'Ann'")
    with VoiceLibrary(root) as lib:
        assert [s.speaker_name for s in lib.list()] == ["Bo Lee", "Cy"]
        with pytest.raises(StorageError, match="damaged") as info:
            lib.resolve("Ann")
        assert info.value.code == "storage_error"
    assert len(list((root / "samples").iterdir())) == 3  # its folder is kept


@pytest.mark.parametrize("damage", ["drop column", "user_version -5"])
def test_a_damaged_schema_is_a_storage_error_that_says_what_to_do(tmp_path, clips, damage):
    root = tmp_path / "lib"
    fill(root, clips)
    with sqlite3.connect(root / "library.sqlite3") as conn:
        if damage == "drop column":
            conn.execute("DROP INDEX voices_name")
            conn.execute("ALTER TABLE voices DROP COLUMN speaker_name")
        else:
            conn.execute("PRAGMA user_version = -5")
    with pytest.raises(StorageError, match="rebuilds it from the sample folders") as info:
        VoiceLibrary(root)
    assert info.value.code == "storage_error"
    os.replace(root / "library.sqlite3", root / "library.sqlite3.damaged")  # what the message says
    for suffix in ("-wal", "-shm"):
        Path(f"{root / 'library.sqlite3'}{suffix}").unlink(missing_ok=True)
    with VoiceLibrary(root) as lib:
        assert len(lib.list()) == 3


def test_user_data_is_private_and_exports_follow_the_umask(tmp_path, clips):
    old = os.umask(0o022)
    try:
        root = tmp_path / "lib"
        fill(root, clips)
        with VoiceLibrary(root) as lib:  # open: -wal and -shm exist
            for name in ("library.sqlite3", "library.sqlite3-wal", "library.sqlite3-shm"):
                assert modes(root / name) == 0o600, name
            for folder in (root, root / "samples", *(s.paths.folder for s in lib.list())):
                assert modes(folder) == 0o700, folder
            for s in lib.list():
                for file in s.paths.folder.iterdir():
                    assert modes(file) == 0o600, file
            export = lib.export_zip(tmp_path / "out" / "voices.zip")
        assert modes(export) == 0o644
    finally:
        os.umask(old)


def test_old_readable_files_are_made_private_on_open(tmp_path, clips):
    root = tmp_path / "lib"
    ann, *_ = fill(root, clips)
    for path in (root, ann.paths.folder):
        path.chmod(0o755)
    for path in (ann.paths.audio, root / "library.sqlite3"):
        path.chmod(0o644)
    with VoiceLibrary(root):
        pass
    assert (modes(root), modes(ann.paths.folder)) == (0o700, 0o700)
    assert (modes(ann.paths.audio), modes(root / "library.sqlite3")) == (0o600, 0o600)


# --------------------------------------------------------------------------- malformed zips

def rewrite_zip(src: Path, dst: Path, edit) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        manifest = json.loads(zin.read("manifest.json"))
        edit(manifest)
        zout.writestr("manifest.json", json.dumps(manifest))
        for item in zin.infolist():
            if item.filename != "manifest.json":
                zout.writestr(item, zin.read(item))
    return dst


@pytest.fixture
def exported(tmp_path, clips) -> Path:
    with VoiceLibrary(tmp_path / "home") as home:
        home.add(clips[0], speaker_name="Ann", transcript="Hi.")
        return home.export_zip(tmp_path / "good.zip")


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.update(samples="abc"), "bad manifest"),
    (lambda m: m.update(samples=[None]), "malformed entry"),
    (lambda m: m["samples"][0].update(original_sample_rate="fast"), "sample rate"),
    (lambda m: m["samples"][0].update(original_sample_rate=-44100), "sample rate"),
    (lambda m: m["samples"][0].update(original_channels=1e9), "channel"),
    (lambda m: m["samples"][0].update(files="samples/x"), "malformed entry"),
    (lambda m: m["samples"][0].update(original_sha256=["not", "text"]), "damaged"),
])
def test_malformed_zip_manifests_are_refused(tmp_path, exported, edit, match):
    bad = rewrite_zip(exported, tmp_path / "bad.zip", edit)
    with VoiceLibrary(tmp_path / "other") as other:
        with pytest.raises(InvalidVoiceSampleError, match=match) as info:
            other.import_zip(bad)
        assert info.value.code == "invalid_voice_sample"
        assert len(other) == 0 and list(other.samples_dir.iterdir()) == []


def test_a_zip_with_a_crc_error_is_refused(tmp_path, exported):
    data = bytearray(exported.read_bytes())
    with zipfile.ZipFile(exported) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("voice.flac"))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 100] ^= 0xFF  # flip a byte of the stored member
    broken = tmp_path / "crc.zip"
    broken.write_bytes(bytes(data))
    with VoiceLibrary(tmp_path / "other") as other:
        with pytest.raises(InvalidVoiceSampleError, match="damaged") as err:
            other.import_zip(broken)
        assert err.value.code == "invalid_voice_sample"
        assert len(other) == 0 and list(other.samples_dir.iterdir()) == []
