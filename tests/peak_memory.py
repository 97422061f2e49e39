"""Peak resident memory of the current process, for tests that run work in a child process.

``getrusage(RUSAGE_SELF).ru_maxrss`` is no good there: Linux carries the high-water mark across
``exec``, so a child started by a large pytest process reports the parent's peak. ``VmHWM`` in
``/proc/self/status`` belongs to the process's own memory map and starts afresh at ``exec``.
"""

from __future__ import annotations

import sys


def peak_rss_bytes() -> int:
    """This process's peak resident set size in bytes (``VmHWM``; ``ru_maxrss`` where there is no /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
