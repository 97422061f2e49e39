"""A small SQLite helper shared by the local stores (voice library, render history).

One connection per ``Database``, in WAL mode with foreign keys on. The schema version lives in
``PRAGMA user_version``; ``migrations[i]`` upgrades version ``i`` to ``i + 1`` and each runs in its
own transaction together with the version bump, so an interrupted upgrade leaves the previous
version intact. ``transaction()`` takes the write lock up front (``BEGIN IMMEDIATE``), so a
read-modify-write inside it can't interleave with another process.

The database and its ``-wal``/``-shm`` files are private (0600). A database whose folder can't be
written (a read-only medium) opens read-only: reads work, writes raise ``StorageError``. SQLite
failures (a full disk, a damaged file, a dropped column) surface as ``StorageError`` with what to
do; constraint violations (``sqlite3.IntegrityError``) stay as they are for the stores to handle.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import StorageError
from engine.files import (
    PRIVATE_DIR_MODE,
    PRIVATE_FILE_MODE,
    ensure_private_dir,
    make_private,
)

Migration = str | Callable[[sqlite3.Connection], None]
"""An SQL script, or a function that performs the upgrade on the connection."""

DEFAULT_DAMAGED_HINT = "Rename the file (e.g. add '.damaged' to its name) and start Dia Studio again."
RECOVERY_DIR_NAME = "recovery"
"""The folder, inside a store's root, where files that can't be recovered are moved (never deleted)."""

WRITE_ERRORS = (OSError, RuntimeError)
"""What writing a store's files can raise: the OS's errors, and soundfile's ``LibsndfileError``
(a ``RuntimeError``, e.g. "System error." on a full disk). Convert them with ``storage_fault``."""

# Errors that are the caller's business (a constraint, a misuse), not a storage fault.
_PASS_THROUGH = (sqlite3.IntegrityError, sqlite3.ProgrammingError)


class Database:
    """An SQLite file with a versioned schema; thread-safe (one lock around the connection)."""

    def __init__(self, path: str | Path, migrations: Sequence[Migration], *,
                 busy_timeout: float = 10.0, synchronous: str = "FULL", read_only: bool = False,
                 damaged_hint: str = DEFAULT_DAMAGED_HINT, journal_mode: str = "WAL") -> None:
        self.path = Path(path)
        self.migrations = list(migrations)
        self.read_only = read_only
        self.damaged_hint = damaged_hint
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            self._conn = self._connect(busy_timeout)
            self._conn.row_factory = sqlite3.Row
            if not read_only:
                # WAL by default; a single file meant to be copied (an episode project) uses DELETE.
                self._conn.execute(f"PRAGMA journal_mode={journal_mode}")
                self._conn.execute(f"PRAGMA synchronous={synchronous}")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            self._verify_schema()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise self._error(exc, "open") from exc
        except BaseException:
            self.close()
            raise

    def _connect(self, busy_timeout: float) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (see transaction()).
        options: dict[str, Any] = {"timeout": busy_timeout, "isolation_level": None, "check_same_thread": False}
        if self.read_only:
            if not self.path.is_file():
                raise StorageError(f"There is no database at {self.path}, and its folder is read-only "
                                   "so none can be created. Choose a writable folder.")
            # A folder we can't write can't hold the -wal/-shm files either: read it as immutable.
            immutable = "" if os.access(self.path.parent, os.W_OK) else "&immutable=1"
            return sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro{immutable}", uri=True, **options)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(self.path)
        for suffix in ("", "-wal", "-shm"):  # tighten files an older version left readable
            if os.path.exists(f"{self.path}{suffix}"):
                make_private(f"{self.path}{suffix}")
        return sqlite3.connect(str(self.path), **options)

    # -- schema

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        target = len(self.migrations)
        current = self.schema_version
        if current < 0:
            raise self._damaged(f"its schema version is {current}")
        if current > target:
            raise StorageError(
                f"{self.path.name} was written by a newer Dia Studio (schema {current}; this version "
                f"knows up to {target}). Update Dia Studio to open it.")
        if current < target and self.read_only:
            raise StorageError(
                f"{self.path} was written by an older Dia Studio and must be upgraded, but its folder is "
                "read-only. Copy the folder to a writable place and open it there.")
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

    def _verify_schema(self) -> None:
        """Every table and column the migrations create is there (a hand-edited file may lack one)."""
        missing = sorted(set(_columns_after(self.migrations)) - set(_columns(self._conn)))
        if missing:
            raise self._damaged("it lacks " + ", ".join(f"{t}.{c}" if c else t for t, c in missing))

    # -- access

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any exception. Not re-entrant.

        SQLite failures inside (a full disk, a damaged file) become ``StorageError``.
        """
        if self.read_only:
            raise StorageError(f"{self.path.parent} is read-only: nothing can be changed there. Copy the "
                               "folder to a writable place, or make it writable, to make changes.")
        with self._lock:
            conn = self._open_conn()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise self._error(exc, "lock") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.DatabaseError:
                        pass  # SQLite already rolled back (e.g. after an I/O error)
                if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, _PASS_THROUGH):
                    raise self._error(exc, "write") from exc
                raise

    def query(self, sql: str, params: Sequence[Any] | dict = ()) -> list[sqlite3.Row]:
        """Run a read-only statement and return all rows."""
        with self._lock:
            try:
                return self._open_conn().execute(sql, params).fetchall()
            except _PASS_THROUGH:
                raise
            except sqlite3.DatabaseError as exc:
                raise self._error(exc, "read") from exc

    def query_one(self, sql: str, params: Sequence[Any] | dict = ()) -> sqlite3.Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def integrity_ok(self) -> bool:
        """``PRAGMA integrity_check`` says "ok"."""
        return self.query_one("PRAGMA integrity_check")[0] == "ok"

    def close(self) -> None:
        with self._lock:
            conn = getattr(self, "_conn", None)
            if conn is not None:
                conn.close()
                self._conn = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- errors

    def _open_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"The database {self.path.name} is closed.")
        return self._conn

    def _damaged(self, what: str) -> StorageError:
        return StorageError(f"The database {self.path} is damaged: {what}. {self.damaged_hint}")

    def _error(self, exc: sqlite3.DatabaseError, doing: str) -> StorageError:
        """A ``StorageError`` that says what went wrong with this file and what to do."""
        text = str(exc)
        lowered = text.lower()
        if "full" in lowered:
            return StorageError(f"The disk holding {self.path.parent} is full ({text}). Free some space "
                                "and try again.")
        if "readonly" in lowered or "read-only" in lowered:
            return StorageError(f"{self.path} can't be written ({text}): the folder or the disk is "
                                "read-only. Make it writable and try again.")
        if "locked" in lowered or "busy" in lowered:
            return StorageError(f"The database {self.path.name} is busy or locked: {text}. Another Dia Studio "
                                "may be writing to it; try again in a moment.")
        if "unable to open" in lowered or "disk i/o" in lowered or doing == "lock":
            return StorageError(f"Can't {doing} the database {self.path} ({text}). Check that the disk is "
                                "connected and the folder is readable and writable.")
        return self._damaged(text)


