"""Random Dia and DAC checkpoints written in the published layouts: the one recipe for test models.

The self-test renders with the tiny ones, the test suite builds its fixtures on them and the
benchmark times the full-size ones (speed does not depend on the weight values). Needs torch and
safetensors, never transformers or a download::

    from engine.testing import write_tiny_models
    dia, dac = write_tiny_models(tmp / "models")        # a few MB, about a second
    eng = DiaEngine.load(EngineOptions(model=str(dia), codec=str(dac)))

Dia is written as transformers' ``save_pretrained`` does (``config.json`` + ``model.safetensors``,
or shards + ``model.safetensors.index.json``); DAC as ``config.json`` + ``model.safetensors``
(transformers) or descript's original ``weights.pth``. Every file is written atomically, so a
folder whose last file exists is complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file

from engine.files import atomic_write, atomic_write_text
from engine.model.checkpoint import transformers_shapes
from engine.model.config import DiaConfig
from engine.model.dac import DacConfig
from engine.model.dac_checkpoint import (
    ORIGINAL_WEIGHT_FILES,
    convert_original_state_dict,
    dac_layers,
    expected_shapes,
    save_dac_transformers,
)

# Small but structurally faithful: GQA in the decoder self-attention (4 q heads / 2 kv heads),
# head_dim * heads != hidden (non-square projections), the real vocabularies, channels and delays.
TINY_DIA = DiaConfig(
    enc_hidden=64, enc_layers=2, enc_heads=4, enc_kv_heads=4, enc_head_dim=16, enc_ffn=128, enc_max_positions=128,
    dec_hidden=96, dec_layers=2, dec_heads=4, dec_kv_heads=2, dec_head_dim=16,
    cross_heads=4, cross_kv_heads=4, cross_head_dim=16, dec_ffn=192, dec_max_positions=512,
)
# The real rates (hop 512) and 9 × 1024 × 8 codebooks, so code and audio shapes are those of the
# 44.1 kHz model; only the channel widths shrink.
TINY_DAC = DacConfig(encoder_dim=8, decoder_dim=32)

TINY_SCALE = 0.1  # projection weights of the tiny model: big enough that layers visibly matter
FULL_SIZE_SCALE = 0.02  # full-size projections (2048-wide): keeps activations finite through 18 layers
SHARD_BYTES = 4_990_000_000  # the Hub's 0626 shards (model-00001-of-00002.safetensors)
SAFETENSORS_FILE = "model.safetensors"
DIA_INDEX = "model.safetensors.index.json"
CONFIG_FILE = "config.json"


# --------------------------------------------------------------------------------------------- Dia


def random_dia_state(cfg: DiaConfig = TINY_DIA, seed: int = 0, *, scale: float = TINY_SCALE,
                     norm_jitter: float = 0.1) -> Iterator[tuple[str, torch.Tensor]]:
    """Random float32 weights in the transformers layout, key by key (a full-size model never sits
    in memory twice). Norm gains are ``1 ± norm_jitter``, embeddings unit normal."""
    gen = torch.Generator().manual_seed(seed)
    for key, shape in transformers_shapes(cfg).items():
        if key.endswith("norm.weight"):
            yield key, 1.0 + norm_jitter * torch.randn(shape, generator=gen)
        elif "embed" in key:
            yield key, torch.randn(shape, generator=gen)
        else:
            yield key, scale * torch.randn(shape, generator=gen)


def write_dia(folder: str | Path, cfg: DiaConfig = TINY_DIA, seed: int = 0, *, scale: float = TINY_SCALE,
              norm_jitter: float = 0.1, shard_bytes: int | None = None) -> Path:
    """A random Dia checkpoint in the 0626 (transformers) layout; returns the folder.

    With ``shard_bytes`` the weights are split into shards of at most that size with an index,
    as on the Hub; otherwise one ``model.safetensors``. The config is written last.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = random_dia_state(cfg, seed, scale=scale, norm_jitter=norm_jitter)
    if shard_bytes is None:
        _save(folder / SAFETENSORS_FILE, dict(tensors))
    else:
        _save_shards(folder, cfg, tensors, shard_bytes)
    atomic_write_text(folder / CONFIG_FILE, json.dumps(cfg.to_transformers_dict(), indent=2) + "\n")
    return folder


