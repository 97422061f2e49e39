"""``dia-studio render`` as a user runs it: a real process, tiny checkpoints, a WAV out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.engine.dac_fixtures import write_transformers_dac
from tests.engine.dia_fixtures import save_nari_folder, tiny_transformers_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-models")
    save_nari_folder(tiny_transformers_model(), root / "dia", filename="dia-v1.pth")
    write_transformers_dac(root / "dac")
    return root


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "app.launcher", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=600)


def test_render_writes_the_model_audio(models, tmp_path):
    script = tmp_path / "script.txt"
    script.write_text("[S1] Good morning. [S2] Morning! (laughs)\n", encoding="utf-8")
    out = tmp_path / "out.wav"
    proc = run_cli("render", str(script), "-o", str(out), "--model", str(models / "dia"), "--codec",
                   str(models / "dac"), "--seed", "5", "--max-new-tokens", "256", "--dtype", "float32")
    assert proc.returncode == 0, proc.stderr
    assert "Rendering" in proc.stderr and "seed 5" in proc.stderr  # progress bar and summary on stderr
    audio, rate = sf.read(out, dtype="float32")
    assert rate == 44100 and audio.ndim == 1 and len(audio) % 512 == 0 and len(audio) > 0
    info = json.loads(sf.SoundFile(out).comment)
    assert info["seed"] == 5 and info["max_new_tokens"] == 256

    # the same render through the API gives the same samples: nothing trimmed or normalised
    from engine.params import GenerationParams
    from engine.pipeline import DiaEngine, EngineOptions, RenderRequest

    engine = DiaEngine.load(EngineOptions(model=str(models / "dia"), codec=str(models / "dac"), dtype="float32"))
    ref = engine.render(RenderRequest(script.read_text(), GenerationParams(seed=5, max_new_tokens=256)))
    assert sf.info(out).subtype == "FLOAT"
    assert len(ref.audio) == len(audio)
    np.testing.assert_array_equal(audio, ref.audio)  # bit for bit: nothing trimmed, normalised or requantised


def test_render_errors_are_one_clear_line(models, tmp_path):
    out = tmp_path / "x.wav"
    proc = run_cli("render", "-", "-o", str(out), "--model", str(models / "dia"), "--codec", str(models / "dac"),
                   stdin="[S3] Who am I?")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error [invalid_script]")
    assert "Traceback" not in proc.stderr and not out.exists()

    proc = run_cli("render", "-", "-o", str(out), "--temperature", "3", stdin="[S1] Hi.")
    assert proc.returncode == 2 and "temperature must be between 0.1 and 2.0" in proc.stderr

    proc = run_cli("render", "-", "-o", str(out), "--model", str(tmp_path / "missing"), stdin="[S1] Hi.")
    assert proc.returncode == 2 and "error [model_not_found]" in proc.stderr


def test_render_with_voice_files(models, tmp_path):
    t = np.arange(44100 * 2) / 44100
    tone = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    sf.write(tmp_path / "ann.wav", tone, 44100)
    sf.write(tmp_path / "bo.flac", np.stack([tone, tone], axis=1), 22050)
    common = ["--model", str(models / "dia"), "--codec", str(models / "dac"), "--seed", "3", "--max-new-tokens", "700",
              "--dtype", "float32", "--quiet"]
    out = tmp_path / "both.flac"
    proc = run_cli("render", "-", "-o", str(out), "--s1-voice", str(tmp_path / "ann.wav"), "--s1-transcript", "Hi there.",
                   "--s2-voice", str(tmp_path / "bo.flac"), "--s2-transcript", "Hello.", *common,
                   stdin="[S1] Shall we? [S2] Let's go.")
    assert proc.returncode == 0, proc.stderr
    assert sf.info(out).format == "FLAC" and sf.info(out).frames > 0

    # the prompt counts against max_new_tokens: a 6.4 s prompt does not fit in 256 positions
    proc = run_cli("render", "-", "-o", str(out), "--s1-voice", str(tmp_path / "ann.wav"), "--s1-transcript", "Hi there.",
                   "--s2-voice", str(tmp_path / "bo.flac"), "--s2-transcript", "Hello.",
                   *[a if a != "700" else "256" for a in common], stdin="[S1] Shall we? [S2] Let's go.")
    assert proc.returncode == 2 and "error [request_too_large]" in proc.stderr and "max_new_tokens" in proc.stderr

    proc = run_cli("render", "-", "-o", str(tmp_path / "s2.wav"), "--s2-voice", str(tmp_path / "ann.wav"), *common,
                   stdin="[S1] Shall we? [S2] Let's go.")
    assert proc.returncode == 2 and "error [missing_transcript]" in proc.stderr

    proc = run_cli("render", "-", "-o", str(tmp_path / "bad.wav"), "--s1-voice", str(tmp_path / "nope.wav"),
                   "--s1-transcript", "x", *common, stdin="[S1] Hi.")
    assert proc.returncode == 2 and "error [audio_decode_failed]" in proc.stderr


# --- Ctrl-C ------------------------------------------------------------------------------------

# Runs dia-studio and stops at one moment of a render, where the test sends SIGINT as Ctrl-C does.
HARNESS = r"""
import os, signal, sys, time

