"""Write a mastered episode to WAV, FLAC, MP3, Opus or M4A/AAC, with its tags and chapters.

Audio is encoded by libsndfile (WAV, FLAC) or FFmpeg through PyAV (MP3, Opus, AAC); tags and
chapters are then written with mutagen, in each format's own way:

- MP3: ID3v2.3 frames, chapters as CHAP frames under a CTOC table of contents;
- M4A: iTunes atoms; chapters as FFmpeg writes them (a Nero ``chpl`` atom and a QuickTime
  chapter track, which Apple's players read);
- FLAC and Opus: Vorbis comments, chapters as ``CHAPTER001=00:00:00.000`` / ``CHAPTER001NAME``;
- WAV: RIFF INFO tags; WAV has no chapter convention podcast apps read, so none are written.

Every file is written with ``engine.files.atomic_write``: an error or a kill leaves the old file
(or none), never half of one. Exports get the umask's usual permissions.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.audio import encode_planar, resample
from engine.episode.master import JoinedEpisode
from engine.errors import InvalidParameterError, MissingDependencyError, StorageError
from engine.files import atomic_write, atomic_write_text

EPISODE_FORMATS = ("wav", "flac", "mp3", "opus", "m4a")
_SUFFIX_FORMATS = {".wav": "wav", ".flac": "flac", ".mp3": "mp3", ".opus": "opus", ".ogg": "opus", ".m4a": "m4a"}

PODCAST_CHAPTERS_VERSION = "1.2.0"
"""The ``podcast:chapters`` JSON format version written (Podcasting 2.0)."""

CHAPTER_TOLERANCE_SECONDS = 0.002
"""Chapter times may overshoot the episode's end (or the next chapter) by this much rounding."""


@dataclass(frozen=True)
class _Codec:
    container: str
    encoder: str
    rate: int | None  # None: keep the episode's rate
    bit_rates: tuple[int, int]  # mono, stereo


# Bit rates follow common podcast delivery practice for speech.
_LOSSY = {
    "mp3": _Codec("mp3", "libmp3lame", None, (96_000, 128_000)),
    "opus": _Codec("ogg", "libopus", 48_000, (48_000, 64_000)),
    "m4a": _Codec("ipod", "aac", None, (96_000, 128_000)),
}
_LOSSY_RATES = {22050, 24000, 32000, 44100, 48000}


@dataclass(frozen=True)
class Chapter:
    """A chapter: its title and where it starts and ends, in seconds."""

    title: str
    start: float
    end: float


@dataclass(frozen=True)
class EpisodeMetadata:
    """The episode's tags; ``comment`` carries the generator and its settings."""

    title: str = ""
    show: str = ""
    episode: str = ""
    date: str = ""
    comment: str = ""


# --------------------------------------------------------------------------- public API

def episode_format_for_path(path: str | os.PathLike) -> str:
    """The export format a file name asks for (``.ogg`` means Opus in Ogg)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise InvalidParameterError(
            f"Unknown episode file type '{suffix or Path(path).name}'; use one of "
            + ", ".join(sorted(_SUFFIX_FORMATS)) + ".")
    return _SUFFIX_FORMATS[suffix]


def export_episode(path: str | os.PathLike, episode: JoinedEpisode, *, metadata: EpisodeMetadata,
                   chapters: Sequence[Chapter], fmt: str | None = None) -> Path:
    """Write ``episode`` to ``path`` atomically, with its tags and chapters embedded.

    ``fmt`` is one of ``EPISODE_FORMATS``; by default it comes from the suffix. Raises
    ``InvalidParameterError`` for an unknown format, an encoder this FFmpeg lacks or chapters
    that don't fit the episode, and ``StorageError`` when the file can't be written.
    """
    path = Path(path)
    fmt = (fmt or episode_format_for_path(path)).lower()
    if fmt not in EPISODE_FORMATS:
        raise InvalidParameterError(f"Unknown episode format '{fmt}'; use one of {', '.join(EPISODE_FORMATS)}.")
    if fmt in _LOSSY and not _has_encoder(_LOSSY[fmt].encoder):
        raise InvalidParameterError(
            f"This machine's FFmpeg cannot encode {fmt}; export to WAV or FLAC instead.")
    samples = _output_samples(episode)
    checked = check_chapters(chapters, duration=samples.shape[0] / float(episode.sample_rate))

    def write(tmp: Path) -> None:
        if fmt in _LOSSY:
            _encode_lossy(tmp, samples, episode.sample_rate, fmt, checked)
        else:
            _encode_soundfile(tmp, samples, episode.sample_rate, fmt, metadata)
        _TAGGERS[fmt](tmp, metadata, checked)

    return _write_or_fail(path, lambda: atomic_write(path, write))


COVER_FORMATS = ("mp3", "m4a", "flac")
"""The episode formats that carry a cover image (ID3 APIC, the ``covr`` atom, a FLAC picture)."""

_IMAGE_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def cover_image_type(image: bytes) -> str:
    """``image/png`` or ``image/jpeg`` from the image's first bytes; ``InvalidParameterError`` otherwise."""
    for magic, mime in _IMAGE_TYPES.items():
        if bytes(image[:len(magic)]) == magic:
            return mime
    raise InvalidParameterError("A cover image must be a PNG or JPEG file; convert it to one of those and try again.")


