"""engine.history: stored renders (SQLite + FLAC), search, delete, crash leftovers, migrations."""

from __future__ import annotations

import os
import sqlite3
import time

import numpy as np
import pytest

from engine import history as history_module
from engine.errors import InvalidParameterError, StorageError
from engine.history import CastMember, RenderHistory, make_title
from engine.params import GenerationParams
from engine.storage import Database

SR = 44100


def tone(seconds: float = 0.5, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def add(history: RenderHistory, script: str = "[S1] Hello there. [S2] Hi!", **kw):
    defaults = dict(audio_samples=tone(), sample_rate=SR, params=GenerationParams(temperature=1.2),
                    seed=1234, render_seconds=3.5)
    defaults.update(kw)
    return history.add(script=script, **defaults)


def test_add_get_and_audio_round_trip(tmp_path):
    with RenderHistory(tmp_path / "h") as history:
        cast = {"S1": CastMember(7, "Ann"), "S2": CastMember()}
        entry = add(history, cast=cast, model="tiny", stop_reason="eos", warnings=["short"])
        assert entry.audio_available and entry.audio_path.parent == tmp_path / "h" / "audio"
        assert entry.title == "Hello there. Hi!"
        assert entry.seed == 1234 and entry.params.temperature == 1.2 and entry.params.seed == -1
        assert entry.reproducible_params.seed == 1234
        assert entry.cast == {"S1": CastMember(7, "Ann")}  # random voices are not stored
        assert entry.cast_label == "S1 Ann · S2 random voice"
        assert entry.duration == pytest.approx(0.5)
        assert entry.render_seconds == 3.5 and entry.warnings == ("short",)
        assert history.get(entry.id) == entry
        samples = history.load_audio(entry)
        np.testing.assert_allclose(samples, tone(), atol=1e-5)  # 24-bit FLAC
        assert len(history) == 1
    # reopening finds the same data
    with RenderHistory(tmp_path / "h") as history:
        assert [e.id for e in history.list()] == [entry.id]


def test_list_is_newest_first_and_search_matches_script_cast_and_seed(tmp_path):
    with RenderHistory(tmp_path) as history:
        a = add(history, "[S1] The weather is lovely.", seed=11)
        b = add(history, "[S1] Coffee 100% arabica_beans.", seed=22, cast={"S1": CastMember(3, "Bo")})
        c = add(history, "[S1] Another take.", seed=33)
        assert [e.id for e in history.list()] == [c.id, b.id, a.id]
        assert [e.id for e in history.list("WEATHER")] == [a.id]
        assert [e.id for e in history.list("bo")] == [b.id]
        assert [e.id for e in history.list("22")] == [b.id]
        assert [e.id for e in history.list("100%")] == [b.id]  # LIKE wildcards are literal
        assert history.list("50%") == []
        assert [e.id for e in history.list("arabica_beans")] == [b.id]
        assert history.list("ar_bica") == []  # "_" is literal, not a one-character wildcard
        assert [e.id for e in history.list("take another")] == [c.id]
        assert len(history.list(limit=2)) == 2


def test_label_star_and_delete(tmp_path):
    with RenderHistory(tmp_path) as history:
        entry = add(history)
        assert history.set_label(entry.id, "  best   take ").label == "best take"
        assert history.list("best")[0].id == entry.id
        assert history.set_starred(entry.id, True).starred
        history.delete(entry.id)
        assert not entry.audio_path.exists()
        assert len(history) == 0
        with pytest.raises(StorageError):
            history.get(entry.id)
        with pytest.raises(StorageError):
            history.set_label(entry.id, "x")


def test_empty_audio_is_refused(tmp_path):
    with RenderHistory(tmp_path) as history:
        with pytest.raises(InvalidParameterError):
            add(history, audio_samples=np.zeros(0, np.float32))
        assert len(history) == 0
        assert list(history.audio_dir.iterdir()) == []


def test_big_seeds_fit(tmp_path):
    with RenderHistory(tmp_path) as history:
        entry = add(history, seed=2**63 - 1, params=GenerationParams(seed=2**63 - 1))
        assert history.get(entry.id).seed == 2**63 - 1


def test_crash_before_commit_leaves_no_row_and_check_removes_the_file(tmp_path, monkeypatch):
    history = RenderHistory(tmp_path)

    def crash(src, dst):
        raise KeyboardInterrupt  # the process dies while publishing

    monkeypatch.setattr(history_module.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        add(history)
    monkeypatch.undo()
    assert len(history) == 0
    # a stray file from an earlier crash (older than the staging grace period) is cleaned on open
    stray = history.audio_dir / "0123.flac"
    stray.write_bytes(b"x")
    old_staging = history.audio_dir / ".staging-old.flac"
    old_staging.write_bytes(b"x")
    os.utime(old_staging, (time.time() - 7200, time.time() - 7200))
    young_staging = history.audio_dir / ".staging-young.flac"
    young_staging.write_bytes(b"x")
    history.close()
    with RenderHistory(tmp_path) as history:
        assert not stray.exists() and not old_staging.exists()
        assert (tmp_path / "recovery" / "0123.flac").read_bytes() == b"x"  # moved aside, never deleted
        assert young_staging.exists()  # may belong to a writer in another process


def test_missing_audio_keeps_the_entry(tmp_path):
    with RenderHistory(tmp_path) as history:
        entry = add(history)
        entry.audio_path.unlink()
    with RenderHistory(tmp_path) as history:
        again = history.get(entry.id)
        assert not again.audio_available
        assert again.script == entry.script


def test_v1_database_upgrades_in_place(tmp_path):
    root = tmp_path
    (root / "audio").mkdir()
    with Database(root / "history.sqlite3", history_module.SCHEMA[:1]) as db:
        with db.transaction() as conn:
            conn.execute(
                "INSERT INTO renders (uid, created_at, title, script, params_json, seed, duration, render_seconds,"
                " sample_rate, audio_file) VALUES ('u', '2025-01-01T00:00:00+00:00', 't', '[S1] x', ?, 5, 1.0,"
                " 2.0, 44100, 'u.flac')", ('{"temperature": 1.0}',))
    with RenderHistory(root) as history:
        assert history.db.schema_version == len(history_module.SCHEMA)
        (entry,) = history.list()
        assert entry.label == "" and not entry.starred and entry.params.temperature == 1.0


def test_damaged_row_is_skipped_in_lists(tmp_path):
    with RenderHistory(tmp_path) as history:
        good = add(history)
        bad = add(history)
        with history.db.transaction() as conn:
            conn.execute("UPDATE renders SET params_json = '{\"temprature\": 1}' WHERE id = ?", (bad.id,))
        assert [e.id for e in history.list()] == [good.id]
        with pytest.raises(StorageError):
            history.get(bad.id)


def test_newer_database_is_refused(tmp_path):
    path = tmp_path / "history.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(StorageError, match="newer Dia Studio"):
        RenderHistory(tmp_path)


def test_make_title():
    assert make_title("[S1]  Hi   there [S2] yo") == "Hi there yo"
    assert make_title("   ") == "Untitled"
    long = make_title("[S1] " + "word " * 40)
    assert len(long) == 80 and long.endswith("…")
