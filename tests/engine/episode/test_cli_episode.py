"""``dia-studio episode …`` as a user runs it: real processes, a tiny model, a 40+ line script."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from tests.engine.episode.episode_fixtures import (
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