def embed_cover(path: str | os.PathLike, image: bytes, *, fmt: str | None = None) -> Path:
    """Put ``image`` (PNG or JPEG bytes) into the exported episode at ``path`` as its front cover,
    replacing any cover it had; the file is rewritten atomically.

    Raises ``InvalidParameterError`` for another image type or a format without covers (WAV,
    Opus: see ``COVER_FORMATS``), ``StorageError`` when the file can't be read or written."""
    path = Path(path)
    fmt = (fmt or episode_format_for_path(path)).lower()
    if fmt not in COVER_FORMATS:
        raise InvalidParameterError(f"A {fmt.upper()} file can't carry a cover image; export to "
                                    f"{', '.join(f.upper() for f in COVER_FORMATS)} for one.")
    mime = cover_image_type(image)

    def write(tmp: Path) -> None:
        tmp.write_bytes(path.read_bytes())
        _COVER_TAGGERS[fmt](tmp, bytes(image), mime)

    return _write_or_fail(path, lambda: atomic_write(path, write))


def _cover_mp3(tmp: Path, image: bytes, mime: str) -> None:
    from mutagen import id3

    tags = id3.ID3(tmp)
    tags.delall("APIC")
    tags.add(id3.APIC(encoding=id3.Encoding.UTF8, mime=mime, type=id3.PictureType.COVER_FRONT, desc="Cover",
                      data=image))
    tags.save(tmp, v2_version=3)


def _cover_m4a(tmp: Path, image: bytes, mime: str) -> None:
    from mutagen.mp4 import MP4, MP4Cover

    audio = MP4(tmp)
    if audio.tags is None:
        audio.add_tags()
    kind = MP4Cover.FORMAT_PNG if mime == "image/png" else MP4Cover.FORMAT_JPEG
    audio.tags["covr"] = [MP4Cover(image, imageformat=kind)]
    audio.save()


def _cover_flac(tmp: Path, image: bytes, mime: str) -> None:
    from mutagen.flac import FLAC, Picture

    audio = FLAC(tmp)
    picture = Picture()
    picture.type, picture.mime, picture.desc, picture.data = 3, mime, "Cover", image  # 3: front cover
    audio.clear_pictures()
    audio.add_picture(picture)
    audio.save()


_COVER_TAGGERS = {"mp3": _cover_mp3, "m4a": _cover_m4a, "flac": _cover_flac}


def write_chapters_json(path: str | os.PathLike, chapters: Sequence[Chapter]) -> Path:
    """Write a ``podcast:chapters`` JSON file (version 1.2.0) atomically; returns its path."""
    path = Path(path)
    checked = check_chapters(chapters)
    document = {
        "version": PODCAST_CHAPTERS_VERSION,
        "chapters": [{"startTime": round(c.start, 3), "endTime": round(c.end, 3), "title": c.title}
                     for c in checked],
    }
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    return _write_or_fail(path, lambda: atomic_write_text(path, text))


def chapters_from_blocks(openings: Sequence[tuple[str, int]], episode: JoinedEpisode) -> list[Chapter]:
    """Chapters from ``(title, index of the chapter's first block)`` pairs, in script order.

    Each chapter starts where its first block starts in ``episode`` and ends where the next
    chapter starts (the last at the episode's end). A chapter with no audio of its own (a
    heading right before another) is left out.
    """
    starts: list[tuple[str, float]] = []
    for title, block in openings:
        if not 0 <= block < len(episode.block_spans):
            raise InvalidParameterError(
                f"Chapter '{title}' opens block {block + 1}, but the episode has {len(episode.block_spans)} blocks.")
        starts.append((title, episode.block_spans[block][0]))
    ends = [start for _, start in starts[1:]] + [episode.samples.shape[0] / float(episode.sample_rate)]
    return [Chapter(title, start, end) for (title, start), end in zip(starts, ends) if end > start]


