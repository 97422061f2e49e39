"""A take in the player, and how it is described in exported files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

import engine

EXPORT_FILTERS = {"wav": "WAV audio (*.wav)", "flac": "FLAC audio (*.flac)", "opus": "Opus audio (*.opus *.ogg)",
                  "mp3": "MP3 audio (*.mp3)"}
EXPORT_SUFFIX = {"wav": ".wav", "flac": ".flac", "opus": ".opus", "mp3": ".mp3"}
FILE_NAME_CHARS = 40
LENGTH_CAP_STOP = "max_new_tokens"  # RenderResult.stop_reason when the render hit its length cap


def take_warnings(stop_reason: str, warnings: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
    """What a take must keep showing: a render cut off by its length cap, then the engine's notes."""
    notes = [str(w) for w in warnings]
    if stop_reason == LENGTH_CAP_STOP:
        notes.insert(0, "The render reached Max audio length and was cut off: the end of the script may be "
                        "missing. Raise Max audio length or split the script.")
    return tuple(notes)


def suggested_file_name(title: str) -> str:
    """A file name (without suffix) from a take's title, shortened at a word boundary."""
    safe = " ".join("".join(ch if ch.isalnum() or ch in " -_" else " " for ch in title).split())
    if len(safe) > FILE_NAME_CHARS:
        head = safe[:FILE_NAME_CHARS + 1]  # one more: a space there means the last word is whole
        safe = head.rsplit(" ", 1)[0] if " " in head else safe[:FILE_NAME_CHARS]
    return safe.strip(" -_") or "dialogue"


@dataclass
class Take:
    """What the player holds, with what is needed to describe it in an exported file."""

    title: str
    script: str = ""
    params: dict = field(default_factory=dict)
    seed: int | None = None
    cast: dict = field(default_factory=dict)
    model: str = ""
    entry_id: int | None = None
    job_id: int | None = None
    partial: bool = False
    warnings: tuple[str, ...] = ()

    def metadata(self) -> dict[str, str]:
        """Tags for an exported file; the JSON comment holds what reproduces the take (its real seed)."""
        params = dict(self.params)
        if self.seed is not None:
            params["seed"] = self.seed  # not the requested -1 ("random"): the seed the take used
        comment = {"software": f"Dia Studio {engine.__version__}", "model": self.model, "seed": self.seed,
                   "params": params, "cast": self.cast, "script": self.script}
        if self.warnings:
            comment["warnings"] = list(self.warnings)
        return {"title": self.title, "artist": "Dia Studio", "software": f"Dia Studio {engine.__version__}",
                "date": datetime.now(timezone.utc).date().isoformat(),
                "comment": json.dumps(comment, ensure_ascii=False, sort_keys=True)}


def cast_names(cast: dict[str, int | None], voices: dict) -> dict[str, str]:
    """``{"S1": 3, "S2": None}`` -> ``{"S1": "Ann", "S2": "random voice"}`` (``voices``: id -> VoiceSample)."""
    return {tag: (voices[vid].speaker_name if vid in voices else f"voice {vid}") if vid is not None
            else "random voice" for tag, vid in cast.items()}


def entry_cast_names(entry: engine.HistoryEntry) -> dict[str, str]:
    """The voices a stored take used, by name, as they were when it was rendered."""
    members = {tag: entry.cast.get(tag) or engine.CastMember() for tag in ("S1", "S2")}
    return {tag: (m.name if not m.is_random else "random voice") for tag, m in members.items()}


def entry_take(entry: engine.HistoryEntry) -> Take:
    """A stored take, as the player and exported files describe it."""
    return Take(entry.title, entry.script, entry.params.to_dict(), entry.seed, entry_cast_names(entry), entry.model,
                entry.id, warnings=take_warnings(entry.stop_reason, entry.warnings))
