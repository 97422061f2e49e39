"""Render progress as the user reads it: one bar for the whole render, a time left that doesn't jump,
and an honest display when the render runs past the script's estimate."""

from __future__ import annotations

from itertools import pairwise

import engine
from app.workers import TAIL_SHARE, RenderEstimate, progress_detail
from tests.app.test_render import set_script


def step(n: int, rate: float, cap: int = 3000, frames: int | None = None) -> engine.RenderProgress:
    return engine.RenderProgress("generate", n, cap, frames if frames is not None else max(0, n - 15), rate, n / rate)


def test_prompt_encoding_generation_and_decode_tail_are_one_progress():
    est = RenderEstimate(expected_steps=200, started=0.0)
    est.update(engine.RenderProgress("prompt"), 0.1)
    assert est.fraction == 0.0
    assert progress_detail(engine.RenderProgress("prompt"), est) == "Encoding the voice prompt…"
    # 10 s went into the prompt and prefill; generation then runs 20 steps/s for 200 steps (10 s):
    # halfway through the steps, the prompt's time counts as work done, so the bar is past half
    fractions = []
    for n in range(20, 201, 20):
        est.update(step(n, 20.0), 10.0 + n / 20.0)
        fractions.append(est.fraction)
    assert fractions == sorted(fractions) and fractions[0] > 0.4
    assert fractions[4] > 0.5  # step 100 of 200, 15 of 20 s elapsed
    assert 0.9 < fractions[-1] <= 1.0 - TAIL_SHARE  # the decode tail is still ahead
    est.update(engine.RenderProgress("finish", 200, 200, 185), 20.1)
    assert est.fraction == 1.0 - TAIL_SHARE and progress_detail(engine.RenderProgress("finish"), est).startswith(
        "Finishing")


def test_time_left_is_smoothed_when_the_rate_wobbles():
    est = RenderEstimate(expected_steps=1000, started=0.0)
    rates = [10.0, 4.0, 9.0, 3.5, 10.0, 5.0, 9.5]  # a busy machine: the raw estimate swings by 2-3x
    shown, raw = [], []
    for i, rate in enumerate(rates):
        n = 50 + 30 * i
        est.update(step(n, rate), 5.0 + 3.0 * i)
        shown.append(est.left)
        raw.append((1000 - n) / rate)
    raw_swing = max(abs(a - b) for a, b in pairwise(raw))
    shown_swing = max(abs(a - b) for a, b in pairwise(shown))
    assert shown_swing < 0.6 * raw_swing


def test_past_the_estimate_the_bar_keeps_moving_and_says_so():
    est = RenderEstimate(expected_steps=100, started=0.0)
    details, fractions = [], []
    for n in range(10, 900, 10):  # the render runs 9x longer than the script's estimate
        p = step(n, 20.0, cap=1000)
        est.update(p, n / 20.0)
        fractions.append(est.fraction)
        details.append(progress_detail(p, est))
    late = fractions[len(fractions) // 2:]
    assert all(b > a for a, b in pairwise(late))  # never stuck
    assert fractions[-1] < 1.0 - TAIL_SHARE
    assert "longer than the script's estimate, at most 6 s left" in details[-1]  # (1000 - 890) / 20
    assert not any("≈ 0 s left" in d for d in details)


def test_a_render_past_its_estimate_in_the_window_never_sits_at_99_percent(qtbot, window):
    """The tiny model ignores the text and runs to the length cap: far past the estimate for "Hi."."""
    set_script(qtbot, window, "[S1] Hi.")
    window.params_panel.seed.set_seed(5)
    seen = []
    window.queue.jobChanged.connect(lambda job: seen.append((job.state, job.fraction, job.detail,
                                                              window.progress.value())))
    with qtbot.waitSignal(window.queue.jobFinished, timeout=120000) as blocker:
        job = window.render()
    assert job.expected_steps < blocker.args[1].result.codes.shape[0]  # it did run past the estimate
    rendering = [s for s in seen if s[0] == "rendering"]
    fractions = [f for _, f, _, _ in rendering]
    assert fractions == sorted(fractions)
    overrun = [d for _, _, d, _ in rendering if "longer than the script's estimate" in d]
    assert len(overrun) > 3
    assert not any("≈ 0 s left" in d for _, _, d, _ in rendering)
    bars = [v for *_, v in rendering]
    assert bars.count(max(bars)) <= 2  # the bar kept moving instead of parking at one value
    assert window.progress.value() == 1000
