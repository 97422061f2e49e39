"""engine.files: atomic writes, stale temporary files, and the modes of private data vs exports."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from engine import files

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX modes")


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@posix_only
def test_export_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        out = files.atomic_write_bytes(tmp_path / "take.wav", b"RIFF")
    finally:
        os.umask(old)
    assert _mode(out) == 0o644


@posix_only
def test_private_file_is_owner_only_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        out = files.atomic_write_text(tmp_path / "draft.json", "{}", private=True)
    finally:
        os.umask(old)
    assert _mode(out) == 0o600


@posix_only
def test_private_dir_is_created_and_tightened(tmp_path):
    loose = tmp_path / "data"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    files.ensure_private_dir(loose / "voices")
    files.ensure_private_dir(loose)
    assert _mode(loose) == 0o700 and _mode(loose / "voices") == 0o700


def test_failed_write_keeps_the_old_file_and_leaves_no_part(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def boom(path):
        path.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(target, boom)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_next_write_sweeps_parts_of_killed_writers(tmp_path):
    target = tmp_path / "out.wav"
    # a writer that was killed: its process no longer exists
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)
    stale = tmp_path / f".out.wav.{dead_pid}-{'a' * 32}.part"
    stale.write_bytes(b"x" * 1000)
    # a writer of ours that is still running, and someone else's file: both stay
    live = files.temp_path_for(target)
    live.write_bytes(b"y")
    other = tmp_path / f".other.wav.{dead_pid}-{'b' * 32}.part"
    other.write_bytes(b"z")
    files.atomic_write_bytes(target, b"new")
    assert not stale.exists()
    assert live.exists() and other.exists()
    assert target.read_bytes() == b"new"


def test_old_parts_are_swept_even_if_the_pid_is_reused(tmp_path):
    target = tmp_path / "out.wav"
    old = files.temp_path_for(target)  # our own pid: looks alive
    old.write_bytes(b"x")
    os.utime(old, (0, 0))
    assert files.sweep_stale_parts(target) == [old]


def test_parts_of_older_versions_are_swept_once_an_hour_old(tmp_path):
    target = tmp_path / "out.wav"
    fresh = tmp_path / ".out.wav.k3j_9x2a.part"  # mkstemp's name, as earlier versions wrote
    old = tmp_path / ".out.wav.q8w2e4r1.part"
    fresh.write_bytes(b"x")
    old.write_bytes(b"x")
    os.utime(old, (0, 0))
    assert files.sweep_stale_parts(target) == [old]
    assert fresh.exists()