moment, argv = sys.argv[1], sys.argv[2:]


def pause():
    print("@" + moment, file=sys.stderr, flush=True)
    signal.pause()  # the SIGINT's KeyboardInterrupt is raised here


import engine.pipeline as pipeline

if moment == "load":
    load_dia = pipeline.load_dia
    pipeline.load_dia = lambda *a, **k: (pause(), load_dia(*a, **k))[1]
elif moment == "render":
    generate_codes = pipeline.generate_codes

    def generating(*a, on_progress=None, **k):
        def progress(p):
            pause()
        return generate_codes(*a, on_progress=progress, **k)
    pipeline.generate_codes = generating
elif moment in ("write", "written"):
    replace = os.replace

    def replacing(src, dst, *a, **k):  # the last step of an atomic write
        if moment == "write" and str(dst).endswith("out.wav"):
            pause()
        replace(src, dst, *a, **k)
        if moment == "written" and str(dst).endswith("out.wav"):
            pause()
    os.replace = replacing
elif moment == "exit":
    import atexit

    def library_cleanup():  # stands for a library's atexit work, registered before the render
        print("@exit", file=sys.stderr, flush=True)
        for _ in range(50):
            time.sleep(0.02)
    atexit.register(library_cleanup)

from app.launcher import main

sys.exit(main(argv))
"""


def interrupt_render_at(moment: str, models: Path, tmp_path: Path) -> tuple[int, str, Path]:
    """Run a render, send SIGINT when it reaches ``moment``; returns (exit status, stderr, output path)."""
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS)
    script = tmp_path / "script.txt"
    script.write_text("[S1] Good morning. [S2] Morning!\n", encoding="utf-8")
    out = tmp_path / "out.wav"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(harness), moment, "render", str(script), "-o", str(out),
                             "--model", str(models / "dia"), "--codec", str(models / "dac"), "--seed", "5",
                             "--max-new-tokens", "256", "--dtype", "float32"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # until the harness says it is at the moment (or the process ends)
        seen.append(line)
        if line.strip() == "@" + moment:
            proc.send_signal(signal.SIGINT)
            break
    _, rest = proc.communicate(timeout=600)
    stderr = "".join(seen) + rest
    assert "@" + moment in stderr, stderr
    return proc.returncode, stderr, out


def no_parts_left(folder: Path) -> bool:
    return not [p.name for p in folder.iterdir() if p.name.endswith(".part")]


@pytest.mark.skipif(not hasattr(signal, "pause"), reason="POSIX signals")
@pytest.mark.parametrize("moment", ["load", "render", "write"])
def test_ctrl_c_during_a_render_cancels_cleanly(models, tmp_path, moment):
    code, stderr, out = interrupt_render_at(moment, models, tmp_path)
    assert code == 130, stderr
    assert stderr.strip().splitlines()[-1] == "Cancelled."
    assert stderr.count("Cancelled.") == 1 and "Traceback" not in stderr and "Exception ignored" not in stderr
    assert not out.exists() and no_parts_left(tmp_path)


@pytest.mark.skipif(not hasattr(signal, "pause"), reason="POSIX signals")
def test_ctrl_c_just_as_the_file_is_finished_leaves_the_whole_file(models, tmp_path):
    code, stderr, out = interrupt_render_at("written", models, tmp_path)
    assert code == 130, stderr
    assert stderr.strip().splitlines()[-1] == "Cancelled."
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    audio, rate = sf.read(out, dtype="float32")  # complete: the rename is the last step of the write
    assert rate == 44100 and len(audio) > 0 and no_parts_left(tmp_path)


@pytest.mark.skipif(not hasattr(signal, "pause"), reason="POSIX signals")
def test_ctrl_c_while_the_process_exits_is_ignored(models, tmp_path):
    code, stderr, out = interrupt_render_at("exit", models, tmp_path)
    assert code == 0, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr and "KeyboardInterrupt" not in stderr
    assert sf.info(out).frames > 0


def test_a_ctrl_c_already_ignores_the_next_one_when_it_reaches_the_command(monkeypatch):
    """The first Ctrl-C cancels; by the time its KeyboardInterrupt unwinds through the command, a second
    press is ignored (it once landed in the cancellation and printed a traceback)."""
    import engine.cli as cli

    seen = {}

    def command(argv):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            signal.pause()  # the KeyboardInterrupt is raised by here
        except KeyboardInterrupt:
            seen["while unwinding"] = signal.getsignal(signal.SIGINT)
            raise

    monkeypatch.setattr(cli, "_run", command)
    before = signal.getsignal(signal.SIGINT)
    try:
        assert cli.main([]) == 130
    finally:
        signal.signal(signal.SIGINT, before)
    assert seen["while unwinding"] == signal.SIG_IGN
