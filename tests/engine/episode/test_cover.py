"""A cover image in the exported episode, where the format carries one (MP3 APIC, M4A covr, FLAC picture)."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from mutagen.flac import FLAC
from mutagen.id3 import ID3
from mutagen.mp4 import MP4, MP4Cover

from engine.audio import decode_audio
from engine.episode.export import Chapter, EpisodeMetadata, embed_cover, export_episode
from engine.episode.master import JoinedEpisode
from engine.errors import InvalidParameterError

SR = 44100
METADATA = EpisodeMetadata(title="Pilot", show="Night Shift", episode="7")
CHAPTERS = [Chapter("Open", 0.0, 1.0), Chapter("Close", 1.0, 2.0)]


def png(width: int = 4, height: int = 3) -> bytes:
    """A real (tiny, grey) PNG image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60 + b"\xff\xd9"  # the type is told by its first bytes


def exported(tmp_path, suffix: str):
    t = np.arange(2 * SR) / SR
    samples = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[:, None]
    episode = JoinedEpisode(samples, SR, [(0.0, 1.0), (1.0, 2.0)], None, None)
    path = tmp_path / f"ep{suffix}"
    export_episode(path, episode, metadata=METADATA, chapters=CHAPTERS)
    return path


def test_an_mp3_gets_a_front_cover_and_keeps_its_tags_and_chapters(tmp_path):
    path = exported(tmp_path, ".mp3")
    embed_cover(path, png())
    tags = ID3(path)
    [cover] = tags.getall("APIC")
    assert cover.type == 3 and cover.mime == "image/png" and cover.data == png()
    assert str(tags["TIT2"]) == "Pilot" and len(tags.getall("CHAP")) == 2
    assert decode_audio(path).samples.shape[0] > SR  # still the whole episode


def test_an_m4a_gets_a_covr_atom(tmp_path):
    path = exported(tmp_path, ".m4a")
    embed_cover(path, JPEG)
    [cover] = MP4(path).tags["covr"]
    assert bytes(cover) == JPEG and cover.imageformat == MP4Cover.FORMAT_JPEG
    assert MP4(path).tags["\xa9nam"] == ["Pilot"]


def test_a_flac_gets_a_picture_and_a_second_cover_replaces_the_first(tmp_path):
    path = exported(tmp_path, ".flac")
    embed_cover(path, JPEG)
    embed_cover(path, png())
    [picture] = FLAC(path).pictures
    assert picture.type == 3 and picture.mime == "image/png" and picture.data == png()
    assert FLAC(path)["TITLE"] == ["Pilot"]


@pytest.mark.parametrize("suffix", [".wav", ".opus"])
def test_formats_without_covers_say_which_formats_have_them(tmp_path, suffix):
    path = exported(tmp_path, suffix)
    before = path.read_bytes()
    with pytest.raises(InvalidParameterError, match="MP3, M4A, FLAC"):
        embed_cover(path, png())
    assert path.read_bytes() == before


def test_an_image_that_is_not_png_or_jpeg_is_refused_and_the_file_is_left_alone(tmp_path):
    path = exported(tmp_path, ".mp3")
    before = path.read_bytes()
    with pytest.raises(InvalidParameterError, match="PNG or JPEG"):
        embed_cover(path, io.BytesIO(b"GIF89a....").getvalue())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.mp3"]  # nothing left beside it
