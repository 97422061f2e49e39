"""engine.storage (versioned SQLite) and engine.paths (the user data directory)."""

from __future__ import annotations

import sqlite3
import sys

import pytest

from engine import paths
from engine.errors import StorageError
from engine.storage import Database

V1 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);"
V2 = """
ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER notes_touch AFTER UPDATE ON notes BEGIN
    UPDATE notes SET pinned = pinned WHERE id = NEW.id;
END;
"""


def add_tags(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE tags (note INTEGER REFERENCES notes(id), tag TEXT)")


def test_migrations_run_once_in_order(tmp_path):
    path = tmp_path / "db.sqlite3"
    with Database(path, [V1]) as db:
        assert db.schema_version == 1
        with db.transaction() as conn:
            conn.execute("INSERT INTO notes (body) VALUES ('hello')")
        assert db.query_one("PRAGMA journal_mode")[0] == "wal"
        assert db.query_one("PRAGMA foreign_keys")[0] == 1
    with Database(path, [V1, V2, add_tags]) as db:  # upgrade keeps the data
        assert db.schema_version == 3
        assert [tuple(r) for r in db.query("SELECT body, pinned FROM notes")] == [("hello", 0)]
        assert db.integrity_ok()
    with Database(path, [V1, V2, add_tags]) as db:  # nothing left to do
        assert db.schema_version == 3


def test_failed_migration_rolls_back(tmp_path):
    path = tmp_path / "db.sqlite3"
    Database(path, [V1]).close()

    def broken(conn):
        conn.execute("CREATE TABLE half (x)")
        raise RuntimeError("migration bug")

    with pytest.raises(RuntimeError, match="migration bug"):
        Database(path, [V1, broken])
    with Database(path, [V1]) as db:
        assert db.schema_version == 1
        assert db.query("SELECT name FROM sqlite_master WHERE name = 'half'") == []


def test_newer_schema_and_garbage_are_storage_errors(tmp_path):
    path = tmp_path / "db.sqlite3"
    Database(path, [V1, V2]).close()
    with pytest.raises(StorageError, match="newer Dia Studio") as info:
        Database(path, [V1])
    assert info.value.code == "storage_error"
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="junk.sqlite3"):
        Database(junk, [V1])


def test_transaction_rolls_back_on_error(tmp_path):
    with Database(tmp_path / "db.sqlite3", [V1]) as db:
        with pytest.raises(ValueError):
            with db.transaction() as conn:
                conn.execute("INSERT INTO notes (body) VALUES ('lost')")
                raise ValueError("changed my mind")
        assert db.query("SELECT * FROM notes") == []
        with pytest.raises(sqlite3.IntegrityError):
            with db.transaction() as conn:
                conn.execute("INSERT INTO notes (body) VALUES ('first')")
                conn.execute("INSERT INTO notes (body) VALUES (NULL)")
        assert db.query("SELECT * FROM notes") == []


def test_a_second_connection_sees_committed_data_only(tmp_path):
    path = tmp_path / "db.sqlite3"
    with Database(path, [V1]) as a, Database(path, [V1], busy_timeout=0.1) as b:
        with a.transaction() as conn:
            conn.execute("INSERT INTO notes (body) VALUES ('x')")
            assert b.query("SELECT * FROM notes") == []  # WAL: readers see the last commit
            with pytest.raises(StorageError, match="busy"):  # one writer at a time
                with b.transaction():
                    pass
        assert len(b.query("SELECT * FROM notes")) == 1


def test_data_dir_override(tmp_path, monkeypatch):
    monkeypatch.setenv("DIA_STUDIO_DATA_DIR", str(tmp_path / "portable"))
    assert paths.data_dir() == tmp_path / "portable" and (tmp_path / "portable").is_dir()
    assert paths.voices_dir() == tmp_path / "portable" / "voices"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG is the Linux convention")
def test_data_dir_follows_xdg_on_linux(tmp_path, monkeypatch):
    monkeypatch.delenv("DIA_STUDIO_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert paths.data_dir(create=False) == tmp_path / "xdg" / "Dia Studio"
    assert not (tmp_path / "xdg").exists()
    monkeypatch.setenv("DIA_STUDIO_DATA_DIR", "  ")  # blank means unset
    assert paths.data_dir() == tmp_path / "xdg" / "Dia Studio"


def test_a_negative_schema_version_is_a_storage_error(tmp_path):
    path = tmp_path / "db.sqlite3"
    Database(path, [V1]).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = -5")
    conn.close()
    with pytest.raises(StorageError, match="schema version is -5") as info:
        Database(path, [V1, V2])  # must not run migrations[-5]
    assert info.value.code == "storage_error"


def test_a_missing_column_is_a_storage_error(tmp_path):
    path = tmp_path / "db.sqlite3"
    Database(path, [V1, V2]).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER notes_touch")
    conn.execute("ALTER TABLE notes DROP COLUMN pinned")
    conn.close()
    with pytest.raises(StorageError, match="notes.pinned"):
        Database(path, [V1, V2])


def test_read_only_database_reads_and_refuses_writes(tmp_path):
    path = tmp_path / "db.sqlite3"
    with Database(path, [V1]) as db:
        with db.transaction() as conn:
            conn.execute("INSERT INTO notes (body) VALUES ('kept')")
    with Database(path, [V1], read_only=True) as db:
        assert [r["body"] for r in db.query("SELECT body FROM notes")] == ["kept"]
        with pytest.raises(StorageError, match="read-only"), db.transaction():
            pass
    with pytest.raises(StorageError, match="no database"):
        Database(tmp_path / "absent.sqlite3", [V1], read_only=True)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_data_folders_are_private(tmp_path, monkeypatch):
    import os
    import stat

    monkeypatch.setenv("DIA_STUDIO_DATA_DIR", str(tmp_path / "data"))
    old = os.umask(0o022)
    try:
        for folder in (paths.data_dir(), paths.voices_dir()):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    finally:
        os.umask(old)
