"""Tiny random DAC checkpoints in both official formats, for any test that needs a codec.

    from tests.engine.dac_fixtures import write_transformers_dac, write_original_dac
    folder = write_transformers_dac(tmp_path / "dac")     # config.json + model.safetensors
    pth = write_original_dac(tmp_path / "orig")           # weights.pth (original layout)
    codec = load_dac(folder)

The tiny geometry keeps the real rates (hop 512) and the real 9 × 1024 × 8 codebooks, so
code and audio shapes are those of the 44.1 kHz model; only the channel widths shrink.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from engine.model.dac import DacConfig
from engine.model.dac_checkpoint import (
    ORIGINAL_WEIGHT_FILES,
    convert_original_state_dict,
    dac_layers,
    expected_shapes,
    save_dac_transformers,
)

TINY_DAC = DacConfig(encoder_dim=8, decoder_dim=32)


def random_original_state_dict(config: DacConfig = TINY_DAC, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the original layout: weight_g/weight_v/bias, alpha, codebook.weight.

    g is drawn independently of ‖v‖ (not the trivial ‖v‖ an untrained weight_norm starts
    with), so a wrong fold shows. Scales keep the tiny decoder's output mostly off tanh's rails.
    """
    gen = torch.Generator().manual_seed(seed)
    shapes = expected_shapes(config)
    state: dict[str, torch.Tensor] = {}
    for layer in dac_layers(config):
        if layer.kind == "conv":
            shape = shapes[f"{layer.name}.weight"]
            state[f"{layer.original}.weight_v"] = torch.randn(shape, generator=gen)
            state[f"{layer.original}.weight_g"] = 0.4 + 0.8 * torch.rand(shape[0], 1, 1, generator=gen)
            state[f"{layer.original}.bias"] = 0.02 * torch.randn(shapes[f"{layer.name}.bias"], generator=gen)
        elif layer.kind == "snake":
            state[f"{layer.original}.alpha"] = 0.5 + 1.5 * torch.rand(shapes[f"{layer.name}.alpha"], generator=gen)
        else:
            state[f"{layer.original}.weight"] = torch.randn(shapes[f"{layer.name}.weight"], generator=gen)
    return state


def random_state_dict(config: DacConfig = TINY_DAC, seed: int = 0) -> dict[str, torch.Tensor]:
    """The same random weights in transformers/DacCodec layout (weight norm folded on CPU)."""
    return convert_original_state_dict(random_original_state_dict(config, seed), config)


def write_transformers_dac(folder: str | Path, config: DacConfig = TINY_DAC, seed: int = 0) -> Path:
    """``config.json`` + ``model.safetensors`` in ``folder``; returns the folder."""
    return save_dac_transformers(random_state_dict(config, seed), config, folder)


def write_original_dac(path: str | Path, config: DacConfig = TINY_DAC, seed: int = 0, *,
                       state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """An original ``weights.pth`` container; ``path`` is the file or a folder to put it in.

    Pass ``state_dict`` to write doctored weights (e.g. with a key removed). Returns the file.
    """
    path = Path(path)
    if path.suffix != ".pth":
        path.mkdir(parents=True, exist_ok=True)
        path = path / ORIGINAL_WEIGHT_FILES[0]
    state = random_original_state_dict(config, seed) if state_dict is None else state_dict
    # audiotools' BaseModel.save(package=False) container, as descript publishes it.
    torch.save({"state_dict": state, "metadata": {"kwargs": config.to_original_kwargs()}}, path)
    return path


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
