"""DacCodec: parity with transformers' DacModel, shapes, padding, config constructors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from engine.model.dac import DacCodec, DacConfig
from tests.engine.dac_fixtures import TINY_DAC, chirp_audio, random_state_dict, torch_threads

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    with torch_threads(1):
        yield


def _hf_config(config: DacConfig):
    return transformers.DacConfig(encoder_hidden_size=config.encoder_dim,
                                  downsampling_ratios=list(config.encoder_rates),
                                  decoder_hidden_size=config.decoder_dim, n_codebooks=config.n_codebooks,
                                  codebook_size=config.codebook_size, codebook_dim=config.codebook_dim,
                                  sampling_rate=config.sample_rate)


@pytest.fixture(scope="module")
def pair() -> tuple[DacCodec, torch.nn.Module]:
    """Our codec and transformers' DacModel holding identical random weights."""
    state = random_state_dict(TINY_DAC, seed=0)
    ours = DacCodec(TINY_DAC)
    ours.load_state_dict(state, strict=True)
    ref = transformers.DacModel(_hf_config(TINY_DAC)).eval()
    ref.load_state_dict(state, strict=True)
    return ours, ref


def test_encode_codes_equal_transformers(pair):
    ours, ref = pair
    audio = torch.cat([chirp_audio(seed=1), 0.5 * chirp_audio(seed=2).flip(-1)])  # batch of 2
    codes = ours.encode(audio)
    padded = torch.nn.functional.pad(audio, (0, -audio.shape[-1] % 512))
    with torch.no_grad():
        expected = ref.encode(padded).audio_codes
    assert codes.dtype == torch.long and codes.shape == expected.shape == (2, 9, padded.shape[-1] // 512)
    assert torch.equal(codes, expected)


@pytest.mark.parametrize("n_q", [9, 4])
def test_decode_matches_transformers(pair, n_q):
    ours, ref = pair
    codes = torch.randint(0, 1024, (2, n_q, 23), generator=torch.Generator().manual_seed(n_q))
    audio = ours.decode(codes)
    with torch.no_grad():
        expected = ref.decode(audio_codes=codes).audio_values
    assert audio.shape == (2, 1, 23 * 512)
    # Measured max |Δ| = 0.0 (same kernels, same operation order); 1e-5 leaves room for BLAS.
    torch.testing.assert_close(audio[:, 0], expected, atol=1e-5, rtol=0)
    assert audio.abs().max() <= 1.0  # tanh output


@pytest.mark.parametrize(("samples", "frames"), [(1, 1), (511, 1), (512, 1), (513, 2), (5000, 10)])
def test_lengths_and_right_padding(pair, samples, frames):
    ours, _ = pair
    audio = chirp_audio()[..., :samples]
    codes = ours.encode(audio)
    assert codes.shape == (1, 9, frames)
    padded = torch.nn.functional.pad(audio, (0, frames * 512 - samples))
    assert torch.equal(ours.encode(padded), codes)  # padding is zeros on the right
    assert ours.decode(codes).shape == (1, 1, frames * 512)


def test_numpy_helpers(pair):
    ours, _ = pair
    mono = chirp_audio()[0, 0].numpy().astype(np.float64)
    codes = ours.encode_numpy(mono)
    assert codes.dtype == np.int64 and codes.shape == (-(-mono.size // 512), 9)
    assert np.array_equal(codes, ours.encode(torch.from_numpy(mono).float().view(1, 1, -1))[0].T.numpy())
    audio = ours.decode_numpy(codes)
    assert audio.dtype == np.float32 and audio.shape == (codes.shape[0] * 512,)
    np.testing.assert_array_equal(audio, ours.decode(torch.from_numpy(codes.T).unsqueeze(0))[0, 0].numpy())


def test_decode_rejects_bad_codes(pair):
    ours, _ = pair
    with pytest.raises(ValueError, match=r"\[0, 1024\)"):
        ours.decode_numpy(np.full((3, 9), 1025))  # e.g. Dia's PAD token left in
    with pytest.raises(ValueError, match="shape"):
        ours.decode(torch.zeros(1, 10, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="mono"):
        ours.encode_numpy(np.zeros((2, 100), dtype=np.float32))


def test_inference_only(pair):
    ours, _ = pair
    assert not ours.training
    out = ours.decode(torch.zeros(1, 9, 2, dtype=torch.long))
    assert out.is_inference() and not out.requires_grad


def test_full_size_key_and_shape_table_matches_transformers():
    with torch.device("meta"):
        ours = DacCodec(DacConfig()).state_dict()
        ref = transformers.DacModel(_hf_config(DacConfig())).state_dict()
    assert len(ours) == len(ref) == 223
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}
    assert sum(v.numel() for v in ours.values()) == sum(v.numel() for v in ref.values())


def test_config_defaults_and_constructors():
    config = DacConfig()
    assert (config.hop_length, config.latent_dim, config.sample_rate) == (512, 1024, 44100)
    assert config.frame_rate == pytest.approx(86.1328125)
    hf = _hf_config(config).to_dict()
    assert DacConfig.from_transformers_dict(hf) == config
    assert DacConfig.from_transformers_dict({"sampling_rate": 44100}) == config  # transformers defaults
    assert DacConfig.from_original_kwargs(config.to_original_kwargs()) == config
    assert DacConfig.from_original_kwargs({"encoder_rates": [2, 4, 8, 8], "latent_dim": None}) == config
    assert DacConfig(encoder_rates=[2, 4, 8, 8]).encoder_rates == (2, 4, 8, 8)  # lists become tuples
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.sample_rate = 16000  # type: ignore[misc]
    with pytest.raises(ValueError, match="decoder_rates"):
        DacConfig(decoder_rates=(8, 8, 4))


def test_a_stride_of_one_is_refused():
    """The original DAC's transposed conv gets output padding 1 at stride 1, which cannot run."""
    with pytest.raises(ValueError, match="encoder_rates must be a list of 1 to 8 whole numbers from 2 to 64"):
        DacConfig(encoder_rates=(1, 2), decoder_rates=(2, 1))
    with pytest.raises(ValueError, match="latent_dim"):
        DacConfig.from_original_kwargs({"latent_dim": 512})
    with pytest.raises(ValueError, match="encoder_dim"):
        DacConfig(encoder_dim=0)
