"""Tiny random DAC checkpoints in both official formats (built by ``engine.testing``), for any test
that needs a codec, plus the helpers of the codec tests.

    from tests.engine.dac_fixtures import write_transformers_dac, write_original_dac
    folder = write_transformers_dac(tmp_path / "dac")     # config.json + model.safetensors
    pth = write_original_dac(tmp_path / "orig")           # weights.pth (original layout)
    codec = load_dac(folder)

The tiny geometry (``engine.testing.TINY_DAC``) keeps the real rates and codebooks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from engine.model.dac import DacConfig
from engine.model.dac_checkpoint import dac_layers
from engine.testing import TINY_DAC, write_original_dac
from engine.testing import random_dac_original_state as random_original_state_dict
from engine.testing import random_dac_state as random_state_dict
from engine.testing import write_dac as write_transformers_dac

__all__ = ["TINY_DAC", "chirp_audio", "original_to_transformers_parametrized", "random_original_state_dict",
           "random_state_dict", "torch_threads", "write_original_dac", "write_transformers_dac"]


def original_to_transformers_parametrized(state: dict[str, torch.Tensor],
                                          config: DacConfig = TINY_DAC) -> dict[str, torch.Tensor]:
    """Original tensors renamed for a transformers ``DacModel`` after ``apply_weight_norm()``.

    That model recomputes each weight with ``torch._weight_norm`` on every forward, exactly as
    the original descript module does, so it serves as the original-format oracle.
    """
    out: dict[str, torch.Tensor] = {}
    for layer in dac_layers(config):
        if layer.kind == "conv":
            out[f"{layer.name}.parametrizations.weight.original0"] = state[f"{layer.original}.weight_g"]
            out[f"{layer.name}.parametrizations.weight.original1"] = state[f"{layer.original}.weight_v"]
            out[f"{layer.name}.bias"] = state[f"{layer.original}.bias"]
        else:
            for original, name in layer.original_tensors().items():
                out[name] = state[original]
    return out


def chirp_audio(seconds: float = 0.25, sample_rate: int = 44100, seed: int = 0) -> torch.Tensor:
    """A short chirp plus a little noise, shape [1, 1, T] (T deliberately not a multiple of 512)."""
    n = int(seconds * sample_rate) + 77
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    chirp = 0.4 * torch.sin(2 * math.pi * (220 * t + 800 * t * t))
    noise = 0.02 * torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (chirp + noise).float().view(1, 1, -1)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads, then restore.

    On this shared 2-core machine two OpenMP threads that keep waiting for each other made the
    tiny-codec tests ~6x slower (52 s vs 8.5 s) whenever other jobs were busy.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
