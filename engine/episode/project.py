"""The episode project: one SQLite file (``NAME.diaproj``) a user can copy, mail or back up.

It holds the script, the cast (each voice's audio, transcript and cached DAC codes, copied in so
the file opens on another machine), the project parameters with per-block overrides, the blocks,
every take of every block (FLAC audio, codes, seed, parameters, stop reason, warnings, timings),
the chosen take and lock of each block, the chapters and the export settings.

Writes are transactions in SQLite's rollback-journal mode with ``synchronous=FULL``: a committed
take is on disk, a kill -9 at any moment loses at most the take being written, and a closed
project is one file (no ``-wal`` beside it). The schema is versioned with migrations
(``engine.storage.Database``). A damaged or truncated file raises ``ProjectCorruptError`` and is
left untouched; one written by a newer Dia Studio says so.

Block identity: ``content_key`` hashes the block's text and characters, and for the second and
later of several identical blocks, which occurrence it is (so a repeated exchange renders, is
chosen and locked on its own, yet keeps its key across edits elsewhere); ``identity`` adds what
else determines its audio (the voices, the effective parameters, the project seed, the model).
Takes belong to an identity, so after an edit every block whose identity is unchanged keeps its
takes wherever it moved; choice and lock belong to the content, so a locked take survives a
change of parameters or voices.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from engine import constants
from engine.episode.script import EpisodeScript, parse_episode
from engine.episode.split import (
    DEFAULT_BLOCK_SECONDS,
    Block,
    SplitSettings,
    VoiceCost,
    split_episode,
)
from engine.errors import InvalidParameterError, ProjectCorruptError, StorageError
from engine.params import GenerationParams
from engine.storage import Database

PROJECT_SUFFIX = ".diaproj"
APPLICATION_ID = 0x44494150
"""``PRAGMA application_id`` of a project ("DIAP"): tells a project from any other SQLite file."""
SAMPLE_RATE = constants.SAMPLE_RATE
HOP = constants.HOP_LENGTH
"""DAC samples per frame: voice clips are padded to whole frames so their codes can be joined."""
AUDIO_SUBTYPE = "PCM_24"
STATES = ("done", "pending", "changed", "locked", "failed")

SCHEMA = [
    f"""
    PRAGMA application_id = {APPLICATION_ID};
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE voices (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('library', 'take')),
        library_uid TEXT,                 -- the library voice it was copied from
        take_id INTEGER REFERENCES takes (id) ON DELETE SET NULL,  -- a voice cut from a take
        transcript TEXT NOT NULL,
        audio BLOB NOT NULL,              -- FLAC, 44.1 kHz mono
        seconds REAL NOT NULL,            -- padded to whole codec frames
        sha256 TEXT NOT NULL UNIQUE,      -- of the samples and the transcript
        codes BLOB,                       -- cached DAC codes of the clip then the prompt gap (.npy)
        clip_frames INTEGER,              -- how many of those frames are the clip
        codec TEXT                        -- the codec the codes were made with
    );
    CREATE TABLE cast_members (
        character TEXT PRIMARY KEY,
        voice_id INTEGER REFERENCES voices (id) ON DELETE SET NULL
    );
    CREATE TABLE blocks (
        position INTEGER PRIMARY KEY,
        identity TEXT NOT NULL,
        content_key TEXT NOT NULL,
        chapter INTEGER NOT NULL,
        characters TEXT NOT NULL,         -- JSON list, S1 first
        turns TEXT NOT NULL,              -- JSON [[character, text], ...]
        model_text TEXT NOT NULL,
        line INTEGER NOT NULL,
        estimated_seconds REAL NOT NULL,
        seed INTEGER NOT NULL,
        params TEXT NOT NULL,
        replaces TEXT                     -- identity of the rendered block this one replaced
    );
    CREATE TABLE chapters (position INTEGER PRIMARY KEY, title TEXT NOT NULL, first_block INTEGER NOT NULL);
    CREATE TABLE takes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        identity TEXT NOT NULL,
        content_key TEXT NOT NULL,
        seed INTEGER NOT NULL,
        params TEXT NOT NULL,
        audio BLOB NOT NULL,              -- FLAC
        sample_rate INTEGER NOT NULL,
        seconds REAL NOT NULL,
        codes BLOB,                       -- generated DAC codes (.npy)
        stop_reason TEXT NOT NULL,
        warnings TEXT NOT NULL,
        timings TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX takes_identity ON takes (identity);
    CREATE TABLE block_state (
        content_key TEXT PRIMARY KEY,
        chosen_take INTEGER REFERENCES takes (id) ON DELETE SET NULL,
        locked INTEGER NOT NULL DEFAULT 0 CHECK (locked IN (0, 1))
    );
    CREATE TABLE overrides (content_key TEXT PRIMARY KEY, params TEXT NOT NULL);
    CREATE TABLE failures (identity TEXT PRIMARY KEY, code TEXT NOT NULL, message TEXT NOT NULL);
    """,
    # v2: the user's star and label per take (files of v1 upgrade in place)
    """
    ALTER TABLE takes ADD COLUMN label TEXT NOT NULL DEFAULT '';
    ALTER TABLE takes ADD COLUMN starred INTEGER NOT NULL DEFAULT 0 CHECK (starred IN (0, 1));
    """,
]
_TABLES = {"settings", "voices", "cast_members", "blocks", "chapters", "takes", "block_state", "overrides",
           "failures"}
_SQLITE_MAGIC = b"SQLite format 3\x00"


# --------------------------------------------------------------------------- records

@dataclass(frozen=True)
class ProjectVoice:
    id: int
    name: str
    source: str
    transcript: str
    seconds: float
    sha256: str
    library_uid: str | None
    take_id: int | None = None
    """The take a voice of source ``take`` was cut from."""


@dataclass(frozen=True)
class VoiceInput:
    """A voice to copy into the project: 44.1 kHz mono samples and their transcript."""

    name: str
    samples: np.ndarray
    transcript: str
    source: str = "library"
    library_uid: str | None = None
    take_id: int | None = None
    """For source ``take``: the project take it was cut from."""


@dataclass(frozen=True)
class TakeInfo:
    id: int
    identity: str
    seed: int
    params: GenerationParams
    seconds: float
    stop_reason: str
    warnings: tuple[str, ...]
    timings: dict[str, float]
    created_at: str
    label: str = ""
    starred: bool = False


@dataclass(frozen=True)
class BlockRecord:
    index: int
    identity: str
    content_key: str
    chapter: int
    characters: tuple[str, ...]
    turns: tuple[tuple[str, str], ...]
    model_text: str
    line: int
    estimated_seconds: float
    seed: int
    params: GenerationParams
    state: str
    takes: tuple[TakeInfo, ...]
    chosen: int | None
    locked: bool
    error: str | None = None

    @property
    def text(self) -> str:
        """The block as written, with character names."""
        return "\n".join(f"[{character}] {words}" for character, words in self.turns)

    @property
    def seconds(self) -> float:
        """The chosen take's length, or the estimate while there is none."""
        take = next((t for t in self.takes if t.id == self.chosen), None)
        return take.seconds if take else self.estimated_seconds

    @property
    def needs_render(self) -> bool:
        return self.state in ("pending", "changed", "failed")


