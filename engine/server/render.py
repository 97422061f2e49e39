"""From an API request to a ``RenderRequest``: input checks, voices, parameters, long scripts.

Everything here runs before the request takes a place in the queue, so a bad request is refused
at once with its typed error and never waits for the model. A script longer than one render is
planned for the episode engine (``engine.server.longform``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from engine import (
    CastMember,
    DiaEngine,
    GenerationParams,
    MissingInputError,
    RenderHistory,
    RenderRequest,
    RenderResult,
    RequestTooLargeError,
    VoiceLibrary,
    assemble_prompt,
    estimate_budget,
    parse_script,
    text_token_count,
    time_stretch,
)
from engine.server.longform import LongPlan, plan_long

SPEED_RANGE = (0.25, 4.0)
"""OpenAI's ``speed``; the engine stretches 0.5–2.0 per pass, so the ends take two passes."""
ENGINE_SPEED_RANGE = (0.5, 2.0)
HISTORY_LABEL = "via API"


@dataclass(frozen=True)
class Plan:
    """A checked request, ready for the queue."""

    request: RenderRequest
    cast: dict[str, CastMember] = field(default_factory=dict)
    post_speed: float = 1.0
    """A tempo change still to apply to the finished audio (speeds beyond the engine's range)."""
    long: LongPlan | None = None
    """Set for a script longer than one render: it renders block by block through the episode engine."""


def check_input(text: str | None, max_chars: int) -> str:
    """The input text, or ``missing_input`` / ``request_too_large`` (the configured character limit)."""
    if text is None or not text.strip():
        raise MissingInputError("the request has no input: give the text (or [S1]/[S2] script) to speak")
    if len(text) > max_chars:
        raise RequestTooLargeError(f"the input has {len(text)} characters; this server accepts at most "
                                   f"{max_chars} (dia-studio serve --max-input-chars)")
    return text


def split_speed(speed: float) -> tuple[float, float]:
    """OpenAI's ``speed`` as (the engine's ``speed_factor``, a second stretch after it)."""
    low, high = ENGINE_SPEED_RANGE
    if low <= speed <= high:
        return speed, 1.0
    first = math.sqrt(speed)  # two equal passes, each inside the engine's range
    return first, speed / first


def post_process(samples, sample_rate: int, post_speed: float):
    return samples if post_speed == 1.0 else time_stretch(samples, sample_rate, post_speed)


def build_plan(library: VoiceLibrary, text: str, params: GenerationParams,
               speakers: Mapping[str, object] | None, *, post_speed: float = 1.0, long_form: bool = False) -> Plan:
    """Check the script and voices and build the request (blocking: reads voice audio). A script
    longer than one render is planned for the episode engine when ``long_form`` (the backend can
    lend its engine), else refused with ``request_too_large``."""
    parse_script(text, max_text_tokens=sys.maxsize)  # its errors first; its length is judged below
    voice = assemble_prompt(library, dict(speakers or {}))
    cast = {tag: CastMember(sample.id, sample.speaker_name) for tag, sample in (voice.speakers.items() if voice else ())}
    prefix = text_token_count(voice.transcript.strip() + "\n") if voice is not None else 0
    budget = estimate_budget(text, prompt_seconds=voice.duration if voice is not None else 0.0,
                             max_new_tokens=params.max_new_tokens, prefix_tokens=prefix)
    if not budget.fits:
        if not long_form:
            raise _too_long(budget)
        long = plan_long(text, params, voice.speakers if voice is not None else {})
        return Plan(RenderRequest(text, long.params), cast, post_speed, long)
    request = RenderRequest(text, params, voice)
    DiaEngine.prepare_text(request)  # every remaining check of the text the model will read
    return Plan(request, cast, post_speed)


def _too_long(budget) -> RequestTooLargeError:
    """A script longer than one render, on a backend that renders one request at a time only."""
    reasons = "; ".join(budget.warnings) or "it does not fit one render"
    return RequestTooLargeError(
        f"the script is longer than one render can hold (about {budget.estimated_seconds:.0f} s of speech; one "
        f"render holds about {budget.available_seconds:.0f} s with these settings): {reasons}. This server's "
        "renderer takes one render at a time; split the script into several requests")


def store(history: RenderHistory | None, plan: Plan, result: RenderResult, model_id: str) -> int | None:
    """Keep a finished API render in the history, marked "via API"; returns its id."""
    if history is None:
        return None
    entry = history.add(script=plan.request.script, audio_samples=result.audio, sample_rate=result.sample_rate,
                        params=result.params, seed=result.seed, render_seconds=result.timings.get("total", 0.0),
                        cast=plan.cast, model=model_id, stop_reason=result.stop_reason, warnings=result.warnings)
    history.set_label(entry.id, HISTORY_LABEL)
    return entry.id
