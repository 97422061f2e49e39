"""Dia Studio desktop app (PySide6). Talks to the engine only through ``engine``'s public API."""

from app.compat import guard_none_refcount

guard_none_refcount()  # before any Qt call: see app/compat.py
