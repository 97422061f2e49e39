"""Dia's delay pattern: channel c of audio frame k sits at decoder position ``start + k + delay[c]``."""

from __future__ import annotations

import torch

FREE = -1  # a grid slot the model has to generate


def prefill_grid(prompt: torch.Tensor | None, delays: tuple[int, ...], bos: int, *, nari_compat: bool = False) -> torch.Tensor:
    """The delayed decoder prefix for an optional prompt of (L, C) codes.

    Row 0 is BOS, rows 1..L the prompt; each channel is then shifted down by its delay with BOS
    filling the top. The grid has L + 1 + max_delay rows (the transformers layout), in which every
    slot of the last channel is forced; ``nari_compat`` drops that last row, reproducing the
    nari-labs HEAD code, which samples that one slot instead.
    """
    channels = len(delays)
    length = 0 if prompt is None else prompt.shape[0]
    rows = length + 1 + max(delays) - (1 if nari_compat else 0)
    undelayed = torch.full((rows, channels), FREE, dtype=torch.long)
    undelayed[0] = bos
    if length:
        undelayed[1:length + 1] = prompt.to(torch.long)
    grid = torch.full((rows, channels), FREE, dtype=torch.long)
    for c, d in enumerate(delays):
        grid[:d, c] = bos
        grid[d:, c] = undelayed[: rows - d, c]
    return grid


def revert_delay(buffer: torch.Tensor, start: int, frames: int, delays: tuple[int, ...]) -> torch.Tensor:
    """Undelayed frames ``start .. start+frames-1`` from a delayed (T, C) buffer."""
    out = torch.empty((frames, len(delays)), dtype=buffer.dtype, device=buffer.device)
    for c, d in enumerate(delays):
        out[:, c] = buffer[start + d: start + d + frames, c]
    return out


def apply_delay(frames: torch.Tensor, delays: tuple[int, ...], fill: int) -> torch.Tensor:
    """Delay (T, C) frames: ``out[t, c] = frames[t - d_c, c]``, ``fill`` where t < d_c."""
    out = torch.full_like(frames, fill)
    for c, d in enumerate(delays):
        out[d:, c] = frames[: frames.shape[0] - d, c]
    return out
