"""The Dia decoding loop: prefill, one guided step per frame, EOS countdown, streaming, cancel.

Semantics follow the reference implementations (nari-labs/dia and transformers'
``DiaForConditionalGeneration.generate``), which agree token for token in float32:

* the text is encoded once, for a conditional row and an all-padding unconditional row;
* the decoder is prefilled with BOS and the (delayed) audio prompt; forced grid slots survive;
* channel 0's EOS at position ``e`` starts a countdown: channel c gets EOS at ``e + delay[c]`` and
  PAD after, and the loop ends once every channel has finished;
* when the position limit is reached EOS is forced, so every render ends cleanly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.delay import FREE, prefill_grid, revert_delay
from engine.errors import CancelledError, RequestTooLargeError
from engine.model.dia import DiaModel
from engine.sampling import SamplingSettings, sample_frame


@dataclass(frozen=True)
class StepProgress:
    """Where a render is: decoder steps done of the maximum, and speed so far."""

    step: int
    max_steps: int
    frames: int
    frames_per_second: float
    elapsed: float
    frame_rate: float = 44100 / 512

    @property
    def audio_seconds(self) -> float:
        return self.frames / self.frame_rate


@dataclass(frozen=True)
class CodesResult:
    """Generated audio codes (frames, channels), without the prompt."""

    codes: torch.Tensor
    stop_reason: str  # "eos" or "max_new_tokens"
    steps: int
    prompt_frames: int
    seed: int | None
    prefill_seconds: float
    decode_seconds: float


def generate_codes(
    model: DiaModel,
    text_ids: list[int],
    settings: SamplingSettings,
    prompt_codes: torch.Tensor | None = None,
    *,
    on_progress: Callable[[StepProgress], None] | None = None,
    on_frames: Callable[[torch.Tensor], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CodesResult:
    """Generate the codes that follow ``text_ids`` (and the optional (L, C) prompt codes).

    ``on_frames`` receives each batch of newly final undelayed frames (k, C) as soon as all their
    channels are generated, which is what streaming playback decodes. ``should_stop`` is polled
    between steps; returning True raises :class:`CancelledError`.
    """
    cfg = model.cfg
    device = model.device
    delays = cfg.delay_pattern
    max_delay = max(delays)
    t0 = time.perf_counter()

    ids = torch.tensor([text_ids], dtype=torch.long, device=device)
    enc = model.encode(torch.cat([ids, torch.zeros_like(ids)]))

    prompt_len = 0 if prompt_codes is None else int(prompt_codes.shape[0])
    grid = prefill_grid(prompt_codes, delays, cfg.bos_token_id, nari_compat=settings.nari_compat).to(device)
    # max_new_tokens caps all decoder positions, BOS and voice prompt included (nari-labs' max_tokens;
    # transformers' max_new_tokens = this minus the prompt frames): EOS is forced at ``deadline``, which
    # keeps a default render inside the 3072 positions Dia was trained on.
    deadline = settings.max_new_tokens - max_delay
    if deadline < prompt_len + 2:
        raise RequestTooLargeError(
            f"the voice prompt ({prompt_len} frames, {prompt_len / (44100 / 512):.1f} s) leaves no room for new audio "
            f"within max_new_tokens={settings.max_new_tokens}: raise max_new_tokens or use a shorter sample")
    capacity = deadline + max_delay
    buf = torch.full((capacity, cfg.num_channels), FREE, dtype=torch.long, device=device)
    buf[: grid.shape[0]] = grid
    forced = buf != FREE

    state = model.start_decoder(enc, None, capacity)
    first = prompt_len + 1  # first generated position of channel 0 = frame 0
    logits = model.decode(buf[:first].unsqueeze(0).expand(2, -1, -1), state)
    prefill_seconds = time.perf_counter() - t0

    generator = None
    if settings.seed is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(int(settings.seed))

    t = first - 1  # the position whose logits we hold
    eos_at: int | None = None
    stop_reason = "eos"
    countdown = -1
    emitted = 0
    steps = 0
    t1 = time.perf_counter()
    max_steps = deadline + max_delay - first
    while True:
        if should_stop is not None and should_stop():
            raise CancelledError("render cancelled")
        pred = sample_frame(logits, settings, cfg.eos_token_id, generator)
        pos = t + 1
        if countdown < 0 and (pred[0].item() == cfg.eos_token_id or pos >= deadline):
            countdown, eos_at = max_delay, pos
            stop_reason = "eos" if pred[0].item() == cfg.eos_token_id else "max_new_tokens"
        if countdown > 0:
            s = max_delay - countdown
            for c, d in enumerate(delays):
                if s == d:
                    pred[c] = cfg.eos_token_id
                elif s > d:
                    pred[c] = cfg.pad_token_id
            countdown -= 1
        row_forced = forced[pos]
        buf[pos] = torch.where(row_forced, buf[pos], pred)
        steps += 1

        final = pos - max_delay - first + 1  # frames whose every channel is now generated
        if eos_at is not None:
            final = min(final, eos_at - first)
        if final > emitted:
            if on_frames is not None:
                on_frames(_clean(revert_delay(buf, first + emitted, final - emitted, delays)))
            emitted = final
        if on_progress is not None:
            elapsed = time.perf_counter() - t1
            on_progress(StepProgress(steps, max_steps, emitted, steps / elapsed if elapsed > 0 else 0.0, elapsed))
        if countdown == 0:
            break
        logits = model.decode(buf[pos:pos + 1].unsqueeze(0).expand(2, -1, -1), state)
        t = pos

    frames = max(eos_at - first, 0) if eos_at is not None else 0
    codes = _clean(revert_delay(buf, first, frames, delays)).cpu()
    return CodesResult(codes, stop_reason, steps, prompt_len, settings.seed, prefill_seconds, time.perf_counter() - t1)


def _clean(frames: torch.Tensor) -> torch.Tensor:
    """Guard: anything outside the codebook (a forced special token) becomes code 0."""
    return torch.where((frames >= 0) & (frames < 1024), frames, torch.zeros_like(frames))
