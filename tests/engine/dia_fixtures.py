"""Tiny random Dia checkpoints written in the official layouts, plus the transformers oracle."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.model.checkpoint import transformers_to_nari
from engine.model.config import DiaConfig

# Small but structurally faithful: GQA in the decoder self-attention (4 q heads / 2 kv heads),
# head_dim * heads != hidden (non-square projections), the real vocabularies, channels and delays.
TINY = DiaConfig(
    enc_hidden=64, enc_layers=2, enc_heads=4, enc_kv_heads=4, enc_head_dim=16, enc_ffn=128, enc_max_positions=128,
    dec_hidden=96, dec_layers=2, dec_heads=4, dec_kv_heads=2, dec_head_dim=16,
    cross_heads=4, cross_kv_heads=4, cross_head_dim=16, dec_ffn=192, dec_max_positions=512,
)


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
