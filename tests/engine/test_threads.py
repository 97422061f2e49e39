"""The CPU thread governor (engine/threads.py): one thread while other programs crowd the cores, all
of them again when that pays, and no effect on what a render produces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.threads import ThreadGovernor


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    """A tiny random model in bfloat16, so its steps run on the native kernels where they are built."""
    from engine import DiaEngine, EngineOptions
    from engine.testing import write_tiny_models

    dia, dac = write_tiny_models(tmp_path_factory.mktemp("models"))
    return DiaEngine.load(EngineOptions(model=str(dia), codec=str(dac), dtype="bfloat16", device="cpu"))


class FakeThreads:
    def __init__(self, n: int) -> None:
        self.n = n
        self.calls: list[int] = []

    def set(self, n: int) -> None:
        self.n = n
        self.calls.append(n)

    def get(self) -> int:
        return self.n


def governor(full: int = 2, **kw) -> tuple[ThreadGovernor, FakeThreads]:
    threads = FakeThreads(full)
    return ThreadGovernor(full, set_threads=threads.set, get_threads=threads.get, **kw), threads


def feed(g: ThreadGovernor, seconds: float, steps: int) -> None:
    for _ in range(steps):
        g.apply()
        g.observe(seconds)


def test_a_free_machine_keeps_every_thread():
    g, threads = governor()
    feed(g, 0.030, 200)
    assert g.threads == 2 and g.switches == 0 and threads.calls == []


def test_slow_steps_drop_to_one_thread():
    g, threads = governor()
    feed(g, 0.030, 16)
    feed(g, 0.150, 8)  # another program takes the cores: five times slower
    assert g.threads == 1
    g.apply()
    assert threads.n == 1


def test_an_odd_slow_step_does_not_count():
    g, _ = governor()
    feed(g, 0.030, 16)
    for i in range(64):
        g.observe(0.5 if i % 8 == 0 else 0.030)  # a streamed audio chunk decoded now and then
    assert g.threads == 2


def test_all_threads_come_back_when_the_load_ends():
    g, _ = governor(retry_every=32)
    feed(g, 0.030, 16)
    feed(g, 0.150, 8)
    feed(g, 0.045, 32)  # one thread under load
    assert g.threads == 2  # time to try all threads again
    feed(g, 0.030, 8)  # the load has gone: all threads are faster again
    feed(g, 0.030, 64)
    assert g.threads == 2


def test_all_threads_are_dropped_again_while_the_load_lasts():
    g, _ = governor(retry_every=32)
    feed(g, 0.030, 16)
    feed(g, 0.150, 8)
    feed(g, 0.045, 32)
    assert g.threads == 2
    feed(g, 0.150, 8)  # still crowded: the probe is slower than one thread
    assert g.threads == 1


def test_restore_gives_the_process_its_threads_back():
    g, threads = governor()
    feed(g, 0.030, 16)
    feed(g, 0.150, 8)
    g.apply()
    g.restore()
    assert threads.n == 2


def test_one_thread_machines_are_left_alone():
    g, threads = governor(full=1)
    feed(g, 0.030, 16)
    feed(g, 0.150, 64)
    assert not g.active and threads.calls == []


def test_a_render_is_the_same_whatever_the_governor_does(tiny_engine, monkeypatch):
    """Steps on one thread and on two give the same codes, and the process keeps its thread count."""
    from engine import GenerationParams, RenderRequest
    from engine import threads as module

    request = RenderRequest("[S1] Hello there. [S2] Hi.", GenerationParams(max_new_tokens=256, seed=3))
    before = torch.get_num_threads()
    monkeypatch.setenv("DIA_STUDIO_THREAD_GOVERNOR", "0")
    steady = tiny_engine.render(request).codes
    monkeypatch.delenv("DIA_STUDIO_THREAD_GOVERNOR")

    flips = {"n": 0}

    def flip(self: ThreadGovernor, seconds: float) -> None:  # one thread, then two, every other step
        flips["n"] += 1
        self.threads = 1 if flips["n"] % 2 else self.full

    monkeypatch.setattr(module.ThreadGovernor, "observe", flip)
    monkeypatch.setattr(module.ThreadGovernor, "active", property(lambda self: True))
    torch.set_num_threads(2)
    try:
        flipped = tiny_engine.render(request).codes
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert flips["n"] > 10
    assert np.array_equal(steady, flipped)