def _save(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))


def _shard_plan(cfg: DiaConfig, shard_bytes: int) -> list[list[str]]:
    """Keys per shard, in order, each shard at most ``shard_bytes`` of float32 (or one tensor)."""
    shards: list[list[str]] = [[]]
    size = 0
    for key, shape in transformers_shapes(cfg).items():
        nbytes = 4 * torch.Size(shape).numel()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(key)
        size += nbytes
    return shards


def _save_shards(folder: Path, cfg: DiaConfig, tensors: Iterator[tuple[str, torch.Tensor]],
                 shard_bytes: int) -> None:
    plan = _shard_plan(cfg, shard_bytes)
    weight_map: dict[str, str] = {}
    total = 0
    for number, keys in enumerate(plan, 1):
        name = f"model-{number:05d}-of-{len(plan):05d}.safetensors"
        shard = dict(next(tensors) for _ in keys)
        _save(folder / name, shard)
        weight_map.update(dict.fromkeys(shard, name))
        total += sum(4 * t.numel() for t in shard.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    atomic_write_text(folder / DIA_INDEX, json.dumps(index, indent=2) + "\n")


# --------------------------------------------------------------------------------------------- DAC


def random_dac_original_state(config: DacConfig = TINY_DAC, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in descript's original layout: weight_g/weight_v/bias, alpha, codebook.weight.

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


def random_dac_state(config: DacConfig = TINY_DAC, seed: int = 0) -> dict[str, torch.Tensor]:
    """The same random weights in the transformers layout (weight norm folded)."""
    return convert_original_state_dict(random_dac_original_state(config, seed), config)


def write_dac(folder: str | Path, config: DacConfig = TINY_DAC, seed: int = 0) -> Path:
    """A random DAC codec as ``config.json`` + ``model.safetensors`` (transformers); returns the folder."""
    return save_dac_transformers(random_dac_state(config, seed), config, folder)


def write_original_dac(path: str | Path, config: DacConfig = TINY_DAC, seed: int = 0, *,
                       state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """A random DAC as descript's original ``weights.pth``; ``path`` is the file or a folder for it.

    ``state_dict`` writes given (e.g. doctored) original-layout weights instead. Returns the file.
    """
    path = Path(path)
    if path.suffix != ".pth":
        path.mkdir(parents=True, exist_ok=True)
        path = path / ORIGINAL_WEIGHT_FILES[0]
    state = random_dac_original_state(config, seed) if state_dict is None else state_dict
    # audiotools' BaseModel.save(package=False) container, as descript publishes it.
    container = {"state_dict": state, "metadata": {"kwargs": config.to_original_kwargs()}}
    atomic_write(path, lambda tmp: torch.save(container, tmp))
    return path


# --------------------------------------------------------------------------------------------- both


def write_tiny_models(folder: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """A tiny random Dia and DAC under ``folder`` (``dia/``, ``dac/``): a few MB, about a second."""
    folder = Path(folder)
    return write_dia(folder / "dia", TINY_DIA, seed), write_dac(folder / "dac", TINY_DAC, seed)


def write_full_size_models(folder: str | Path) -> tuple[Path, Path]:
    """Random Dia-1.6B-0626 (fp32, sharded as on the Hub: 6.4 GB) and DAC 44.1 kHz under ``folder``.

    Written once: an existing complete copy is reused.
    """
    folder = Path(folder)
    dia, dac = folder / "dia-1.6b-0626-random", folder / "dac-44khz-random"
    if not (dia / CONFIG_FILE).is_file():
        write_dia(dia, DiaConfig(), scale=FULL_SIZE_SCALE, norm_jitter=0.0, shard_bytes=SHARD_BYTES)
    if not (dac / CONFIG_FILE).is_file() or not (dac / SAFETENSORS_FILE).is_file():
        write_dac(dac, DacConfig(), seed=1)
    return dia, dac