@dataclass(frozen=True)
class ChapterRecord:
    title: str
    first_block: int


@dataclass(frozen=True)
class ProjectSettings:
    seed: int
    params: GenerationParams
    block_seconds: float
    model_key: str
    engine: dict = field(default_factory=dict)
    export: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _hash(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def derive_seed(project_seed: int, identity: str) -> int:
    """A block's seed: a function of the project seed and the block identity (32 bits)."""
    digest = hashlib.sha256(f"{project_seed}:{identity}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def flac_bytes(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0), sample_rate, format="FLAC",
             subtype=AUDIO_SUBTYPE)
    return buffer.getvalue()


def flac_samples(data: bytes) -> tuple[np.ndarray, int]:
    import soundfile as sf

    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    return samples, rate


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def padded_frames(samples: int) -> int:
    """Codec frames of a clip padded to whole frames."""
    return -(-samples // HOP)


def _params_dict(params: GenerationParams) -> dict:
    return {**params.to_dict(), "seed": -1}


# --------------------------------------------------------------------------- opening

def _corrupt(path: Path, what: str) -> ProjectCorruptError:
    return ProjectCorruptError(f"the project {path.name} is damaged: {what}. It was left as it is; open a "
                               "backup copy, or render the script into a new project.")


def _check_header(path: Path) -> bool:
    """Check the file's bytes before SQLite touches it. Returns True if a hot journal is waiting
    (an interrupted write SQLite will roll back on open)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(100)
    if not header.startswith(_SQLITE_MAGIC) or len(header) < 100:
        raise ProjectCorruptError(f"{path.name} is not a Dia Studio project (or it is damaged beyond "
                                  "repair); it was left as it is.")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise _corrupt(path, f"its page size ({page_size}) is invalid")
    journal = Path(f"{path}-journal")
    if journal.is_file() and journal.stat().st_size > 0:
        return True
    pages = int.from_bytes(header[28:32], "big")
    valid = header[92:96] == header[24:28]
    if size % page_size:
        raise _corrupt(path, f"its size ({size} bytes) is not a whole number of pages; it was cut short")
    if valid and pages * page_size > size:
        raise _corrupt(path, f"it is truncated ({size} of {pages * page_size} bytes)")
    return False


def _check_contents(conn: sqlite3.Connection, path: Path) -> None:
    """Integrity, the project's application id and a schema this version knows."""
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise _corrupt(path, str(exc)) from None
    if result != "ok":
        raise _corrupt(path, f"SQLite's check says: {result}")
    if app_id != APPLICATION_ID and (version or tables):
        raise ProjectCorruptError(f"{path.name} is an SQLite database of another program, not a Dia Studio "
                                  "project; it was left as it is.")
    if version > len(SCHEMA):
        raise StorageError(f"{path.name} was made by a newer Dia Studio (project format {version}; this version "
                           f"reads up to {len(SCHEMA)}). Update Dia Studio to open it.")
    missing = _TABLES - tables
    if version and missing:
        raise _corrupt(path, "it lacks the table(s) " + ", ".join(sorted(missing)))


def _precheck(path: Path) -> None:
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    if not path.is_file():
        raise InvalidParameterError(f"the project {path} is a folder, not a .diaproj file")
    if _check_header(path):
        return  # SQLite rolls the interrupted write back on open; checked again after that
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.DatabaseError as exc:
        raise _corrupt(path, str(exc)) from None
    try:
        _check_contents(conn, path)
    finally:
        conn.close()


# --------------------------------------------------------------------------- the project

class EpisodeProject:
    """An open ``.diaproj`` file. Not thread-safe: one thread should own it (the renderer's)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        _precheck(self.path)
        self.db = Database(self.path, SCHEMA, journal_mode="DELETE", synchronous="FULL",
                           damaged_hint="Open a backup copy, or render the script into a new project.")
        try:
            self._verify()
            self._init_settings()
        except BaseException:
            self.db.close()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike) -> EpisodeProject:
        """Open a project, creating it if the file does not exist."""
        return cls(path)

    def _verify(self) -> None:
        """Checked again once open: an interrupted write may have been rolled back meanwhile."""
        conn = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            _check_contents(conn, self.path)
        finally:
            conn.close()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> EpisodeProject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self.db.transaction() as conn:
            yield conn

    # -- settings

    def _init_settings(self) -> None:
        if self._setting("seed") is not None:
            return
        with self._write() as conn:
            defaults = {"seed": secrets.randbits(32), "params": _params_dict(GenerationParams()),
                        "block_seconds": DEFAULT_BLOCK_SECONDS, "model_key": "", "engine": {}, "export": {},
                        "script": "", "created_at": _now()}
            for key, value in defaults.items():
                conn.execute("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def _setting(self, key: str, conn: sqlite3.Connection | None = None):
        sql, args = "SELECT value FROM settings WHERE key = ?", (key,)
        row = conn.execute(sql, args).fetchone() if conn else self.db.query_one(sql, args)
        return json.loads(row[0]) if row else None

    @staticmethod
    def _put(conn: sqlite3.Connection, key: str, value: object) -> None:
        conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    @property
    def settings(self) -> ProjectSettings:
        return ProjectSettings(seed=int(self._setting("seed")),
                               params=GenerationParams.from_dict(self._setting("params")),
                               block_seconds=float(self._setting("block_seconds")),
                               model_key=str(self._setting("model_key")), engine=dict(self._setting("engine")),
                               export=dict(self._setting("export")))

    @property
    def script(self) -> str:
        return str(self._setting("script") or "")

    def update(self, *, script: str | None = None, params: GenerationParams | None = None,
               seed: int | None = None, block_seconds: float | None = None, model_key: str | None = None,
               engine: Mapping | None = None, export: Mapping | None = None,
               cast: Mapping[str, VoiceInput | None] | None = None) -> None:
        """Change any of these in one transaction and re-split the script into blocks.

        ``params``' own seed is ignored: blocks take theirs from ``seed`` (the project seed).
        ``cast`` maps characters to a voice to copy in, or None for seed only; others are kept.
        The script is checked first (typed errors with line and column)."""
        if script is not None:
            parse_episode(script)
        if block_seconds is not None:
            SplitSettings(float(block_seconds))  # validates the range
        if seed is not None and not (isinstance(seed, int) and 0 <= seed < 2**63):
            raise InvalidParameterError(f"the project seed must be between 0 and 2**63 - 1 (got {seed!r})")
        with self._write() as conn:
            changes = {"script": script, "seed": seed, "block_seconds": block_seconds, "model_key": model_key,
                       "params": _params_dict(params) if params is not None else None,
                       "engine": dict(engine) if engine is not None else None,
                       "export": dict(export) if export is not None else None}
            for key, value in changes.items():
                if value is not None:
                    self._put(conn, key, value)
            for character, voice in (cast or {}).items():
                self._cast(conn, character, voice)
            self._resplit(conn)

    # -- cast and voices

    def _cast(self, conn: sqlite3.Connection, character: str, voice: VoiceInput | None) -> None:
        voice_id = None
        if voice is not None:
            samples = np.ascontiguousarray(voice.samples, dtype=np.float32)
            transcript = " ".join(voice.transcript.split())
            digest = hashlib.sha256(samples.tobytes() + b"\0" + transcript.encode("utf-8")).hexdigest()
            row = conn.execute("SELECT id FROM voices WHERE sha256 = ?", (digest,)).fetchone()
            if row is None:
                cursor = conn.execute(
                    "INSERT INTO voices (name, source, library_uid, take_id, transcript, audio, seconds, sha256) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (voice.name, voice.source, voice.library_uid, voice.take_id, transcript, flac_bytes(samples),
                     padded_frames(samples.size) * HOP / SAMPLE_RATE, digest))
                voice_id = cursor.lastrowid
            else:
                voice_id = row[0]
        conn.execute("INSERT OR REPLACE INTO cast_members (character, voice_id) VALUES (?, ?)", (character, voice_id))

    def cast(self) -> dict[str, ProjectVoice | None]:
        """Every character of the script (and any cast before) with its voice, or None (seed only)."""
        voices = {v.id: v for v in self.voices()}
        cast = {r["character"]: voices.get(r["voice_id"]) for r in self.db.query("SELECT * FROM cast_members")}
        characters = self._characters()
        return {c: cast.get(c) for c in dict.fromkeys([*characters, *cast])}

    def _characters(self) -> tuple[str, ...]:
        script = self.script
        return parse_episode(script).characters if script.strip() else ()

    def voices(self) -> list[ProjectVoice]:
        return [ProjectVoice(r["id"], r["name"], r["source"], r["transcript"], r["seconds"], r["sha256"],
                             r["library_uid"], r["take_id"])
                for r in self.db.query("SELECT id, name, source, transcript, seconds, sha256, library_uid, take_id "
                                       "FROM voices ORDER BY id")]

    def voice_audio(self, voice_id: int) -> np.ndarray:
        """A voice's samples, padded with silence to whole codec frames (what its codes encode)."""
        row = self.db.query_one("SELECT audio FROM voices WHERE id = ?", (voice_id,))
        if row is None:
            raise InvalidParameterError(f"the project has no voice {voice_id}")
        samples, _ = flac_samples(row[0])
        return np.pad(samples, (0, padded_frames(samples.size) * HOP - samples.size))

    def voice_codes(self, voice_id: int, codec: str) -> tuple[np.ndarray, int] | None:
        """The cached DAC codes (clip then prompt gap) and the clip's frame count, if made with ``codec``."""
        row = self.db.query_one("SELECT codes, clip_frames, codec FROM voices WHERE id = ?", (voice_id,))
        if row is None or row["codes"] is None or row["codec"] != codec:
            return None
        return npy_array(row["codes"]), int(row["clip_frames"])

    def store_voice_codes(self, voice_id: int, codec: str, codes: np.ndarray, clip_frames: int) -> None:
        with self._write() as conn:
            conn.execute("UPDATE voices SET codes = ?, clip_frames = ?, codec = ? WHERE id = ?",
                         (npy_bytes(codes), int(clip_frames), codec, voice_id))

    # -- blocks

    def _voice_costs(self, conn: sqlite3.Connection) -> tuple[dict[str, VoiceCost], dict[str, str]]:
        costs, hashes = {}, {}
        for row in conn.execute("SELECT c.character, v.seconds, v.transcript, v.sha256 FROM cast_members c "
                                "JOIN voices v ON v.id = c.voice_id"):
            costs[row[0]] = VoiceCost(row[1], row[2])
            hashes[row[0]] = row[3]
        return costs, hashes

    def _resplit(self, conn: sqlite3.Connection) -> None:
        """Recompute blocks, identities and chapters from the script and settings."""
        script = self._setting("script", conn) or ""
        params = GenerationParams.from_dict(self._setting("params", conn))
        costs, hashes = self._voice_costs(conn)
        episode = parse_episode(script) if script.strip() else None
        blocks = split_episode(episode, costs, SplitSettings(float(self._setting("block_seconds", conn)),
                                                             params.max_new_tokens)) if episode else []
        old = {r[0]: r[1] for r in conn.execute("SELECT position, identity FROM blocks")}
        rendered = {r[0] for r in conn.execute("SELECT DISTINCT identity FROM takes")}
        overrides = {r[0]: json.loads(r[1]) for r in conn.execute("SELECT content_key, params FROM overrides")}
        project_seed = int(self._setting("seed", conn))
        model_key = str(self._setting("model_key", conn))
        rows = []
        for block, content in zip(blocks, _content_keys(blocks)):
            effective = params.replace(**overrides.get(content, {}))
            identity = _hash({"content": content, "voices": [hashes.get(c) for c in block.characters],
                              "params": _params_dict(effective), "seed": project_seed, "model": model_key})
            rows.append((block, content, effective, identity))
        kept = {identity for *_, identity in rows}
        conn.execute("DELETE FROM blocks")
        for block, content, effective, identity in rows:
            # "changed": it took the place of a rendered block that is gone (edited), not one that moved
            previous = old.get(block.index)
            replaces = previous if previous in rendered and previous not in kept and identity not in rendered else None
            conn.execute(
                "INSERT INTO blocks (position, identity, content_key, chapter, characters, turns, model_text, line, "
                "estimated_seconds, seed, params, replaces) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (block.index, identity, content, block.chapter, json.dumps(block.characters),
                 json.dumps([[t.character, t.text] for t in block.turns]), block.model_text, block.line,
                 _estimate(block), derive_seed(project_seed, identity), json.dumps(_params_dict(effective)), replaces))
        self._write_chapters(conn, episode, blocks)

    @staticmethod
    def _write_chapters(conn: sqlite3.Connection, episode: EpisodeScript | None, blocks: list[Block]) -> None:
        conn.execute("DELETE FROM chapters")
        for index, chapter in enumerate(episode.chapters if episode else ()):
            first = next((b.index for b in blocks if b.chapter >= index), len(blocks))
            conn.execute("INSERT INTO chapters (position, title, first_block) VALUES (?, ?, ?)",
                         (index, chapter.title, first))

    def chapters(self) -> list[ChapterRecord]:
        return [ChapterRecord(r["title"], r["first_block"])
                for r in self.db.query("SELECT title, first_block FROM chapters ORDER BY position")]

    def blocks(self) -> list[BlockRecord]:
        """Every block in order, with its state, takes and chosen take."""
        takes: dict[str, list[TakeInfo]] = {}
        by_id: dict[int, tuple[TakeInfo, str]] = {}
        for row in self.db.query("SELECT id, identity, content_key, seed, params, seconds, stop_reason, warnings, "
                                 "timings, created_at, label, starred FROM takes ORDER BY id"):
            take = _take(row)
            takes.setdefault(row["identity"], []).append(take)
            by_id[take.id] = (take, row["content_key"])
        states = {r[0]: (r[1], bool(r[2])) for r in self.db.query("SELECT content_key, chosen_take, locked FROM block_state")}
        failures = {r[0]: r[1] for r in self.db.query("SELECT identity, message FROM failures")}
        rendered = {content for _, content in by_id.values()}
        return [self._record(row, takes, by_id, states, failures, rendered)
                for row in self.db.query("SELECT * FROM blocks ORDER BY position")]

    @staticmethod
    def _record(row, takes, by_id, states, failures, rendered) -> BlockRecord:
        own = list(takes.get(row["identity"], []))
        chosen_id, locked = states.get(row["content_key"], (None, False))
        chosen_take = by_id.get(chosen_id) if chosen_id is not None else None
        if chosen_take is None or chosen_take[1] != row["content_key"] or \
                (not locked and chosen_take[0].identity != row["identity"]):
            chosen_take, locked = None, False
        if chosen_take is not None and chosen_take[0] not in own:
            own.append(chosen_take[0])
        chosen = chosen_take[0].id if chosen_take else (own[0].id if own else None)
        error = failures.get(row["identity"])
        if locked:
            state = "locked"
        elif own:
            state = "done"
        elif error:
            state = "failed"
        else:
            # changed: rendered before with other voices, parameters or model, or edited in place
            state = "changed" if row["replaces"] or row["content_key"] in rendered else "pending"
        return BlockRecord(row["position"], row["identity"], row["content_key"], row["chapter"],
                           tuple(json.loads(row["characters"])), tuple(tuple(t) for t in json.loads(row["turns"])),
                           row["model_text"], row["line"], row["estimated_seconds"], row["seed"],
                           GenerationParams.from_dict(json.loads(row["params"])), state, tuple(own), chosen, locked,
                           error)

    def block(self, index: int) -> BlockRecord:
        blocks = self.blocks()
        if not isinstance(index, int) or not 0 <= index < len(blocks):
            raise InvalidParameterError(f"there is no block {index}: the project has blocks 0 to {len(blocks) - 1}"
                                        if blocks else "the project has no blocks yet: give it a script")
        return blocks[index]

    # -- takes

    def add_take(self, block: BlockRecord, result, *, choose: bool = False) -> int:
        """Store a finished render (an ``engine.RenderResult``) as a take of ``block``; returns its id."""
        audio = flac_bytes(result.audio, result.sample_rate)
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO takes (identity, content_key, seed, params, audio, sample_rate, seconds, codes, "
                "stop_reason, warnings, timings, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (block.identity, block.content_key, int(result.seed), json.dumps(result.params.to_dict()), audio,
                 int(result.sample_rate), float(result.duration), npy_bytes(result.codes), result.stop_reason,
                 json.dumps(list(result.warnings)), json.dumps(result.timings), _now()))
            take_id = int(cursor.lastrowid)
            conn.execute("DELETE FROM failures WHERE identity = ?", (block.identity,))
            if choose:
                self._set_state(conn, block.content_key, chosen=take_id)
        return take_id

    def record_failure(self, block: BlockRecord, code: str, message: str) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO failures (identity, code, message) VALUES (?, ?, ?)",
                         (block.identity, code, message))

    def take_audio(self, take_id: int) -> np.ndarray:
        """A take's samples: float32 mono at 44.1 kHz."""
        row = self.db.query_one("SELECT audio FROM takes WHERE id = ?", (int(take_id),))
        if row is None:
            raise InvalidParameterError(f"the project has no take {take_id}")
        return flac_samples(row[0])[0]

    def set_take_label(self, take_id: int, label: str) -> None:
        """The user's label on a take (whitespace collapsed, at most 200 characters; "" clears it)."""
        self._update_take(take_id, "label = ?", " ".join(str(label or "").split())[:200])

    def set_take_starred(self, take_id: int, starred: bool = True) -> None:
        """Star a take (or take its star away)."""
        self._update_take(take_id, "starred = ?", int(bool(starred)))

    def _update_take(self, take_id: int, assignment: str, value: object) -> None:
        with self._write() as conn:
            if conn.execute(f"UPDATE takes SET {assignment} WHERE id = ?", (value, int(take_id))).rowcount == 0:
                raise InvalidParameterError(f"the project has no take {take_id}")

    @staticmethod
    def _set_state(conn: sqlite3.Connection, content_key: str, *, chosen: int | None = None,
                   locked: bool | None = None) -> None:
        conn.execute("INSERT OR IGNORE INTO block_state (content_key) VALUES (?)", (content_key,))
        if chosen is not None:
            conn.execute("UPDATE block_state SET chosen_take = ? WHERE content_key = ?", (chosen, content_key))
        if locked is not None:
            conn.execute("UPDATE block_state SET locked = ? WHERE content_key = ?", (int(locked), content_key))

    def choose(self, index: int, take_id: int) -> None:
        """Make ``take_id`` (one of the block's takes) the one the episode uses."""
        block = self.block(index)
        if take_id not in {t.id for t in block.takes}:
            raise InvalidParameterError(f"take {take_id} is not a take of block {index}")
        with self._write() as conn:
            self._set_state(conn, block.content_key, chosen=take_id)

    def lock(self, index: int, locked: bool = True) -> None:
        """Lock a block on its chosen take (render and regenerate leave it alone), or unlock it."""
        block = self.block(index)
        if locked and block.chosen is None:
            raise InvalidParameterError(f"block {index} has no take to lock yet: render it first")
        with self._write() as conn:
            self._set_state(conn, block.content_key, chosen=block.chosen, locked=locked)

    def set_block_params(self, index: int, overrides: Mapping | None) -> None:
        """Per-block parameter overrides (``GenerationParams`` field names), or None to clear them."""
        block = self.block(index)
        with self._write() as conn:
            if overrides:
                GenerationParams().replace(**dict(overrides))  # validates names and ranges
                conn.execute("INSERT OR REPLACE INTO overrides (content_key, params) VALUES (?, ?)",
                             (block.content_key, json.dumps(dict(overrides))))
            else:
                conn.execute("DELETE FROM overrides WHERE content_key = ?", (block.content_key,))
            self._resplit(conn)

    # -- summary

    def status(self) -> dict:
        """``{"blocks": [...], "chapters": [...], "seconds_total"}``: what ``episode status --json`` prints."""
        blocks = self.blocks()
        return {
            "blocks": [{"index": b.index, "characters": list(b.characters), "text": b.text, "state": b.state,
                        "takes": len(b.takes), "chosen": b.chosen, "seconds": round(b.seconds, 3)} for b in blocks],
            "chapters": [{"title": c.title, "first_block": c.first_block} for c in self.chapters()],
            "seconds_total": round(sum(b.seconds for b in blocks), 3),
        }


