"""Random full-size Dia-1.6B-0626 and DAC 44 kHz checkpoints in the published (transformers) layout.

Speed does not depend on weight values, so benchmarks run on these instead of the real weights
(which cannot be downloaded here). Written once into ``bench/.weights`` (git-ignored).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from engine.model.checkpoint import transformers_shapes
from engine.model.config import DiaConfig
from engine.model.dac import DacConfig
from engine.model.dac_checkpoint import expected_shapes

ROOT = Path(__file__).resolve().parent / ".weights"
SHARD_BYTES = 4_990_000_000  # like the Hub's model-00001-of-00002.safetensors


def _random(key: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    if key.endswith("norm.weight"):
        return torch.ones(shape)
    if key.endswith(("alpha",)):
        return torch.ones(shape)
    if key.endswith("bias"):
        return torch.zeros(shape)
    scale = 1.0 if "embed" in key or "codebook" in key else 0.02
    return torch.randn(shape, generator=gen) * scale


def dia_folder(root: Path = ROOT) -> Path:
    """Random full-size Dia weights as fp32 safetensors shards + index + config.json."""
    folder = root / "dia-1.6b-0626-random"
    if (folder / "model.safetensors.index.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    cfg = DiaConfig()
    gen = torch.Generator().manual_seed(0)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, shape in transformers_shapes(cfg).items():
        tensor = _random(key, shape, gen)
        if size + tensor.numel() * 4 > SHARD_BYTES and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += tensor.numel() * 4
    weight_map, total = {}, 0
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in shard})
        total += sum(t.numel() * 4 for t in shard.values())
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (folder / "config.json").write_text(json.dumps(cfg.to_transformers_dict(), indent=2))
    return folder


def dac_folder(root: Path = ROOT) -> Path:
    """Random full-size DAC 44 kHz weights (config.json + model.safetensors)."""
    folder = root / "dac-44khz-random"
    if (folder / "model.safetensors").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    cfg = DacConfig()
    gen = torch.Generator().manual_seed(1)
    state = {k: _random(k, tuple(s), gen).contiguous() for k, s in expected_shapes(cfg).items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(cfg.to_transformers_dict(), indent=2))
    return folder


if __name__ == "__main__":
    print(dia_folder())
    print(dac_folder())
