"""The .diaproj file: blocks, takes and identity across edits; corrupt, truncated and newer files."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from engine.episode.project import EpisodeProject, VoiceInput
from engine.errors import InvalidParameterError, ProjectCorruptError, StorageError
from engine.params import GenerationParams
from tests.engine.episode.episode_fixtures import dialogue, fake_result

VOICE = VoiceInput("Ann", (0.2 * np.sin(np.arange(44100 * 2) / 7.0)).astype(np.float32), "Hello, I am Ann.")


def _render_all(project: EpisodeProject) -> None:
    for block in project.blocks():
        if block.needs_render:
            project.add_take(block, fake_result(seed=block.seed))


@pytest.fixture
def project(tmp_path):
    with EpisodeProject(tmp_path / "ep.diaproj") as project:
        project.update(script=dialogue(40, chapter_every=20), model_key="tiny")
        yield project


def test_a_new_project_has_pending_blocks_and_chapters(project):
    blocks = project.blocks()
    assert blocks and {b.state for b in blocks} == {"pending"}
    assert [c.title for c in project.chapters()] == ["Chapter 1", "Chapter 2"]
    assert all(len(b.characters) <= 2 for b in blocks)


def test_takes_survive_reopening_and_the_file_is_a_single_file(project, tmp_path):
    _render_all(project)
    project.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.diaproj"]  # no -wal or -journal left
    with EpisodeProject(tmp_path / "ep.diaproj") as again:
        assert {b.state for b in again.blocks()} == {"done"}
        first = again.blocks()[0]
        np.testing.assert_allclose(again.take_audio(first.chosen), fake_result().audio, atol=1e-6)


def test_moved_blocks_keep_their_takes(project):
    _render_all(project)
    before = {b.identity for b in project.blocks()}
    project.update(script="# Cold open\n[Lee] Welcome, everyone, to the show.\n" + dialogue(40, chapter_every=20))
    blocks = project.blocks()
    assert [b.state for b in blocks[:1]] == ["pending"]
    assert all(b.state == "done" for b in blocks[1:]) and {b.identity for b in blocks[1:]} == before


def test_an_edited_turn_changes_only_blocks_next_to_it(project):
    _render_all(project)
    script = project.script.replace("Line number 25, fine.", "Line twenty-five, changed.")
    project.update(script=script)
    blocks = project.blocks()
    edited = next(b.index for b in blocks if "twenty-five" in b.text)
    assert blocks[edited].state == "changed"
    # the edit may move the cut next to it (a neighbour re-packs), never anything further away
    assert all(b.state == "done" for b in blocks if abs(b.index - edited) > 1)


def test_identity_covers_parameters_voices_and_model(project):
    _render_all(project)
    project.update(params=GenerationParams(temperature=1.2))
    assert {b.state for b in project.blocks()} == {"changed"}
    _render_all(project)
    project.update(cast={"Mara": VOICE})
    assert {b.state for b in project.blocks() if "Mara" in b.characters} == {"changed"}
    assert {b.state for b in project.blocks() if "Mara" not in b.characters} == {"done"}
    project.update(model_key="another model")
    assert {b.state for b in project.blocks()} == {"changed"}


def test_block_seeds_derive_from_the_project_seed_and_identity(project):
    seeds = [b.seed for b in project.blocks()]
    assert len(set(seeds)) == len(seeds)
    project.update(seed=1234)
    again = [b.seed for b in project.blocks()]
    assert set(again).isdisjoint(seeds)
    project.update(seed=1234)
    assert [b.seed for b in project.blocks()] == again


def test_choose_and_lock_a_take(project):
    _render_all(project)
    block = project.blocks()[2]
    second = project.add_take(block, fake_result(seed=99, tone=330.0))
    project.choose(2, second)
    project.lock(2)
    project.update(params=GenerationParams(temperature=1.0))  # would re-render everything else
    locked = project.blocks()[2]
    assert locked.state == "locked" and locked.chosen == second
    with pytest.raises(InvalidParameterError):
        project.choose(2, 10_000)


def test_per_block_overrides_change_only_that_block(project):
    _render_all(project)
    project.set_block_params(3, {"cfg_scale": 4.0})
    blocks = project.blocks()
    assert blocks[3].state == "changed" and blocks[3].params.cfg_scale == 4.0
    assert all(b.state == "done" for i, b in enumerate(blocks) if i != 3)


def test_a_voice_is_stored_once_with_a_place_for_its_codes(project):
    project.update(cast={"Mara": VOICE, "Theo": VOICE})
    voices = project.voices()
    assert len(voices) == 1 and voices[0].transcript == "Hello, I am Ann."
    assert project.voice_codes(voices[0].id, "dac") is None
    project.store_voice_codes(voices[0].id, "dac", np.ones((10, 9), dtype=np.int64), 7)
    codes, clip_frames = project.voice_codes(voices[0].id, "dac")
    assert codes.shape == (10, 9) and clip_frames == 7
    assert project.voice_codes(voices[0].id, "another codec") is None


REPEATED = ("[Mara] Same again, please.\n[Theo] Yes.\n---\n[Lee] Something else entirely.\n---\n"
            "[Mara] Same again, please.\n[Theo] Yes.\n")


@pytest.fixture
def repeated(tmp_path):
    """A project whose blocks 0 and 2 are the same exchange (same text, characters and settings)."""
    with EpisodeProject(tmp_path / "repeated.diaproj") as project:
        project.update(script=REPEATED, model_key="tiny")
        _render_all(project)
        yield project


def test_identical_blocks_have_their_own_identity_and_seed(repeated):
    first, _, second = repeated.blocks()
    assert first.text == second.text and first.params == second.params
    assert first.identity != second.identity and first.content_key != second.content_key
    assert first.seed != second.seed


def test_regenerating_one_of_identical_blocks_leaves_the_other_as_it_was(repeated):
    before = repeated.blocks()[2]
    retake = repeated.add_take(repeated.blocks()[0], fake_result(seed=99, tone=330.0), choose=True)
    repeated.lock(0)
    first, _, second = repeated.blocks()
    assert first.chosen == retake and first.locked and len(first.takes) == 2
    assert second == before  # same takes, choice, lock and state


def test_identical_blocks_keep_their_own_takes_after_an_edit_elsewhere(repeated):
    retake = repeated.add_take(repeated.blocks()[2], fake_result(seed=99, tone=330.0), choose=True)
    repeated.lock(0)
    kept = [repeated.blocks()[i] for i in (0, 2)]
    repeated.update(script="[Lee] A cold open.\n---\n" + REPEATED.replace("else entirely", "new"))
    blocks = repeated.blocks()
    first, second = blocks[1], blocks[3]
    assert [b.state for b in blocks] == ["pending", "locked", "pending", "done"]
    assert (first.identity, first.chosen) == (kept[0].identity, kept[0].chosen)
    assert (second.identity, second.chosen, second.takes) == (kept[1].identity, retake, kept[1].takes)


def test_status_has_exactly_the_documented_keys(project):
    status = project.status()
    assert set(status) == {"blocks", "chapters", "seconds_total"}
    assert set(status["blocks"][0]) == {"index", "characters", "text", "state", "takes", "chosen", "seconds"}


# --------------------------------------------------------------------------- damaged files

def _saved(tmp_path) -> bytes:
    with EpisodeProject(tmp_path / "ep.diaproj") as project:
        project.update(script=dialogue(20), model_key="tiny")
        _render_all(project)
    return (tmp_path / "ep.diaproj").read_bytes()


def _refused(path, error=ProjectCorruptError) -> None:
    before = path.read_bytes()
    with pytest.raises(error) as info:
        EpisodeProject(path)
    assert path.read_bytes() == before  # left untouched
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    return info.value


def test_a_truncated_project_is_project_corrupt(tmp_path):
    data = _saved(tmp_path)
    path = tmp_path / "ep.diaproj"
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in _refused(path).message


def test_garbage_is_project_corrupt(tmp_path):
    path = tmp_path / "ep.diaproj"
    path.write_bytes(np.random.default_rng(0).bytes(40_000))
    assert _refused(path).code == "project_corrupt"


def test_a_damaged_page_is_project_corrupt(tmp_path):
    data = bytearray(_saved(tmp_path))
    page = int.from_bytes(data[16:18], "big")
    data[page + 8: page + 200] = b"\xff" * 192  # the second page's b-tree header and cell pointers
    path = tmp_path / "ep.diaproj"
    path.write_bytes(bytes(data))
    _refused(path)


def test_another_programs_database_is_not_a_project(tmp_path):
    path = tmp_path / "other.diaproj"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    assert "another program" in _refused(path).message


def test_a_newer_schema_says_to_update(tmp_path):
    _saved(tmp_path)
    path = tmp_path / "ep.diaproj"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    error = _refused(path, StorageError)
    assert "newer Dia Studio" in error.message and "Update" in error.message
