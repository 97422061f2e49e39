"""The voice library window and the recorder dialog."""

from __future__ import annotations

import engine


def length_rule() -> str:
    """The voice-length rule in words, from the engine's numbers (the one place they live)."""
    low, high = engine.RECOMMENDED_SECONDS
    return (f"{low:g}–{high:g} seconds of clear speech with its exact transcript clone best; "
            f"clips under {engine.MIN_SECONDS:g} s or over {engine.MAX_SECONDS:g} s of sound are refused.")
