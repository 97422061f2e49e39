"""Pure generation rules with hand-derived expectations: delays, prefill grids, CFG, EOS, top-p."""

from __future__ import annotations

import torch

from engine.delay import FREE, apply_delay, prefill_grid, revert_delay
from engine.sampling import eos_rule, guided_logits, top_p_filter

DELAYS = (0, 8, 9, 10, 11, 12, 13, 14, 15)
BOS, EOS = 1026, 1024


def test_delay_then_revert_is_identity_on_the_kept_rows():
    frames = torch.randint(0, 1024, (40, 9))
    delayed = apply_delay(frames, DELAYS, BOS)
    assert delayed[3, 1] == BOS and delayed[8, 1] == frames[0, 1] and delayed[15, 8] == frames[0, 8]
    assert torch.equal(revert_delay(delayed, 0, 40 - 15, DELAYS), frames[:25])


def test_prefill_grid_without_prompt():
    grid = prefill_grid(None, DELAYS, BOS)
    assert grid.shape == (16, 9)
    for c, d in enumerate(DELAYS):
        assert (grid[: d + 1, c] == BOS).all()  # BOS through position d_c
        assert (grid[d + 1:, c] == FREE).all()
    assert (grid[:, 8] == BOS).all()  # the last channel is fully forced in the transformers layout


def test_prefill_grid_with_prompt_and_nari_compat():
    prompt = torch.arange(5 * 9).view(5, 9)
    grid = prefill_grid(prompt, DELAYS, BOS)
    assert grid.shape == (5 + 16, 9)
    for k in range(5):
        for c, d in enumerate(DELAYS):
            assert grid[1 + k + d, c] == prompt[k, c]
    assert (grid[6:, 0] == FREE).all()
    compat = prefill_grid(prompt, DELAYS, BOS, nari_compat=True)
    assert compat.shape == (5 + 15, 9)
    assert torch.equal(compat, grid[:-1])
    # exactly one slot differs in what is forced: the last channel at position L + 15
    assert grid[5 + 15, 8] == prompt[4, 8]


def test_cfg_filter_takes_the_set_from_guided_and_values_from_conditional():
    cond = torch.zeros(9, 1028)
    uncond = torch.zeros(9, 1028)
    cond[:, 10], cond[:, 20], cond[:, 30] = 3.0, 2.0, 1.0
    uncond[:, 10] = 3.0  # guidance cancels token 10: cfg = cond + s*(cond-uncond)
    out = guided_logits(cond, uncond, cfg_scale=3.0, top_k=2, eos=EOS)
    kept = torch.isfinite(out[0]).nonzero().flatten().tolist()
    assert kept == [20, 30]  # guided scores 8 and 4 beat token 10's 3
    assert out[0, 20] == 2.0 and out[0, 30] == 1.0  # conditional values, not guided ones
    assert torch.isinf(out[:, 1025:]).all() and torch.isinf(out[1:, 1024]).all()


def test_eos_rule_forces_or_forbids_eos():
    logits = torch.zeros(2, 1028)
    logits[:, EOS + 1:] = float("-inf")  # specials are already masked by the CFG filter
    logits[0, EOS] = 5.0  # EOS on top in row 0
    logits[1, EOS] = 1.0
    logits[1, 7] = 2.0
    out = eos_rule(logits, EOS)
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [EOS]
    assert torch.isinf(out[1, EOS]) and out[1, 7] == 2.0


def test_top_p_keeps_the_smallest_head_with_enough_mass():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    out = top_p_filter(probs.log(), 0.8)
    assert torch.isfinite(out).tolist() == [[True, True, False, False]]
    out = top_p_filter(probs.log(), 0.1)
    assert torch.isfinite(out).tolist() == [[True, False, False, False]]  # the top token always stays
    assert torch.equal(top_p_filter(probs.log(), 1.0), probs.log())
