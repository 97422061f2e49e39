"""The render controller without a window: a real queue and render thread, the tiny checkpoint,
a real history in the test's data folder and a real player on the null audio device."""

from __future__ import annotations

import pytest

import engine
from app import settings as opts
from app.now_playing import NowPlaying
from app.playback import AudioPlayer
from app.render_controller import RenderController, expected_steps
from app.workers import ETA_MIN_STEPS, RenderQueue

SCRIPT = "[S1] Hello there, how are you today? [S2] Fine, thanks. (laughs)"
PARAMS = engine.GenerationParams(max_new_tokens=256, seed=3)


class Rendering:
    """A controller wired to a real queue, player and history, with what it said recorded."""

    def __init__(self, settings) -> None:
        self.history = engine.RenderHistory()
        self.queue = RenderQueue(lambda: self.history, lambda: None)
        self.player = AudioPlayer()
        self.now_playing = NowPlaying()
        self.controller = RenderController(self.queue, self.player, self.now_playing, settings)
        self.said: dict[str, list] = {name: [] for name in ("jobShown", "resultShown", "historyChanged",
                                                            "errorRaised", "statusMessage", "seedUsed")}
        for name, seen in self.said.items():
            getattr(self.controller, name).connect(lambda *args, seen=seen: seen.append(args))
        self.titles: list[str] = []
        self.now_playing.titleChanged.connect(self.titles.append)

    def close(self) -> None:
        self.queue.shutdown()
        self.player.shutdown()
        self.history.close()


@pytest.fixture
def rendering(qapp, model_settings):
    r = Rendering(model_settings)
    yield r
    r.close()


def test_a_job_expects_the_engines_budget_of_decoder_steps(rendering, model_settings, tiny_models):
    job = rendering.controller.build_job(SCRIPT, PARAMS, {"S1": None, "S2": None})
    budget = engine.estimate_budget(SCRIPT, max_new_tokens=256)
    assert job.expected_steps == budget.estimated_frames - budget.prompt_frames + engine.DECODER_OVERHEAD_FRAMES
    assert job.expected_steps == expected_steps(budget)
    assert job.title == engine.make_title(SCRIPT) and job.params == PARAMS
    assert job.options.model == model_settings.get(opts.MODEL_PATH) == str(tiny_models[0])


def test_a_voice_prompt_is_prefilled_so_it_adds_no_expected_steps(rendering):
    plain = rendering.controller.build_job(SCRIPT, PARAMS, {})
    prompted = rendering.controller.build_job(SCRIPT, PARAMS, {"S1": 7}, prompt_seconds=5.0)
    assert prompted.expected_steps == plain.expected_steps
    assert prompted.cast == {"S1": 7}


def test_a_finished_render_becomes_the_take_and_a_history_entry(qtbot, rendering):
    job = rendering.controller.build_job(SCRIPT, PARAMS, {"S1": None, "S2": None})
    with qtbot.waitSignal(rendering.queue.jobFinished, timeout=120000) as blocker:
        rendering.controller.submit(job)
    outcome = blocker.args[1]
    entry = outcome.entry
    assert entry is not None and rendering.history.list()[0].id == entry.id
    assert rendering.said["historyChanged"] == [(entry.id,)]
    assert rendering.said["seedUsed"] == [(3,)]
    take = rendering.now_playing.take
    assert take is not None and take.entry_id == entry.id and take.job_id == job.id and take.seed == 3
    assert take.cast == {"S1": "random voice", "S2": "random voice"}
    assert rendering.titles[0] == f"Rendering: {job.title}" and rendering.titles[-1] == f"{entry.title} · seed 3"
    assert rendering.player.duration == pytest.approx(outcome.result.duration)
    text, done = rendering.said["resultShown"][-1]
    assert done and text.startswith("Done: ") and "(seed 3)" in text
    assert rendering.said["errorRaised"] == []


def test_progress_is_shown_for_the_current_job_and_only_moves_forward(qtbot, rendering):
    job = rendering.controller.build_job(SCRIPT, PARAMS, {})
    seen: list[tuple[int, str, float, str]] = []
    rendering.controller.jobShown.connect(lambda j: seen.append((j.id, j.state, j.fraction, j.detail)))
    with qtbot.waitSignal(rendering.queue.jobFinished, timeout=120000):
        rendering.controller.submit(job)
    assert {job_id for job_id, *_ in seen} == {job.id}
    rendering_fractions = [fraction for _, state, fraction, _ in seen if state == "rendering"]
    assert rendering_fractions == sorted(rendering_fractions) and 0 < max(rendering_fractions) < 1
    assert any("frames/s" in detail for *_, detail in seen)
    assert seen[-1][1:3] == ("done", 1.0)


def test_cancel_stops_the_render_and_stores_nothing(qtbot, rendering):
    job = rendering.controller.build_job(SCRIPT, PARAMS, {})
    with qtbot.waitSignal(rendering.queue.renderProgress, timeout=60000,
                          check_params_cb=lambda j, p: p.stage == "generate" and p.step >= ETA_MIN_STEPS):
        rendering.controller.submit(job)
    with qtbot.waitSignal(rendering.queue.jobCancelled, timeout=10000):
        rendering.controller.cancel()
    assert job.state == "cancelled" and len(rendering.history) == 0
    assert rendering.said["resultShown"][-1] == ("Cancelled", False)
    assert ("Render cancelled", 4000) in rendering.said["statusMessage"]
    take = rendering.now_playing.take
    assert take is not None and take.partial and rendering.titles[-1].endswith("(cancelled, partial)")
    assert rendering.said["historyChanged"] == []


def test_a_missing_model_fails_every_queued_render_once(qtbot, qapp, model_settings, tmp_path):
    model_settings.set(opts.MODEL_PATH, str(tmp_path / "no-model-here"))
    rendering = Rendering(model_settings)
    try:
        first = rendering.controller.build_job(SCRIPT, PARAMS, {})
        second = rendering.controller.build_job(SCRIPT, PARAMS, {})
        with qtbot.waitSignal(rendering.queue.jobFailed, timeout=60000):
            rendering.controller.submit(first)
            rendering.controller.submit(second)
        qtbot.waitUntil(lambda: second.finished, timeout=10000)
        assert first.state == "failed" and second.state == "cancelled"
        [(error,)] = rendering.said["errorRaised"]
        assert error.action == "model_settings" and error.hint.endswith("The queued renders were cancelled.")
        assert rendering.said["resultShown"][0] == (f"Failed: {error.title}", False)
        assert ("Queued: 1 render ahead of it", 5000) in rendering.said["statusMessage"]
    finally:
        rendering.close()
