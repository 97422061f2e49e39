"""Benchmark-only patch: random weights must not end a render early, so channel 0's EOS logit is
removed from every decoder output (the length limit still ends the render, exactly like the
``min_new_tokens`` trick used for transformers). Imported before the code under test runs."""

from __future__ import annotations

import torch

from engine.model import dia

EOS = 1024
_decode = dia.DiaModel.decode


def _decode_without_eos(self, tokens, state, last_only=True):
    logits = _decode(self, tokens, state, last_only)
    with torch.inference_mode():
        logits[..., 0, EOS] = float("-inf")
    return logits


dia.DiaModel.decode = _decode_without_eos
torch.set_grad_enabled(False)
