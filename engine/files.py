"""Atomic file writes and the permissions of what Dia Studio writes.

Two kinds of files:

- **private** user data (databases, drafts, voice audio, render history audio): mode 0600, in
  folders of 0700, whatever the umask;
- **exports** (rendered audio the user saves, scripts, voice zips): the usual permissions, i.e.
  0666 less the process umask, as any other application would create them.

Every write goes to a hidden temporary file next to the target (``.NAME.<pid>-<random>.part``),
is flushed to disk and then renamed over the target, so a crash leaves either the old file or
the new one, never half of one. The next write to the same target removes the temporary files
that earlier, killed writers left behind (their process is gone, or they are a day old).
"""

from __future__ import annotations

import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
STALE_PART_SECONDS = 24 * 3600.0
"""A temporary file this old is abandoned even if its writer's process id is in use again."""


def current_umask() -> int:
    """The process umask, read without changing it where the platform allows (thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # the only portable way to read it; set back at once
    os.umask(mask)
    return mask


def export_file_mode() -> int:
    """The mode a newly created, non-executable file gets under the current umask."""
    return 0o666 & ~current_umask()


def ensure_private_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and missing parents) as a 0700 folder; tighten it if it already exists."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    if os.name != "nt":
        try:
            if (path.stat().st_mode & 0o777) != PRIVATE_DIR_MODE:
                path.chmod(PRIVATE_DIR_MODE)
        except OSError:  # not ours to change (read-only medium, another owner): still usable
            pass
    return path


def make_private(path: str | os.PathLike) -> None:
    """Set a file's mode to 0600 where the platform has POSIX modes (best effort)."""
    if os.name == "nt":
        return
    try:
        os.chmod(path, PRIVATE_FILE_MODE)
    except OSError:
        pass


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename) to disk; a no-op where folders can't be opened."""
    if os.name == "nt":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


LEGACY_PART_SECONDS = 3600.0
"""Temporary files of earlier versions carry no process id: swept once they are an hour old."""


def _part_pattern(target: Path) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(target.name)}\.(?:(\d+)-[0-9a-f]{{32}}|[A-Za-z0-9_]{{8}})\.part$")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt" or sys.platform == "emscripten":
        return True  # can't tell cheaply: rely on the age rule
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to someone else
        return True
    return True


def sweep_stale_parts(target: str | os.PathLike, *, stale_after: float = STALE_PART_SECONDS) -> list[Path]:
    """Remove temporary files that killed writers of ``target`` left next to it; returns them."""
    target = Path(target)
    pattern = _part_pattern(target)
    removed: list[Path] = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = pattern.match(entry.name)
        if not match:
            continue
        try:
            age = now - entry.lstat().st_mtime
            if match.group(1) is None:  # an earlier version's name (mkstemp): age is all we know
                if age < min(stale_after, LEGACY_PART_SECONDS):
                    continue
            elif _process_alive(int(match.group(1))) and age < stale_after:
                continue
            entry.unlink()
            removed.append(entry)
        except OSError:
            continue
    return removed


def temp_path_for(target: str | os.PathLike) -> Path:
    """A fresh temporary name next to ``target`` that ``sweep_stale_parts`` recognises."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex}.part")


def atomic_write(target: str | os.PathLike, write: Callable[[Path], object], *, private: bool = False) -> Path:
    """Write ``target`` atomically: ``write(tmp)`` fills a temporary file, which then replaces it.

    ``private`` files get mode 0600; others the umask's usual mode. The folder must exist or be
    creatable. On any error (or KeyboardInterrupt) the temporary file is removed and the old
    ``target``, if any, is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_parts(target)
    tmp = temp_path_for(target)
    try:
        # Created by us with the final mode, so no moment exists where the data is more readable.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     PRIVATE_FILE_MODE if private else 0o666)
        os.close(fd)
        if not private and os.name != "nt":
            os.chmod(tmp, export_file_mode())
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    fsync_dir(target.parent)
    return target


def atomic_write_bytes(target: str | os.PathLike, data: bytes, *, private: bool = False) -> Path:
    """``atomic_write`` of a bytes payload."""
    return atomic_write(target, lambda p: p.write_bytes(data), private=private)


def atomic_write_text(target: str | os.PathLike, text: str, *, private: bool = False) -> Path:
    """``atomic_write`` of UTF-8 text, newlines kept as given."""
    def write(path: Path) -> None:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    return atomic_write(target, write, private=private)


__all__ = [
    "PRIVATE_FILE_MODE", "PRIVATE_DIR_MODE", "atomic_write", "atomic_write_bytes", "atomic_write_text",
    "current_umask", "ensure_private_dir", "export_file_mode", "fsync_dir", "make_private",
    "sweep_stale_parts", "temp_path_for",
]