def _content_keys(blocks: list[Block]) -> list[str]:
    """Each block's content key: its text and characters, plus which occurrence of that same content
    it is from the second on (the first keeps the plain hash, as projects made before had it)."""
    seen: dict[str, int] = {}
    keys = []
    for block in blocks:
        content = {"text": block.model_text, "characters": block.characters}
        base = _hash(content)
        occurrence = seen.get(base, 0)
        seen[base] = occurrence + 1
        keys.append(_hash({**content, "occurrence": occurrence}) if occurrence else base)
    return keys


def _estimate(block: Block) -> float:
    from engine.script import estimate_budget

    return round(estimate_budget(block.model_text).estimated_seconds, 3)


def _take(row) -> TakeInfo:
    return TakeInfo(row["id"], row["identity"], row["seed"], GenerationParams.from_dict(json.loads(row["params"])),
                    row["seconds"], row["stop_reason"], tuple(json.loads(row["warnings"])),
                    json.loads(row["timings"]), row["created_at"], str(row["label"]), bool(row["starred"]))


__all__ = ["APPLICATION_ID", "PROJECT_SUFFIX", "BlockRecord", "ChapterRecord", "EpisodeProject", "ProjectSettings",
           "ProjectVoice", "TakeInfo", "VoiceInput", "derive_seed"]
