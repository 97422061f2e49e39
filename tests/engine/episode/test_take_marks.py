"""A star and a label on each take, kept in the project file (and projects made before them upgrade)."""

from __future__ import annotations

import sqlite3

import pytest

from engine.episode.project import SCHEMA, EpisodeProject
from engine.errors import InvalidParameterError
from tests.engine.episode.episode_fixtures import dialogue, fake_result


@pytest.fixture
def project(tmp_path):
    with EpisodeProject(tmp_path / "ep.diaproj") as project:
        project.update(script=dialogue(4))
        block = project.blocks()[0]
        project.add_take(block, fake_result(seed=1))
        project.add_take(block, fake_result(seed=2))
        yield project


def test_a_new_take_has_no_star_and_no_label(project):
    take = project.blocks()[0].takes[0]
    assert (take.starred, take.label) == (False, "")


def test_star_and_label_are_kept_in_the_file_per_take(project, tmp_path):
    first, second = (t.id for t in project.blocks()[0].takes)
    project.set_take_starred(second)
    project.set_take_label(second, "  warmer \n read ")
    project.close()
    with EpisodeProject(tmp_path / "ep.diaproj") as again:
        takes = {t.id: t for t in again.blocks()[0].takes}
        assert (takes[second].starred, takes[second].label) == (True, "warmer read")
        assert (takes[first].starred, takes[first].label) == (False, "")
        again.set_take_starred(second, False)
        again.set_take_label(second, "")
        assert (again.blocks()[0].takes[1].starred, again.blocks()[0].takes[1].label) == (False, "")


def test_marking_a_take_that_does_not_exist_is_an_invalid_parameter(project):
    with pytest.raises(InvalidParameterError, match="no take 999"):
        project.set_take_starred(999)
    with pytest.raises(InvalidParameterError, match="no take 999"):
        project.set_take_label(999, "x")


def test_a_project_made_before_stars_and_labels_opens_with_its_takes_unmarked(tmp_path):
    path = tmp_path / "old.diaproj"
    with EpisodeProject(path) as project:
        project.update(script=dialogue(4))
        project.add_take(project.blocks()[0], fake_result())
    conn = sqlite3.connect(path)  # back to the first format: the takes table without the two columns
    conn.executescript("ALTER TABLE takes DROP COLUMN label; ALTER TABLE takes DROP COLUMN starred;")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with EpisodeProject(path) as project:
        take = project.blocks()[0].takes[0]
        assert (take.starred, take.label) == (False, "")
        project.set_take_starred(take.id)
        assert project.blocks()[0].takes[0].starred
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(SCHEMA)
    conn.close()
