"""Kill a process (SIGKILL) while it writes to the voice library; the library must stay consistent.

A child process adds (or deletes) samples and is killed at chosen points: after its files are
staged, after the sample's folder is published but before the row is committed, in the middle of
writing an audio file, between a delete's commit and the folder's removal, and at random moments.
Afterwards the library opens with every row backed by readable files and no stray folders; a
sample whose folder was published is never lost, even when the database is lost as well.
"""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine import audio
from engine.voices import VoiceLibrary, load_audio
from tests.engine.test_audio_samples import speech  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL"),
]

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
from engine import audio, voices

stage, root, files = sys.argv[2], sys.argv[3], sys.argv[4:]

def hang(*args, **kwargs):
    print("READY", flush=True)
    time.sleep(120)

if stage == "staged":            # files written and fsynced; the transaction has not begun
    voices._sha256_file = hang
elif stage == "published":       # folder renamed into place inside the transaction, no COMMIT yet
    real_publish = voices._publish
    def publish(staging, final):
        real_publish(staging, final)
        hang()
    voices._publish = publish
elif stage == "writing":         # killed halfway through writing the prompt audio
    def half_write(tmp, arr, sr, fmt, metadata, bit_depth):
        with open(tmp, "wb") as f:
            f.write(b"fLaC" + bytes(4096))
        hang()
    audio._write_soundfile = half_write

library = voices.VoiceLibrary(root)
if stage == "deleting":          # the row's removal is committed, the folder not yet removed
    voices.shutil.rmtree = hang
    library.delete(library.list()[0].id)
for path in files:
    library.add(path, speaker_name=os.path.basename(path), transcript="The quick brown fox.")
    print("ADDED", flush=True)
print("DONE", flush=True)
"""


def run_child(root: Path, stage: str, files: list[Path], *, kill_after_added: int | None = None,
              jitter: float = 0.0) -> str:
    """Start the child; SIGKILL it on READY (or after N adds plus a random delay)."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(ROOT), stage, str(root), *map(str, files)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    added, last = 0, ""
    try:
        for line in proc.stdout:
            last = line.strip()
            if last == "READY":
                break
            if last == "ADDED":
                added += 1
                if kill_after_added is not None and added >= kill_after_added:
                    time.sleep(jitter)
                    break
            if last == "DONE":
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.stderr.close()
    assert last in ("READY", "ADDED", "DONE"), f"child failed early:\n{stderr}"
    return last


def assert_consistent(root: Path) -> int:
    """Open the library as the app would; every row has its files and no stray folder remains."""
    with VoiceLibrary(root) as lib:
        lib.check(stale_after=0)  # a killed writer's staging folder is stale by definition
        assert lib.db.integrity_ok()
        samples = lib.list()
        for s in samples:
            assert s.paths.audio.is_file() and s.paths.original.is_file()
            assert hashlib.sha256(s.paths.original.read_bytes()).hexdigest() == s.original_sha256
            assert len(load_audio(s)) / audio.TARGET_SAMPLE_RATE == pytest.approx(s.duration, abs=1e-3)
        assert sorted(p.name for p in lib.samples_dir.iterdir()) == sorted(s.uid for s in samples)
        assert not list(root.glob("**/*.part"))
        return len(samples)


@pytest.fixture
def clips(speech, tmp_path) -> list[Path]:
    """Eight distinct files of the same speech (an identical file would be refused as a duplicate)."""
    data, sr = sf.read(speech["wav"], dtype="float32")
    out = []
    for i in range(8):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, data * np.float32(0.4 + 0.07 * i), sr)
        out.append(path)
    return out


@pytest.mark.parametrize("stage", ["staged", "published", "writing"])
def test_kill_while_adding(tmp_path, clips, stage):
    root = tmp_path / "library"
    with VoiceLibrary(root) as lib:
        lib.add(clips[0], speaker_name="Before", transcript="words")
    assert run_child(root, stage, clips[1:2]) == "READY"
    left = sorted(p.name for p in (root / "samples").iterdir())
    if stage == "published":  # a complete folder whose row was never committed
        assert len(left) == 2 and not any(n.startswith(".") for n in left)
    else:
        assert len(left) == 2 and left[0].startswith(".staging-")
    if stage == "published":  # nothing is lost: the sample is recovered from its folder's voice.json
        assert assert_consistent(root) == 2
        with VoiceLibrary(root) as lib:
            assert lib.resolve(clips[1].name).transcript == "The quick brown fox."
        return
    assert assert_consistent(root) == 1  # the interrupted sample is simply absent
    with VoiceLibrary(root) as lib:  # and can be added again
        assert lib.add(clips[1], speaker_name="Retry", transcript="words").speaker_name == "Retry"


def test_kill_while_deleting(tmp_path, clips):
    root = tmp_path / "library"
    with VoiceLibrary(root) as lib:
        doomed = lib.add(clips[0], speaker_name="Doomed", transcript="words")
        lib.add(clips[1], speaker_name="Stays", transcript="words")
    assert run_child(root, "deleting", []) == "READY"
    assert any(p.name.startswith(".trash-") for p in (root / "samples").iterdir())
    assert assert_consistent(root) == 1
    with VoiceLibrary(root) as lib:
        assert [s.speaker_name for s in lib.list()] == ["Stays"]
        assert not doomed.paths.folder.exists()


def test_kill_at_random_moments(tmp_path, clips):
    root = tmp_path / "library"
    rng = random.Random(1234)
    remaining = list(clips)
    for _ in range(3):
        run_child(root, "random", remaining, kill_after_added=1, jitter=rng.uniform(0.0, 0.08))
        count = assert_consistent(root)
        with VoiceLibrary(root) as lib:
            stored = {s.speaker_name for s in lib.list()}
        remaining = [p for p in clips if p.name not in stored]
        assert count == len(clips) - len(remaining)
    assert len(remaining) < len(clips)
    with VoiceLibrary(root) as lib:
        for path in remaining:
            lib.add(path, speaker_name=path.name, transcript="words")
    assert assert_consistent(root) == len(clips)


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_database_lost_after_kills_is_rebuilt_with_no_sample_lost(tmp_path, clips, how):
    root = tmp_path / "library"
    with VoiceLibrary(root) as lib:
        first = lib.add(clips[0], speaker_name="First", transcript="words", make_default=True)
        lib.rename(first.id, "First, renamed")
    run_child(root, "published", clips[1:2])  # a folder published, its row never committed
    run_child(root, "random", clips[2:6], kill_after_added=1, jitter=random.Random(7).uniform(0.0, 0.08))
    published = {p.name for p in (root / "samples").iterdir() if not p.name.startswith(".")}
    db = root / "library.sqlite3"
    if how == "emptied":
        db.write_bytes(b"")  # the WAL a killed writer left is lost with it
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        if how == "deleted" or path != db:
            path.unlink(missing_ok=True)
    assert assert_consistent(root) == len(published)
    with VoiceLibrary(root) as lib:
        assert {s.uid for s in lib.list()} == published
        again = lib.get(first.id)  # same id, the latest name, still the default
        assert (again.speaker_name, again.is_default) == ("First, renamed", True)
        assert lib.resolve(clips[1].name).transcript == "The quick brown fox."