def check_chapters(chapters: Sequence[Chapter], *, duration: float | None = None) -> list[Chapter]:
    """Chapters validated and in order; ends past ``duration`` by a rounding error are clamped.

    Raises ``InvalidParameterError`` for an empty title, a chapter that ends before it starts,
    chapters out of order or overlapping, or one outside the episode.
    """
    checked: list[Chapter] = []
    for number, chapter in enumerate(chapters, start=1):
        title = " ".join(str(chapter.title).split())
        start, end = float(chapter.start), float(chapter.end)
        if not title:
            raise InvalidParameterError(f"Chapter {number} has no title; give every chapter a title.")
        if not (math.isfinite(start) and math.isfinite(end) and 0.0 <= start < end):
            raise InvalidParameterError(
                f"Chapter {number} ('{title}') runs from {start:g} s to {end:g} s; it must start at 0 s "
                "or later and end after it starts.")
        if checked and start < checked[-1].end - CHAPTER_TOLERANCE_SECONDS:
            raise InvalidParameterError(
                f"Chapter {number} ('{title}') starts at {start:g} s, before chapter {number - 1} ends; "
                "chapters must be in order and not overlap.")
        if duration is not None:
            if start >= duration:
                raise InvalidParameterError(
                    f"Chapter {number} ('{title}') starts at {start:g} s, after the episode's end "
                    f"({duration:.3f} s).")
            if end > duration + CHAPTER_TOLERANCE_SECONDS:
                raise InvalidParameterError(
                    f"Chapter {number} ('{title}') ends at {end:g} s, after the episode's end ({duration:.3f} s).")
            end = min(end, duration)
        if checked and start < checked[-1].end:
            checked[-1] = Chapter(checked[-1].title, checked[-1].start, start)
        checked.append(Chapter(title, start, end))
    return checked


def format_chapter_time(seconds: float) -> str:
    """``HH:MM:SS.mmm``, the time format of Vorbis-comment chapters."""
    millis = round(float(seconds) * 1000.0)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


# --------------------------------------------------------------------------- encoding

def _write_or_fail(path: Path, write) -> Path:
    try:
        return write()
    except (InvalidParameterError, MissingDependencyError, StorageError):
        raise
    except Exception as exc:  # OSError, FFmpeg's and mutagen's errors: all mean "couldn't write"
        raise StorageError(
            f"Could not write {path}: {exc}. Check that the folder exists, is writable and has free space."
        ) from exc


def _has_encoder(name: str) -> bool:
    try:
        import av

        av.Codec(name, "w")
        return True
    except Exception:
        return False


