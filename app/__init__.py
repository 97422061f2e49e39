"""Dia Studio desktop app (PySide6). Talks to the engine only through ``engine``'s public API."""
