"""Resident memory of a process, for tests that run work in a child process.

``getrusage(RUSAGE_SELF).ru_maxrss`` is no good there: Linux carries the high-water mark across
``exec``, so a child started by a large pytest process reports the parent's peak. ``VmHWM`` in
``/proc/self/status`` belongs to the process's own memory map and starts afresh at ``exec``.
"""

from __future__ import annotations

import sys


def _status_bytes(field: str, pid: int | str = "self") -> int | None:
    """A ``kB`` line of ``/proc/<pid>/status`` in bytes (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int:
    """This process's peak resident set size in bytes (``VmHWM``; ``ru_maxrss`` where there is no /proc)."""
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def resident_bytes(pid: int) -> int:
    """Process ``pid``'s resident set size now, in bytes (``VmRSS``; Linux only)."""
    rss = _status_bytes("VmRSS", pid)
    if rss is None:
        import pytest

        pytest.skip("reading another process's memory needs Linux's /proc")
    return rss
