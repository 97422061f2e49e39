"""``dia-studio render`` refuses a bad script, output, voice or parameter before anything slow.

Every run here is offline with no model anywhere (an empty Hugging Face cache): a request that
got as far as the model would fail with ``model_not_found``; each must fail earlier, with its
own typed error, without "Loading the model…" and without writing anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = b"[S1] Good morning. [S2] Morning!\n"


def render(tmp_path: Path, *args: str, stdin: bytes = GOOD) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "DIA_STUDIO_DATA_DIR": str(tmp_path / "data")}
    env.pop("HF_HUB_CACHE", None)
    return subprocess.run([sys.executable, "-m", "app.launcher", "render", *args, "--offline"], cwd=ROOT,
                          env=env, input=stdin, capture_output=True, timeout=300)


def refused(proc: subprocess.CompletedProcess, code: str) -> str:
    """The error line, after checking it is the only outcome: exit 2, typed, before the model."""
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, err
    assert "Traceback" not in err and "Loading the model" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error [{code}]: "), err
    return last


def test_a_good_request_reaches_the_model_step(tmp_path):
    # the reference point: with nothing wrong, the only failure is the missing model
    proc = render(tmp_path, "-", "-o", str(tmp_path / "out.wav"))
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Loading the model" in err and "error [model_not_found]" in err
    assert not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize(("script", "code", "where"), [
    ("[S2] I open the show.", "invalid_script", "(line 1, column 1)"),
    ("[S1] Hello.\n[S2] Hi.\n[S3] And me.", "invalid_script", "(line 3, column 1)"),
    ("", "missing_input", "(line 1, column 1)"),
    ("  \n\t\n", "missing_input", "(line 1, column 1)"),
    ("[S1] Hello (laughs.\n[S2] Hi.", "invalid_script", "(line 1, column 12)"),
    ("[S1] Hello.\n[S2] Hi [S" + "0" * 28 + "3] there.", "invalid_script", "(line 2, column 9)"),
    ("[S1] " + "word " * 400, "request_too_large", "(line 1, column"),
])
def test_script_errors_come_before_the_model(tmp_path, script, code, where):
    line = refused(render(tmp_path, "-", "-o", str(tmp_path / "out.wav"), stdin=script.encode()), code)
    assert line.endswith(")") and where in line
    assert not (tmp_path / "out.wav").exists()


def test_an_unclosed_cue_is_named_in_the_message(tmp_path):
    line = refused(render(tmp_path, "-", "-o", str(tmp_path / "o.wav"), stdin=b"[S1] Ha (laughs.\n"),
                   "invalid_script")
    assert "unclosed cue (laughs." in line


def test_output_with_an_unknown_extension_is_refused_before_the_model(tmp_path):
    line = refused(render(tmp_path, "-", "-o", str(tmp_path / "out.txt")), "invalid_parameter")
    assert "'.txt'" in line and ".wav" in line
    assert not (tmp_path / "out.txt").exists()


def test_output_that_is_a_folder_is_refused(tmp_path):
    (tmp_path / "x.wav").mkdir()
    line = refused(render(tmp_path, "-", "-o", str(tmp_path / "x.wav")), "invalid_parameter")
    assert "is a folder" in line


def test_output_inside_a_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not a folder")
    line = refused(render(tmp_path, "-", "-o", str(tmp_path / "notes.txt" / "out.wav")), "storage_error")
    assert "is a file, not a folder" in line


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write to a read-only folder")
def test_output_in_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        line = refused(render(tmp_path, "-", "-o", str(folder / "out.wav")), "storage_error")
    finally:
        folder.chmod(0o755)
    assert str(folder) in line and list(folder.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no one may create files")
def test_output_in_a_folder_that_takes_no_files_is_refused_even_for_root(tmp_path):
    refused(render(tmp_path, "-", "-o", "/proc/dia-studio-test.wav"), "storage_error")


def test_a_missing_output_folder_is_fine_as_it_will_be_created(tmp_path):
    proc = render(tmp_path, "-", "-o", str(tmp_path / "new" / "deeper" / "out.wav"))
    assert "error [model_not_found]" in proc.stderr.decode()  # got past the output check
    assert not (tmp_path / "new").exists()  # and created nothing yet


def test_latin1_script_file_names_the_first_bad_byte(tmp_path):
    script = tmp_path / "latin1.txt"
    script.write_bytes("[S1] Hello.\n[S2] Très bien.\n".encode("latin-1"))
    line = refused(render(tmp_path, str(script), "-o", str(tmp_path / "o.wav")), "invalid_script")
    assert "0xE8 at byte 19" in line and "(line 2, column 8)" in line and "UTF-8" in line


def test_invalid_utf8_on_standard_input_is_refused(tmp_path):
    line = refused(render(tmp_path, "-", "-o", str(tmp_path / "o.wav"), stdin=b"[S1] caf\xe9 au lait"),
                   "invalid_script")
    assert "(line 1, column 9)" in line


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00",
    b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00>\x00\x01\x00\x00\x00\x10\xa5",
    b"\x00" * 100,
])
def test_binary_script_files_are_refused(tmp_path, data):
    script = tmp_path / "binary.bin"
    script.write_bytes(data)
    refused(render(tmp_path, str(script), "-o", str(tmp_path / "o.wav")), "invalid_script")


@pytest.mark.parametrize("data", [
    "\ufeff[S1] Good morning. [S2] Morning!".encode("utf-8"),
    "[S1] Good morning. [S2] Morning!".encode("utf-16"),
    b"\xfe\xff" + "[S1] Good morning. [S2] Morning!".encode("utf-16-be"),
])
def test_utf8_with_bom_and_utf16_script_files_are_read(tmp_path, data):
    script = tmp_path / "script.txt"
    script.write_bytes(data)
    proc = render(tmp_path, str(script), "-o", str(tmp_path / "o.wav"))
    assert "error [model_not_found]" in proc.stderr.decode()  # the script passed every check


def test_a_missing_script_file_is_missing_input(tmp_path):
    line = refused(render(tmp_path, str(tmp_path / "nope.txt"), "-o", str(tmp_path / "o.wav")), "missing_input")
    assert "not found" in line


def test_a_folder_as_script_is_missing_input(tmp_path):
    line = refused(render(tmp_path, str(tmp_path), "-o", str(tmp_path / "o.wav")), "missing_input")
    assert "is a folder" in line


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_script_file_is_missing_input(tmp_path):
    script = tmp_path / "secret.txt"
    script.write_text("[S1] Hi.")
    script.chmod(0)
    line = refused(render(tmp_path, str(script), "-o", str(tmp_path / "o.wav")), "missing_input")
    assert "cannot read" in line


def test_a_huge_script_file_is_refused_without_reading_it_all(tmp_path):
    script = tmp_path / "huge.txt"
    with open(script, "wb") as f:
        f.truncate(64 << 20)  # 64 MB of zero bytes, sparse on disk
    line = refused(render(tmp_path, str(script), "-o", str(tmp_path / "o.wav")), "request_too_large")
    assert "MB" in line


def test_a_bad_parameter_comes_before_the_model(tmp_path):
    line = refused(render(tmp_path, "-", "-o", str(tmp_path / "o.wav"), "--top-p", "0"), "invalid_parameter")
    assert "top_p must be between" in line


def test_a_missing_voice_file_comes_before_the_model(tmp_path):
    refused(render(tmp_path, "-", "-o", str(tmp_path / "o.wav"), "--s1-voice", str(tmp_path / "me.wav"),
                   "--s1-transcript", "Hi."), "audio_decode_failed")


def test_an_hour_long_voice_file_is_refused_without_decoding_it_all(tmp_path):
    from tests.engine.test_audio_bounds import constant_flac

    voice = tmp_path / "hour.flac"
    voice.write_bytes(constant_flac(3600))
    line = refused(render(tmp_path, "-", "-o", str(tmp_path / "o.wav"), "--s1-voice", str(voice),
                          "--s1-transcript", "Hi."), "invalid_voice_sample")
    assert "longer than" in line


def test_the_cli_process_skips_the_cycle_collector_at_exit():
    """Python's finalisation would walk torch's objects with the collector several times (~0.75 s
    after a render); the CLI freezes them at exit instead. A callback registered before the command
    runs after the CLI's own exit work, and sees the collector frozen."""
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('frozen' if gc.get_freeze_count() else 'not frozen'))\n"
            "from engine.cli import main\n"
            "sys.exit(main(['voices', '--help']))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("frozen") and "not frozen" not in proc.stdout
