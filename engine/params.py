"""Generation parameters: ranges, defaults, validation, presets and seed handling.

Ranges and defaults are the hosted API's (``shared/seeds/000``). Every bound is inclusive. A
``GenerationParams`` validates itself on construction, so an out-of-range value can never reach
the engine.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import reprlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.constants import TRAINED_POSITIONS
from engine.errors import InvalidParameterError

SEED_RANDOM = -1
"""The ``seed`` value asking for a fresh random seed on each render."""

SEED_LIMIT = 2**63
"""Fixed seeds are ``0 <= seed < SEED_LIMIT`` (fits torch's int64 generator seed)."""


@dataclass(frozen=True)
class ParamSpec:
    """How one parameter is bounded and shown: the UI builds its slider, spinbox and tooltip from it."""

    name: str
    label: str
    minimum: float | int
    maximum: float | int
    default: float | int
    step: float | int
    decimals: int
    is_integer: bool
    help: str


PARAM_SPECS: dict[str, ParamSpec] = {
    spec.name: spec
    for spec in (
        ParamSpec("cfg_scale", "CFG scale", 1.0, 5.0, 3.0, 0.1, 1, False,
                  "How strictly the speech follows the script (classifier-free guidance): higher is more "
                  "faithful to the words, lower sounds more natural."),
        ParamSpec("temperature", "Temperature", 0.1, 2.0, 1.8, 0.05, 2, False,
                  "Sampling randomness: higher gives more expressive, varied takes, lower gives more "
                  "consistent but flatter ones."),
        ParamSpec("top_p", "Top P", 0.1, 1.0, 0.95, 0.01, 2, False,
                  "Nucleus sampling: each step samples only from the most likely audio tokens whose "
                  "probabilities add up to this share."),
        ParamSpec("cfg_filter_top_k", "CFG filter top K", 1, 100, 45, 1, 0, True,
                  "Each step keeps only this many highest-scoring audio tokens after guidance: lower is "
                  "more consistent, higher more diverse."),
        ParamSpec("speed_factor", "Speed", 0.5, 2.0, 1.0, 0.01, 2, False,
                  "Speed of the finished audio, applied after generation: below 1.0 is slower, above 1.0 "
                  "faster."),
        ParamSpec("max_new_tokens", "Max audio length", 256, 4096, TRAINED_POSITIONS, 64, 0, True,
                  "The most audio frames one render may produce (about 86 per second, so 3072 is about "
                  "35 s, voice prompt included); rendering stops earlier when the script is done."),
        ParamSpec("seed", "Seed", SEED_RANDOM, SEED_LIMIT - 1, SEED_RANDOM, 1, 0, True,
                  "The same seed, script and settings give the same take; -1 picks a new random seed "
                  "for every render."),
    )
}


DEFAULTS: dict[str, float | int] = {name: spec.default for name, spec in PARAM_SPECS.items()}
"""Each parameter's default, from its spec: the one place they are written."""

DEFAULT_MAX_NEW_TOKENS = int(DEFAULTS["max_new_tokens"])


def _check_value(spec: ParamSpec, value: Any) -> float | int:
    """Return ``value`` as the field's type, or raise ``InvalidParameterError`` naming field and range."""
    kind = "an integer" if spec.is_integer else "a number"
    expected = numbers.Integral if spec.is_integer else numbers.Real
    # bool is an int subclass: True must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, expected):
        raise InvalidParameterError(f"{spec.name} must be {kind} (got {reprlib.repr(value)})")
    value = int(value) if spec.is_integer else float(value)
    if not spec.is_integer and not math.isfinite(value):
        raise InvalidParameterError(f"{spec.name} must be a finite number (got {value!r})")
    if spec.name == "seed":
        if value != SEED_RANDOM and not 0 <= value < SEED_LIMIT:
            raise InvalidParameterError(
                f"seed must be -1 (random) or between 0 and 2**63 - 1 (got {value})")
    elif not spec.minimum <= value <= spec.maximum:
        raise InvalidParameterError(
            f"{spec.name} must be between {spec.minimum} and {spec.maximum} (got {value})")
    return value


@dataclass(frozen=True)
class GenerationParams:
    """The sampling settings of one render. Invalid values raise ``InvalidParameterError`` on construction."""

    cfg_scale: float = DEFAULTS["cfg_scale"]
    temperature: float = DEFAULTS["temperature"]
    top_p: float = DEFAULTS["top_p"]
    cfg_filter_top_k: int = DEFAULTS["cfg_filter_top_k"]
    speed_factor: float = DEFAULTS["speed_factor"]
    max_new_tokens: int = DEFAULTS["max_new_tokens"]
    seed: int = DEFAULTS["seed"]

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field against ``PARAM_SPECS``; numbers are normalised to the field's type."""
        for spec in PARAM_SPECS.values():
            # Frozen: normalise in place (e.g. cfg_scale=3 -> 3.0) so equality and to_dict are stable.
            object.__setattr__(self, spec.name, _check_value(spec, getattr(self, spec.name)))

    def to_dict(self) -> dict[str, float | int]:
        """A plain JSON-friendly dict of all fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationParams:
        """Build from a dict. Missing keys and ``None`` values take the default; unknown keys raise
        ``InvalidParameterError`` (a typo such as ``temprature`` must not be silently ignored), and so
        do keys that are not strings and a ``data`` that is not a mapping."""
        if not isinstance(data, Mapping):
            raise InvalidParameterError(
                f"parameters must be a mapping of names to values, not {type(data).__name__}")
        odd = [key for key in data if not isinstance(key, str)]
        if odd:
            raise InvalidParameterError(f"parameter names must be strings (got {reprlib.repr(odd[0])})")
        unknown = sorted(set(data) - set(PARAM_SPECS))
        if unknown:
            raise InvalidParameterError(
                f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(PARAM_SPECS)}")
        return cls(**{key: value for key, value in data.items() if value is not None})

    def replace(self, **changes: Any) -> GenerationParams:
        """A validated copy with ``changes`` applied."""
        unknown = sorted(set(changes) - set(PARAM_SPECS))
        if unknown:
            raise InvalidParameterError(f"unknown parameter(s) {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)


def resolve_seed(seed: int) -> int:
    """The seed a render actually uses: a fresh random one for -1, otherwise ``seed`` (validated).

    The result is recorded with the take so it can be reproduced.
    """
    seed = _check_value(PARAM_SPECS["seed"], seed)
    if seed == SEED_RANDOM:
        # 32 bits keep recorded seeds short enough to read out and type back in.
        return secrets.randbits(32)
    return seed


PRESETS: dict[str, GenerationParams] = {
    "Default": GenerationParams(),
    "Steady": GenerationParams(temperature=1.3, top_p=0.95, cfg_filter_top_k=30, speed_factor=0.94),
    "Voice clone": GenerationParams(cfg_scale=4.0, temperature=1.8, top_p=0.90, cfg_filter_top_k=50),
    "Expressive": GenerationParams(temperature=2.0, top_p=0.95, cfg_filter_top_k=60),
    "Podcast dialogue": GenerationParams(cfg_scale=4.0, temperature=1.3, top_p=0.95, cfg_filter_top_k=35,
                                         speed_factor=0.94),
}

PRESET_NOTES: dict[str, str] = {
    "Default": "The hosted API's defaults: a balanced start for most scripts.",
    "Steady": "Nari's own Gradio demo settings: a lower temperature and a tighter top-k give more "
              "consistent takes, and 0.94 speed slows Dia's brisk delivery slightly.",
    "Voice clone": "What Nari's voice_clone example uses: stronger guidance (CFG 4) and slightly "
                   "narrower sampling keep the cloned voice on the transcript.",
    "Expressive": "The top of the temperature range with a wider top-k: livelier prosody and nonverbals, "
                  "but more failed takes; fix the seed once a take sounds right.",
    "Podcast dialogue": "Segmind's hosted Dia defaults for podcast-style two-speaker conversation: CFG 4 keeps "
                        "the words, temperature 1.3 and top-k 35 keep both voices steady, 0.94 speed relaxes "
                        "the pace.",
}
"""Why each preset exists, one sentence each (shown as the preset's tooltip)."""
