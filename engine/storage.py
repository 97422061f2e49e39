"""A small SQLite helper shared by the local stores (voice library, render history).

One connection per ``Database``, in WAL mode with foreign keys on. The schema version lives in
``PRAGMA user_version``; ``migrations[i]`` upgrades version ``i`` to ``i + 1`` and each runs in its
own transaction together with the version bump, so an interrupted upgrade leaves the previous
version intact. ``transaction()`` takes the write lock up front (``BEGIN IMMEDIATE``), so a
read-modify-write inside it can't interleave with another process.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Union

from engine.errors import StorageError

Migration = Union[str, Callable[[sqlite3.Connection], None]]
"""An SQL script, or a function that performs the upgrade on the connection."""


class Database:
    """An SQLite file with a versioned schema; thread-safe (one lock around the connection)."""

    def __init__(self, path: str | Path, migrations: Sequence[Migration], *,
                 busy_timeout: float = 10.0, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.migrations = list(migrations)
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (see transaction()).
            self._conn = sqlite3.connect(str(self.path), timeout=busy_timeout, isolation_level=None,
                                         check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StorageError(f"Can't open the database {self.path}: {exc}") from exc

    # -- schema

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        target = len(self.migrations)
        with self.transaction() as conn:
            current = self.schema_version
        if current > target:
            raise StorageError(
                f"{self.path.name} was written by a newer Dia Studio (schema {current}; this version "
                f"knows up to {target}). Update Dia Studio to open it.")
        while current < target:
            with self.transaction() as conn:
                # Re-read under the write lock: another process may have migrated meanwhile.
                current = self.schema_version
                if current >= target:
                    break
                step = self.migrations[current]
                if callable(step):
                    step(conn)
                else:
                    for statement in _split_sql(step):
                        conn.execute(statement)
                current += 1
                conn.execute(f"PRAGMA user_version={current}")

    # -- access

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any exception. Not re-entrant."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StorageError(f"The database {self.path.name} is busy or locked: {exc}") from exc
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] | dict = ()) -> list[sqlite3.Row]:
        """Run a read-only statement and return all rows."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] | dict = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._conn.execute(sql, params).fetchone()

    def integrity_ok(self) -> bool:
        """``PRAGMA integrity_check`` says "ok"."""
        with self._lock:
            return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def close(self) -> None:
        with self._lock:
            conn = getattr(self, "_conn", None)
            if conn is not None:
                conn.close()
                self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would COMMIT our transaction)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buffer.strip()[:80]}")
    return statements