def recovery_notice(store: str, noun: tuple[str, str], recovered: int, moved_aside: int, dropped: int,
                    recovery_dir: Path | None) -> str:
    """One line for the user saying what a store's check did on open ("" when nothing worth saying).

    ``noun`` is the singular and plural of what the store holds, e.g. ``("voice", "voices")``.
    """
    def count(n: int, forms: tuple[str, str]) -> str:
        return f"{n} {forms[0] if n == 1 else forms[1]}"

    parts = []
    if recovered:
        parts.append(f"recovered {count(recovered, noun)} from the files kept next to the audio")
    if dropped:
        parts.append(f"removed {count(dropped, noun)} whose audio files were gone")
    if moved_aside:
        parts.append(f"moved {count(moved_aside, ('item', 'items'))} that couldn't be recovered to {recovery_dir}")
    return f"{store}: {'; '.join(parts)}." if parts else ""


def prepare_store(root: Path, folders: Sequence[Path], database: Path) -> bool:
    """Create a store's private folders; True when the store can't be written (open it read-only)."""
    if (root.is_dir() and not os.access(root, os.W_OK)) or \
            (database.is_file() and not os.access(database, os.W_OK)):
        return True
    for folder in (root, *folders):
        try:
            ensure_private_dir(folder)
        except OSError as exc:
            raise storage_fault(exc, "create the folder", folder) from exc
    return False


def tighten_folder(folder: Path) -> None:
    """Make a folder 0700 and its plain files 0600 (what older versions left readable); symlinks untouched."""
    if os.name == "nt":
        return
    try:
        if (folder.lstat().st_mode & 0o777) != PRIVATE_DIR_MODE:
            folder.chmod(PRIVATE_DIR_MODE)
        for entry in folder.iterdir():
            mode = entry.lstat().st_mode
            if (mode & 0o170000) == 0o100000 and (mode & 0o777) != PRIVATE_FILE_MODE:  # a regular file
                entry.chmod(PRIVATE_FILE_MODE)
    except OSError:
        pass  # best effort: not ours to change


def move_aside(entry: Path, root: Path) -> Path:
    """Move ``entry`` into ``root/recovery`` (created private) under a free name; returns the new path.

    A symlink is moved as a link: what it points to is never touched.
    """
    folder = ensure_private_dir(root / RECOVERY_DIR_NAME)
    target = folder / entry.name.lstrip(".")
    n = 1
    while target.exists() or target.is_symlink():
        n += 1
        target = folder / f"{entry.name.lstrip('.')}-{n}"
    os.replace(entry, target)
    return target


def inside(path: Path, folder: Path) -> bool:
    """``path`` is a direct entry of ``folder``, not a symlink, and stays inside it once resolved."""
    try:
        return (not path.is_symlink() and path.parent.resolve() == folder.resolve()
                and path.resolve().parent == folder.resolve())
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop on older Pythons
        return False


def storage_fault(exc: BaseException, doing: str, folder: Path) -> StorageError:
    """A ``StorageError`` for an OS or audio-library failure while writing under ``folder``."""
    err = getattr(exc, "errno", None)
    if err in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or "system error" in str(exc).lower():
        return StorageError(f"Can't {doing}: the disk holding {folder} is full or the file is too large "
                            f"({exc}). Free some space and try again.")
    if err in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageError(f"Can't {doing}: {folder} is read-only or not ours to write ({exc}). Make it "
                            "writable and try again.")
    return StorageError(f"Can't {doing} in {folder}: {exc}. Check the disk and the folder's permissions.")


def _create_private(path: Path) -> None:
    """Create an empty 0600 file if none exists, so SQLite (and its -wal/-shm files) start private."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def _columns(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """``(table, column)`` for every table, plus ``(table, "")`` for the table itself."""
    found = []
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        found.append((table, ""))
        found += [(table, r[1]) for r in conn.execute(f'PRAGMA table_info("{table}")')]
    return found


def _columns_after(migrations: Sequence[Migration]) -> list[tuple[str, str]]:
    """The tables and columns a fresh database has after ``migrations`` (built in memory)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for step in migrations:
            if callable(step):
                step(conn)
            else:
                for statement in _split_sql(step):
                    conn.execute(statement)
        return [c for c in _columns(conn) if not c[0].startswith("sqlite_")]
    finally:
        conn.close()


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
