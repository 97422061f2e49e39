"""A take in the player, and how it is described in exported files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

import engine

EXPORT_FILTERS = {"wav": "WAV audio (*.wav)", "flac": "FLAC audio (*.flac)", "opus": "Opus audio (*.opus *.ogg)",
                  "mp3": "MP3 audio (*.mp3)"}
EXPORT_SUFFIX = {"wav": ".wav", "flac": ".flac", "opus": ".opus", "mp3": ".mp3"}


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

    def metadata(self) -> dict[str, str]:
        comment = {"software": f"Dia Studio {engine.__version__}", "model": self.model, "seed": self.seed,
                   "params": self.params, "cast": self.cast, "script": self.script}
        return {"title": self.title, "artist": "Dia Studio", "software": f"Dia Studio {engine.__version__}",
                "date": datetime.now(timezone.utc).date().isoformat(),
                "comment": json.dumps(comment, ensure_ascii=False, sort_keys=True)}
