"""The local voice library and voice-prompt assembly for cloning.

Layout under the library root (default ``<data dir>/voices``)::

    library.sqlite3                 one row per sample (SQLite, WAL)
    samples/<uid>/voice.flac        the prompt audio: 44.1 kHz mono, trimmed, loudness-normalised
    samples/<uid>/original.<ext>    the user's file byte for byte (or the raw recording)
    samples/<uid>/voice.json        a copy of the sample's row, to rebuild a lost database
    recovery/                       what ``check()`` found but couldn't recover (moved, never deleted)

Everything is private (files 0600, folders 0700). Crash safety: a sample's files are written to
``samples/.staging-*`` first. Under the database write lock the row is inserted, ``voice.json``
written, the staging folder renamed to its final name, and the transaction committed; so a folder
without a row can exist after a crash, never a row without its folder. Deleting renames the folder
to ``.trash-<uid>-…`` in the transaction that deletes the row and removes it after the commit.

``check()`` (run on open) never deletes a voice: a folder without a row gets its row back from its
``voice.json`` (so a lost or emptied database is rebuilt), one that can't be recovered is moved to
``recovery/``. Only stale ``.staging-*`` folders and the ``.trash-*`` of committed deletes are
removed. A library whose folder can't be written opens read-only (list, play, export).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from engine import audio
from engine.errors import (
    AudioDecodeFailedError,
    DiaStudioError,
    InvalidParameterError,
    InvalidVoiceSampleError,
    MissingTranscriptError,
    StorageError,
)
from engine.files import (
    PRIVATE_DIR_MODE,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    fsync_dir,
)
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
from engine.voice_prompt import (
    GAP_SECONDS,
    PromptPart,
    VoicePrompt,
    check_clip,
    combine_parts,
)

log = logging.getLogger(__name__)

SAMPLE_RATE = audio.TARGET_SAMPLE_RATE
RECOMMENDED_SECONDS = (3.0, 10.0)
"""Clips outside this range are accepted with a warning (Dia's advice: 5–10 s)."""
MIN_SECONDS = 1.0
"""Shorter (after trimming silence) is refused: too little voice to clone."""
MAX_SECONDS = 30.0
"""Longer (after trimming silence) is refused: it would eat the model's token budget."""
MAX_FILE_BYTES = 10 * 1024 * 1024
PROMPT_LOUDNESS_LUFS = -20.0
SILENCE_PEAK_DBFS = -60.0
"""A clip whose peak stays under this is treated as silent."""
"""Silence between the S1 and S2 clips in an assembled prompt."""
MAX_NAME_CHARS = 80
MAX_TRANSCRIPT_CHARS = 2000
STALE_STAGING_SECONDS = 3600.0
"""A staging folder this old belongs to a crashed writer; younger ones may be in use."""

EXPORT_FORMAT = "dia-studio-voices"
EXPORT_VERSION = 1

_TAG = re.compile(r"\[S(\d+)\]", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UID = re.compile(r"^[0-9a-f]{32}$")
_ORIGINAL_FILE = re.compile(r"^original\.[a-z0-9]{1,8}$")
_TRASH = re.compile(r"^\.trash-([0-9a-f]{32})-[0-9a-f]{32}$")

DATABASE_NAME = "library.sqlite3"
SIDECAR = "voice.json"
"""Each sample folder's copy of its row (kept in step with it), so a lost database can be rebuilt."""
SIDECAR_FORMAT = "dia-studio-voice"
DAMAGED_HINT = (f"Rename {DATABASE_NAME} (e.g. to {DATABASE_NAME}.damaged) and open the library again: "
                "Dia Studio rebuilds it from the sample folders, which keep every voice.")
_COLUMNS = ("uid", "speaker_name", "transcript", "is_default", "duration", "created_at", "updated_at",
            "original_filename", "original_format", "original_sample_rate", "original_channels",
            "original_sha256", "original_file")

SCHEMA = [
    """
    CREATE TABLE voices (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so a stale id can't hit a new voice
        uid TEXT NOT NULL UNIQUE,              -- portable identity (export/import); also the folder
        speaker_name TEXT NOT NULL,
        transcript TEXT NOT NULL DEFAULT '',
        is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
        duration REAL NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        original_filename TEXT NOT NULL,
        original_format TEXT NOT NULL,
        original_sample_rate INTEGER NOT NULL,
        original_channels INTEGER NOT NULL,
        original_sha256 TEXT NOT NULL UNIQUE,
        original_file TEXT NOT NULL
    );
    CREATE UNIQUE INDEX voices_one_default ON voices (is_default) WHERE is_default = 1;
    CREATE INDEX voices_name ON voices (speaker_name COLLATE NOCASE);
    """,
]


# --------------------------------------------------------------------------- data

@dataclass(frozen=True)
class VoicePaths:
    folder: Path
    audio: Path
    """The prompt audio (FLAC, 44.1 kHz mono)."""
    original: Path
    """The file as the user gave it (or the raw recording as FLAC)."""


@dataclass(frozen=True)
class VoiceSample:
    """One voice in the library."""

    id: int
    speaker_name: str
    transcript: str
    is_default: bool
    duration: float
    created_at: datetime
    updated_at: datetime
    original_filename: str
    original_format: str
    """``container/codec`` of what the user gave, e.g. ``mp3/mp3``, ``webm/opus``, ``wav/pcm_16``."""
    paths: VoicePaths
    uid: str = ""
    original_sample_rate: int = SAMPLE_RATE
    original_channels: int = 1
    original_sha256: str = ""

    @property
    def has_transcript(self) -> bool:
        return bool(self.transcript.strip())

    @property
    def warnings(self) -> list[str]:
        """Advice to show next to the sample (length outside 3–10 s, no transcript)."""
        notes = []
        low, high = RECOMMENDED_SECONDS
        if self.duration < low:
            notes.append(f"The clip is {self.duration:.1f} s; {low:g}–{high:g} s of speech clones best.")
        elif self.duration > high:
            notes.append(f"The clip is {self.duration:.1f} s; {low:g}–{high:g} s of speech clones best "
                         "and a long prompt leaves less room for the dialogue.")
        if not self.has_transcript:
            notes.append("No transcript yet: cloning needs the exact words spoken in the clip.")
        return notes

    def to_dict(self) -> dict:
        """A JSON-friendly form (CLI ``--json``, export manifest)."""
        return {
            "id": self.id, "uid": self.uid, "speaker_name": self.speaker_name,
            "transcript": self.transcript, "is_default": self.is_default,
            "duration": round(self.duration, 3), "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(), "original_filename": self.original_filename,
            "original_format": self.original_format, "original_sample_rate": self.original_sample_rate,
            "original_channels": self.original_channels, "original_sha256": self.original_sha256,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class PreparedClip:
    """Audio ready for the library: what ``add`` stores, before anything is written."""

    samples: np.ndarray
    """Prompt audio: 44.1 kHz mono float32, trimmed and loudness-normalised."""
    original_format: str
    original_sample_rate: int
    original_channels: int

    @property
    def duration(self) -> float:
        return audio.duration_of(self.samples, SAMPLE_RATE)


@dataclass
class CheckReport:
    """What ``VoiceLibrary.check`` found and did; ``notice`` is the line to show the user."""

    removed_folders: list[str] = field(default_factory=list)
    """Leftovers removed: stale ``.staging-*`` folders and the ``.trash-*`` of committed deletes."""
    removed_rows: list[int] = field(default_factory=list)
    """Rows whose prompt audio and original were both gone (their folder, if any, is moved aside)."""
    rebuilt_audio: list[int] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    """Speaker names of samples whose row was rebuilt from their folder's ``voice.json``."""
    moved_aside: list[str] = field(default_factory=list)
    """Names of what couldn't be recovered, moved into ``recovery_dir``."""
    recovery_dir: Path | None = None
    restored: list[str] = field(default_factory=list)
    """uids of samples whose interrupted (never committed) delete was undone."""
    damaged_rows: list[int] = field(default_factory=list)
    """Rows that can't be read: left as they are (``list`` skips them), their folders untouched."""

    @property
    def clean(self) -> bool:
        return not (self.removed_folders or self.removed_rows or self.rebuilt_audio or self.recovered
                    or self.moved_aside or self.restored)

    @property
    def notice(self) -> str:
        """One line saying what was recovered or moved aside, and where ("" if nothing was)."""
        return recovery_notice("Voice library", ("voice", "voices"), len(self.recovered), len(self.moved_aside),
                               len(self.removed_rows), self.recovery_dir)


@dataclass
class ImportReport:
    added: list[VoiceSample] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Speaker names of samples already in the library (same uid or same original file)."""


@dataclass(frozen=True)
class VoicePromptAudio(VoicePrompt):
    """A voice prompt assembled from library samples; ``speakers`` says which sample each
    of the user's speakers ("S1"/"S2") is cloned from. Build the model's text with ``text_for``."""

    speakers: dict[str, VoiceSample] = field(default_factory=dict)


# --------------------------------------------------------------------------- clean-up helpers

def clean_speaker_name(name: str) -> str:
    """Trimmed, single-spaced name; empty, too long or control characters are refused."""
    cleaned = " ".join(str(name or "").split())
    if not cleaned:
        raise InvalidParameterError("A voice needs a speaker name.")
    if len(cleaned) > MAX_NAME_CHARS:
        raise InvalidParameterError(f"Speaker names are at most {MAX_NAME_CHARS} characters.")
    if _CONTROL.search(cleaned):
        raise InvalidParameterError("Speaker names can't contain control characters.")
    return cleaned


def clean_transcript(text: str | None) -> str:
    """One speaker's words: whitespace collapsed, a leading ``[S1]``/``[S2]`` tag dropped.

    The library adds the right tag when it assembles a prompt, so a transcript holds no tags; any
    other ``[S…]`` tag inside is refused (one sample is one speaker).
    """
    cleaned = " ".join(str(text or "").split())
    cleaned = re.sub(r"^\[S\d+\]\s*", "", cleaned, flags=re.IGNORECASE)
    if _TAG.search(cleaned):
        raise InvalidParameterError(
            "A voice sample's transcript is one speaker's words; remove the speaker tags "
            f"({', '.join(sorted(set(m.group(0) for m in _TAG.finditer(cleaned))))}).")
    if len(cleaned) > MAX_TRANSCRIPT_CHARS:
        raise InvalidParameterError(f"Transcripts are at most {MAX_TRANSCRIPT_CHARS} characters.")
    return cleaned


def _too_big(label: str, size: int) -> str:
    return (f"'{label}' is {size / 1e6:.1f} MB; voice samples are at most "
            f"{MAX_FILE_BYTES // (1024 * 1024)} MB.")


def _safe_suffix(name: str) -> str:
    """The file name's extension if it is a plain one (``.m4a``), else ``.bin``."""
    suffix = Path(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ".bin"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _format_name(decoded: audio.DecodedAudio) -> str:
    container = {"mov,mp4,m4a,3gp,3g2,mj2": "mp4", "matroska,webm": "webm", "wavex": "wav"}.get(
        decoded.format.lower(), decoded.format.lower())
    codec = {"mp3float": "mp3"}.get(decoded.codec.lower(), decoded.codec.lower())
    return f"{container}/{codec}"


def _sidecar_record(row) -> dict:
    """What ``voice.json`` holds: the row, with its id (kept on a rebuild when still free)."""
    return {"format": SIDECAR_FORMAT, "version": 1, "id": int(row["id"]), **{c: row[c] for c in _COLUMNS}}


def _write_sidecar(folder: Path, row) -> bool:
    """Bring ``folder/voice.json`` in step with ``row`` (atomic, private); True if it was rewritten."""
    record = _sidecar_record(row)
    path = folder / SIDECAR
    try:
        if json.loads(path.read_text(encoding="utf-8")) == record:
            return False
    except (OSError, ValueError):
        pass
    atomic_write_text(path, json.dumps(record, indent=2, ensure_ascii=False) + "\n", private=True)
    return True


def _iso(value) -> str:
    datetime.fromisoformat(str(value))  # ValueError if it isn't a date
    return str(value)


def _count(value, low: int, high: int) -> int:
    """An integer in [low, high] (booleans and fractions refused); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or float(value) != int(float(value)):
        raise ValueError(f"{value!r} is not a whole number")
    number = int(float(value))
    if not low <= number <= high:
        raise ValueError(f"{number} is outside {low}–{high}")
    return number


def _record_from_sidecar(data, uid: str) -> dict:
    """The row a folder's ``voice.json`` describes, checked like an import; ValueError if unusable."""
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT or data.get("uid") != uid:
        raise ValueError("it is not this folder's voice.json")
    duration = float(data["duration"])
    if not 0.0 < duration <= MAX_SECONDS + 1.0:
        raise ValueError(f"bad duration {duration}")
    original_file = str(data["original_file"])
    if not _ORIGINAL_FILE.match(original_file):
        raise ValueError(f"bad original file name {original_file!r}")
    return {
        "uid": uid, "speaker_name": clean_speaker_name(data["speaker_name"]),
        "transcript": clean_transcript(data.get("transcript", "")),
        "is_default": int(data.get("is_default") in (True, 1)), "duration": duration,
        "created_at": _iso(data["created_at"]), "updated_at": _iso(data.get("updated_at", data["created_at"])),
        "original_filename": str(data.get("original_filename") or original_file),
        "original_format": str(data.get("original_format") or "unknown"),
        "original_sample_rate": _count(data.get("original_sample_rate", SAMPLE_RATE), 1, 1_000_000),
        "original_channels": _count(data.get("original_channels", 1), 1, 64),
        "original_sha256": "", "original_file": original_file,
    }


def _insert(conn, record: dict, sample_id: int | None = None) -> int:
    """Insert a voices row from ``record`` (all of ``_COLUMNS``), with ``sample_id`` if given."""
    columns = (("id",) if sample_id is not None else ()) + _COLUMNS
    values = ((sample_id,) if sample_id is not None else ()) + tuple(record[c] for c in _COLUMNS)
    cur = conn.execute(f"INSERT INTO voices ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                       values)
    return int(cur.lastrowid)


def _remove_leftover(entry: Path) -> None:
    """Delete a staging or trash leftover; a symlink is unlinked, never followed."""
    if entry.is_symlink() or not entry.is_dir():
        entry.unlink(missing_ok=True)
    else:
        shutil.rmtree(entry, ignore_errors=True)


def _publish(staging: Path, final: Path) -> None:
    """Give a finished staging folder its final name (a separate function so tests can crash here)."""
    os.replace(staging, final)


MAX_INPUT_SECONDS = 2 * MAX_SECONDS
"""A file or recording may hold this much before silence is trimmed; files are decoded no further
(``decode_audio``'s ``max_seconds``), so a header can't make a voice import decode hours."""


def _sample_rate(value: object) -> int:
    """A recording's rate as an int; NaN, inf and non-numbers are a typed error."""
    try:
        rate = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        raise InvalidVoiceSampleError(f"A recording's sample rate must be a whole number, not {value!r}.") from None
    return rate


def read_voice_file(source: str | os.PathLike | bytes | bytearray, original_filename: str | None = None
                    ) -> tuple[str, bytes]:
    """The label and bytes of a voice file, refused before reading if it is missing or over 10 MB."""
    if isinstance(source, (bytes, bytearray)):
        label, data = original_filename or "audio data", bytes(source)
    else:
        path = Path(source)
        label = original_filename or path.name
        if not path.is_file():
            raise AudioDecodeFailedError(f"Could not read '{label}': no such file.")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InvalidVoiceSampleError(_too_big(label, path.stat().st_size))
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise AudioDecodeFailedError(f"Could not read '{label}': {exc.strerror or exc}.") from None
    if len(data) > MAX_FILE_BYTES:
        raise InvalidVoiceSampleError(_too_big(label, len(data)))
    return label, data


def read_voice_audio(source: str | os.PathLike | bytes, original_filename: str | None = None
                     ) -> audio.DecodedAudio:
    """A voice file decoded as it is (no trimming), within the library's size and length bounds."""
    label, data = read_voice_file(source, original_filename)
    decoded = audio.decode_audio(data, name=label, max_seconds=MAX_INPUT_SECONDS)
    if decoded.truncated:
        raise InvalidVoiceSampleError(
            f"'{label}' is longer than {MAX_INPUT_SECONDS:g} s; a voice prompt is a short clip "
            f"({RECOMMENDED_SECONDS[0]:g}–{RECOMMENDED_SECONDS[1]:g} s clones best). Trim it first.")
    return decoded


def read_clip(source: str | os.PathLike | bytes, original_filename: str | None = None) -> PreparedClip:
    """A voice file read, decoded and prepared with the library's bounds, without storing it."""
    label, data = read_voice_file(source, original_filename)
    return prepare_clip(audio.decode_audio(data, name=label, max_seconds=MAX_INPUT_SECONDS), label)


def prepare_clip(decoded: audio.DecodedAudio, label: str) -> PreparedClip:
    """Mono, 44.1 kHz, silence trimmed, loudness normalised; refuse what can't clone a voice.

    ``label`` names the clip in messages (a file name, or ``recording``). The rate, shape, samples
    and length are checked before anything is resampled. Decode files for it with
    ``max_seconds=MAX_INPUT_SECONDS``.
    """
    what = "The recording" if label == "recording" else f"'{label}'"
    check_clip(decoded.samples, decoded.sample_rate, what)
    if decoded.frames == 0:
        raise InvalidVoiceSampleError(f"{what} is empty: it holds no audio.")
    if decoded.truncated or decoded.duration > MAX_INPUT_SECONDS:
        raise InvalidVoiceSampleError(
            f"{what} is longer than {MAX_INPUT_SECONDS:g} s; the limit is {MAX_SECONDS:g} s of sound "
            f"({RECOMMENDED_SECONDS[0]:g}–{RECOMMENDED_SECONDS[1]:g} s clones best). Trim it first.")
    mono = audio.resample(audio.to_mono(decoded.samples), decoded.sample_rate, SAMPLE_RATE)
    if audio.peak_dbfs(mono) < SILENCE_PEAK_DBFS:
        raise InvalidVoiceSampleError(f"{what} is silent: there is no voice to clone. Check the microphone.")
    trimmed = audio.trim_silence(mono, SAMPLE_RATE)
    seconds = audio.duration_of(trimmed, SAMPLE_RATE)
    if seconds < MIN_SECONDS:
        raise InvalidVoiceSampleError(
            f"{what} has only {seconds:.1f} s of sound; record at least {RECOMMENDED_SECONDS[0]:g} s of speech.")
    if seconds > MAX_SECONDS:
        raise InvalidVoiceSampleError(
            f"{what} has {seconds:.1f} s of sound; the limit is {MAX_SECONDS:g} s "
            f"({RECOMMENDED_SECONDS[0]:g}–{RECOMMENDED_SECONDS[1]:g} s clones best). Trim it first.")
    normalised = audio.normalize_loudness(trimmed, SAMPLE_RATE, PROMPT_LOUDNESS_LUFS)
    return PreparedClip(np.ascontiguousarray(normalised, dtype=np.float32), _format_name(decoded),
                        decoded.sample_rate, decoded.channels)


# --------------------------------------------------------------------------- the library

class VoiceLibrary:
    """The voice samples on this machine. Safe to use from several threads and processes."""

    def __init__(self, root: str | Path | None = None, *, check_on_open: bool = True) -> None:
        if root is None:
            from engine.paths import voices_dir

            root = voices_dir()
        self.root = Path(root)
        self.samples_dir = self.root / "samples"
        database = self.root / DATABASE_NAME
        self.read_only = prepare_store(self.root, [self.samples_dir], database)
        """The library's folder can't be written: it lists, plays and exports; changes are refused."""
        self.db = Database(database, SCHEMA, read_only=self.read_only, damaged_hint=DAMAGED_HINT)
        self.open_report = CheckReport()
        """What the check on open did (``notice`` says it in one line for the user)."""
        if check_on_open and not self.read_only:
            try:
                self.open_report = self.check()
            except BaseException:
                self.db.close()
                raise
            if not self.open_report.clean:
                log.info("voice library checked on open: %s", self.open_report)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> VoiceLibrary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading

    def _require_writable(self) -> None:
        if self.read_only:
            raise StorageError(
                f"The voice library in {self.root} is read-only: its voices can be listed, played and "
                "exported, but not changed. Copy the folder to a writable place (or make it writable) first.")

    def _sample(self, row) -> VoiceSample:
        """The sample a row describes; a damaged row (bad value, a path that would leave the
        library) raises ``StorageError`` and is never used to touch files."""
        try:
            uid, original_file = str(row["uid"]), str(row["original_file"])
            if not _UID.match(uid) or not _ORIGINAL_FILE.match(original_file):
                raise ValueError(f"unsafe file names {uid!r}, {original_file!r}")
            folder = self.samples_dir / uid
            if folder.is_symlink():
                raise ValueError(f"its folder {folder.name} is a symbolic link")
            return VoiceSample(
                id=int(row["id"]), speaker_name=str(row["speaker_name"]), transcript=str(row["transcript"]),
                is_default=bool(row["is_default"]), duration=float(row["duration"]),
                created_at=datetime.fromisoformat(row["created_at"]),
                updated_at=datetime.fromisoformat(row["updated_at"]),
                original_filename=str(row["original_filename"]), original_format=str(row["original_format"]),
                paths=VoicePaths(folder, folder / "voice.flac", folder / original_file),
                uid=uid, original_sample_rate=int(row["original_sample_rate"]),
                original_channels=int(row["original_channels"]), original_sha256=str(row["original_sha256"]))
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise StorageError(f"Voice {row['id']} is damaged in {self.db.path} ({exc}); it is skipped and "
                               "its files are kept. Export the other voices and import them into a new "
                               f"library, or: {DAMAGED_HINT}") from exc

    def list(self) -> list[VoiceSample]:
        """All samples, by speaker name (case-insensitive), then id. A damaged row is skipped with a
        warning so the others stay usable."""
        samples = []
        for row in self.db.query("SELECT * FROM voices ORDER BY speaker_name COLLATE NOCASE, id"):
            try:
                samples.append(self._sample(row))
            except StorageError as exc:
                log.warning("%s", exc)
        return samples

    def __len__(self) -> int:
        return int(self.db.query_one("SELECT COUNT(*) FROM voices")[0])

    def get(self, sample_id: int) -> VoiceSample:
        """The sample with this id; ``InvalidVoiceSampleError`` if there is none."""
        try:
            key = int(sample_id)
        except (TypeError, ValueError):
            raise InvalidVoiceSampleError(f"'{sample_id}' is not a voice sample id.") from None
        row = self.db.query_one("SELECT * FROM voices WHERE id = ?", (key,))
        if row is None:
            raise InvalidVoiceSampleError(f"There is no voice sample with id {key}.")
        return self._sample(row)

    def load_audio(self, sample: VoiceSample | int | str) -> np.ndarray:
        """A sample's prompt audio (float32 mono, 44.1 kHz); see the module-level ``load_audio``."""
        return load_audio(sample if isinstance(sample, VoiceSample) else self.resolve(sample))

    def default(self) -> VoiceSample | None:
        row = self.db.query_one("SELECT * FROM voices WHERE is_default = 1")
        return self._sample(row) if row is not None else None

    def resolve(self, name_or_id: str | int) -> VoiceSample:
        """A sample by id (``12`` or ``"12"``) or by speaker name (exact, else case-insensitive).

        A name shared by several samples is ambiguous and refused with their ids, like an
        unknown one: ``InvalidVoiceSampleError``.
        """
        if isinstance(name_or_id, VoiceSample):
            return self.get(name_or_id.id)
        text = " ".join(str(name_or_id).split())
        if isinstance(name_or_id, int) or text.isdigit():
            row = self.db.query_one("SELECT * FROM voices WHERE id = ?", (int(text),))
            if row is not None:
                return self._sample(row)
        rows = self.db.query("SELECT * FROM voices WHERE speaker_name = ?", (text,)) or \
            self.db.query("SELECT * FROM voices WHERE speaker_name = ? COLLATE NOCASE", (text,))
        if len(rows) == 1:
            return self._sample(rows[0])
        if len(rows) > 1:
            ids = ", ".join(str(r["id"]) for r in rows)
            raise InvalidVoiceSampleError(f"Several voices are named '{text}' (ids {ids}); use an id.")
        raise InvalidVoiceSampleError(f"There is no voice named or numbered '{text}' in the library.")

    # -- adding

    def add(self, source: str | os.PathLike | bytes | np.ndarray, *, speaker_name: str,
            transcript: str = "", sample_rate: int | None = None, original_filename: str | None = None,
            make_default: bool = False) -> VoiceSample:
        """Import an audio file (path or bytes) or raw samples (a recording) as a new voice.

        Files over 10 MB, silent or empty clips, and clips with under 1 s or over 30 s of sound
        (after trimming silence) are refused with ``InvalidVoiceSampleError``; undecodable files
        with ``AudioDecodeFailedError``. The same original twice is refused as a duplicate.
        """
        self._require_writable()
        name = clean_speaker_name(speaker_name)
        words = clean_transcript(transcript)
        if isinstance(source, np.ndarray):
            if not sample_rate:
                raise InvalidParameterError("Raw samples need their sample_rate.")
            label = original_filename or f"recording-{datetime.now():%Y%m%d-%H%M%S}.flac"
            samples = audio.as_float32(source if source.ndim == 2 else source.reshape(-1, 1))
            decoded = audio.DecodedAudio(samples, _sample_rate(sample_rate), "recording", "flac")
            clip = prepare_clip(decoded, "recording")
            return self._store(clip, name=name, transcript=words, original_filename=label,
                               original_suffix=".flac", original_bytes=None, raw=decoded,
                               make_default=make_default)
        label, data = read_voice_file(source, original_filename)
        clip = prepare_clip(audio.decode_audio(data, name=label, max_seconds=MAX_INPUT_SECONDS), label)
        return self._store(clip, name=name, transcript=words, original_filename=label,
                           original_suffix=_safe_suffix(label),
                           original_bytes=data, raw=None, make_default=make_default)

    def _store(self, clip: PreparedClip, *, name: str, transcript: str, original_filename: str,
               original_suffix: str, original_bytes: bytes | None, raw: audio.DecodedAudio | None,
               make_default: bool, uid: str | None = None, created_at: str | None = None,
               updated_at: str | None = None) -> VoiceSample:
        self._require_writable()
        uid = uid or uuid.uuid4().hex
        staging = self.samples_dir / f".staging-{uuid.uuid4().hex}"
        try:
            try:
                staging.mkdir(mode=PRIVATE_DIR_MODE)
                original = staging / f"original{original_suffix}"
                if original_bytes is not None:
                    atomic_write_bytes(original, original_bytes, private=True)
                else:
                    assert raw is not None
                    audio.write_audio(original, raw.samples, raw.sample_rate, fmt="flac", bit_depth=24, private=True)
                audio.write_audio(staging / "voice.flac", clip.samples, SAMPLE_RATE, fmt="flac", bit_depth=24,
                                  private=True)
                fsync_dir(staging)
                digest = _sha256_file(original)
            except WRITE_ERRORS as exc:
                raise storage_fault(exc, f"save the voice '{name}'", self.samples_dir) from exc
            now = _now()
            record = {"uid": uid, "speaker_name": name, "transcript": transcript, "is_default": int(make_default),
                      "duration": clip.duration, "created_at": created_at or now, "updated_at": updated_at or now,
                      "original_filename": original_filename, "original_format": clip.original_format,
                      "original_sample_rate": clip.original_sample_rate,
                      "original_channels": clip.original_channels, "original_sha256": digest,
                      "original_file": original.name}
            with self.db.transaction() as conn:
                dup = conn.execute("SELECT id, speaker_name FROM voices WHERE original_sha256 = ?",
                                   (digest,)).fetchone()
                if dup is not None:
                    raise InvalidVoiceSampleError(
                        f"'{original_filename}' is already in the library as '{dup['speaker_name']}' "
                        f"(id {dup['id']}).")
                old_default = self._clear_default(conn, now) if make_default else []
                new_id = _insert(conn, record)
                # Publishing inside the transaction: a crash before COMMIT leaves only a complete
                # folder without a row, which check() recovers from its voice.json.
                try:
                    _write_sidecar(staging, conn.execute("SELECT * FROM voices WHERE id = ?", (new_id,)).fetchone())
                    _publish(staging, self.samples_dir / uid)
                    self._sync_sidecars(conn, old_default)
                except WRITE_ERRORS as exc:
                    raise storage_fault(exc, f"save the voice '{name}'", self.samples_dir) from exc
            fsync_dir(self.samples_dir)
        except BaseException:
            if staging.exists():  # only our own, unpublished folder
                _remove_leftover(staging)
            raise
        return self.get(new_id)

    # -- editing

    def _clear_default(self, conn, now: str) -> list[str]:
        """Unset the default inside a transaction; returns the uids whose voice.json must follow."""
        uids = [r["uid"] for r in conn.execute("SELECT uid FROM voices WHERE is_default = 1")]
        conn.execute("UPDATE voices SET is_default = 0, updated_at = ? WHERE is_default = 1", (now,))
        return uids

    def _sync_sidecars(self, conn, uids) -> None:
        """Rewrite the voice.json of these samples from their rows (inside the row's transaction)."""
        for uid in dict.fromkeys(uids):
            row = conn.execute("SELECT * FROM voices WHERE uid = ?", (uid,)).fetchone()
            if row is None:
                continue
            try:
                sample = self._sample(row)
            except StorageError:
                continue  # a damaged row: its folder is left alone
            if sample.paths.folder.is_dir():
                try:
                    _write_sidecar(sample.paths.folder, row)
                except WRITE_ERRORS as exc:
                    raise storage_fault(exc, f"update the voice '{sample.speaker_name}'", self.samples_dir) from exc

    def _update(self, sample_id: int, sql: str, params: tuple) -> VoiceSample:
        self._require_writable()
        sample = self.resolve(sample_id)
        with self.db.transaction() as conn:
            cur = conn.execute(f"UPDATE voices SET {sql}, updated_at = ? WHERE id = ?",
                               (*params, _now(), sample.id))
            if cur.rowcount == 0:  # removed by another process meanwhile
                raise InvalidVoiceSampleError(f"There is no voice sample with id {sample.id}.")
            self._sync_sidecars(conn, [sample.uid])
        return self.get(sample.id)

    def rename(self, sample_id: int | str, speaker_name: str) -> VoiceSample:
        return self._update(sample_id, "speaker_name = ?", (clean_speaker_name(speaker_name),))

    def set_transcript(self, sample_id: int | str, transcript: str) -> VoiceSample:
        """Replace the transcript (an empty one is allowed; cloning then refuses the sample)."""
        return self._update(sample_id, "transcript = ?", (clean_transcript(transcript),))

    def set_default(self, sample_id: int | str | None) -> VoiceSample | None:
        """Make this sample the default (at most one is); ``None`` clears the default."""
        self._require_writable()
        now = _now()
        sample = self.resolve(sample_id) if sample_id is not None else None
        with self.db.transaction() as conn:
            changed = self._clear_default(conn, now)
            if sample is not None:
                cur = conn.execute("UPDATE voices SET is_default = 1, updated_at = ? WHERE id = ?",
                                   (now, sample.id))
                if cur.rowcount == 0:
                    raise InvalidVoiceSampleError(f"There is no voice sample with id {sample.id}.")
                changed.append(sample.uid)
            self._sync_sidecars(conn, changed)
        return self.get(sample.id) if sample is not None else None

    def delete(self, sample_id: int | str) -> None:
        """Remove the sample and its files.

        The folder is renamed to ``.trash-<uid>-…`` in the transaction that deletes the row: a crash
        before the commit keeps the row (``check`` renames the folder back), after it only the
        trash is left (``check`` removes it). A folder outside the library is refused, untouched.
        """
        self._require_writable()
        sample = self.resolve(sample_id)
        folder = sample.paths.folder
        if (folder.exists() or folder.is_symlink()) and not inside(folder, self.samples_dir):
            raise StorageError(f"Voice {sample.id}'s folder {folder} is not inside the library; it was left "
                               "as it is.")
        trash: Path | None = self.samples_dir / f".trash-{sample.uid}-{uuid.uuid4().hex}"
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM voices WHERE id = ?", (sample.id,))
            try:
                os.replace(folder, trash)
            except FileNotFoundError:
                trash = None
            except OSError as exc:  # e.g. a file still open on Windows: keep the voice
                raise storage_fault(exc, f"remove the voice '{sample.speaker_name}'", self.samples_dir) from exc
        fsync_dir(self.samples_dir)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

    # -- consistency

    def check(self, *, stale_after: float = STALE_STAGING_SECONDS) -> CheckReport:
        """Finish or undo interrupted writes, give folders without a row their row back, repair rows.

        Never deletes a voice. A folder without a row is recovered from its ``voice.json`` (a lost
        or emptied database is rebuilt this way); one that can't be is moved to ``recovery/``. A
        row whose audio went missing gets it rebuilt from the original; a row whose folder is gone
        is dropped. Every voice.json is brought in step with its row (written for older libraries).
        Damaged rows are left as they are. Runs under the write lock, so it never sees another
        process's half-published sample. Staging folders younger than ``stale_after`` seconds are
        left alone (they may be in use).
        """
        self._require_writable()
        report = CheckReport()
        with self.db.transaction() as conn:
            all_rows = conn.execute("SELECT * FROM voices").fetchall()
            rows = {}
            for row in all_rows:
                try:
                    rows[self._sample(row).uid] = row
                except StorageError as exc:
                    log.warning("%s", exc)
                    report.damaged_rows.append(row["id"])
            claimed = {str(r["uid"]) for r in all_rows}
            for entry in sorted(self.samples_dir.iterdir()):
                try:
                    if entry.name.startswith("."):
                        self._clear_leftover(entry, rows, stale_after, report)
                    elif entry.name not in claimed:
                        row = self._recover(conn, entry, report)
                        if row is not None:
                            rows[row["uid"]] = row
                except WRITE_ERRORS as exc:
                    raise storage_fault(exc, "check the voice library", self.samples_dir) from exc
            for row in rows.values():
                try:
                    self._repair(conn, row, report)
                except WRITE_ERRORS as exc:
                    raise storage_fault(exc, "check the voice library", self.samples_dir) from exc
        return report

    def _clear_leftover(self, entry: Path, rows: dict, stale_after: float, report: CheckReport) -> None:
        """Undo an uncommitted delete, or remove a stale staging folder or a committed delete's trash."""
        trash = _TRASH.match(entry.name)
        if trash and trash.group(1) in rows and not entry.is_symlink() \
                and not os.path.lexists(self.samples_dir / trash.group(1)):
            os.replace(entry, self.samples_dir / trash.group(1))
            report.restored.append(trash.group(1))
            return
        if entry.name.startswith(".staging-"):
            try:
                if time.time() - entry.lstat().st_mtime < stale_after:
                    return
            except FileNotFoundError:
                return
        elif not entry.name.startswith(".trash-"):
            return  # not ours (e.g. a desktop's metadata file)
        _remove_leftover(entry)
        report.removed_folders.append(entry.name)

    def _set_aside(self, entry: Path, report: CheckReport, why: str) -> None:
        target = move_aside(entry, self.root)
        report.moved_aside.append(entry.name)
        report.recovery_dir = target.parent
        log.warning("voice library: moved %s to %s (%s)", entry.name, target, why)

    def _recover(self, conn, entry: Path, report: CheckReport):
        """Insert the row a folder's voice.json describes; else move the folder aside. The new row."""
        try:
            if entry.is_symlink() or not entry.is_dir() or not _UID.match(entry.name):
                raise ValueError("it is not a sample folder")
            data = json.loads((entry / SIDECAR).read_text(encoding="utf-8"))
            record = _record_from_sidecar(data, entry.name)
            original = entry / record["original_file"]
            if original.is_symlink() or not original.is_file():
                raise ValueError("its original file is missing")
            record["original_sha256"] = _sha256_file(original)  # the file itself is the truth
            if conn.execute("SELECT 1 FROM voices WHERE original_sha256 = ?", (record["original_sha256"],)).fetchone():
                raise ValueError("the same original is already in the library")
        except (OSError, ValueError, TypeError, KeyError, DiaStudioError) as exc:
            self._set_aside(entry, report, str(exc))
            return None
        if record["is_default"] and conn.execute("SELECT 1 FROM voices WHERE is_default = 1").fetchone():
            record["is_default"] = 0
        wanted = data.get("id")
        free = isinstance(wanted, int) and wanted > 0 and \
            conn.execute("SELECT 1 FROM voices WHERE id = ?", (wanted,)).fetchone() is None
        new_id = _insert(conn, record, wanted if free else None)
        report.recovered.append(record["speaker_name"])
        return conn.execute("SELECT * FROM voices WHERE id = ?", (new_id,)).fetchone()

    def _repair(self, conn, row, report: CheckReport) -> None:
        """Rebuild missing prompt audio, drop a row whose files are gone, sync voice.json and modes."""
        sample = self._sample(row)
        folder = sample.paths.folder
        if not folder.is_dir():
            conn.execute("DELETE FROM voices WHERE id = ?", (sample.id,))
            report.removed_rows.append(sample.id)
            return
        if not sample.paths.audio.is_file():
            try:
                self._rebuild_audio(sample)
                report.rebuilt_audio.append(sample.id)
            except Exception as exc:  # noqa: BLE001 - any failure means "can't repair"
                log.warning("can't rebuild voice %s: %s", sample.id, exc)
                conn.execute("DELETE FROM voices WHERE id = ?", (sample.id,))
                report.removed_rows.append(sample.id)
                self._set_aside(folder, report, "its audio and original are unusable")
                return
        _write_sidecar(folder, row)
        tighten_folder(folder)

    def _rebuild_audio(self, sample: VoiceSample) -> None:
        decoded = audio.decode_audio(sample.paths.original, name=sample.original_filename,
                                     max_seconds=MAX_INPUT_SECONDS)
        clip = prepare_clip(decoded, sample.original_filename)
        audio.write_audio(sample.paths.audio, clip.samples, SAMPLE_RATE, fmt="flac", bit_depth=24, private=True)

    # -- portability

    def export_zip(self, path: str | Path, ids: list[int | str] | None = None) -> Path:
        """Write the chosen samples (all by default) with their audio and originals to one zip."""
        samples = [self.resolve(i) for i in ids] if ids else self.list()
        path = Path(path)
        for s in samples:
            for file in (s.paths.audio, s.paths.original):
                if not file.is_file():
                    raise StorageError(f"Voice {s.id} '{s.speaker_name}' can't be exported: {file} is missing.")
        manifest = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "exported_at": _now(), "samples": []}

        def write(tmp: Path) -> None:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for s in samples:
                    audio_name = f"samples/{s.uid}/voice.flac"
                    original_name = f"samples/{s.uid}/{s.paths.original.name}"
                    zf.write(s.paths.audio, audio_name, compress_type=zipfile.ZIP_STORED)
                    zf.write(s.paths.original, original_name, compress_type=zipfile.ZIP_STORED)
                    entry = s.to_dict()
                    entry.pop("warnings")
                    entry.pop("id")  # local to this machine
                    entry["files"] = {"audio": audio_name, "original": original_name}
                    manifest["samples"].append(entry)
                zf.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))

        try:
            return atomic_write(path, write)  # an export: it follows the umask
        except OSError as exc:
            raise storage_fault(exc, f"export the voices to {path.name}", path.parent) from exc

    def import_zip(self, path: str | Path) -> ImportReport:
        """Add the samples of an exported zip; ones already here (same uid or same original file)
        are skipped, so importing twice adds nothing. Each sample is added atomically.
        """
        self._require_writable()
        path = Path(path)
        report = ImportReport()
        try:
            zf = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise InvalidVoiceSampleError(f"'{path.name}' is not a Dia Studio voice export: {exc}") from exc
        with zf:
            try:
                manifest = json.loads(zf.read("manifest.json"))
                if manifest.get("format") != EXPORT_FORMAT:
                    raise ValueError("unknown format")
                if int(manifest.get("version", 0)) > EXPORT_VERSION:
                    raise InvalidVoiceSampleError(
                        f"'{path.name}' was exported by a newer Dia Studio; update to import it.")
                entries = manifest["samples"]
                if not isinstance(entries, list):
                    raise ValueError("'samples' is not a list")
            except InvalidVoiceSampleError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise InvalidVoiceSampleError(
                    f"'{path.name}' is not a Dia Studio voice export (bad manifest: {exc}).") from exc
            for entry in entries:
                if not isinstance(entry, dict):
                    raise InvalidVoiceSampleError(f"'{path.name}' holds a malformed entry ({entry!r:.40}).")
                sample = self._import_entry(zf, entry, path.name)
                if sample is None:
                    report.skipped.append(str(entry.get("speaker_name", "?")))
                else:
                    report.added.append(sample)
        return report

    def _import_entry(self, zf: zipfile.ZipFile, entry: dict, zip_name: str) -> VoiceSample | None:
        uid = str(entry.get("uid", ""))
        files = entry.get("files")
        sha = str(entry.get("original_sha256") or "")
        if not _UID.match(uid) or not isinstance(files, dict) or files.get("audio") != f"samples/{uid}/voice.flac" \
                or not str(files.get("original", "")).startswith(f"samples/{uid}/original."):
            raise InvalidVoiceSampleError(f"'{zip_name}' holds a malformed entry ({uid or 'no uid'}).")
        try:
            rate = _count(entry.get("original_sample_rate", SAMPLE_RATE), 1, 1_000_000)
            channels = _count(entry.get("original_channels", 1), 1, 64)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidVoiceSampleError(f"'{zip_name}': the entry of '{entry.get('speaker_name')}' has a bad "
                                          f"sample rate or channel count ({exc}).") from None
        exists = self.db.query_one("SELECT id FROM voices WHERE uid = ? OR original_sha256 = ?", (uid, sha))
        if exists is not None:
            return None
        try:
            infos = [zf.getinfo(files["audio"]), zf.getinfo(files["original"])]
        except KeyError as exc:
            raise InvalidVoiceSampleError(f"'{zip_name}' is missing {exc.args[0]}.") from None
        if any(i.file_size > 2 * MAX_FILE_BYTES for i in infos):
            raise InvalidVoiceSampleError(f"'{zip_name}': the files of '{entry.get('speaker_name')}' are too large.")
        original_bytes = _read_member(zf, files["original"], zip_name)
        if hashlib.sha256(original_bytes).hexdigest() != sha:
            raise InvalidVoiceSampleError(f"'{zip_name}': the original of '{entry.get('speaker_name')}' is damaged.")
        decoded = audio.decode_audio(_read_member(zf, files["audio"], zip_name), name=f"{zip_name}:{files['audio']}",
                                     max_seconds=MAX_INPUT_SECONDS)
        if decoded.sample_rate != SAMPLE_RATE or decoded.channels != 1:
            raise InvalidVoiceSampleError(f"'{zip_name}': the audio of '{entry.get('speaker_name')}' is not 44.1 kHz mono.")
        clip = PreparedClip(decoded.samples[:, 0], str(entry.get("original_format", "unknown")), rate, channels)
        if not MIN_SECONDS <= clip.duration <= MAX_SECONDS + 0.5:
            raise InvalidVoiceSampleError(f"'{zip_name}': '{entry.get('speaker_name')}' has an invalid length.")
        try:
            return self._store(
                clip, name=clean_speaker_name(entry.get("speaker_name", "")),
                transcript=clean_transcript(entry.get("transcript", "")),
                original_filename=str(entry.get("original_filename") or "original"),
                original_suffix=_safe_suffix(files["original"]), original_bytes=original_bytes,
                raw=None, make_default=bool(entry.get("is_default")) and self.default() is None,
                uid=uid, created_at=_iso_or_none(entry.get("created_at")),
                updated_at=_iso_or_none(entry.get("updated_at")))
        except InvalidVoiceSampleError:
            # A concurrent import of the same file: treat as already present.
            if self.db.query_one("SELECT id FROM voices WHERE original_sha256 = ?", (sha,)) is not None:
                return None
            raise


def _read_member(zf: zipfile.ZipFile, name: str, zip_name: str) -> bytes:
    """A zip member's bytes; a damaged (bad CRC, truncated) or encrypted one is refused."""
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        raise InvalidVoiceSampleError(f"'{zip_name}' is damaged: {name} can't be read ({exc}).") from exc


def _iso_or_none(value) -> str | None:
    try:
        return datetime.fromisoformat(str(value)).isoformat(timespec="milliseconds")
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- audio and prompts

def load_audio(sample: VoiceSample) -> np.ndarray:
    """The sample's prompt audio: float32 mono at 44.1 kHz."""
    label = f"voice {sample.id} '{sample.speaker_name}'"
    if not sample.paths.audio.is_file():
        raise AudioDecodeFailedError(f"The audio of {label} is missing ({sample.paths.audio}).")
    decoded = audio.decode_audio(sample.paths.audio, name=label)
    return audio.resample(audio.to_mono(decoded.samples), decoded.sample_rate, SAMPLE_RATE)


def assemble_prompt(library: VoiceLibrary, speakers: Mapping[str, int | str | VoiceSample | None], *,
                    gap_seconds: float = GAP_SECONDS) -> VoicePromptAudio | None:
    """Build the voice prompt for a speaker mapping such as ``{"S1": 12, "S2": "Ann"}``.

    Joining and tagging (including the S2-only swap) are ``engine.voice_prompt.combine_parts``'s.
    Unknown voices raise ``InvalidVoiceSampleError``, a sample without a transcript
    ``MissingTranscriptError`` (naming it), unreadable audio ``AudioDecodeFailedError``. An empty
    mapping gives ``None`` (no cloning).
    """
    unknown = sorted(set(speakers) - {"S1", "S2"})
    if unknown:
        raise InvalidParameterError(f"Only S1 and S2 can be cloned, not {', '.join(unknown)}.")
    chosen = {tag: library.resolve(ref) for tag, ref in sorted(speakers.items()) if ref not in (None, "")}
    if not chosen:
        return None
    for sample in chosen.values():
        if not sample.has_transcript:
            raise MissingTranscriptError(
                f"Voice '{sample.speaker_name}' (id {sample.id}) has no transcript; cloning needs the "
                "exact words spoken in the clip.")
    parts = [PromptPart(tag, load_audio(sample), SAMPLE_RATE, sample.transcript,
                        f"Voice '{sample.speaker_name}' (id {sample.id})") for tag, sample in chosen.items()]
    prompt = combine_parts(parts, gap_seconds)
    return VoicePromptAudio(prompt.samples, prompt.sample_rate, prompt.transcript, prompt.swap_speakers, chosen)
