"""The transformers oracle: a tiny random ``DiaForConditionalGeneration`` and the official layouts
written from it. Checkpoints that need no transformers come from ``engine.testing``."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.model.checkpoint import transformers_to_nari
from engine.model.config import DiaConfig
from engine.testing import TINY_DIA as TINY  # the one tiny geometry (engine/testing.py says why)

__all__ = ["TINY", "hf_state", "save_nari_folder", "save_transformers_folder", "tiny_transformers_model"]


def tiny_transformers_model(cfg: DiaConfig = TINY, seed: int = 0):
    """A random ``transformers.DiaForConditionalGeneration`` (fp32, eval) with non-trivial norm gains."""
    from transformers import DiaConfig as HFDiaConfig
    from transformers import DiaForConditionalGeneration

    torch.manual_seed(seed)
    hf_cfg = HFDiaConfig.from_dict(cfg.to_transformers_dict())
    model = DiaForConditionalGeneration(hf_cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif "embed" in name:
                p.copy_(torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * 0.1)
    return model


def save_transformers_folder(model, folder: Path, max_shard_size: str | None = None) -> Path:
    """The 0626 layout, written by transformers itself (config.json + safetensors, sharded if asked)."""
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(folder, **kwargs)
    return folder


def hf_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if not k.endswith(("rotary_emb.inv_freq", "embeddings.offsets", "original_inv_freq"))}


def save_nari_folder(model, folder: Path, cfg: DiaConfig = TINY, filename: str = "dia-v1.pth",
                     legacy_config: bool = False) -> Path:
    """The nari layout (DenseGeneral kernels) as ``.pth``/``.bin`` (torch.save) or ``model.safetensors``."""
    folder.mkdir(parents=True, exist_ok=True)
    state = transformers_to_nari(hf_state(model), cfg)
    if filename.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(state, str(folder / filename))
    else:
        torch.save(state, folder / filename)
    config = cfg.to_legacy_dict() if legacy_config else cfg.to_transformers_dict()
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder
