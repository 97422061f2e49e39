"""CPU thread governor for decoding steps: one thread while other programs crowd the cores.

A decoding step is a few hundred short parallel regions. When other programs keep the cores busy,
OpenMP's threads wait on each other at every region's barrier, and a two-thread step on a 2-core
machine under a 2-process load ran about 4x slower than on a free machine, where one thread ran
only 1.5x slower (bench/bench_engine.py --competing-load 2). The governor watches step times: when
a window of steps is much slower than the best seen, it drops to one thread, and every so often it
tries all threads again, keeping them only if they are faster. Results do not depend on it: the
native kernels sum each output in a fixed order whatever the thread count (a tested property), and
it changes the count only around decoding steps.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class ThreadGovernor:
    """Feed it each step's seconds (``observe``); it sets the thread count for the next steps (``apply``)."""

    full: int  # the thread count of a free machine (the process's setting when the render starts)
    window: int = 8  # steps per decision (a median, so the odd slow step from a streamed chunk does not count)
    slow_factor: float = 1.6  # a window this much slower than the best full-thread window means contention
    retry_every: int = 96  # steps on one thread before trying all threads again
    set_threads: Callable[[int], None] = torch.set_num_threads
    get_threads: Callable[[], int] = torch.get_num_threads
    threads: int = field(init=False)
    switches: int = field(default=0, init=False)
    _best: float | None = field(default=None, init=False)
    _single: float | None = field(default=None, init=False)
    _probing: bool = field(default=False, init=False)
    _since_switch: int = field(default=0, init=False)
    _times: list[float] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.threads = self.full

    @property
    def active(self) -> bool:
        return self.full > 1

    def observe(self, seconds: float) -> None:
        """Record one step's wall time; decide at the end of each window."""
        if not self.active:
            return
        self._since_switch += 1
        self._times.append(seconds)
        if len(self._times) < self.window:
            return
        median = statistics.median(self._times)
        self._times.clear()
        if self.threads == self.full:
            if self._probing:  # trying all threads again: keep them only if clearly faster than one
                self._probing = False
                if self._single is not None and median * 1.15 > self._single:
                    self._switch(1)
                    return
                self._best = median if self._best is None else min(self._best, median)
                return
            if self._best is None or median < self._best:
                self._best = median
            elif median > self.slow_factor * self._best:
                self._switch(1)
            return
        self._single = median if self._single is None else 0.5 * (self._single + median)
        if self._since_switch >= self.retry_every:
            self._probing = True
            self._switch(self.full)

    def apply(self) -> None:
        """Make the process use the governed thread count (call before a step)."""
        if self.active and self.get_threads() != self.threads:
            self.set_threads(self.threads)

    def restore(self) -> None:
        """Give the process its thread count back (call when the render ends, however it ends)."""
        if self.active and self.get_threads() != self.full:
            self.set_threads(self.full)

    def _switch(self, threads: int) -> None:
        self.threads = threads
        self.switches += 1
        self._since_switch = 0
        self._times.clear()
