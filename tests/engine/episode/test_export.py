"""Exporting an episode: every format decodes, carries its tags and chapters, and is written atomically.

Chapters are read back by mutagen (the tagging library podcast tools use) and by FFmpeg through
PyAV (what players built on FFmpeg see), each from the real file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import mutagen
import numpy as np
import pytest
from mutagen.id3 import ID3
from mutagen.mp4 import MP4

from engine.audio import decode_audio
from engine.episode.export import (
    EPISODE_FORMATS,
    Chapter,
    EpisodeMetadata,
    chapters_from_blocks,
    export_episode,
    format_chapter_time,
    write_chapters_json,
)
from engine.episode.master import JoinedEpisode
from engine.errors import InvalidParameterError, StorageError

SR = 44100
ROOT = Path(__file__).resolve().parents[3]
METADATA = EpisodeMetadata(title="Pilot — the long one", show="Night Shift", episode="7", date="2026-03-01",
                           comment='{"generator": "Dia Studio 0.1.0", "loudness": "podcast"}')
CHAPTERS = [Chapter("Cold open", 0.0, 1.5), Chapter("Café talk", 1.5, 4.0)]


def _episode(seconds: float = 4.0, channels: int = 1) -> JoinedEpisode:
    t = np.arange(int(seconds * SR)) / SR
    tone = (0.3 * np.sin(2 * np.pi * 220.0 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2.0 * t))).astype(np.float32)
    samples = np.repeat(tone[:, None], channels, axis=1)
    return JoinedEpisode(samples, SR, [(0.0, 1.5), (1.5, seconds)], None, None)


def _pyav_chapters(path: Path) -> list[tuple[float, str]]:
    with av.open(str(path)) as container:
        return [(float(c["start"] * c["time_base"]), c["metadata"].get("title", "")) for c in container.chapters()]


def _pyav_tags(path: Path) -> dict[str, str]:
    with av.open(str(path)) as container:
        tags = {k.lower(): v for k, v in container.metadata.items()}
        tags.update({k.lower(): v for k, v in container.streams.audio[0].metadata.items()})
    return tags


# --------------------------------------------------------------------------- audio and tags

@pytest.mark.parametrize("fmt", EPISODE_FORMATS)
def test_every_format_decodes_to_the_episode_length(tmp_path, fmt):
    path = export_episode(tmp_path / f"episode.{fmt}", _episode(), metadata=METADATA, chapters=CHAPTERS)
    decoded = decode_audio(path)
    # Lossy codecs add a few milliseconds of encoder delay and padding.
    assert decoded.samples.shape[0] / decoded.sample_rate == pytest.approx(4.0, abs=0.06)


@pytest.mark.parametrize("fmt", EPISODE_FORMATS)
def test_every_format_carries_title_show_episode_date_and_comment(tmp_path, fmt):
    path = export_episode(tmp_path / f"episode.{fmt}", _episode(), metadata=METADATA, chapters=CHAPTERS)
    tags = _pyav_tags(path)
    assert tags["title"] == METADATA.title
    assert tags["artist"] == METADATA.show
    assert tags["date"] == METADATA.date
    assert tags["comment"] == METADATA.comment
    assert METADATA.episode in (tags.get("track"), tags.get("tracknumber"), tags.get("episode_id"))


def test_m4a_names_the_show_and_episode_in_its_podcast_atoms(tmp_path):
    path = export_episode(tmp_path / "episode.m4a", _episode(), metadata=METADATA, chapters=CHAPTERS)
    tags = MP4(path).tags
    assert tags["tvsh"] == [METADATA.show]
    assert tags["tven"] == [METADATA.episode]


@pytest.mark.parametrize("channels", [1, 2])
def test_lossy_exports_keep_the_channel_count(tmp_path, channels):
    for fmt in ("mp3", "opus", "m4a"):
        path = export_episode(tmp_path / f"episode.{fmt}", _episode(channels=channels), metadata=METADATA,
                              chapters=[])
        with av.open(str(path)) as container:
            assert container.streams.audio[0].codec_context.channels == channels


def test_a_stereo_flac_has_identical_channels(tmp_path):
    path = export_episode(tmp_path / "episode.flac", _episode(channels=2), metadata=METADATA, chapters=[])
    samples = decode_audio(path).samples
    assert np.array_equal(samples[:, 0], samples[:, 1])


# --------------------------------------------------------------------------- chapters

@pytest.mark.parametrize("fmt", ["mp3", "m4a", "flac", "opus"])
def test_pyav_reads_the_chapters_back(tmp_path, fmt):
    path = export_episode(tmp_path / f"episode.{fmt}", _episode(), metadata=METADATA, chapters=CHAPTERS)
    assert _pyav_chapters(path) == [(0.0, "Cold open"), (1.5, "Café talk")]


def test_mp3_chapters_are_id3_chap_frames_under_an_ordered_top_level_ctoc(tmp_path):
    path = export_episode(tmp_path / "episode.mp3", _episode(), metadata=METADATA, chapters=CHAPTERS)
    tags = ID3(path)
    assert tags.version[:2] == (2, 3)
    (toc,) = tags.getall("CTOC")
    assert toc.flags & 0x03 == 0x03  # top-level and ordered
    chaps = {chap.element_id: chap for chap in tags.getall("CHAP")}
    assert [(chaps[i].start_time, chaps[i].end_time, chaps[i].sub_frames["TIT2"].text[0])
            for i in toc.child_element_ids] == [(0, 1500, "Cold open"), (1500, 4000, "Café talk")]


def test_m4a_chapters_are_read_by_mutagen(tmp_path):
    path = export_episode(tmp_path / "episode.m4a", _episode(), metadata=METADATA, chapters=CHAPTERS)
    assert [(c.start, c.title) for c in MP4(path).chapters] == [(0.0, "Cold open"), (1.5, "Café talk")]


@pytest.mark.parametrize("fmt", ["flac", "opus"])
def test_flac_and_opus_chapters_are_vorbis_chapter_comments(tmp_path, fmt):
    path = export_episode(tmp_path / f"episode.{fmt}", _episode(), metadata=METADATA, chapters=CHAPTERS)
    tags = mutagen.File(path).tags
    assert tags["CHAPTER001"] == ["00:00:00.000"] and tags["CHAPTER001NAME"] == ["Cold open"]
    assert tags["CHAPTER002"] == ["00:00:01.500"] and tags["CHAPTER002NAME"] == ["Café talk"]


def test_chapter_times_are_hours_minutes_seconds_and_milliseconds():
    assert format_chapter_time(3723.4567) == "01:02:03.457"


def test_the_podcast_chapters_json_has_version_start_times_and_titles(tmp_path):
    path = write_chapters_json(tmp_path / "chapters.json", CHAPTERS)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["version"] == "1.2.0"
    assert [(c["startTime"], c["title"]) for c in document["chapters"]] == [(0.0, "Cold open"), (1.5, "Café talk")]


def test_chapters_run_from_their_first_block_to_the_next_chapter_and_the_end():
    episode = JoinedEpisode(np.zeros((SR * 10, 1), np.float32), SR, [(0.0, 3.0), (3.4, 6.0), (7.2, 9.5)], None, None)
    chapters = chapters_from_blocks([("Intro", 0), ("Empty heading", 2), ("Main", 2)], episode)
    assert chapters == [Chapter("Intro", 0.0, 7.2), Chapter("Main", 7.2, 10.0)]


def test_chapters_past_the_episode_end_are_refused(tmp_path):
    with pytest.raises(InvalidParameterError, match="after the episode's end"):
        export_episode(tmp_path / "episode.mp3", _episode(), metadata=METADATA,
                       chapters=[Chapter("Intro", 0.0, 2.0), Chapter("Outro", 5.0, 6.0)])


def test_overlapping_chapters_are_refused(tmp_path):
    with pytest.raises(InvalidParameterError, match="not overlap"):
        write_chapters_json(tmp_path / "chapters.json", [Chapter("A", 0.0, 2.0), Chapter("B", 1.0, 3.0)])


# --------------------------------------------------------------------------- refusals and atomicity

def test_an_unknown_suffix_is_refused_with_the_choices(tmp_path):
    with pytest.raises(InvalidParameterError, match=r"\.m4a"):
        export_episode(tmp_path / "episode.aiff", _episode(), metadata=METADATA, chapters=[])


def test_an_export_that_fails_leaves_the_old_file_untouched(tmp_path):
    path = tmp_path / "episode.mp3"
    path.write_bytes(b"the previous export")
    with pytest.raises(InvalidParameterError):
        export_episode(path, _episode(), metadata=METADATA, chapters=[Chapter("Late", 9.0, 10.0)])
    assert path.read_bytes() == b"the previous export"
    assert os.listdir(tmp_path) == ["episode.mp3"]


def test_a_write_error_is_a_storage_error_and_leaves_no_partial_file(tmp_path):
    target = tmp_path / "episode.flac"
    target.mkdir()  # the finished file can't replace a folder
    with pytest.raises(StorageError) as err:
        export_episode(target, _episode(), metadata=METADATA, chapters=CHAPTERS)
    assert err.value.code == "storage_error"
    assert os.listdir(tmp_path) == ["episode.flac"] and not os.listdir(target)


def test_an_export_killed_mid_write_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "episode.mp3"
    path.write_bytes(b"the previous export")
    script = textwrap.dedent(f"""
        import numpy as np
        from engine.episode.export import EpisodeMetadata, export_episode
        from engine.episode.master import JoinedEpisode
        noise = (0.1 * np.random.default_rng(0).standard_normal((300 * {SR}, 1))).astype(np.float32)
        export_episode({str(path)!r}, JoinedEpisode(noise, {SR}, [], None, None),
                       metadata=EpisodeMetadata(), chapters=[])
    """)
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        while child.poll() is None and not any(p.name.endswith(".part") for p in tmp_path.iterdir()):
            pass
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the export finished before it could be killed"
    assert path.read_bytes() == b"the previous export"
    export_episode(path, _episode(), metadata=METADATA, chapters=[])  # sweeps the killed writer's part
    assert os.listdir(tmp_path) == ["episode.mp3"]
    assert decode_audio(path).samples.shape[0] > 0


def test_an_export_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = export_episode(tmp_path / "episode.opus", _episode(), metadata=METADATA, chapters=[])
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640