def _output_samples(episode: JoinedEpisode) -> np.ndarray:
    arr = np.asarray(episode.samples, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] not in (1, 2):
        raise InvalidParameterError(f"An episode is mono or stereo; got samples of shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise InvalidParameterError("The episode has no audio to export; render its blocks first.")
    return np.clip(arr, -1.0, 1.0)


def _encode_soundfile(tmp: Path, samples: np.ndarray, rate: int, fmt: str, metadata: EpisodeMetadata) -> None:
    import soundfile as sf

    with sf.SoundFile(str(tmp), "w", samplerate=int(rate), channels=samples.shape[1], subtype="PCM_16",
                      format=fmt.upper()) as f:
        if fmt == "wav":  # FLAC is tagged with mutagen afterwards, like the other formats
            for key, value in _info_tags(metadata).items():
                setattr(f, key, value)
        f.write(samples)


def _encode_lossy(tmp: Path, samples: np.ndarray, rate: int, fmt: str, chapters: list[Chapter]) -> None:
    import av

    codec = _LOSSY[fmt]
    out_rate = codec.rate or (int(rate) if int(rate) in _LOSSY_RATES else 44100)
    samples = resample(samples, rate, out_rate)
    layout = "mono" if samples.shape[1] == 1 else "stereo"
    options = {"movflags": "+faststart"} if fmt == "m4a" else {}
    with av.open(str(tmp), mode="w", format=codec.container, options=options) as container:
        stream = container.add_stream(codec.encoder, rate=out_rate, layout=layout)
        stream.bit_rate = codec.bit_rates[samples.shape[1] - 1]
        if fmt == "m4a" and chapters:  # mutagen can't write MP4 chapters; FFmpeg's muxer can
            if not hasattr(container, "set_chapters"):
                raise MissingDependencyError(
                    "This PyAV is too old to write M4A chapters; upgrade it (pip install -U av) "
                    "or export MP3.")
            container.set_chapters([
                {"id": i + 1, "start": round(c.start * 1000), "end": round(c.end * 1000),
                 "time_base": Fraction(1, 1000), "metadata": {"title": c.title}}
                for i, c in enumerate(chapters)])
        encode_planar(container, stream, samples, out_rate, layout, block=1 << 14)


# --------------------------------------------------------------------------- tagging

def _info_tags(metadata: EpisodeMetadata) -> dict[str, str]:
    tags = {"title": metadata.title, "artist": metadata.show, "album": metadata.show,
            "tracknumber": metadata.episode, "date": metadata.date, "comment": metadata.comment}
    return {key: value for key, value in tags.items() if value}


def _vorbis_comments(metadata: EpisodeMetadata, chapters: list[Chapter]) -> list[tuple[str, str]]:
    comments = [(key.upper(), value) for key, value in _info_tags(metadata).items()]
    for number, chapter in enumerate(chapters, start=1):
        comments.append((f"CHAPTER{number:03d}", format_chapter_time(chapter.start)))
        comments.append((f"CHAPTER{number:03d}NAME", chapter.title))
    return comments


def _tag_none(tmp: Path, metadata: EpisodeMetadata, chapters: list[Chapter]) -> None:
    """WAV: the RIFF INFO tags went in with the audio."""


def _tag_flac(tmp: Path, metadata: EpisodeMetadata, chapters: list[Chapter]) -> None:
    from mutagen.flac import FLAC

    audio = FLAC(tmp)
    if audio.tags is None:
        audio.add_tags()
    audio.tags.clear()
    audio.tags.extend(_vorbis_comments(metadata, chapters))
    audio.save()


def _tag_opus(tmp: Path, metadata: EpisodeMetadata, chapters: list[Chapter]) -> None:
    from mutagen.oggopus import OggOpus

    audio = OggOpus(tmp)
    audio.tags.clear()  # drops FFmpeg's "encoder" comment; the vendor string stays
    audio.tags.extend(_vorbis_comments(metadata, chapters))
    audio.save()


def _tag_mp3(tmp: Path, metadata: EpisodeMetadata, chapters: list[Chapter]) -> None:
    from mutagen import id3

    tags = id3.ID3()  # replaces the tag FFmpeg wrote
    text_frames = {id3.TIT2: metadata.title, id3.TPE1: metadata.show, id3.TALB: metadata.show,
                   id3.TRCK: metadata.episode, id3.TDRC: metadata.date}
    for frame, value in text_frames.items():
        if value:
            tags.add(frame(encoding=id3.Encoding.UTF8, text=[value]))
    if metadata.comment:
        tags.add(id3.COMM(encoding=id3.Encoding.UTF8, lang="eng", desc="", text=[metadata.comment]))
    ids = [f"chp{number}" for number in range(len(chapters))]
    if chapters:
        tags.add(id3.CTOC(element_id="toc", flags=id3.CTOCFlags.TOP_LEVEL | id3.CTOCFlags.ORDERED,
                          child_element_ids=ids,
                          sub_frames=[id3.TIT2(encoding=id3.Encoding.UTF8, text=["Chapters"])]))
    for element_id, chapter in zip(ids, chapters):
        tags.add(id3.CHAP(element_id=element_id, start_time=round(chapter.start * 1000),
                          end_time=round(chapter.end * 1000), start_offset=0xFFFFFFFF,
                          end_offset=0xFFFFFFFF,
                          sub_frames=[id3.TIT2(encoding=id3.Encoding.UTF8, text=[chapter.title])]))
    tags.save(tmp, v2_version=3)  # ID3v2.3: what podcast apps read most widely


def _tag_m4a(tmp: Path, metadata: EpisodeMetadata, chapters: list[Chapter]) -> None:
    from mutagen.mp4 import MP4

    audio = MP4(tmp)
    if audio.tags is None:
        audio.add_tags()
    audio.tags.clear()
    atoms = {"\xa9nam": metadata.title, "\xa9ART": metadata.show, "\xa9alb": metadata.show,
             "tvsh": metadata.show, "tven": metadata.episode, "\xa9day": metadata.date,
             "\xa9cmt": metadata.comment}
    for atom, value in atoms.items():
        if value:
            audio.tags[atom] = [value]
    audio.save()


_TAGGERS = {"wav": _tag_none, "flac": _tag_flac, "opus": _tag_opus, "mp3": _tag_mp3, "m4a": _tag_m4a}


__all__ = [
    "COVER_FORMATS",
    "EPISODE_FORMATS",
    "PODCAST_CHAPTERS_VERSION",
    "Chapter",
    "EpisodeMetadata",
    "chapters_from_blocks",
    "check_chapters",
    "cover_image_type",
    "embed_cover",
    "episode_format_for_path",
    "export_episode",
    "format_chapter_time",
    "write_chapters_json",
]
