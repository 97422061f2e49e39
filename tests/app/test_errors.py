"""Exceptions become messages a user can act on: title, sentence, hint, and where to go."""

from __future__ import annotations

import logging

import engine
from app import errors
from app.errors import describe


def test_engine_errors_get_titles_hints_and_actions():
    err = describe(engine.ModelNotFoundError("the model folder /x does not exist"))
    assert err.title == "The Dia model isn't available" and err.action == "model_settings"
    assert err.message == "The model folder /x does not exist."
    assert "Model settings" in err.hint
    script = describe(engine.InvalidScriptError("the script must open with [S1], not [S2]", line=2, column=5))
    assert script.action == "script" and (script.line, script.column) == (2, 5)
    assert script.message.endswith("(line 2, column 5)")
    assert describe(engine.MissingTranscriptError("Voice 'Bo' has no transcript")).action == "voice_library"


def test_other_exceptions_are_plain_language_and_logged(caplog, monkeypatch):
    monkeypatch.setitem(errors.LOG_FILE_HINT, "path", "/tmp/dia-studio.log")
    assert describe(MemoryError()).title == "Out of memory"
    denied = describe(PermissionError(13, "Permission denied", "/root/out.wav"))
    assert denied.title == "Permission denied" and "/root/out.wav" in denied.message
    with caplog.at_level(logging.ERROR):
        odd = describe(RuntimeError("boom"))
    assert odd.title == "Something went wrong" and odd.message == "RuntimeError: boom"
    assert "/tmp/dia-studio.log" in odd.hint
    assert "boom" in caplog.text  # the traceback goes to the log, not to the user


def test_a_message_starting_with_a_plain_word_becomes_a_sentence():
    assert describe(engine.StorageError("the history can't be saved")).message == "The history can't be saved."
    assert describe(engine.InvalidParameterError("it's too long!")).message == "It's too long!"


def test_a_message_starting_with_a_name_or_identifier_is_shown_as_the_engine_wrote_it():
    written = ["dia-studio serve needs the model first", "ffmpeg could not encode the MP3 (exit status 1)",
               "cfg_scale must be between 1 and 5 (got 9)", "voice.wav is not a WAV file",
               "--port must be between 0 and 65535 (got 70000)", "libsndfile can't read this file"]
    for message in written:
        shown = describe(engine.InvalidParameterError(message)).message
        assert shown.rstrip(".") == message.rstrip("."), shown
