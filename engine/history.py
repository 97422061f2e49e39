"""Render history: every finished render's script, cast, parameters, seed, timings and audio.

Layout under the history root (default ``<data dir>/history``)::

    history.sqlite3          one row per render (SQLite, WAL, versioned schema)
    audio/<uid>.flac         the rendered audio (44.1 kHz mono FLAC, 24-bit)
    audio/<uid>.json         a copy of the render's row, to rebuild a lost database
    recovery/                audio ``check()`` found but couldn't recover (moved, never deleted)

Everything is private (files 0600, folders 0700). Crash safety: the audio is written to
``audio/.staging-<uid>.flac`` first; under the database write lock the row is inserted, the
sidecar written, the audio renamed to its final name, and the transaction committed. After a
crash a render without a row can exist (``check()`` gives it its row back from the sidecar), never
a row pointing at a file that was never finished. Deleting renames the files to ``.trash-…`` in the
transaction that deletes the row, and removes them after the commit.

``check()`` (run on open) never deletes a render: only stale ``.staging-*`` files and the
``.trash-*`` of committed deletes. A history whose folder can't be written opens read-only.
Qt-free: the app, the CLI and scripts share it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from engine import audio
from engine.errors import DiaStudioError, InvalidParameterError, StorageError
from engine.files import atomic_write_text, fsync_dir, sweep_stale_parts
from engine.params import GenerationParams
from engine.storage import (
    WRITE_ERRORS,
    Database,
    inside,
    move_aside,
    prepare_store,
    recovery_notice,
    storage_fault,
    tighten_folder,
)

log = logging.getLogger(__name__)

STALE_STAGING_SECONDS = 3600.0
TITLE_CHARS = 80
DATABASE_NAME = "history.sqlite3"
SIDECAR_FORMAT = "dia-studio-render"
DAMAGED_HINT = (f"Rename {DATABASE_NAME} (e.g. to {DATABASE_NAME}.damaged) and open Dia Studio again: the "
                "history is rebuilt from the files kept next to each render's audio.")
_UID = re.compile(r"^[0-9a-f]{32}$")
_PART = re.compile(r"^\.(.+)\.\d+-[0-9a-f]{32}\.part$")

SCHEMA = [
    """
    CREATE TABLE renders (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused
        uid TEXT NOT NULL UNIQUE,              -- also the audio file's name
        created_at TEXT NOT NULL,
        title TEXT NOT NULL,
        script TEXT NOT NULL,
        cast_json TEXT NOT NULL DEFAULT '{}',
        params_json TEXT NOT NULL,
        seed INTEGER NOT NULL,                 -- the seed actually used (fits SQLite's int64)
        duration REAL NOT NULL,
        render_seconds REAL NOT NULL,
        sample_rate INTEGER NOT NULL,
        audio_file TEXT NOT NULL,
        model TEXT NOT NULL DEFAULT '',
        stop_reason TEXT NOT NULL DEFAULT '',
        warnings_json TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX renders_created ON renders (created_at);
    """,
    # v2: a user label and a star per take (kept separate so v1 files upgrade in place).
    """
    ALTER TABLE renders ADD COLUMN label TEXT NOT NULL DEFAULT '';
    ALTER TABLE renders ADD COLUMN starred INTEGER NOT NULL DEFAULT 0 CHECK (starred IN (0, 1));
    """,
]


@dataclass(frozen=True)
class CastMember:
    """Who spoke a speaker tag: a library voice (id and name at render time) or a random voice."""

    voice_id: int | None = None
    name: str = ""

    @property
    def is_random(self) -> bool:
        return self.voice_id is None

    def to_dict(self) -> dict[str, Any]:
        return {"voice_id": self.voice_id, "name": self.name}


@dataclass(frozen=True)
class HistoryEntry:
    """One stored render."""

    id: int
    uid: str
    created_at: datetime
    title: str
    script: str
    cast: dict[str, CastMember]
    params: GenerationParams
    """The parameters as requested (``seed`` may be -1, i.e. random)."""
    seed: int
    """The seed the render actually used: ``params.replace(seed=entry.seed)`` reproduces it."""
    duration: float
    render_seconds: float
    sample_rate: int
    audio_path: Path
    model: str = ""
    stop_reason: str = ""
    warnings: tuple[str, ...] = ()
    label: str = ""
    starred: bool = False

    @property
    def audio_available(self) -> bool:
        return self.audio_path.is_file()

    @property
    def reproducible_params(self) -> GenerationParams:
        """The parameters with the seed that was used, to render the same take again."""
        return self.params.replace(seed=self.seed)

    @property
    def cast_label(self) -> str:
        """``S1 Ann · S2 random voice`` for lists."""
        parts = []
        for tag in ("S1", "S2"):
            member = self.cast.get(tag) or CastMember()
            who = "random voice" if member.is_random else (member.name or f"voice {member.voice_id}")
            parts.append(f"{tag} {who}")
        return " · ".join(parts)


def make_title(script: str) -> str:
    """A short title from the script's first words (tags and surrounding space removed)."""
    words = " ".join(script.replace("[S1]", " ").replace("[S2]", " ").split())
    if len(words) <= TITLE_CHARS:
        return words or "Untitled"
    return words[:TITLE_CHARS - 1].rstrip() + "…"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


_COLUMNS = ("uid", "created_at", "title", "script", "cast_json", "params_json", "seed", "duration",
            "render_seconds", "sample_rate", "audio_file", "model", "stop_reason", "warnings_json", "label",
            "starred")
_TEXT_COLUMNS = ("uid", "created_at", "title", "script", "cast_json", "params_json", "audio_file", "model",
                 "stop_reason", "warnings_json", "label")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
"""A file name the history may use: no folder part, not hidden."""


@dataclass
class HistoryReport:
    """What ``RenderHistory.check`` found and did; ``notice`` is the line to show the user."""

    removed: list[str] = field(default_factory=list)
    """Leftovers deleted: stale ``.staging-*``/``.part`` files and the ``.trash-*`` of committed deletes."""
    recovered: list[str] = field(default_factory=list)
    """uids of renders whose row was rebuilt from their sidecar JSON."""
    moved_aside: list[str] = field(default_factory=list)
    """Files that couldn't be recovered, moved into ``recovery_dir``."""
    recovery_dir: Path | None = None
    restored: list[str] = field(default_factory=list)
    """Files of an interrupted (never committed) delete, put back."""
    damaged_rows: list[int] = field(default_factory=list)
    """Rows that can't be read: left as they are (``list`` skips them), their files untouched."""

    @property
    def clean(self) -> bool:
        return not (self.removed or self.recovered or self.moved_aside or self.restored)

    @property
    def notice(self) -> str:
        """One line saying what was recovered or moved aside, and where ("" if nothing was)."""
        return recovery_notice("Render history", ("render", "renders"), len(self.recovered),
                               len(self.moved_aside), 0, self.recovery_dir)


def _sidecar_name(audio_file: str) -> str:
    return f"{audio_file.rsplit('.', 1)[0]}.json"


def _sidecar_record(row) -> dict:
    return {"format": SIDECAR_FORMAT, "version": 1, "id": int(row["id"]), **{c: row[c] for c in _COLUMNS}}


def _record_from_sidecar(data, stem: str) -> dict:
    """The row a render's sidecar describes, every value checked; ValueError if unusable."""
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise TypeError("it is not a render's metadata")
    record = {c: data[c] for c in _COLUMNS}
    if any(not isinstance(record[c], str) for c in _TEXT_COLUMNS):
        raise ValueError("a text field is not text")
    if record["audio_file"] != f"{stem}.flac" or not _FILE.match(record["uid"]):
        raise ValueError("its file names don't match")
    datetime.fromisoformat(record["created_at"])
    GenerationParams.from_dict(json.loads(record["params_json"]))
    if not isinstance(json.loads(record["cast_json"]), dict) or not isinstance(json.loads(record["warnings_json"]), list):
        raise TypeError("bad cast or warnings")
    if any(isinstance(record[c], bool) or not isinstance(record[c], int) for c in ("seed", "sample_rate")):
        raise ValueError("seed and sample rate must be whole numbers")
    if record["starred"] not in (0, 1) or record["sample_rate"] <= 0:
        raise ValueError("bad star or sample rate")
    record["duration"], record["render_seconds"] = float(record["duration"]), float(record["render_seconds"])
    return record


class RenderHistory:
    """The renders stored on this machine. Thread-safe (one locked SQLite connection)."""

    def __init__(self, root: str | Path | None = None, *, check_on_open: bool = True) -> None:
        if root is None:
            from engine.paths import data_dir

            root = data_dir() / "history"
        self.root = Path(root)
        self.audio_dir = self.root / "audio"
        database = self.root / DATABASE_NAME
        self.read_only = prepare_store(self.root, [self.audio_dir], database)
        """The history's folder can't be written: it lists and plays; changes are refused."""
        self.db = Database(database, SCHEMA, read_only=self.read_only, damaged_hint=DAMAGED_HINT)
        self.open_report = HistoryReport()
        """What the check on open did (``notice`` says it in one line for the user)."""
        if check_on_open and not self.read_only:
            try:
                self.open_report = self.check()
            except BaseException:
                self.db.close()
                raise
            if not self.open_report.clean:
                log.info("render history checked on open: %s", self.open_report)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RenderHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_writable(self) -> None:
        if self.read_only:
            raise StorageError(f"The render history in {self.root} is read-only: renders can be listed and "
                               "played, but not added or changed. Make the folder writable first.")

    def _audio_path(self, name) -> Path:
        """The audio file a row names; ``ValueError`` for one that would leave the audio folder."""
        name = str(name)
        path = self.audio_dir / name
        if not _FILE.match(name) or path.is_symlink():
            raise ValueError(f"its audio file {name!r} is not a plain file in {self.audio_dir}")
        return path

    # -- reading

    def _entry(self, row) -> HistoryEntry:
        try:
            cast_data = json.loads(row["cast_json"] or "{}")
            params = GenerationParams.from_dict(json.loads(row["params_json"]))
            warnings = tuple(str(w) for w in json.loads(row["warnings_json"] or "[]"))
            cast = {tag: CastMember(value.get("voice_id"), str(value.get("name", "")))
                    for tag, value in cast_data.items() if isinstance(value, dict)}
            return HistoryEntry(
                id=int(row["id"]), uid=str(row["uid"]), created_at=datetime.fromisoformat(row["created_at"]),
                title=str(row["title"]), script=str(row["script"]), cast=cast, params=params,
                seed=int(row["seed"]), duration=float(row["duration"]), render_seconds=float(row["render_seconds"]),
                sample_rate=int(row["sample_rate"]), audio_path=self._audio_path(row["audio_file"]),
                model=str(row["model"]), stop_reason=str(row["stop_reason"]), warnings=warnings,
                label=str(row["label"]), starred=bool(row["starred"]))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, InvalidParameterError) as exc:
            raise StorageError(f"History entry {row['id']} is damaged ({exc}); it is skipped and its files "
                               "are kept.") from exc

    def list(self, search: str = "", *, limit: int | None = None) -> list[HistoryEntry]:
        """Renders, newest first. ``search`` matches the script, title, label, cast names or the
        exact seed (case-insensitive for ASCII letters)."""
        sql = "SELECT * FROM renders"
        params: list[Any] = []
        words = search.split()
        if words:
            clauses = []
            for word in words:
                clauses.append("(script LIKE ? ESCAPE '\\' OR title LIKE ? ESCAPE '\\' OR label LIKE ? ESCAPE '\\'"
                               " OR cast_json LIKE ? ESCAPE '\\' OR CAST(seed AS TEXT) = ?)")
                pattern = _like_pattern(word)
                params += [pattern, pattern, pattern, pattern, word]
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        entries = []
        for row in self.db.query(sql, params):
            try:
                entries.append(self._entry(row))
            except StorageError as exc:  # one damaged row must not hide the others
                log.warning("%s", exc)
        return entries

    def __len__(self) -> int:
        return int(self.db.query_one("SELECT COUNT(*) FROM renders")[0])

    def _row(self, entry_id: int):
        row = self.db.query_one("SELECT * FROM renders WHERE id = ?", (int(entry_id),))
        if row is None:
            raise StorageError(f"There is no render {entry_id} in the history.", code="not_found")
        return row

    def get(self, entry_id: int) -> HistoryEntry:
        return self._entry(self._row(entry_id))

    def load_audio(self, entry: HistoryEntry | int) -> np.ndarray:
        """The render's audio as float32 mono at ``entry.sample_rate``."""
        if not isinstance(entry, HistoryEntry):
            entry = self.get(entry)
        decoded = audio.decode_audio(entry.audio_path, name=f"render {entry.id}")
        return np.ascontiguousarray(audio.to_mono(decoded.samples), dtype=np.float32)

    # -- writing

    def add(self, *, script: str, audio_samples: np.ndarray, sample_rate: int, params: GenerationParams,
            seed: int, render_seconds: float, cast: Mapping[str, CastMember | None] | None = None,
            model: str = "", stop_reason: str = "", warnings: tuple[str, ...] | list[str] = (),
            title: str | None = None) -> HistoryEntry:
        """Store a finished render (audio written atomically before the row becomes visible)."""
        self._require_writable()
        samples = audio.to_mono(np.asarray(audio_samples, dtype=np.float32))
        if samples.size == 0:
            raise InvalidParameterError("An empty render can't be stored in the history.")
        params.validate()
        cast_json = json.dumps({tag: member.to_dict() for tag, member in (cast or {}).items()
                                if member is not None and not member.is_random}, sort_keys=True)
        uid = uuid.uuid4().hex
        final = self.audio_dir / f"{uid}.flac"
        staging = self.audio_dir / f".staging-{uid}.flac"
        try:
            audio.write_audio(staging, samples, sample_rate, fmt="flac", bit_depth=24, private=True)
        except WRITE_ERRORS as exc:
            raise storage_fault(exc, "save the render in the history", self.audio_dir) from exc
        try:
            with self.db.transaction() as conn:
                cur = conn.execute(
                    """INSERT INTO renders (uid, created_at, title, script, cast_json, params_json, seed,
                           duration, render_seconds, sample_rate, audio_file, model, stop_reason, warnings_json)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (uid, _now(), title or make_title(script), script, cast_json, json.dumps(params.to_dict()),
                     int(seed), len(samples) / float(sample_rate), float(render_seconds), int(sample_rate),
                     final.name, model, stop_reason, json.dumps(list(warnings))))
                new_id = cur.lastrowid
                try:
                    self._write_sidecar(conn.execute("SELECT * FROM renders WHERE id = ?", (new_id,)).fetchone())
                    os.replace(staging, final)  # inside the transaction: a crash leaves a render without row
                except WRITE_ERRORS as exc:
                    raise storage_fault(exc, "save the render in the history", self.audio_dir) from exc
        except BaseException:
            if staging.exists():  # never published: its sidecar describes nothing
                staging.unlink(missing_ok=True)
                (self.audio_dir / _sidecar_name(final.name)).unlink(missing_ok=True)
            raise
        fsync_dir(self.audio_dir)
        return self.get(new_id)

    def _write_sidecar(self, row) -> bool:
        """Bring the render's sidecar JSON in step with its row (atomic, private); True if rewritten."""
        record = _sidecar_record(row)
        path = self.audio_dir / _sidecar_name(str(row["audio_file"]))
        try:
            if json.loads(path.read_text(encoding="utf-8")) == record:
                return False
        except (OSError, ValueError):
            pass
        atomic_write_text(path, json.dumps(record, indent=2, ensure_ascii=False) + "\n", private=True)
        return True

    def set_label(self, entry_id: int, label: str) -> HistoryEntry:
        label = " ".join(str(label or "").split())[:200]
        return self._update(entry_id, "label = ?", (label,))

    def set_starred(self, entry_id: int, starred: bool) -> HistoryEntry:
        return self._update(entry_id, "starred = ?", (int(bool(starred)),))

    def _update(self, entry_id: int, sql: str, params: tuple) -> HistoryEntry:
        self._require_writable()
        with self.db.transaction() as conn:
            cur = conn.execute(f"UPDATE renders SET {sql} WHERE id = ?", (*params, int(entry_id)))
            if cur.rowcount == 0:
                raise StorageError(f"There is no render {entry_id} in the history.", code="not_found")
            row = conn.execute("SELECT * FROM renders WHERE id = ?", (int(entry_id),)).fetchone()
            try:
                self._audio_path(row["audio_file"])
                self._write_sidecar(row)
            except ValueError:
                pass  # a damaged row: its files are left alone
            except WRITE_ERRORS as exc:
                raise storage_fault(exc, "update the history", self.audio_dir) from exc
        return self.get(entry_id)

    def delete(self, entry_id: int) -> None:
        """Remove the render, its audio file and its sidecar.

        The files are renamed to ``.trash-…`` in the transaction that deletes the row, so a crash
        either keeps the render whole or commits the delete. A row naming a file outside the
        history's folder is refused with ``StorageError``, nothing touched.
        """
        self._require_writable()
        row = self._row(entry_id)
        try:
            path = self._audio_path(row["audio_file"])
        except ValueError as exc:
            raise StorageError(f"Render {row['id']} can't be deleted: {exc}. Nothing was removed.") from exc
        files = [p for p in (path, self.audio_dir / _sidecar_name(path.name)) if os.path.lexists(p)]
        if any(not inside(p, self.audio_dir) for p in files):
            raise StorageError(f"Render {row['id']} can't be deleted: its files leave {self.audio_dir}. "
                               "Nothing was removed.")
        trash = [p.with_name(f".trash-{p.name}") for p in files]
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM renders WHERE id = ?", (row["id"],))
            try:
                for src, dst in zip(files, trash):
                    os.replace(src, dst)
            except OSError as exc:  # e.g. still open on Windows: keep the render
                for src, dst in zip(files, trash):
                    if dst.exists() and not src.exists():
                        os.replace(dst, src)
                raise storage_fault(exc, "delete the render", self.audio_dir) from exc
        fsync_dir(self.audio_dir)
        for p in trash:
            p.unlink(missing_ok=True)

    # -- consistency

    def check(self, *, stale_after: float = STALE_STAGING_SECONDS) -> HistoryReport:
        """Finish or undo interrupted writes and give renders that lost their row their row back.

        Never deletes a render: audio (and sidecar) without a row is recovered from the sidecar, or
        moved to ``recovery/`` when it can't be. Only stale ``.staging-*``/``.part`` files and the
        ``.trash-*`` of committed deletes are removed. Rows whose audio went missing are kept
        (script and settings are still useful). Every row's sidecar is brought in step (written
        for older histories). Staging files younger than ``stale_after`` seconds may belong to a
        running write and stay.
        """
        self._require_writable()
        report = HistoryReport()
        with self.db.transaction() as conn:
            all_rows = conn.execute("SELECT * FROM renders").fetchall()
            rows, claimed = {}, set()
            for row in all_rows:
                name = str(row["audio_file"])
                claimed |= {name, _sidecar_name(name)}
                try:
                    self._audio_path(name)
                    rows[name] = row
                except ValueError as exc:
                    log.warning("render history: entry %s is damaged: %s", row["id"], exc)
                    report.damaged_rows.append(row["id"])
            try:
                orphans: dict[str, list[Path]] = {}
                for path in sorted(self.audio_dir.iterdir()):
                    if path.name.startswith("."):
                        self._clear_leftover(path, rows, stale_after, report)
                    elif path.name not in claimed and path.suffix in (".flac", ".json"):
                        orphans.setdefault(path.name.rsplit(".", 1)[0], []).append(path)
                for stem, paths in orphans.items():
                    row = self._recover(conn, stem, paths, report)
                    if row is not None:
                        rows[row["audio_file"]] = row
                for row in rows.values():
                    self._write_sidecar(row)
                tighten_folder(self.audio_dir)
            except WRITE_ERRORS as exc:
                raise storage_fault(exc, "check the render history", self.audio_dir) from exc
        return report

    def _clear_leftover(self, path: Path, rows: dict, stale_after: float, report: HistoryReport) -> None:
        """Undo an uncommitted delete, or remove a stale temporary file or a committed delete's trash."""
        name = path.name
        part = _PART.match(name)
        if part:  # an atomic write's temporary file: removed once its writer is gone
            report.removed += [p.name for p in sweep_stale_parts(path.with_name(part.group(1)))]
            return
        if name.startswith(".trash-"):
            original = path.with_name(name[len(".trash-"):])
            owner = rows.get(name[len(".trash-"):]) or rows.get(f"{original.stem}.flac")
            if owner is not None and not os.path.lexists(original) and not path.is_symlink():
                os.replace(path, original)
                report.restored.append(original.name)
                return
        elif name.startswith(".staging-") or name.endswith(".part"):
            try:
                if time.time() - path.lstat().st_mtime < stale_after:
                    return
            except FileNotFoundError:
                return
        else:
            return  # not ours
        if path.is_dir() and not path.is_symlink():
            return  # we only ever leave files behind
        path.unlink(missing_ok=True)
        report.removed.append(name)

    def _recover(self, conn, stem: str, paths: list[Path], report: HistoryReport):
        """Insert the row a render's sidecar describes; else move its files aside. The new row."""
        sidecar = self.audio_dir / f"{stem}.json"
        try:
            if any(p.is_symlink() or not p.is_file() for p in paths) or sidecar not in paths:
                raise ValueError("there is no metadata for it")
            data = json.loads(sidecar.read_text(encoding="utf-8"))
            record = _record_from_sidecar(data, stem)
            if conn.execute("SELECT 1 FROM renders WHERE uid = ?", (record["uid"],)).fetchone():
                raise ValueError("its uid is already in the history")
        except (OSError, ValueError, TypeError, KeyError, DiaStudioError) as exc:
            for path in paths:
                target = move_aside(path, self.root)
                report.moved_aside.append(path.name)
                report.recovery_dir = target.parent
                log.warning("render history: moved %s to %s (%s)", path.name, target, exc)
            return None
        wanted = data.get("id")
        free = isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > 0 and \
            conn.execute("SELECT 1 FROM renders WHERE id = ?", (wanted,)).fetchone() is None
        columns = (("id",) if free else ()) + _COLUMNS
        values = ((wanted,) if free else ()) + tuple(record[c] for c in _COLUMNS)
        cur = conn.execute(f"INSERT INTO renders ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                           values)
        report.recovered.append(record["uid"])
        return conn.execute("SELECT * FROM renders WHERE id = ?", (cur.lastrowid,)).fetchone()


__all__ = ["CastMember", "HistoryEntry", "HistoryReport", "RenderHistory", "make_title"]
