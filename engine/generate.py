"""The Dia decoding loop: prefill, one guided step per frame, EOS countdown, streaming, cancel.

Semantics follow the reference implementations (nari-labs/dia and transformers'
``DiaForConditionalGeneration.generate``), which agree token for token in float32:

* the text is encoded once, for a conditional row and an all-padding unconditional row;
* the decoder is prefilled with BOS and the (delayed) audio prompt; forced grid slots survive;
* channel 0's EOS at position ``e`` starts a countdown: channel c gets EOS at ``e + delay[c]`` and
  PAD after, and the loop ends once every channel has finished;
* when the position limit is reached EOS is forced, so every render ends cleanly.

Two step modes compute the same codes. ``loop`` (CPUs, MPS) decides each step in Python and
attends only the cache positions written so far. ``static`` (CUDA) is graph-ready: the whole
step (sampling, the EOS countdown, the next decoder call) runs on the device from fixed buffers,
so it is captured once per render as a CUDA graph and replayed; the host looks at the result
every ``sync_every`` steps. Without CUDA the same static step runs eagerly (``StepRunner``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from engine.constants import FRAME_RATE
from engine.delay import FREE, prefill_grid, revert_delay
from engine.errors import CancelledError, InvalidParameterError, RequestTooLargeError
from engine.model.dia import DecoderState, DiaModel
from engine.sampling import SamplingSettings, sample_frame
from engine.threads import ThreadGovernor

STEP_MODES = ("auto", "loop", "static")
# Static steps a CUDA graph runs between two looks from the host (EOS, progress, cancel, streaming):
# each look waits for the device, and an EOS is seen at most this many steps late (those extra
# steps write only spare cache slots).
GRAPH_SYNC_EVERY = 8
CUDA_GRAPHS_ENV = "DIA_STUDIO_CUDA_GRAPHS"  # "0" runs the static step eagerly on CUDA too


@dataclass(frozen=True)
class StepProgress:
    """Where a render is: decoder steps done of the maximum, and speed so far."""

    step: int
    max_steps: int
    frames: int
    frames_per_second: float
    elapsed: float
    frame_rate: float = FRAME_RATE

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
    graph_seconds: float = 0.0  # CUDA graph capture (static mode on CUDA), between prefill and decoding


def generate_codes(
    model: DiaModel,
    text_ids: list[int],
    settings: SamplingSettings,
    prompt_codes: torch.Tensor | None = None,
    *,
    on_progress: Callable[[StepProgress], None] | None = None,
    on_frames: Callable[[torch.Tensor], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    step_mode: str = "auto",
    sync_every: int | None = None,
    encodings: TextEncodings | None = None,
) -> CodesResult:
    """Generate the codes that follow ``text_ids`` (and the optional (L, C) prompt codes).

    ``on_frames`` receives each batch of newly final undelayed frames (k, C) as soon as all their
    channels are generated, which is what streaming playback decodes. ``should_stop`` is polled
    between steps; returning True raises :class:`CancelledError`. ``step_mode`` is ``loop``,
    ``static`` or ``auto`` (static on CUDA); ``sync_every`` is the static mode's steps between
    host checks (default: ``GRAPH_SYNC_EVERY`` on CUDA, 1 elsewhere). ``encodings`` reuses the text's
    encoder states from an earlier render of the same text.
    """
    mode = resolve_step_mode(step_mode, model.device)
    every = sync_every or (GRAPH_SYNC_EVERY if model.device.type == "cuda" else 1)
    if every < 1:
        raise InvalidParameterError(f"sync_every must be at least 1 (got {every})")
    render = start_render(model, text_ids, settings, prompt_codes, spare=every if mode == "static" else 0,
                          encodings=encodings)
    if mode == "static":
        return _run_static(render, every, on_progress, on_frames, should_stop)
    return _run_loop(render, on_progress, on_frames, should_stop)


def resolve_step_mode(step_mode: str, device: torch.device) -> str:
    """``auto`` → ``static`` (CUDA graphs) on CUDA, ``loop`` elsewhere."""
    if step_mode not in STEP_MODES:
        raise InvalidParameterError(f"step_mode must be one of {', '.join(STEP_MODES)} (got {step_mode!r})")
    if step_mode == "auto":
        return "static" if device.type == "cuda" else "loop"
    return step_mode


@dataclass
class Render:
    """A prefilled render (``start_render``): the delayed code buffer, the decoder state, the first logits."""

    model: DiaModel
    settings: SamplingSettings
    buf: torch.Tensor  # (positions, C) delayed codes, FREE where the model has to generate
    forced: torch.Tensor  # (positions, C) slots fixed by the prefill grid
    state: DecoderState
    logits: torch.Tensor  # (2, C, V) for position ``first``
    generator: torch.Generator | None
    first: int  # first generated position of channel 0 = frame 0
    deadline: int  # EOS is forced here
    prompt_len: int
    prefill_seconds: float

    @property
    def max_steps(self) -> int:
        return self.deadline + max(self.model.cfg.delay_pattern) - self.first

    def result(self, eos_at: int | None, stop_reason: str, steps: int, t1: float,
               graph_seconds: float = 0.0) -> CodesResult:
        frames = max(eos_at - self.first, 0) if eos_at is not None else 0
        codes = _clean(revert_delay(self.buf, self.first, frames, self.model.cfg.delay_pattern)).cpu()
        return CodesResult(codes, stop_reason, steps, self.prompt_len, self.settings.seed, self.prefill_seconds,
                           time.perf_counter() - t1, graph_seconds)


def encode_guided(model: DiaModel, text_ids: list[int]) -> torch.Tensor:
    """Encoder states (2, S, E) of the text (row 0) and of its unconditional twin, all zeros (row 1)."""
    ids = torch.tensor([text_ids], dtype=torch.long, device=model.device)
    return model.encode(torch.cat([ids, torch.zeros_like(ids)]))


class TextEncodings:
    """The last text's ``encode_guided`` states, reused when the next render has the same text (a
    retake: same script, another seed). The encoder pass is most of a prefill (0.55 of 0.73 s for a
    two-line script with Dia-1.6B bf16 on two cores). Holds one text, for one model whose weights
    do not change (an engine's)."""

    def __init__(self) -> None:
        self._key: tuple[int, ...] | None = None
        self._states: torch.Tensor | None = None

    def get(self, model: DiaModel, text_ids: list[int]) -> torch.Tensor:
        key = tuple(text_ids)
        if self._states is None or key != self._key:
            self._key = self._states = None  # an interrupted pass leaves nothing stale behind
            self._states = encode_guided(model, text_ids)
            self._key = key
        return self._states


def start_render(model: DiaModel, text_ids: list[int], settings: SamplingSettings,
                 prompt_codes: torch.Tensor | None = None, spare: int = 0,
                 encodings: TextEncodings | None = None) -> Render:
    """Encode the text (through ``encodings`` when given), lay out the delayed buffer (plus ``spare``
    unused positions) and prefill."""
    cfg = model.cfg
    device = model.device
    delays = cfg.delay_pattern
    max_delay = max(delays)
    t0 = time.perf_counter()

    enc = encodings.get(model, text_ids) if encodings is not None else encode_guided(model, text_ids)

    prompt_len = 0 if prompt_codes is None else int(prompt_codes.shape[0])
    grid = prefill_grid(prompt_codes, delays, cfg.bos_token_id, nari_compat=settings.nari_compat).to(device)
    # max_new_tokens caps all decoder positions, BOS and voice prompt included (nari-labs' max_tokens;
    # transformers' max_new_tokens = this minus the prompt frames): EOS is forced at ``deadline``, which
    # keeps a default render inside the 3072 positions Dia was trained on.
    deadline = settings.max_new_tokens - max_delay
    if deadline < prompt_len + 2:
        raise RequestTooLargeError(
            f"the voice prompt ({prompt_len} frames, {prompt_len / FRAME_RATE:.1f} s) leaves no room for new audio "
            f"within max_new_tokens={settings.max_new_tokens}: raise max_new_tokens or use a shorter sample")
    capacity = deadline + max_delay + spare
    buf = torch.full((capacity, cfg.num_channels), FREE, dtype=torch.long, device=device)
    buf[: grid.shape[0]] = grid
    forced = buf != FREE

    state = model.start_decoder(enc, None, capacity)
    first = prompt_len + 1
    logits = model.decode(buf[:first].unsqueeze(0).expand(2, -1, -1), state)
    prefill_seconds = time.perf_counter() - t0

    generator = None
    if settings.seed is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(int(settings.seed))
    return Render(model, settings, buf, forced, state, logits, generator, first, deadline, prompt_len,
                   prefill_seconds)


def _run_loop(r: Render, on_progress: Callable[[StepProgress], None] | None,
              on_frames: Callable[[torch.Tensor], None] | None, should_stop: Callable[[], bool] | None) -> CodesResult:
    """One step at a time, decided in Python: attends only the positions written so far."""
    model, cfg, settings, buf, first = r.model, r.model.cfg, r.settings, r.buf, r.first
    delays = cfg.delay_pattern
    max_delay = max(delays)
    logits = r.logits
    t = first - 1  # the position whose logits we hold
    eos_at: int | None = None
    stop_reason = "eos"
    countdown = -1
    emitted = 0
    steps = 0
    governor = thread_governor(model.device)
    t1 = time.perf_counter()
    try:
        while True:
            if should_stop is not None and should_stop():
                raise CancelledError("render cancelled")
            pred = sample_frame(logits, settings, cfg.eos_token_id, r.generator)
            pos = t + 1
            if countdown < 0 and (pred[0].item() == cfg.eos_token_id or pos >= r.deadline):
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
            row_forced = r.forced[pos]
            buf[pos] = torch.where(row_forced, buf[pos], pred)
            steps += 1
            emitted = _emit(r, pos, eos_at, emitted, on_frames)
            _report(on_progress, steps, r.max_steps, emitted, t1)
            if countdown == 0:
                break
            if governor is not None:
                governor.apply()
                started = time.perf_counter()
            logits = model.decode(buf[pos:pos + 1].unsqueeze(0).expand(2, -1, -1), r.state)
            if governor is not None:
                governor.observe(time.perf_counter() - started)
                governor.restore()
            t = pos
    finally:
        if governor is not None:
            governor.restore()
    return r.result(eos_at, stop_reason, steps, t1)


def thread_governor(device: torch.device) -> ThreadGovernor | None:
    """The CPU thread governor for a render's steps (``engine.threads``); None on GPUs, on one thread,
    or with ``DIA_STUDIO_THREAD_GOVERNOR=0``."""
    if device.type != "cpu" or os.environ.get("DIA_STUDIO_THREAD_GOVERNOR", "1") == "0":
        return None
    governor = ThreadGovernor(torch.get_num_threads())
    return governor if governor.active else None


def _emit(r: Render, pos: int, eos_at: int | None, emitted: int,
          on_frames: Callable[[torch.Tensor], None] | None) -> int:
    """Hand out the frames that became final once position ``pos`` is written; returns the new count."""
    delays = r.model.cfg.delay_pattern
    final = pos - max(delays) - r.first + 1  # frames whose every channel is now generated
    if eos_at is not None:
        final = min(final, eos_at - r.first)
    if final <= emitted:
        return emitted
    if on_frames is not None:
        on_frames(_clean(revert_delay(r.buf, r.first + emitted, final - emitted, delays)))
    return final


def _report(on_progress: Callable[[StepProgress], None] | None, steps: int, max_steps: int, emitted: int,
            t1: float) -> None:
    if on_progress is not None:
        elapsed = time.perf_counter() - t1
        on_progress(StepProgress(steps, max_steps, emitted, steps / elapsed if elapsed > 0 else 0.0, elapsed))


class StaticStep:
    """The graph-ready decoding step of one render: fixed device buffers in, the same buffers out.

    Each call samples the frame for ``position`` from ``logits``, applies the EOS countdown on the
    device, writes the row into the code buffer, runs the decoder on it and leaves the next
    position's logits in ``logits``. No value is read back to the host, and no shape depends on
    one: calls after ``done`` only write spare positions past the end of the render.
    """

    def __init__(self, r: Render) -> None:
        cfg, device = r.model.cfg, r.model.device
        self.render = r
        self.delays = torch.tensor(cfg.delay_pattern, dtype=torch.long, device=device)
        self.max_delay = max(cfg.delay_pattern)
        self.position = torch.tensor([r.first], dtype=torch.long, device=device)
        self.logits = r.logits.clone()
        self.eos_at = torch.full((1,), -1, dtype=torch.long, device=device)  # -1: not yet
        self.by_eos = torch.zeros(1, dtype=torch.bool, device=device)  # the model chose EOS (vs the limit)
        self.done = torch.zeros(1, dtype=torch.bool, device=device)
        self.span = r.state.capacity

    @property
    def buffers(self) -> list[torch.Tensor]:
        """Every tensor a step changes, except the decoder cache (whose unused slots never matter)."""
        return [self.position, self.logits, self.eos_at, self.by_eos, self.done, self.render.buf]

    def __call__(self) -> None:
        r, cfg = self.render, self.render.model.cfg
        pos = self.position
        pred = sample_frame(self.logits, r.settings, cfg.eos_token_id, r.generator)
        chose_eos = pred[:1] == cfg.eos_token_id
        hit = (self.eos_at < 0) & (chose_eos | (pos >= r.deadline))
        self.eos_at.copy_(torch.where(hit, pos, self.eos_at))
        self.by_eos.copy_(torch.where(hit, chose_eos, self.by_eos))
        started = self.eos_at >= 0
        since = pos - self.eos_at  # the countdown: channel c ends (EOS) at eos_at + delay[c], PAD after
        pred = torch.where(started & (since == self.delays), cfg.eos_token_id,
                           torch.where(started & (since > self.delays), cfg.pad_token_id, pred))
        self.done.logical_or_(started & (since >= max(self.max_delay - 1, 0)))
        row = torch.where(r.forced.index_select(0, pos), r.buf.index_select(0, pos), pred)
        r.buf.index_copy_(0, pos, row)
        tokens = row.view(1, 1, -1).expand(2, -1, -1)
        self.logits.copy_(r.model.decode_static(tokens, r.state, pos, self.span))
        pos.add_(1)

    def read(self) -> tuple[int | None, bool, bool]:
        """(EOS position or None, chosen by the model, done): the one host sync per check."""
        eos_at, by_eos, done = torch.cat([self.eos_at, self.by_eos.long(), self.done.long()]).tolist()
        return (eos_at if eos_at >= 0 else None), bool(by_eos), bool(done)


class StepRunner:
    """Runs a graph-ready step: captured once as a CUDA graph and replayed on CUDA devices, called
    eagerly elsewhere (the same code either way).

    ``buffers`` are restored after the warm-up call the capture needs; ``generator`` (None: the
    default one) is registered with the graph and rewound, so the draws are those of eager calls.
    """

    def __init__(self, step: Callable[[], None], device: torch.device, buffers: Sequence[torch.Tensor],
                 generator: torch.Generator | None = None) -> None:
        self.step = step
        self.graph = None
        self.capture_seconds = 0.0
        if device.type == "cuda" and cuda_graphs_enabled(generator):
            t0 = time.perf_counter()
            self.graph = _capture(step, buffers, generator)
            self.capture_seconds = time.perf_counter() - t0

    def run(self, n: int = 1) -> None:
        for _ in range(n):
            if self.graph is not None:
                self.graph.replay()
            else:
                self.step()


def cuda_graphs_enabled(generator: torch.Generator | None = None) -> bool:
    """Whether CUDA graph capture is on (``DIA_STUDIO_CUDA_GRAPHS=0`` turns it off) and this torch can
    capture draws from ``generator`` (a seeded render's own generator needs ``register_generator_state``)."""
    if os.environ.get(CUDA_GRAPHS_ENV, "1") == "0":
        return False
    return generator is None or hasattr(torch.cuda.CUDAGraph, "register_generator_state")


def _capture(step: Callable[[], None], buffers: Sequence[torch.Tensor],
             generator: torch.Generator | None) -> torch.cuda.CUDAGraph:
    saved = [b.clone() for b in buffers]
    rng = generator.get_state() if generator is not None else torch.cuda.get_rng_state()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()  # warm-up on a side stream, as capture requires (library handles, allocator)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    if generator is not None:
        graph.register_generator_state(generator)
    with torch.cuda.graph(graph):
        step()
    for buffer, value in zip(buffers, saved):
        buffer.copy_(value)
    if generator is not None:
        generator.set_state(rng)
    else:
        torch.cuda.set_rng_state(rng)
    return graph


def _run_static(r: Render, every: int, on_progress: Callable[[StepProgress], None] | None,
                on_frames: Callable[[torch.Tensor], None] | None, should_stop: Callable[[], bool] | None) -> CodesResult:
    """Graph-ready steps in batches of ``every``, with one host check (EOS, frames, cancel) per batch."""
    max_delay = max(r.model.cfg.delay_pattern)
    step = StaticStep(r)
    runner = StepRunner(step, r.model.device, step.buffers, r.generator)
    calls = emitted = 0
    t1 = time.perf_counter()
    while True:
        if should_stop is not None and should_stop():
            raise CancelledError("render cancelled")
        runner.run(every)
        calls += every
        eos_at, by_eos, done = step.read()
        last = r.first + calls - 1  # the last position written
        if done:
            last = min(last, eos_at + max(max_delay - 1, 0))
        emitted = _emit(r, last, eos_at, emitted, on_frames)
        _report(on_progress, last - r.first + 1, r.max_steps, emitted, t1)
        if done:
            return r.result(eos_at, "eos" if by_eos else "max_new_tokens", last - r.first + 1, t1,
                            runner.capture_seconds)


def _clean(frames: torch.Tensor) -> torch.Tensor:
    """Guard: anything outside the codebook (a forced special token) becomes code 0."""
    return torch.where((frames >= 0) & (frames < 1024), frames, torch.zeros_like(frames))
