"""StreamingDacDecoder: stitched chunks equal a one-shot decode; latency and flush rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.model.dac import DacCodec, DacConfig
from engine.model.dac_stream import WINDOW_FRAMES, DecoderContext, StreamingDacDecoder, decoder_context
from tests.engine.dac_fixtures import TINY_DAC, random_state_dict, torch_threads

# In float64 a stream equals the one-shot decode up to the float32 output (~1 ulp of 1.0): the
# stages compute every sample from the same inputs. In float32 both differ from the exact decode
# by rounding, amplified by the random weights of these saturated tiny codecs: one-shot 3.7e-5,
# streams up to ~1.1e-4 depending on step sizes (different conv shapes round differently).
EXACT_ATOL = 1e-7
ROUNDING_ATOL = 2e-4
N_FRAMES = 61


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def codec() -> DacCodec:
    codec = DacCodec(TINY_DAC)
    codec.load_state_dict(random_state_dict(TINY_DAC, seed=4))
    return codec.requires_grad_(False)


@pytest.fixture(scope="module")
def codes() -> np.ndarray:
    return torch.randint(0, 1024, (N_FRAMES, 9), generator=torch.Generator().manual_seed(9)).numpy()


@pytest.fixture(scope="module")
def one_shot(codec, codes) -> np.ndarray:
    return codec.decode_numpy(codes)


def _stream(decoder: StreamingDacDecoder, codes: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    parts, start, i = [], 0, 0
    while start < len(codes):
        size = sizes[i % len(sizes)]
        parts.append(decoder.push(codes[start:start + size]))
        start, i = start + size, i + 1
    return parts + [decoder.flush()]


def test_receptive_field_of_the_44k_decoder():
    assert decoder_context(DacConfig()) == DecoderContext(left=10, right=10)
    assert decoder_context(TINY_DAC) == DecoderContext(left=10, right=10)  # widths do not matter


def test_receptive_field_bounds_the_influence_of_one_frame(codec, codes, one_shot):
    changed = codes.copy()
    changed[30] = (changed[30] + 7) % 1024
    moved = np.flatnonzero(codec.decode_numpy(changed) != one_shot)
    field = decoder_context(TINY_DAC)
    assert moved.size
    assert moved.min() // 512 >= 30 - field.right and moved.max() // 512 <= 30 + field.left
    assert moved.min() // 512 == 30 - field.right  # tight: the bound is reached


@pytest.fixture(scope="module")
def codec64(codec) -> DacCodec:
    """The same codec in float64, where rounding no longer hides a seam."""
    exact = DacCodec(TINY_DAC)
    exact.load_state_dict(codec.state_dict())
    return exact.double().requires_grad_(False)


@pytest.fixture(scope="module")
def exact(codec64, codes) -> np.ndarray:
    return codec64.decode_numpy(codes)


@pytest.mark.parametrize("sizes", [[1], [3], [7, 1, 13], [N_FRAMES]], ids=["1", "3", "7-1-13", "all"])
@pytest.mark.parametrize(("first", "chunk"), [(4, 8), (1, 5), (16, 64)])
def test_a_stream_computes_the_one_shot_decode(codec64, codes, exact, sizes, first, chunk):
    decoder = StreamingDacDecoder(codec64, first_chunk_frames=first, chunk_frames=chunk)
    audio = np.concatenate(_stream(decoder, codes, sizes))
    assert audio.dtype == np.float32 and audio.shape == exact.shape == (N_FRAMES * 512,)
    np.testing.assert_allclose(audio, exact, atol=EXACT_ATOL, rtol=0)
    assert decoder.samples_emitted == N_FRAMES * 512 and decoder.frames_received == N_FRAMES


@pytest.mark.parametrize("rates", [(2, 3), (3, 5), (4, 3, 2)], ids=["2-3", "3-5", "4-3-2"])
def test_a_stream_computes_the_one_shot_decode_at_odd_strides(rates):
    """Odd strides crop their transposed convs differently (output padding 1): still exact."""
    config = DacConfig(encoder_dim=4, encoder_rates=rates, decoder_dim=32, decoder_rates=rates[::-1])
    exact_codec = DacCodec(config)
    exact_codec.load_state_dict(random_state_dict(config, seed=2))
    exact_codec = exact_codec.double().requires_grad_(False)
    codes = torch.randint(0, 1024, (37, 9), generator=torch.Generator().manual_seed(0)).numpy()
    decoder = StreamingDacDecoder(exact_codec, first_chunk_frames=1, chunk_frames=4)
    audio = np.concatenate(_stream(decoder, codes, [3]))
    np.testing.assert_allclose(audio, exact_codec.decode_numpy(codes), atol=EXACT_ATOL, rtol=0)


@pytest.mark.parametrize("sizes", [[1], [7, 1, 13]], ids=["1", "7-1-13"])
def test_in_float32_a_stream_differs_from_one_shot_only_by_rounding(codec, codes, one_shot, exact, sizes):
    audio = np.concatenate(_stream(StreamingDacDecoder(codec), codes, sizes))
    np.testing.assert_allclose(audio, one_shot, atol=ROUNDING_ATOL, rtol=0)
    assert np.abs(audio - exact).max() < 4 * np.abs(one_shot - exact).max()  # no worse than rounding


def test_first_audio_comes_when_the_first_chunk_and_the_look_ahead_have_arrived(codec, codes):
    decoder = StreamingDacDecoder(codec, first_chunk_frames=6, chunk_frames=8)
    assert decoder.latency_frames == 6 + decoder_context(TINY_DAC).right == 16
    assert decoder.push(codes[:15]).size == 0
    first = decoder.push(codes[15:16]).size
    assert 6 * 512 <= first < 7 * 512  # the first chunk, and what of the next frame is already final


def test_each_step_finalises_its_frames(codec, codes):
    """After the first step, a step of k new frames yields exactly k frames of audio."""
    decoder = StreamingDacDecoder(codec, first_chunk_frames=6, chunk_frames=8)
    first = decoder.push(codes[:16]).size
    assert decoder.push(codes[16:23]).size == 0  # the next step needs 12 = 2 × 6, capped at 8
    assert decoder.push(codes[23:24]).size == 8 * 512
    assert decoder.push(codes[24:]).size == 4 * 8 * 512  # several steps from one push
    assert first + 5 * 8 * 512 + decoder.flush().size == N_FRAMES * 512


def test_steps_double_from_the_first_up_to_the_chunk_size(codec, codes):
    decoder = StreamingDacDecoder(codec, first_chunk_frames=2, chunk_frames=16)
    sizes = [len(decoder.push(codes[i:i + 1])) for i in range(N_FRAMES)]
    emitted = [s for s in sizes if s]
    assert sizes.index(emitted[0]) == decoder.latency_frames - 1
    assert [s // 512 for s in emitted[1:4]] == [4, 8, 16] and set(emitted[3:]) == {16 * 512}


def test_default_steps_are_the_window(codec):
    assert StreamingDacDecoder(codec).chunk_frames == WINDOW_FRAMES


def test_short_input_comes_out_at_flush(codec, codes):
    decoder = StreamingDacDecoder(codec)
    assert decoder.push(codes[:5]).size == 0
    np.testing.assert_allclose(decoder.flush(), codec.decode_numpy(codes[:5]), atol=ROUNDING_ATOL, rtol=0)
    assert StreamingDacDecoder(codec).flush().shape == (0,)


def test_reset_and_misuse(codec, codes, one_shot):
    decoder = StreamingDacDecoder(codec, first_chunk_frames=2, chunk_frames=4)
    decoder.push(torch.from_numpy(codes[:20]))
    decoder.flush()
    with pytest.raises(RuntimeError, match="reset"):
        decoder.push(codes[:1])
    decoder.reset()
    audio = np.concatenate(_stream(decoder, codes, [9]))
    np.testing.assert_allclose(audio, one_shot, atol=ROUNDING_ATOL, rtol=0)
    decoder.reset()
    with pytest.raises(ValueError, match="frames, n_q"):
        decoder.push(codes.T)
    decoder.reset()
    decoder.push(codes[:2, :4])
    with pytest.raises(ValueError, match="codebooks"):
        decoder.push(codes[2:4])
    decoder.reset()
    with pytest.raises(ValueError, match=r"\[0, 1024\)"):
        decoder.push(np.full((2, 9), 1024))
    with pytest.raises(ValueError, match="integer"):
        decoder.push(np.zeros((2, 9), dtype=np.float32))
    with pytest.raises(ValueError):
        StreamingDacDecoder(codec, chunk_frames=0)
