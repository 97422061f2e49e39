"""The local voice library and voice-prompt assembly for cloning.

Layout under the library root (default ``<data dir>/voices``)::

    library.sqlite3                 one row per sample (SQLite, WAL)
    samples/<uid>/voice.flac        the prompt audio: 44.1 kHz mono, trimmed, loudness-normalised
    samples/<uid>/original.<ext>    the user's file byte for byte (or the raw recording)

Crash safety: a sample's files are written to ``samples/.staging-*`` first. Under the database
write lock the row is inserted, the staging folder renamed to its final name, and the transaction
committed; so a folder without a row can exist after a crash, never a row without its folder.
Deleting commits the row's removal first and removes the folder afterwards. ``check()`` (run on
open) removes such leftover folders and repairs or drops rows whose files went missing.
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from engine import audio
from engine.errors import (
    AudioDecodeFailedError,
    InvalidParameterError,
    InvalidVoiceSampleError,
    MissingTranscriptError,
)
from engine.storage import Database
from engine.voice_prompt import GAP_SECONDS, PromptPart, VoicePrompt, combine_parts

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
    """What ``VoiceLibrary.check`` found and fixed."""

    removed_folders: list[str] = field(default_factory=list)
    removed_rows: list[int] = field(default_factory=list)
    rebuilt_audio: list[int] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.removed_folders or self.removed_rows or self.rebuilt_audio)


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


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # directories can't be opened for fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(staging: Path, final: Path) -> None:
    """Give a finished staging folder its final name (a separate function so tests can crash here)."""
    os.replace(staging, final)


def prepare_clip(decoded: audio.DecodedAudio, label: str) -> PreparedClip:
    """Mono, 44.1 kHz, silence trimmed, loudness normalised; refuse what can't clone a voice.

    ``label`` names the clip in messages (a file name, or ``recording``).
    """
    what = "The recording" if label == "recording" else f"'{label}'"
    if decoded.frames == 0:
        raise InvalidVoiceSampleError(f"{what} is empty: it holds no audio.")
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
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.root / "library.sqlite3", SCHEMA)
        if check_on_open:
            report = self.check()
            if not report.clean:
                log.warning("voice library repaired on open: %s", report)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> VoiceLibrary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading

    def _sample(self, row) -> VoiceSample:
        folder = self.samples_dir / row["uid"]
        return VoiceSample(
            id=int(row["id"]), speaker_name=row["speaker_name"], transcript=row["transcript"],
            is_default=bool(row["is_default"]), duration=float(row["duration"]),
            created_at=datetime.fromisoformat(row["created_at"]),
            updated_at=datetime.fromisoformat(row["updated_at"]),
            original_filename=row["original_filename"], original_format=row["original_format"],
            paths=VoicePaths(folder, folder / "voice.flac", folder / row["original_file"]),
            uid=row["uid"], original_sample_rate=int(row["original_sample_rate"]),
            original_channels=int(row["original_channels"]), original_sha256=row["original_sha256"])

    def list(self) -> list[VoiceSample]:
        """All samples, by speaker name (case-insensitive), then id."""
        rows = self.db.query("SELECT * FROM voices ORDER BY speaker_name COLLATE NOCASE, id")
        return [self._sample(r) for r in rows]

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
        name = clean_speaker_name(speaker_name)
        words = clean_transcript(transcript)
        if isinstance(source, np.ndarray):
            if not sample_rate:
                raise InvalidParameterError("Raw samples need their sample_rate.")
            label = original_filename or f"recording-{datetime.now():%Y%m%d-%H%M%S}.flac"
            samples = audio.as_float32(source if source.ndim == 2 else source.reshape(-1, 1))
            decoded = audio.DecodedAudio(samples, int(sample_rate), "recording", "flac")
            clip = prepare_clip(decoded, "recording")
            return self._store(clip, name=name, transcript=words, original_filename=label,
                               original_suffix=".flac", original_bytes=None, raw=decoded,
                               make_default=make_default)
        if isinstance(source, (bytes, bytearray)):
            label, data = original_filename or "audio data", bytes(source)
        else:
            path = Path(source)
            label = original_filename or path.name
            if not path.is_file():
                raise AudioDecodeFailedError(f"Could not read '{label}': no such file.")
            if path.stat().st_size > MAX_FILE_BYTES:
                raise InvalidVoiceSampleError(_too_big(label, path.stat().st_size))
            data = path.read_bytes()
        if len(data) > MAX_FILE_BYTES:
            raise InvalidVoiceSampleError(_too_big(label, len(data)))
        clip = prepare_clip(audio.decode_audio(data, name=label), label)
        return self._store(clip, name=name, transcript=words, original_filename=label,
                           original_suffix=_safe_suffix(label),
                           original_bytes=data, raw=None, make_default=make_default)

    def _store(self, clip: PreparedClip, *, name: str, transcript: str, original_filename: str,
               original_suffix: str, original_bytes: bytes | None, raw: audio.DecodedAudio | None,
               make_default: bool, uid: str | None = None, created_at: str | None = None,
               updated_at: str | None = None) -> VoiceSample:
        uid = uid or uuid.uuid4().hex
        staging = self.samples_dir / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            original = staging / f"original{original_suffix}"
            if original_bytes is not None:
                with open(original, "wb") as f:
                    f.write(original_bytes)
                    f.flush()
                    os.fsync(f.fileno())
            else:
                assert raw is not None
                audio.write_audio(original, raw.samples, raw.sample_rate, fmt="flac", bit_depth=24)
            audio.write_audio(staging / "voice.flac", clip.samples, SAMPLE_RATE, fmt="flac", bit_depth=24)
            _fsync_dir(staging)
            digest = _sha256_file(original)
            now = _now()
            with self.db.transaction() as conn:
                dup = conn.execute("SELECT id, speaker_name FROM voices WHERE original_sha256 = ?",
                                   (digest,)).fetchone()
                if dup is not None:
                    raise InvalidVoiceSampleError(
                        f"'{original_filename}' is already in the library as '{dup['speaker_name']}' "
                        f"(id {dup['id']}).")
                if make_default:
                    conn.execute("UPDATE voices SET is_default = 0, updated_at = ? WHERE is_default = 1", (now,))
                cur = conn.execute(
                    """INSERT INTO voices (uid, speaker_name, transcript, is_default, duration, created_at,
                           updated_at, original_filename, original_format, original_sample_rate,
                           original_channels, original_sha256, original_file)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (uid, name, transcript, int(make_default), clip.duration, created_at or now,
                     updated_at or now, original_filename, clip.original_format, clip.original_sample_rate,
                     clip.original_channels, digest, original.name))
                new_id = cur.lastrowid
                # Publishing inside the transaction: a crash before COMMIT leaves only a folder
                # without a row, which check() removes; never a row without its folder.
                _publish(staging, self.samples_dir / uid)
            _fsync_dir(self.samples_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.get(new_id)

    # -- editing

    def _update(self, sample_id: int, sql: str, params: tuple) -> VoiceSample:
        sample = self.resolve(sample_id)
        with self.db.transaction() as conn:
            cur = conn.execute(f"UPDATE voices SET {sql}, updated_at = ? WHERE id = ?",
                               (*params, _now(), sample.id))
            if cur.rowcount == 0:  # removed by another process meanwhile
                raise InvalidVoiceSampleError(f"There is no voice sample with id {sample.id}.")
        return self.get(sample.id)

    def rename(self, sample_id: int | str, speaker_name: str) -> VoiceSample:
        return self._update(sample_id, "speaker_name = ?", (clean_speaker_name(speaker_name),))

    def set_transcript(self, sample_id: int | str, transcript: str) -> VoiceSample:
        """Replace the transcript (an empty one is allowed; cloning then refuses the sample)."""
        return self._update(sample_id, "transcript = ?", (clean_transcript(transcript),))

    def set_default(self, sample_id: int | str | None) -> VoiceSample | None:
        """Make this sample the default (at most one is); ``None`` clears the default."""
        now = _now()
        sample = self.resolve(sample_id) if sample_id is not None else None
        with self.db.transaction() as conn:
            conn.execute("UPDATE voices SET is_default = 0, updated_at = ? WHERE is_default = 1", (now,))
            if sample is not None:
                cur = conn.execute("UPDATE voices SET is_default = 1, updated_at = ? WHERE id = ?",
                                   (now, sample.id))
                if cur.rowcount == 0:
                    raise InvalidVoiceSampleError(f"There is no voice sample with id {sample.id}.")
        return self.get(sample.id) if sample is not None else None

    def delete(self, sample_id: int | str) -> None:
        """Remove the sample and its files (the row first; a crash leaves only a stray folder)."""
        sample = self.resolve(sample_id)
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM voices WHERE id = ?", (sample.id,))
        trash = self.samples_dir / f".trash-{uuid.uuid4().hex}"
        try:
            os.replace(sample.paths.folder, trash)
        except FileNotFoundError:
            return
        except OSError:  # e.g. a file still open on Windows; check() retries later
            return
        shutil.rmtree(trash, ignore_errors=True)

    # -- consistency

    def check(self, *, stale_after: float = STALE_STAGING_SECONDS) -> CheckReport:
        """Remove leftovers of interrupted writes and fix rows whose files went missing.

        Runs under the write lock, so it never sees another process's half-published sample.
        Staging folders younger than ``stale_after`` seconds are left alone (they may be in use).
        """
        report = CheckReport()
        now = time.time()
        with self.db.transaction() as conn:
            rows = {r["uid"]: r for r in conn.execute("SELECT * FROM voices")}
            for entry in self.samples_dir.iterdir():
                name = entry.name
                if name.startswith(".staging-"):
                    try:
                        if now - entry.stat().st_mtime < stale_after:
                            continue
                    except FileNotFoundError:
                        continue
                elif name in rows:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                report.removed_folders.append(name)
            for uid, row in rows.items():
                sample = self._sample(row)
                if sample.paths.audio.is_file():
                    continue
                if sample.paths.original.is_file():
                    try:
                        self._rebuild_audio(sample)
                        report.rebuilt_audio.append(sample.id)
                        continue
                    except Exception as exc:  # noqa: BLE001 - any failure means "can't repair"
                        log.warning("can't rebuild voice %s: %s", sample.id, exc)
                conn.execute("DELETE FROM voices WHERE id = ?", (sample.id,))
                shutil.rmtree(sample.paths.folder, ignore_errors=True)
                report.removed_rows.append(sample.id)
        return report

    def _rebuild_audio(self, sample: VoiceSample) -> None:
        decoded = audio.decode_audio(sample.paths.original, name=sample.original_filename)
        clip = prepare_clip(decoded, sample.original_filename)
        audio.write_audio(sample.paths.audio, clip.samples, SAMPLE_RATE, fmt="flac", bit_depth=24)

    # -- portability

    def export_zip(self, path: str | Path, ids: list[int | str] | None = None) -> Path:
        """Write the chosen samples (all by default) with their audio and originals to one zip."""
        samples = [self.resolve(i) for i in ids] if ids else self.list()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        manifest = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "exported_at": _now(), "samples": []}
        try:
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
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def import_zip(self, path: str | Path) -> ImportReport:
        """Add the samples of an exported zip; ones already here (same uid or same original file)
        are skipped, so importing twice adds nothing. Each sample is added atomically.
        """
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
                entries = list(manifest["samples"])
            except InvalidVoiceSampleError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise InvalidVoiceSampleError(
                    f"'{path.name}' is not a Dia Studio voice export (bad manifest: {exc}).") from exc
            for entry in entries:
                sample = self._import_entry(zf, entry, path.name)
                if sample is None:
                    report.skipped.append(str(entry.get("speaker_name", "?")))
                else:
                    report.added.append(sample)
        return report

    def _import_entry(self, zf: zipfile.ZipFile, entry: dict, zip_name: str) -> VoiceSample | None:
        uid = str(entry.get("uid", ""))
        files = entry.get("files") or {}
        if not _UID.match(uid) or files.get("audio") != f"samples/{uid}/voice.flac" \
                or not str(files.get("original", "")).startswith(f"samples/{uid}/original."):
            raise InvalidVoiceSampleError(f"'{zip_name}' holds a malformed entry ({uid or 'no uid'}).")
        exists = self.db.query_one("SELECT id FROM voices WHERE uid = ? OR original_sha256 = ?",
                                   (uid, entry.get("original_sha256", "")))
        if exists is not None:
            return None
        try:
            infos = [zf.getinfo(files["audio"]), zf.getinfo(files["original"])]
        except KeyError as exc:
            raise InvalidVoiceSampleError(f"'{zip_name}' is missing {exc.args[0]}.") from None
        if any(i.file_size > 2 * MAX_FILE_BYTES for i in infos):
            raise InvalidVoiceSampleError(f"'{zip_name}': the files of '{entry.get('speaker_name')}' are too large.")
        original_bytes = zf.read(files["original"])
        if hashlib.sha256(original_bytes).hexdigest() != entry.get("original_sha256"):
            raise InvalidVoiceSampleError(f"'{zip_name}': the original of '{entry.get('speaker_name')}' is damaged.")
        decoded = audio.decode_audio(zf.read(files["audio"]), name=f"{zip_name}:{files['audio']}")
        if decoded.sample_rate != SAMPLE_RATE or decoded.channels != 1:
            raise InvalidVoiceSampleError(f"'{zip_name}': the audio of '{entry.get('speaker_name')}' is not 44.1 kHz mono.")
        clip = PreparedClip(decoded.samples[:, 0], str(entry.get("original_format", "unknown")),
                            int(entry.get("original_sample_rate", SAMPLE_RATE)),
                            int(entry.get("original_channels", 1)))
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
            if self.db.query_one("SELECT id FROM voices WHERE original_sha256 = ?",
                                 (entry.get("original_sha256", ""),)) is not None:
                return None
            raise


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
