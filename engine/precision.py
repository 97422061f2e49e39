"""How close a faster model (bf16/fp16, quantised, graph-captured steps) stays to float32 on the
same device: the correctness check the GPU benchmark and the self-test run.

    reference = with_dtype(model, torch.float32)         # or the float32 model it was made from
    report = check_against_float32(model, reference)      # Agreement(...), report.passed()

Two measures, as for int8 on the CPU: teacher-forced logits (the same tokens through both models,
one step at a time, the way a render runs them) and free-running codes (greedy, then one seeded
sampled render). Random weights have small logit margins, so their code agreement is a lower
bound; the logits say how far apart the numbers are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from engine.generate import encode_guided, generate_codes, resolve_step_mode
from engine.model.dia import DiaModel
from engine.model.tokenizer import encode_text
from engine.sampling import SamplingSettings

CHECK_TEXT = "[S1] The quick brown fox jumps over the lazy dog. [S2] And then it ran away (laughs)."
# passed(): teacher-forced argmax agreement at least this (bf16 vs fp32 on tiny random weights: ~0.99)
MIN_ARGMAX_AGREEMENT = 0.9


@dataclass(frozen=True)
class Agreement:
    """A model against its float32 reference on one device."""

    device: str
    dtype: str
    step_mode: str
    steps: int
    logit_max_abs_diff: float
    logit_max_rel_diff: float  # max |Δ| over the reference's max |logit|
    argmax_agreement: float  # teacher-forced: share of (step, row, channel) whose top token is the same
    greedy_code_agreement: float  # share of equal codes over the longer of the two renders
    greedy_first_divergent_frame: int | None
    sampled_code_agreement: float  # one seeded sampled render each

    def passed(self, min_argmax: float = MIN_ARGMAX_AGREEMENT) -> bool:
        """A loose sanity bound: a broken step (wrong cache slot, wrong mask) agrees far less."""
        return self.argmax_agreement >= min_argmax

    def to_dict(self) -> dict:
        return asdict(self)


def with_dtype(model: DiaModel, dtype: torch.dtype) -> DiaModel:
    """A copy of a dense ``model`` in ``dtype`` on its device (norm gains stay float32, as when loading)."""
    with torch.device("meta"):
        copy = DiaModel(model.cfg, dtype=dtype)
    target = copy.state_dict()
    source = model.state_dict()
    if set(source) != set(target):
        raise ValueError("with_dtype needs a dense model (a quantised one has other tensors): pass its reference")
    copy.load_state_dict({k: v.to(dtype=target[k].dtype, copy=True) for k, v in source.items()}, strict=True,
                         assign=True)
    copy.channel_offsets = torch.arange(model.cfg.num_channels, device=model.device) * model.cfg.dec_vocab_size
    copy.tune_for_device()
    return copy.eval()


@torch.inference_mode()
def check_against_float32(model: DiaModel, reference: DiaModel | None = None, *, steps: int = 48, seed: int = 0,
                          step_mode: str = "auto", text: str = CHECK_TEXT) -> Agreement:
    """Compare ``model`` (in the step mode it renders with) with its float32 ``reference`` (default: an
    upcast copy) on the same device, over ``steps`` decoder steps."""
    reference = reference if reference is not None else with_dtype(model, torch.float32)
    mode = resolve_step_mode(step_mode, model.device)
    text_ids = encode_text(text)
    ours, ref = _teacher_forced(model, text_ids, steps, seed, mode), _teacher_forced(reference, text_ids, steps, seed,
                                                                                       "loop")
    scale = ref.abs().max().clamp(min=1e-12)
    diff = (ours - ref).abs().max()
    greedy = SamplingSettings(temperature=0.0, max_new_tokens=steps + 1)
    sampled = SamplingSettings(max_new_tokens=steps + 1, seed=seed)
    g_ours = generate_codes(model, text_ids, greedy, step_mode=mode).codes
    g_ref = generate_codes(reference, text_ids, greedy, step_mode="loop").codes
    s_ours = generate_codes(model, text_ids, sampled, step_mode=mode).codes
    s_ref = generate_codes(reference, text_ids, sampled, step_mode="loop").codes
    agree, first = _code_agreement(g_ours, g_ref)
    return Agreement(
        device=str(model.device), dtype=str(model.dtype).replace("torch.", ""), step_mode=mode, steps=steps,
        logit_max_abs_diff=round(float(diff), 6), logit_max_rel_diff=round(float(diff / scale), 6),
        argmax_agreement=round(float((ours.argmax(-1) == ref.argmax(-1)).float().mean()), 4),
        greedy_code_agreement=agree, greedy_first_divergent_frame=first,
        sampled_code_agreement=_code_agreement(s_ours, s_ref)[0])


def _teacher_forced(model: DiaModel, text_ids: list[int], steps: int, seed: int, mode: str) -> torch.Tensor:
    """float32 logits (steps, 2, C, V) for the same seeded random tokens, one decoder step at a time."""
    cfg, device = model.cfg, model.device
    tokens = torch.randint(0, 1024, (1, steps, cfg.num_channels), generator=torch.Generator().manual_seed(seed))
    tokens[:, 0] = cfg.bos_token_id
    tokens = tokens.to(device).expand(2, -1, -1)
    state = model.start_decoder(encode_guided(model, text_ids), None, steps)
    out = []
    for t in range(steps):
        if mode == "static":
            position = torch.tensor([t], device=device)
            out.append(model.decode_static(tokens[:, t:t + 1], state, position, steps))
        else:
            out.append(model.decode(tokens[:, t:t + 1], state))
    return torch.stack(out).float().cpu()


def _code_agreement(a: torch.Tensor, b: torch.Tensor) -> tuple[float, int | None]:
    """Share of equal codes over the longer render (missing frames disagree) and the first frame that differs."""
    common = min(len(a), len(b))
    same = (a[:common] == b[:common])
    longest = max(len(a), len(b))
    share = float(same.sum()) / (longest * a.shape[1]) if longest else 1.0
    differ = (~same).any(dim=1).nonzero()
    first = int(differ[0]) if len(differ) else (common if len(a) != len(b) else None)
    return round(share, 4), first
