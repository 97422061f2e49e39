"""Static resources (icons, styles, example scripts) shipped with Dia Studio."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent


def path(*parts: str) -> Path:
    """Absolute path of a resource file, e.g. ``path("examples", "podcast.txt")``."""
    return ROOT.joinpath(*parts)
