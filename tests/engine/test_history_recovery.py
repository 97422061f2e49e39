"""The render history never deletes a render: a lost database is rebuilt from the sidecars next to
the audio, audio without a sidecar is moved aside, stored paths never leave the history folder,
and everything is private."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest

from engine.errors import StorageError
from engine.history import CastMember, RenderHistory
from engine.params import GenerationParams

SR = 44100


def add(history: RenderHistory, script: str, seed: int = 7):
    t = np.arange(SR // 2) / SR
    return history.add(script=script, audio_samples=(0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32),
                       sample_rate=SR, params=GenerationParams(temperature=1.2), seed=seed, render_seconds=2.0,
                       cast={"S1": CastMember(3, "Ann")}, warnings=["short"])


def fill(root: Path) -> list:
    with RenderHistory(root) as history:
        a = add(history, "[S1] First take.", seed=1)
        b = add(history, "[S1] Second take.", seed=2)
        history.set_label(a.id, "keeper")
        history.set_starred(b.id, True)
        return history.list()


@pytest.mark.parametrize("how", ["emptied", "deleted"])
def test_a_lost_database_is_rebuilt_from_the_sidecars(tmp_path, how):
    before = fill(tmp_path)
    db = tmp_path / "history.sqlite3"
    if how == "emptied":
        db.write_bytes(b"")
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    with RenderHistory(tmp_path) as history:
        assert history.list() == before  # ids, label, star, cast, params, seed
        assert sorted(history.open_report.recovered) == sorted(e.uid for e in before)
        assert history.open_report.notice == \
            "Render history: recovered 2 renders from the files kept next to the audio."
        assert np.allclose(history.load_audio(before[0]), history.load_audio(before[0].id))


def test_audio_without_sidecar_or_row_is_moved_aside(tmp_path):
    (entry, _) = fill(tmp_path)
    entry.audio_path.with_suffix(".json").unlink()
    with sqlite3.connect(tmp_path / "history.sqlite3") as conn:
        conn.execute("DELETE FROM renders WHERE id = ?", (entry.id,))
    with RenderHistory(tmp_path) as history:
        assert len(history) == 1
        report = history.open_report
    assert report.moved_aside == [entry.audio_path.name]
    assert (tmp_path / "recovery" / entry.audio_path.name).is_file()
    assert str(tmp_path / "recovery") in report.notice


def test_delete_refuses_a_path_outside_the_history(tmp_path):
    fill(tmp_path)
    precious = tmp_path.parent / f"{tmp_path.name}-precious.txt"
    precious.write_text("keep me")
    with sqlite3.connect(tmp_path / "history.sqlite3") as conn:
        conn.execute("UPDATE renders SET audio_file = ? WHERE seed = 1", (f"../../{precious.name}",))
    with RenderHistory(tmp_path) as history:
        bad = next(r for r in history.db.query("SELECT id FROM renders WHERE seed = 1"))["id"]
        assert [e.seed for e in history.list()] == [2]  # the damaged row is skipped
        with pytest.raises(StorageError) as info:
            history.delete(bad)
        assert info.value.code == "storage_error"
    assert precious.read_text() == "keep me"


def test_delete_never_follows_a_symlink_out(tmp_path):
    (entry, _) = fill(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.flac"
    os.replace(entry.audio_path, outside)
    entry.audio_path.symlink_to(outside)
    with RenderHistory(tmp_path) as history, pytest.raises(StorageError):
        history.delete(entry.id)
    assert outside.is_file()


def test_an_interrupted_delete_is_undone(tmp_path):
    (entry, _) = fill(tmp_path)
    for path in (entry.audio_path, entry.audio_path.with_suffix(".json")):
        path.rename(path.with_name(f".trash-{path.name}"))  # killed before the delete's commit
    with RenderHistory(tmp_path) as history:
        assert history.get(entry.id).audio_available
        assert len(history.open_report.restored) == 2


def test_label_and_star_keep_the_sidecar_in_step(tmp_path):
    with RenderHistory(tmp_path) as history:
        entry = add(history, "[S1] Hi.")
        history.set_label(entry.id, "best")
        history.set_starred(entry.id, True)
    data = json.loads(entry.audio_path.with_suffix(".json").read_text())
    assert (data["id"], data["label"], data["starred"], data["seed"]) == (entry.id, "best", 1, 7)


def test_history_files_are_private(tmp_path):
    old = os.umask(0o022)
    try:
        fill(tmp_path / "h")
        with RenderHistory(tmp_path / "h"):
            for name in ("history.sqlite3", "history.sqlite3-wal", "history.sqlite3-shm"):
                assert stat.S_IMODE((tmp_path / "h" / name).stat().st_mode) == 0o600
        for folder in (tmp_path / "h", tmp_path / "h" / "audio"):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        for file in (tmp_path / "h" / "audio").iterdir():
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    finally:
        os.umask(old)
