"""StreamingDacDecoder: stitched chunks equal a one-shot decode; latency and flush rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.model.dac import DacCodec, DacConfig
from engine.model.dac_stream import DecoderContext, StreamingDacDecoder, decoder_context
from tests.engine.dac_fixtures import TINY_DAC, random_state_dict, torch_threads

# Seam tolerance. With the default context (the receptive field, 10 frames each side) the
# stitched audio differs from one-shot only by float rounding of differently sized convs:
# measured max |Δ| 7.1e-6 on this tiny codec, 1.4e-5–5.5e-5 on a full-width (1536) random
# decoder over 300 frames. One frame less context already gives 5e-3 (tiny) / 1e-2 (full).
SEAM_ATOL = 1e-4
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


@pytest.mark.parametrize("sizes", [[1], [3], [7, 1, 13], [N_FRAMES]], ids=["1", "3", "7-1-13", "all"])
@pytest.mark.parametrize(("first", "chunk"), [(4, 8), (1, 5), (16, 64)])
def test_stitched_chunks_equal_one_shot(codec, codes, one_shot, sizes, first, chunk):
    decoder = StreamingDacDecoder(codec, first_chunk_frames=first, chunk_frames=chunk)
    parts = _stream(decoder, codes, sizes)
    audio = np.concatenate(parts)
    assert audio.dtype == np.float32 and audio.shape == one_shot.shape == (N_FRAMES * 512,)
    assert all(len(p) % 512 == 0 for p in parts)
    np.testing.assert_allclose(audio, one_shot, atol=SEAM_ATOL, rtol=0)
    assert decoder.samples_emitted == N_FRAMES * 512 and decoder.frames_received == N_FRAMES


def test_too_little_context_shows_seams(codec, codes, one_shot):
    """The measurement behind the default: context below the receptive field is audible."""
    decoder = StreamingDacDecoder(codec, first_chunk_frames=8, chunk_frames=8, context_frames=2, lookahead_frames=2)
    error = np.abs(np.concatenate(_stream(decoder, codes, [5])) - one_shot).max()
    assert error > 100 * SEAM_ATOL


def test_latency_knob_and_chunking(codec, codes):
    decoder = StreamingDacDecoder(codec, first_chunk_frames=6, chunk_frames=8)
    assert decoder.latency_frames == 16
    assert decoder.push(codes[:15]).size == 0  # not yet: 6 new frames + 10 look-ahead needed
    assert decoder.push(codes[15:16]).size == 6 * 512
    assert decoder.push(codes[16:23]).size == 0
    assert decoder.push(codes[23:24]).size == 8 * 512
    assert decoder.push(codes[24:]).size == 32 * 512  # several chunks from one push
    assert decoder.flush().size == (N_FRAMES - 6 - 8 - 32) * 512


def test_chunks_double_from_the_first_up_to_the_chunk_size(codec, codes):
    decoder = StreamingDacDecoder(codec, first_chunk_frames=2, chunk_frames=16)
    sizes = [len(decoder.push(codes[i:i + 1])) // 512 for i in range(N_FRAMES)]
    emitted = [s for s in sizes if s]
    assert emitted[:3] == [2, 4, 8] and len(emitted) > 3 and set(emitted[3:]) == {16}
    assert sizes.index(2) == 2 + decoder.lookahead_frames - 1  # the first audio needs only 2 frames + look-ahead


def test_short_input_comes_out_at_flush(codec, codes):
    decoder = StreamingDacDecoder(codec)
    assert decoder.push(codes[:5]).size == 0
    np.testing.assert_allclose(decoder.flush(), codec.decode_numpy(codes[:5]), atol=SEAM_ATOL, rtol=0)
    assert StreamingDacDecoder(codec).flush().shape == (0,)


def test_reset_and_misuse(codec, codes, one_shot):
    decoder = StreamingDacDecoder(codec, first_chunk_frames=2, chunk_frames=4)
    decoder.push(torch.from_numpy(codes[:20]))
    decoder.flush()
    with pytest.raises(RuntimeError, match="reset"):
        decoder.push(codes[:1])
    decoder.reset()
    audio = np.concatenate(_stream(decoder, codes, [9]))
    np.testing.assert_allclose(audio, one_shot, atol=SEAM_ATOL, rtol=0)
    decoder.reset()
    with pytest.raises(ValueError, match="frames, n_q"):
        decoder.push(codes.T)
    decoder.reset()
    decoder.push(codes[:2, :4])
    with pytest.raises(ValueError, match="codebooks"):
        decoder.push(codes[2:4])
    with pytest.raises(ValueError):
        StreamingDacDecoder(codec, chunk_frames=0)
