"""End to end through the public engine API on tiny random checkpoints written in official layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import (
    CancelledError,
    InvalidParameterError,
    InvalidScriptError,
    MissingTranscriptError,
    ModelNotFoundError,
)
from engine.params import GenerationParams
from engine.pipeline import DiaEngine, EngineOptions, RenderRequest, VoicePrompt
from tests.engine.dac_fixtures import write_transformers_dac
from tests.engine.dia_fixtures import save_transformers_folder, tiny_transformers_model


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    save_transformers_folder(tiny_transformers_model(), root / "dia")
    write_transformers_dac(root / "dac")
    return root / "dia", root / "dac"


@pytest.fixture(scope="module")
def engine(tiny_dirs):
    return DiaEngine.load(EngineOptions(model=str(tiny_dirs[0]), codec=str(tiny_dirs[1]), dtype="float32"))


PARAMS = GenerationParams(max_new_tokens=256, seed=11)
SCRIPT = "[S1] Hello there. [S2] Hi! (laughs)"


def test_render_returns_model_audio_of_the_right_length(engine):
    progress = []
    result = engine.render(RenderRequest(SCRIPT, PARAMS), on_progress=progress.append)
    frames = result.codes.shape[0]
    assert result.audio.shape == (frames * 512,)
    assert result.sample_rate == 44100 and result.seed == 11
    assert result.model_text == SCRIPT
    assert np.isfinite(result.audio).all() and np.abs(result.audio).max() <= 1.0
    stages = {p.stage for p in progress}
    assert {"generate", "finish"} <= stages
    steps = [p.step for p in progress if p.stage == "generate"]
    assert steps == sorted(steps)
    assert steps[-1] == frames + 15  # one step per frame plus the delay tail
    # same seed, same codes
    again = engine.render(RenderRequest(SCRIPT, PARAMS))
    assert np.array_equal(again.codes, result.codes)
    # decoded in windows inside the decoder's receptive field: a one-shot decode up to float rounding
    np.testing.assert_allclose(engine.codec.decode_numpy(result.codes), result.audio, atol=2e-4)


def test_a_render_without_a_listener_has_the_streamed_audio(engine):
    """Streaming only adds a listener: the audio of a render is the same with or without one, up to
    the float rounding of where the decoding windows fall (a listener gets small ones first)."""
    plain = engine.render(RenderRequest(SCRIPT, PARAMS))
    streamed = engine.render(RenderRequest(SCRIPT, PARAMS), on_audio=lambda _chunk: None)
    assert np.array_equal(plain.codes, streamed.codes) and plain.audio.shape == streamed.audio.shape
    np.testing.assert_allclose(plain.audio, streamed.audio, atol=2e-4, rtol=0)


def test_a_long_render_is_decoded_in_bounded_windows(engine, monkeypatch):
    """The codec never sees the whole utterance at once: a one-shot decode's activations grow with
    the length (~1 GB per 10 s of audio with the real DAC), a streaming step's do not."""
    from engine.model import dia
    from engine.model.dac_stream import WINDOW_FRAMES, decoder_context

    decode = dia.DiaModel.decode

    def never_eos(self, tokens, state, last_only=True):  # random weights must not end the render early
        logits = decode(self, tokens, state, last_only)
        logits[..., 0, engine.model.cfg.eos_token_id] = float("-inf")
        return logits

    monkeypatch.setattr(dia.DiaModel, "decode", never_eos)
    steps = []
    quantizer_decode = engine.codec.quantizer.decode
    monkeypatch.setattr(engine.codec.quantizer, "decode",
                        lambda codes: steps.append(codes.shape[-1]) or quantizer_decode(codes))
    bound = WINDOW_FRAMES + decoder_context(engine.codec.config).right  # the first step also takes the look-ahead
    result = engine.render(RenderRequest(SCRIPT, GenerationParams(max_new_tokens=max(256, 2 * bound + 40), seed=3)))
    assert result.codes.shape[0] > 2 * bound
    assert len(steps) > 2 and max(steps) <= bound and sum(steps) == result.codes.shape[0]


def test_streamed_chunks_join_into_the_rendered_audio(engine):
    chunks = []
    result = engine.render(RenderRequest(SCRIPT, PARAMS), on_audio=chunks.append)
    assert len(chunks) > 1
    assert [c.start for c in chunks] == list(np.cumsum([0] + [len(c.samples) for c in chunks[:-1]]))
    joined = np.concatenate([c.samples for c in chunks])
    np.testing.assert_array_equal(joined, result.audio)
    # chunks decoded inside their receptive field equal a one-shot decode up to float rounding
    # (measured ~7e-5 at most on random weights, i.e. below -80 dBFS: no audible seam)
    one_shot = engine.codec.decode_numpy(result.codes)
    np.testing.assert_allclose(joined, one_shot, atol=2e-4)


def test_stream_iterator_and_cancel(engine):
    chunks = list(engine.stream(RenderRequest(SCRIPT, PARAMS)))
    assert sum(len(c.samples) for c in chunks) > 0
    calls = {"n": 0}

    def stop_after_five():
        calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(CancelledError):
        engine.render(RenderRequest(SCRIPT, PARAMS), should_stop=stop_after_five)


