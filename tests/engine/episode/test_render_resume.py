"""The render queue on a tiny model: one engine, voices encoded once, cancel and resume, kill -9."""

from __future__ import annotations

import os
import random
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf

from engine.episode.project import EpisodeProject, VoiceInput
from engine.episode.render import pending_blocks, regenerate_block, render_episode
from engine.errors import CancelledError
from engine.params import GenerationParams
from tests.engine.episode.episode_fixtures import (
    ROOT,
    cli_command,
    cli_env,
    model_args,
    run_cli,
    tiny_models,  # noqa: F401 - a fixture
)

SCRIPT = "[Mara] Yes, hello.\n[Theo] Hi there!\n[Mara] Okay.\n[Lee] Me too.\n[Theo] Fine.\n[Lee] Bye now.\n"
VOICE = VoiceInput("Ann", (0.3 * np.sin(2 * np.pi * 180 * np.arange(44100) / 44100)).astype(np.float32),
                   "Hello, I am Ann.")


@pytest.fixture(scope="module")
def engine(tiny_models):  # noqa: F811
    from engine.pipeline import DiaEngine
    from engine.requests import EngineOptions
    from tests.engine.dac_fixtures import torch_threads

    with torch_threads(1):  # the tiny model is per-step overhead: more threads only contend on 2 cores
        yield DiaEngine.load(EngineOptions(model=str(tiny_models / "dia"), codec=str(tiny_models / "dac"),
                                           dtype="float32", device="cpu"))


def _project(path, voice: bool = False) -> EpisodeProject:
    project = EpisodeProject(path)
    project.update(script=SCRIPT, seed=3, params=GenerationParams(max_new_tokens=256),
                   cast={"Mara": VOICE} if voice else None)
    return project


def _audio(project: EpisodeProject) -> list[np.ndarray]:
    return [project.take_audio(b.chosen) for b in project.blocks()]


def test_cancel_between_steps_keeps_finished_blocks_and_resumes_to_the_same_audio(engine, tmp_path):
    with _project(tmp_path / "ref.diaproj") as reference:
        render_episode(reference, engine)
        expected = _audio(reference)
    with _project(tmp_path / "ep.diaproj") as project:
        steps = []

        def stop_in_second_block(p) -> None:
            steps.append(p)

        with pytest.raises(CancelledError):
            render_episode(project, engine, on_progress=stop_in_second_block,
                           should_stop=lambda: any(p.blocks_done == 1 and p.stage == "generate" for p in steps))
        assert [b.state for b in project.blocks()][:2] == ["done", "pending"]
        summary = render_episode(project, engine)
        assert summary.rendered and 0 not in summary.rendered and not pending_blocks(project)
        for got, want in zip(_audio(project), expected):
            np.testing.assert_array_equal(got, want)  # same seeds, same audio
        assert steps[-1].blocks_total == len(expected) and steps[-1].eta_seconds is not None


def test_a_voice_is_encoded_once_per_project(engine, tmp_path):
    calls = []
    original = engine.encode_prompt
    engine.encode_prompt = lambda voice: calls.append(voice) or original(voice)
    try:
        with _project(tmp_path / "ep.diaproj", voice=True) as project:
            render_episode(project, engine)
            assert sum("Mara" in b.characters for b in project.blocks()) > 1
    finally:
        del engine.encode_prompt
    assert len(calls) == 1


def test_regenerate_adds_a_chosen_take_with_a_fresh_seed(engine, tmp_path):
    with _project(tmp_path / "ep.diaproj") as project:
        render_episode(project, engine)
        first = project.blocks()[0]
        take = regenerate_block(project, engine, 0, seed=77)
        block = project.blocks()[0]
        assert len(block.takes) == 2 and block.chosen == take != first.chosen
        assert next(t for t in block.takes if t.id == take).seed == 77


def test_a_render_killed_at_random_moments_resumes_to_the_same_episode(tiny_models, tmp_path):  # noqa: F811
    common = [*model_args(tiny_models), "--seed", "11", "--loudness", "off", "--quiet"]
    script = tmp_path / "script.txt"
    script.write_text(SCRIPT * 2, encoding="utf-8")
    data = tmp_path / "data"
    ref = run_cli(data, "episode", "render", str(script), "--project", str(tmp_path / "ref.diaproj"),
                  "-o", str(tmp_path / "ref.wav"), *common)
    assert ref.returncode == 0, ref.stderr

    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    project = tmp_path / "ep.diaproj"
    args = cli_command("episode", "render", str(script), "--project", str(project), "-o", str(tmp_path / "ep.wav"),
                       *common)
    takes = 0
    for _ in range(3):
        process = subprocess.Popen(args, cwd=ROOT, env=cli_env(data), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 12.0))
        process.kill()  # SIGKILL: no clean-up of any kind
        process.wait()
        if project.exists():
            with EpisodeProject(project) as opened:  # never corrupt; a half-written take is rolled back
                now = sum(len(b.takes) for b in opened.blocks())
            assert now >= takes, f"a finished take was lost (random seed {seed})"
            takes = now
    final = run_cli(data, "episode", "render", str(script), "--project", str(project), "-o", str(tmp_path / "ep.wav"),
                    *common)
    assert final.returncode == 0, final.stderr
    got, _ = sf.read(tmp_path / "ep.wav", dtype="float32")
    want, _ = sf.read(tmp_path / "ref.wav", dtype="float32")
    np.testing.assert_array_equal(got, want, err_msg=f"random seed {seed}")
