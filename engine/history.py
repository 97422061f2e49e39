"""Render history: every finished render's script, cast, parameters, seed, timings and audio.

Layout under the history root (default ``<data dir>/history``)::

    history.sqlite3          one row per render (SQLite, WAL, versioned schema)
    audio/<uid>.flac         the rendered audio (44.1 kHz mono FLAC, 24-bit)

Crash safety: the audio is written to ``audio/.staging-<uid>.flac`` first; under the database
write lock the row is inserted, the file renamed to its final name, and the transaction
committed. After a crash a file without a row can exist (``check()`` removes it), never a row
pointing at a file that was never finished. Deleting removes the row first, then the file.
Qt-free: the app, the CLI and scripts share it.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engine import audio
from engine.errors import InvalidParameterError, StorageError
from engine.params import GenerationParams
from engine.storage import Database

log = logging.getLogger(__name__)

STALE_STAGING_SECONDS = 3600.0
TITLE_CHARS = 80

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


class RenderHistory:
    """The renders stored on this machine. Thread-safe (one locked SQLite connection)."""

    def __init__(self, root: str | Path | None = None, *, check_on_open: bool = True) -> None:
        if root is None:
            from engine.paths import data_dir

            root = data_dir() / "history"
        self.root = Path(root)
        self.audio_dir = self.root / "audio"
        self.audio_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.root / "history.sqlite3", SCHEMA)
        if check_on_open:
            removed = self.check()
            if removed:
                log.warning("render history: removed %d leftover file(s) on open", len(removed))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RenderHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading

    def _entry(self, row) -> HistoryEntry:
        try:
            cast_data = json.loads(row["cast_json"] or "{}")
            params = GenerationParams.from_dict(json.loads(row["params_json"]))
            warnings = tuple(str(w) for w in json.loads(row["warnings_json"] or "[]"))
        except (ValueError, TypeError, InvalidParameterError) as exc:
            raise StorageError(f"History entry {row['id']} is damaged: {exc}") from exc
        cast = {tag: CastMember(value.get("voice_id"), str(value.get("name", "")))
                for tag, value in cast_data.items() if isinstance(value, dict)}
        return HistoryEntry(
            id=int(row["id"]), uid=row["uid"], created_at=datetime.fromisoformat(row["created_at"]),
            title=row["title"], script=row["script"], cast=cast, params=params, seed=int(row["seed"]),
            duration=float(row["duration"]), render_seconds=float(row["render_seconds"]),
            sample_rate=int(row["sample_rate"]), audio_path=self.audio_dir / row["audio_file"],
            model=row["model"], stop_reason=row["stop_reason"], warnings=warnings, label=row["label"],
            starred=bool(row["starred"]))

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

    def get(self, entry_id: int) -> HistoryEntry:
        row = self.db.query_one("SELECT * FROM renders WHERE id = ?", (int(entry_id),))
        if row is None:
            raise StorageError(f"There is no render {entry_id} in the history.", code="not_found")
        return self._entry(row)

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
        samples = audio.to_mono(np.asarray(audio_samples, dtype=np.float32))
        if samples.size == 0:
            raise InvalidParameterError("An empty render can't be stored in the history.")
        params.validate()
        cast_json = json.dumps({tag: member.to_dict() for tag, member in (cast or {}).items()
                                if member is not None and not member.is_random}, sort_keys=True)
        uid = uuid.uuid4().hex
        final = self.audio_dir / f"{uid}.flac"
        staging = self.audio_dir / f".staging-{uid}.flac"
        audio.write_audio(staging, samples, sample_rate, fmt="flac", bit_depth=24)
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
                os.replace(staging, final)  # inside the transaction: a crash leaves a stray file only
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
        return self.get(new_id)

    def set_label(self, entry_id: int, label: str) -> HistoryEntry:
        label = " ".join(str(label or "").split())[:200]
        return self._update(entry_id, "label = ?", (label,))

    def set_starred(self, entry_id: int, starred: bool) -> HistoryEntry:
        return self._update(entry_id, "starred = ?", (int(bool(starred)),))

    def _update(self, entry_id: int, sql: str, params: tuple) -> HistoryEntry:
        with self.db.transaction() as conn:
            cur = conn.execute(f"UPDATE renders SET {sql} WHERE id = ?", (*params, int(entry_id)))
            if cur.rowcount == 0:
                raise StorageError(f"There is no render {entry_id} in the history.", code="not_found")
        return self.get(entry_id)

    def delete(self, entry_id: int) -> None:
        """Remove the render and its audio file."""
        entry = self.get(entry_id)
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM renders WHERE id = ?", (entry.id,))
        try:
            entry.audio_path.unlink(missing_ok=True)
        except OSError as exc:  # e.g. still open on Windows; check() removes it later
            log.warning("can't remove %s yet: %s", entry.audio_path, exc)

    def check(self, *, stale_after: float = STALE_STAGING_SECONDS) -> list[str]:
        """Remove audio files no row refers to (leftovers of a crash); returns their names.

        Staging files younger than ``stale_after`` seconds may belong to a running write and stay.
        Rows whose audio went missing are kept (script and settings are still useful).
        """
        removed: list[str] = []
        now = time.time()
        with self.db.transaction() as conn:
            known = {row[0] for row in conn.execute("SELECT audio_file FROM renders")}
            for path in self.audio_dir.iterdir():
                if path.name in known or not path.is_file():
                    continue
                if path.name.startswith((".staging-", ".")):
                    try:
                        if now - path.stat().st_mtime < stale_after:
                            continue
                    except FileNotFoundError:
                        continue
                path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed


__all__ = ["RenderHistory", "HistoryEntry", "CastMember", "make_title"]
