"""``render_episode``'s hooks for callers that deliver an episode while it renders (the API server):
each block's audio in order as soon as it exists, and stopping at the first failed block."""

from __future__ import annotations

import numpy as np
import pytest

from engine.episode.project import EpisodeProject
from engine.episode.render import render_episode
from engine.errors import GenerationError
from engine.params import GenerationParams
from tests.engine.episode.episode_fixtures import tiny_models  # noqa: F401 - a fixture

SCRIPT = "[Mara] Yes, hello.\n---\n[Theo] Hi there!\n---\n[Mara] Okay then.\n---\n[Theo] Fine, bye.\n"
"""Four blocks (``---`` breaks)."""


@pytest.fixture(scope="module")
def engine(tiny_models):  # noqa: F811
    from engine.pipeline import DiaEngine
    from engine.requests import EngineOptions
    from tests.engine.dac_fixtures import torch_threads

    with torch_threads(1):  # the tiny model is per-step overhead: more threads only contend on 2 cores
        yield DiaEngine.load(EngineOptions(model=str(tiny_models / "dia"), codec=str(tiny_models / "dac"),
                                           dtype="float32", device="cpu"))


class FailingBlock:
    """The real engine, except that rendering the text ``fail_on`` fails as a model can."""

    def __init__(self, engine, fail_on: str) -> None:
        self.engine, self.fail_on, self.options = engine, fail_on, engine.options

    def encode_prompt(self, voice):
        return self.engine.encode_prompt(voice)

    def render(self, request, **kwargs):
        if self.fail_on in request.script:
            raise GenerationError("the model ended the audio immediately")
        return self.engine.render(request, **kwargs)


def _project(path) -> EpisodeProject:
    project = EpisodeProject(path)
    project.update(script=SCRIPT, seed=5, params=GenerationParams(max_new_tokens=256))
    return project


def test_block_audio_comes_in_order_once_per_block_as_the_chosen_takes(engine, tmp_path):
    got: list[tuple[int, np.ndarray]] = []
    with _project(tmp_path / "ep.diaproj") as project:
        summary = render_episode(project, engine, on_block_audio=lambda i, audio: got.append((i, audio)))
        blocks = project.blocks()
        assert summary.rendered == [0, 1, 2, 3]
        assert [i for i, _ in got] == [0, 1, 2, 3]
        for (_, audio), block in zip(got, blocks):
            np.testing.assert_array_equal(audio, project.take_audio(block.chosen))


def test_blocks_that_already_have_takes_are_handed_over_without_rendering(engine, tmp_path):
    with _project(tmp_path / "ep.diaproj") as project:
        render_episode(project, engine)
        got = []
        summary = render_episode(project, engine, on_block_audio=lambda i, _audio: got.append(i))
    assert summary.rendered == [] and got == [0, 1, 2, 3]


def test_stop_on_error_raises_the_first_failure_and_keeps_it_recorded(engine, tmp_path):
    got = []
    with _project(tmp_path / "ep.diaproj") as project:
        with pytest.raises(GenerationError):
            render_episode(project, FailingBlock(engine, "Hi there"), on_block_audio=lambda i, _a: got.append(i),
                           stop_on_error=True)
        assert [b.state for b in project.blocks()] == ["done", "failed", "pending", "pending"]
    assert got == [0]