def test_voice_prompt_is_encoded_and_its_transcript_prepended(engine):
    t = np.arange(22050 * 2) / 22050
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], axis=1).astype(np.float32) * 0.3
    voice = VoicePrompt(stereo, 22050, "[S1] This is my voice.")
    result = engine.render(RenderRequest(SCRIPT, PARAMS, voice))
    assert result.model_text == "[S1] This is my voice.\n" + SCRIPT
    assert result.codes.shape[0] > 0
    with pytest.raises(MissingTranscriptError):
        engine.render(RenderRequest(SCRIPT, PARAMS, VoicePrompt(stereo, 22050, "  ")))


def test_speed_factor_changes_duration(engine):
    normal = engine.render(RenderRequest(SCRIPT, PARAMS))
    fast = engine.render(RenderRequest(SCRIPT, PARAMS.replace(speed_factor=1.5)))
    assert np.array_equal(fast.codes, normal.codes)
    assert abs(len(fast.audio) - len(normal.audio) / 1.5) < 0.02 * len(normal.audio)


def test_script_errors_are_typed(engine):
    with pytest.raises(InvalidScriptError) as err:
        engine.render(RenderRequest("[S2] I cannot open.", PARAMS))
    assert err.value.code == "invalid_script" and err.value.line == 1


@pytest.mark.parametrize("script", ["[S1] Hi\ud800 there.", "[S1] Hi\x01 there.", "[S1] Hi(laughs."])
def test_text_dia_cannot_read_is_refused_before_generation(engine, script):
    with pytest.raises(InvalidScriptError) as err:
        engine.render(RenderRequest(script, PARAMS))
    assert err.value.line == 1 and err.value.column == 8


def test_render_takes_only_a_render_request(engine):
    with pytest.raises(InvalidParameterError, match="RenderRequest"):
        engine.render("[S1] Hello there.")


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError):
        DiaEngine.load(EngineOptions(model=str(tmp_path / "nope"), codec=str(tmp_path / "nope2")))
    with pytest.raises(ModelNotFoundError) as err:
        DiaEngine.load(EngineOptions(model="nari-labs/Dia-1.6B-0626", offline=True))
    assert "offline" in str(err.value)


def test_bfloat16_and_int8_modes_stay_close_to_float32(tiny_dirs, engine):
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [0] * 6])
    tokens = torch.randint(0, 1024, (2, 8, 9))
    ref = _logits(engine.model, ids, tokens)
    for opts in (EngineOptions(dtype="bfloat16"), EngineOptions(dtype="float32", quantize="int8"),
                 EngineOptions(dtype="bfloat16", quantize="int8"), EngineOptions(dtype="bfloat16", quantize="int8-dynamic")):
        other = DiaEngine.load(EngineOptions(model=str(tiny_dirs[0]), codec=str(tiny_dirs[1]), dtype=opts.dtype,
                                             quantize=opts.quantize))
        got = _logits(other.model, ids, tokens)
        agree = (got.argmax(-1) == ref.argmax(-1)).float().mean().item()
        assert agree > 0.9, (opts, agree)
        assert (got - ref).abs().max() < 0.1 * ref.abs().max()


def _logits(model, ids, tokens):
    enc = model.encode(ids)
    state = model.start_decoder(enc, None, 16)
    return model.decode(tokens, state, last_only=False)


def test_only_s2_cloned_swaps_the_speakers_for_the_model(engine):
    from engine.voice_prompt import PromptPart, combine_parts

    tone = (0.3 * np.sin(2 * np.pi * 200 * np.arange(44100) / 44100)).astype(np.float32)
    voice = combine_parts([PromptPart("S2", tone, 44100, "Hello, it's Bo.")])
    assert voice.swap_speakers and voice.transcript == "[S1] Hello, it's Bo."
    result = engine.render(RenderRequest(SCRIPT, PARAMS, voice))
    assert result.model_text == "[S1] Hello, it's Bo.\n[S2] Hello there. [S1] Hi! (laughs)"


def _count_encoder_passes(engine, monkeypatch) -> list[int]:
    calls = []
    encode = engine.model.encode
    monkeypatch.setattr(engine.model, "encode", lambda ids, *a: calls.append(ids.shape[1]) or encode(ids, *a))
    return calls


def test_a_retake_of_the_same_text_reuses_its_encoding_and_sounds_the_same(engine, monkeypatch):
    """A second render of the same script (another take) skips the text encoder; with the same seed
    it gives the same codes and audio as the first."""
    passes = _count_encoder_passes(engine, monkeypatch)
    first = engine.render(RenderRequest("[S1] A retake, please.", PARAMS))
    again = engine.render(RenderRequest("[S1] A retake, please.", PARAMS))
    assert len(passes) == 1
    assert np.array_equal(first.codes, again.codes)
    np.testing.assert_array_equal(first.audio, again.audio)


def test_another_text_is_encoded_anew(engine, monkeypatch):
    passes = _count_encoder_passes(engine, monkeypatch)
    engine.render(RenderRequest("[S1] One text.", PARAMS))
    other = engine.render(RenderRequest("[S1] Another text entirely.", PARAMS))
    engine.render(RenderRequest("[S1] One text.", PARAMS))  # only the last text is kept
    assert len(passes) == 3
    assert other.model_text == "[S1] Another text entirely."


def test_a_cancelled_render_leaves_its_text_encoding_for_the_retake(engine, monkeypatch):
    passes = _count_encoder_passes(engine, monkeypatch)
    with pytest.raises(CancelledError):
        engine.render(RenderRequest("[S1] Stop me early.", PARAMS), should_stop=lambda: True)
    engine.render(RenderRequest("[S1] Stop me early.", PARAMS))
    assert len(passes) == 1
