"""The voice library on a real SQLite file and real audio files in every import format."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zipfile

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from engine import audio
from engine.errors import (
    AudioDecodeFailedError,
    InvalidParameterError,
    InvalidVoiceSampleError,
    MissingTranscriptError,
)
from engine.voices import (
    GAP_SECONDS,
    VoiceLibrary,
    assemble_prompt,
    clean_transcript,
    load_audio,
)
from tests.engine.test_audio_samples import FORMATS, SENTENCE, speech  # noqa: F401  (fixture)

SR = audio.TARGET_SAMPLE_RATE
EXPECTED_FORMAT = {"wav": "wav/pcm_16", "flac": "flac/pcm_16", "mp3": "mp3/mp3", "m4a": "mp4/aac",
                   "ogg": "ogg/vorbis", "opus": "ogg/opus", "webm": "webm/opus"}


@pytest.fixture
def library(data_dir):
    with VoiceLibrary() as lib:
        yield lib


@pytest.fixture(scope="module")
def voice(speech):
    """The spoken sentence at 44.1 kHz mono."""
    decoded = audio.decode_audio(speech["wav"])
    return audio.resample(audio.to_mono(decoded.samples), decoded.sample_rate)


def write_wav(path, samples, sr=SR):
    sf.write(path, samples, sr, subtype="PCM_16")
    return path


def folders(lib):
    return sorted(p.name for p in lib.samples_dir.iterdir())


# --------------------------------------------------------------------------- store

def test_default_location_is_the_data_dir(data_dir):
    with VoiceLibrary() as lib:
        assert lib.root == data_dir / "voices"
        assert (data_dir / "voices" / "library.sqlite3").is_file()
        assert lib.db.query_one("PRAGMA journal_mode")[0] == "wal"
        assert lib.db.schema_version == 1
        assert lib.list() == [] and len(lib) == 0 and lib.default() is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_add_every_import_format(library, speech, fmt):
    sample = library.add(speech[fmt], speaker_name="  Ann   Lee ", transcript=f"[S1] {SENTENCE}")
    assert sample.speaker_name == "Ann Lee"
    assert sample.transcript == SENTENCE  # the tag is the library's job, not the transcript's
    assert sample.original_filename == f"speech.{fmt}"
    assert sample.original_format == EXPECTED_FORMAT[fmt]
    assert sample.original_sample_rate == (48000 if fmt in ("opus", "webm") else 22050)
    assert sample.original_channels == (2 if fmt == "ogg" else 1)
    assert 4.5 < sample.duration < 5.3
    assert sample.warnings == []
    assert sample.created_at == sample.updated_at and sample.created_at.tzinfo is not None
    # The original is kept byte for byte, the prompt audio is lossless 44.1 kHz mono.
    assert sample.paths.original.read_bytes() == speech[fmt].read_bytes()
    assert sample.original_sha256 == hashlib.sha256(speech[fmt].read_bytes()).hexdigest()
    info = sf.info(sample.paths.audio)
    assert (info.format, info.samplerate, info.channels) == ("FLAC", SR, 1)
    samples = load_audio(sample)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) / SR == pytest.approx(sample.duration, abs=1e-3)
    loudness = pyloudnorm.Meter(SR).integrated_loudness(samples.astype(np.float64))
    assert -21.0 < loudness < -19.0 or audio.peak_dbfs(samples) > -1.1  # target, unless peak-limited
    assert library.get(sample.id) == sample


def test_add_bytes_and_a_stereo_recording(library, speech, voice):
    from_bytes = library.add(speech["mp3"].read_bytes(), speaker_name="Bytes", original_filename="memo.mp3")
    assert from_bytes.original_filename == "memo.mp3" and from_bytes.paths.original.suffix == ".mp3"
    take = audio.resample(np.stack([voice, 0.5 * voice], axis=1), SR, 48000)
    rec = library.add(take, sample_rate=48000, speaker_name="Mic", transcript=SENTENCE)
    assert (rec.original_format, rec.original_sample_rate, rec.original_channels) == ("recording/flac", 48000, 2)
    assert rec.paths.original.suffix == ".flac" and sf.info(rec.paths.original).channels == 2
    assert rec.original_filename.startswith("recording-")
    mono = load_audio(rec)
    assert abs(len(mono) / SR - rec.duration) < 1e-3
    with pytest.raises(InvalidParameterError):
        library.add(take, speaker_name="No rate")


def test_silence_is_trimmed(library, voice, tmp_path):
    padded = np.concatenate([np.zeros(2 * SR, np.float32), voice, np.zeros(3 * SR, np.float32)])
    sample = library.add(write_wav(tmp_path / "padded.wav", padded), speaker_name="Pad")
    assert sample.duration < len(voice) / SR + 0.3


def test_refusals_leave_nothing_behind(library, speech, voice, tmp_path):
    def refused(error, source, match, **kw):
        with pytest.raises(error, match=match) as info:
            library.add(source, speaker_name=kw.pop("speaker_name", "X"), **kw)
        return info.value

    assert refused(InvalidVoiceSampleError, write_wav(tmp_path / "quiet.wav", np.zeros(3 * SR, np.float32)),
                   "quiet.wav' is silent").code == "invalid_voice_sample"
    assert refused(InvalidVoiceSampleError, write_wav(tmp_path / "hiss.wav", np.full(SR, 1e-4, np.float32)),
                   "silent").code == "invalid_voice_sample"
    assert refused(InvalidVoiceSampleError, write_wav(tmp_path / "none.wav", np.zeros(0, np.float32)),
                   "empty").code == "invalid_voice_sample"
    assert refused(InvalidVoiceSampleError, write_wav(tmp_path / "blip.wav", voice[: SR // 2]),
                   "only 0.5 s").code == "invalid_voice_sample"
    long = np.concatenate([voice] * 7)  # ~35 s of speech
    assert refused(InvalidVoiceSampleError, write_wav(tmp_path / "talk.wav", long),
                   "limit is 30 s").code == "invalid_voice_sample"
    big = tmp_path / "huge.wav"
    big.write_bytes(speech["wav"].read_bytes() + bytes(11 * 1024 * 1024))
    assert refused(InvalidVoiceSampleError, big, "at most 10 MB").code == "invalid_voice_sample"
    assert refused(InvalidVoiceSampleError, big.read_bytes(), "at most 10 MB").code == "invalid_voice_sample"
    broken = tmp_path / "broken.m4a"
    broken.write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(500))
    assert refused(AudioDecodeFailedError, broken, "broken.m4a").code == "audio_decode_failed"
    assert refused(AudioDecodeFailedError, tmp_path / "gone.wav", "gone.wav").code == "audio_decode_failed"
    assert refused(InvalidParameterError, speech["wav"], "speaker name", speaker_name="  ").code == "invalid_parameter"
    assert refused(InvalidParameterError, speech["wav"], "80", speaker_name="x" * 81).code == "invalid_parameter"
    refused(InvalidParameterError, speech["wav"], "control", speaker_name="a\x07b")
    refused(InvalidParameterError, speech["wav"], r"\[S2\]", transcript="Hello [S2] there")
    assert len(library) == 0 and folders(library) == []
    first = library.add(speech["wav"], speaker_name="Ann")
    assert refused(InvalidVoiceSampleError, speech["wav"], "already in the library as 'Ann'").code == "invalid_voice_sample"
    assert len(library) == 1 and folders(library) == [first.uid]


def test_warnings_for_length_and_transcript(library, voice, tmp_path):
    short = library.add(write_wav(tmp_path / "short.wav", voice[: int(2.2 * SR)]), speaker_name="Short",
                        transcript="The quick brown fox")
    assert len(short.warnings) == 1 and "3–10 s" in short.warnings[0]
    long = library.add(write_wav(tmp_path / "long.wav", np.concatenate([voice] * 3)), speaker_name="Long",
                       transcript="words")
    assert len(long.warnings) == 1 and "3–10 s" in long.warnings[0]
    bare = library.add(write_wav(tmp_path / "ok.wav", voice), speaker_name="Bare")
    assert bare.warnings == [bare.warnings[0]] and "transcript" in bare.warnings[0]
    assert bare.to_dict()["warnings"] == bare.warnings
    json.dumps(bare.to_dict())


def test_transcript_cleaning():
    assert clean_transcript("  [s2]   Hello,\n  world (laughs) ") == "Hello, world (laughs)"
    assert clean_transcript(None) == ""
    with pytest.raises(InvalidParameterError):
        clean_transcript("x" * 2001)


# --------------------------------------------------------------------------- lookups and edits

def variants(voice, tmp_path, n):
    """n distinct files of the same speech (a duplicate original would be refused)."""
    return [write_wav(tmp_path / f"v{i}.wav", voice * (0.5 + 0.1 * i)) for i in range(n)]


def test_list_get_resolve(library, voice, tmp_path):
    a, b, c, d = variants(voice, tmp_path, 4)
    zoe = library.add(a, speaker_name="zoe")
    ann = library.add(b, speaker_name="Ann")
    bob1 = library.add(c, speaker_name="Bob")
    bob2 = library.add(d, speaker_name="Bob")
    assert [s.id for s in library.list()] == [ann.id, bob1.id, bob2.id, zoe.id]
    assert library.resolve(ann.id) == ann and library.resolve(str(ann.id)) == ann
    assert library.resolve("Ann") == ann and library.resolve("  ann ") == ann and library.resolve("ZOE") == zoe
    assert library.resolve(zoe) == zoe
    with pytest.raises(InvalidVoiceSampleError, match=f"ids {bob1.id}, {bob2.id}"):
        library.resolve("Bob")
    for unknown in ("Nobody", 999, "999"):
        with pytest.raises(InvalidVoiceSampleError) as info:
            library.resolve(unknown)
        assert info.value.code == "invalid_voice_sample"
    with pytest.raises(InvalidVoiceSampleError):
        library.get(999)
    with pytest.raises(InvalidVoiceSampleError):
        library.get("abc")


def test_rename_and_transcript_persist(data_dir, voice, tmp_path):
    (path,) = variants(voice, tmp_path, 1)
    with VoiceLibrary() as lib:
        sample = lib.add(path, speaker_name="Ann")
        renamed = lib.rename("Ann", "Ann Lee")
        assert renamed.speaker_name == "Ann Lee" and renamed.updated_at >= sample.updated_at
        lib.set_transcript(sample.id, "[S1] Hello there.")
    with VoiceLibrary() as lib:
        again = lib.get(sample.id)
        assert (again.speaker_name, again.transcript) == ("Ann Lee", "Hello there.")
        assert again.created_at == sample.created_at
        assert lib.set_transcript(sample.id, "").has_transcript is False
        with pytest.raises(InvalidParameterError):
            lib.rename(sample.id, "")
        with pytest.raises(InvalidVoiceSampleError):
            lib.rename(12345, "x")


def test_one_default_at_most(library, voice, tmp_path):
    a, b, c = variants(voice, tmp_path, 3)
    first = library.add(a, speaker_name="A", make_default=True)
    assert first.is_default and library.default() == first
    second = library.add(b, speaker_name="B", make_default=True)
    assert second.is_default and not library.get(first.id).is_default
    third = library.add(c, speaker_name="C")
    assert library.set_default("C").id == third.id
    assert [s.speaker_name for s in library.list() if s.is_default] == ["C"]
    assert library.set_default(None) is None and library.default() is None
    library.set_default(first.id)
    with pytest.raises(sqlite3.IntegrityError):  # the schema itself forbids two defaults
        with library.db.transaction() as conn:
            conn.execute("UPDATE voices SET is_default = 1 WHERE id = ?", (second.id,))
    assert library.default().id == first.id
    with pytest.raises(InvalidVoiceSampleError):
        library.set_default(999)


def test_delete_removes_files_and_never_reuses_ids(library, voice, tmp_path):
    a, b = variants(voice, tmp_path, 2)
    first = library.add(a, speaker_name="A")
    library.delete("A")
    assert len(library) == 0 and not first.paths.folder.exists() and folders(library) == []
    second = library.add(b, speaker_name="B")
    assert second.id > first.id
    with pytest.raises(InvalidVoiceSampleError):
        library.delete(first.id)
    library.add(a, speaker_name="A again")  # the same file can come back once removed


def test_concurrent_writers_from_two_connections(data_dir, voice, tmp_path):
    import threading

    paths = variants(voice, tmp_path, 6)
    libs = [VoiceLibrary(), VoiceLibrary()]
    errors = []

    def add(lib, group):
        try:
            for p in group:
                lib.add(p, speaker_name=p.stem)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(libs[i], paths[i::2])) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == []
    assert sorted(s.speaker_name for s in libs[0].list()) == [f"v{i}" for i in range(6)]
    [lib.close() for lib in libs]


# --------------------------------------------------------------------------- check / repair

def test_check_cleans_leftovers_and_repairs(library, voice, tmp_path):
    a, b = variants(voice, tmp_path, 2)
    keep = library.add(a, speaker_name="Keep")
    lost = library.add(b, speaker_name="Lost")
    (library.samples_dir / ("f" * 32)).mkdir()                 # a folder without a row or voice.json
    (library.samples_dir / ".trash-1").mkdir()                   # an interrupted delete
    fresh = library.samples_dir / ".staging-new"                 # another writer at work
    fresh.mkdir()
    keep.paths.audio.unlink()                                    # prompt audio lost: rebuilt
    for p in lost.paths.folder.iterdir():                        # everything lost: row dropped
        p.unlink()
    lost.paths.folder.rmdir()
    report = library.check()
    assert report.removed_folders == [".trash-1"]
    assert report.moved_aside == ["f" * 32] and (library.root / "recovery" / ("f" * 32)).is_dir()
    assert report.rebuilt_audio == [keep.id] and report.removed_rows == [lost.id]
    assert fresh.exists() and keep.paths.audio.is_file()
    assert len(load_audio(keep)) / SR == pytest.approx(keep.duration, abs=1e-3)
    assert library.check(stale_after=0).removed_folders == [".staging-new"]
    assert library.check().clean


# --------------------------------------------------------------------------- prompts

def test_assemble_both_speakers(library, voice, tmp_path):
    a, b = variants(voice, tmp_path, 2)
    ann = library.add(a, speaker_name="Ann", transcript="Hi, I'm Ann.")
    bo = library.add(b, speaker_name="Bo", transcript="And I'm Bo.")
    prompt = assemble_prompt(library, {"S2": "Bo", "S1": ann.id})
    gap = int(round(GAP_SECONDS * SR))
    expected = np.concatenate([load_audio(ann), np.zeros(gap, np.float32), load_audio(bo)])
    assert prompt.sample_rate == SR and prompt.samples.dtype == np.float32
    assert np.array_equal(prompt.samples, expected)
    assert prompt.duration == pytest.approx(ann.duration + GAP_SECONDS + bo.duration, abs=1e-3)
    assert prompt.transcript == "[S1] Hi, I'm Ann.\n[S2] And I'm Bo."
    assert prompt.speakers == {"S1": ann, "S2": bo} and not prompt.swap_speakers
    assert prompt.text_for(" [S1] Hello.\n[S2] Hey! ") == "[S1] Hi, I'm Ann.\n[S2] And I'm Bo.\n[S1] Hello.\n[S2] Hey!"
    same = assemble_prompt(library, {"S1": "Ann", "S2": "Ann"})  # one voice for both is allowed
    assert same.transcript == "[S1] Hi, I'm Ann.\n[S2] Hi, I'm Ann."


def test_assemble_one_speaker_and_none(library, voice, tmp_path):
    (a,) = variants(voice, tmp_path, 1)
    ann = library.add(a, speaker_name="Ann", transcript="Hi, I'm Ann.")
    s1 = assemble_prompt(library, {"S1": "Ann", "S2": None})
    assert np.array_equal(s1.samples, load_audio(ann)) and s1.transcript == "[S1] Hi, I'm Ann."
    assert s1.text_for("[S1] Hello.\n[S2] Hey.") == "[S1] Hi, I'm Ann.\n[S1] Hello.\n[S2] Hey."
    assert assemble_prompt(library, {}) is None and assemble_prompt(library, {"S1": None, "S2": ""}) is None


def test_assemble_s2_only_swaps_speakers(library, voice, tmp_path):
    (b,) = variants(voice, tmp_path, 1)
    bo = library.add(b, speaker_name="Bo", transcript="And I'm Bo.")
    prompt = assemble_prompt(library, {"S2": "Bo"})
    assert prompt.swap_speakers and prompt.speakers == {"S2": bo}
    assert prompt.transcript == "[S1] And I'm Bo."  # the model's text must open with [S1]
    text = prompt.text_for("[S1] Hello there.\n[S2] Hi! (laughs)\n[S1] Bye.")
    # The clip's voice (the model's S1) speaks the user's S2 lines; tags still alternate.
    assert text == "[S1] And I'm Bo.\n[S2] Hello there.\n[S1] Hi! (laughs)\n[S2] Bye."
    assert prompt.text_for("Just one speaker.") == "[S1] And I'm Bo.\n[S2] Just one speaker."


def test_assemble_errors(library, voice, tmp_path):
    a, b = variants(voice, tmp_path, 2)
    ann = library.add(a, speaker_name="Ann", transcript="Hi.")
    library.add(b, speaker_name="Mute")
    with pytest.raises(InvalidVoiceSampleError) as info:
        assemble_prompt(library, {"S1": "Nobody"})
    assert info.value.code == "invalid_voice_sample"
    with pytest.raises(MissingTranscriptError, match="'Mute'") as info:
        assemble_prompt(library, {"S1": "Ann", "S2": "Mute"})
    assert info.value.code == "missing_transcript"
    with pytest.raises(InvalidParameterError, match="S3"):
        assemble_prompt(library, {"S3": "Ann"})
    ann.paths.audio.write_bytes(b"not flac")
    with pytest.raises(AudioDecodeFailedError, match="'Ann'") as info:
        assemble_prompt(library, {"S1": "Ann"})
    assert info.value.code == "audio_decode_failed"
    ann.paths.audio.unlink()
    with pytest.raises(AudioDecodeFailedError, match="missing"):
        load_audio(ann)


# --------------------------------------------------------------------------- zip export / import

def test_export_import_round_trip_without_duplicates(tmp_path, speech, voice):
    with VoiceLibrary(tmp_path / "home") as home:
        ann = home.add(speech["m4a"], speaker_name="Ann", transcript="Hi, I'm Ann.", make_default=True)
        bo = home.add(speech["webm"], speaker_name="Bo", transcript="Bo here.")
        home.add(speech["mp3"], speaker_name="Cy")
        everything = home.export_zip(tmp_path / "out" / "voices.zip")
        just_bo = home.export_zip(tmp_path / "bo.zip", ["Bo"])
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["voices.zip"]
    with zipfile.ZipFile(everything) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["format"] == "dia-studio-voices" and len(manifest["samples"]) == 3

    with VoiceLibrary(tmp_path / "laptop") as laptop:
        assert [s.speaker_name for s in laptop.import_zip(just_bo).added] == ["Bo"]
        report = laptop.import_zip(everything)
        assert sorted(s.speaker_name for s in report.added) == ["Ann", "Cy"] and report.skipped == ["Bo"]
        assert laptop.import_zip(everything).added == []  # idempotent
        assert len(laptop) == 3
        copy = laptop.resolve("Ann")
        assert (copy.uid, copy.transcript, copy.original_format, copy.created_at) == \
            (ann.uid, ann.transcript, ann.original_format, ann.created_at)
        assert copy.is_default  # the laptop had no default yet
        assert copy.paths.original.read_bytes() == speech["m4a"].read_bytes()
        assert np.array_equal(load_audio(copy), load_audio(ann))
        assert laptop.resolve("Bo").uid == bo.uid
        laptop.delete("Cy")
        laptop.add(speech["mp3"], speaker_name="Cy, added by hand")
        assert laptop.import_zip(everything).skipped == ["Ann", "Bo", "Cy"]  # same original file


def test_import_refuses_bad_zips(tmp_path, speech):
    with VoiceLibrary(tmp_path / "home") as home:
        home.add(speech["wav"], speaker_name="Ann", transcript="Hi.")
        good = home.export_zip(tmp_path / "good.zip")
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("hello")
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": "something-else"}))
    newer = tmp_path / "newer.zip"
    with zipfile.ZipFile(newer, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": "dia-studio-voices", "version": 99, "samples": []}))
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data[:-10] + bytes(b ^ 0xFF for b in data[-10:]) if "original" in item.filename else data)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(evil, "w") as dst:
        manifest = json.loads(src.read("manifest.json"))
        manifest["samples"][0]["files"]["audio"] = "../../etc/passwd"
        dst.writestr("manifest.json", json.dumps(manifest))
    with VoiceLibrary(tmp_path / "other") as other:
        for bad, match in ((not_zip, "not a Dia Studio voice export"), (foreign, "bad manifest"),
                           (newer, "newer Dia Studio"), (tampered, "damaged"), (evil, "malformed")):
            with pytest.raises(InvalidVoiceSampleError, match=match) as info:
                other.import_zip(bad)
            assert info.value.code == "invalid_voice_sample"
        assert len(other) == 0 and folders(other) == []
