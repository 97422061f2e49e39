"""Turning one step's guided logits into the next frame of codes (CFG, filters, EOS rule, draw)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.params import DEFAULTS


@dataclass(frozen=True)
class SamplingSettings:
    """Low-level sampling knobs. ``temperature == 0`` means greedy (used by tests and tools)."""

    cfg_scale: float = DEFAULTS["cfg_scale"]
    temperature: float = DEFAULTS["temperature"]
    top_p: float = DEFAULTS["top_p"]
    top_k: int = DEFAULTS["cfg_filter_top_k"]
    max_new_tokens: int = DEFAULTS["max_new_tokens"]
    seed: int | None = None
    nari_compat: bool = False


def guided_logits(cond: torch.Tensor, uncond: torch.Tensor, cfg_scale: float, top_k: int, eos: int) -> torch.Tensor:
    """Classifier-free guidance as Dia does it, for (C, V) float32 logits.

    The guided logits ``cond + s * (cond - uncond)`` only choose the ``top_k`` candidates of each
    channel; the values kept are the conditional ones. Only channel 0 may emit EOS, and no channel
    may emit PAD/BOS.
    """
    guided = cond + cfg_scale * (cond - uncond)
    keep = torch.topk(guided, k=min(top_k, guided.shape[-1]), dim=-1).indices
    out = torch.full_like(cond, float("-inf")).scatter(-1, keep, cond.gather(-1, keep))
    out[:, eos + 1:] = float("-inf")
    out[1:, eos:] = float("-inf")
    return out


def eos_rule(logits: torch.Tensor, eos: int) -> torch.Tensor:
    """EOS is forced where it is the top candidate and impossible elsewhere."""
    eos_top = logits.argmax(dim=-1, keepdim=True) == eos
    column = torch.arange(logits.shape[-1], device=logits.device)
    # masks, not boolean indexing: no data-dependent shapes, so a CUDA graph can capture it
    return logits.masked_fill(torch.where(eos_top, column < eos, column == eos), float("-inf"))


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filter: drop the low tail whose probability mass is at most ``1 - top_p`` (top token kept)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[..., -1] = False
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def sample_frame(logits: torch.Tensor, settings: SamplingSettings, eos: int, generator: torch.Generator | None) -> torch.Tensor:
    """Next codes (C,) from the (2, C, V) logits of the conditional and unconditional rows.

    Exactly one ``torch.multinomial`` draw over all channels per step (also for channels that
    are forced afterwards), as the reference implementations do, so a seed reproduces their voice.
    """
    scores = guided_logits(logits[0], logits[1], settings.cfg_scale, settings.top_k, eos)
    if settings.temperature <= 0:
        return eos_rule(scores, eos).argmax(dim=-1)
    scores = eos_rule(scores / settings.temperature, eos)
    scores = top_p_filter(scores, settings.top_p)
    probs = scores.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)
