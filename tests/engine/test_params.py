"""Generation parameters: defaults, inclusive bounds, type checks, dict round trip, presets, seeds."""

from __future__ import annotations

import dataclasses
import math

import pytest

from engine.errors import InvalidParameterError
from engine.params import PARAM_SPECS, PRESET_NOTES, PRESETS, GenerationParams, resolve_seed

# The hosted API's contract (shared/seeds/000): field -> (minimum, maximum, default).
CONTRACT = {
    "cfg_scale": (1, 5, 3.0),
    "temperature": (0.1, 2.0, 1.8),
    "top_p": (0.1, 1.0, 0.95),
    "cfg_filter_top_k": (1, 100, 45),
    "speed_factor": (0.5, 2.0, 1.0),
    "max_new_tokens": (256, 4096, 3072),
}


def test_defaults_equal_the_contract():
    params = GenerationParams()
    for name, (_, _, default) in CONTRACT.items():
        assert getattr(params, name) == default
    assert params.seed == -1


def test_specs_match_the_contract_and_the_dataclass():
    assert list(PARAM_SPECS) == [f.name for f in dataclasses.fields(GenerationParams)]
    for name, (minimum, maximum, default) in CONTRACT.items():
        spec = PARAM_SPECS[name]
        assert (spec.minimum, spec.maximum, spec.default) == (minimum, maximum, default)
    for spec in PARAM_SPECS.values():
        assert spec.label and spec.help.endswith(".") and spec.step > 0
        assert spec.is_integer == (spec.decimals == 0)
        assert getattr(GenerationParams(), spec.name) == spec.default
    assert PARAM_SPECS["seed"].minimum == -1 and PARAM_SPECS["seed"].maximum == 2**63 - 1


@pytest.mark.parametrize("name", list(CONTRACT))
def test_bounds_are_inclusive(name):
    minimum, maximum, _ = CONTRACT[name]
    assert getattr(GenerationParams(**{name: minimum}), name) == minimum
    assert getattr(GenerationParams(**{name: maximum}), name) == maximum


@pytest.mark.parametrize("name", list(CONTRACT))
def test_just_outside_the_bounds_is_rejected(name):
    minimum, maximum, _ = CONTRACT[name]
    delta = 1 if PARAM_SPECS[name].is_integer else 1e-9
    for value in (minimum - delta, maximum + delta):
        with pytest.raises(InvalidParameterError) as caught:
            GenerationParams(**{name: value})
        assert caught.value.code == "invalid_parameter"
        assert name in caught.value.message and "between" in caught.value.message


def test_message_names_field_range_and_value():
    with pytest.raises(InvalidParameterError) as caught:
        GenerationParams(temperature=3.0)
    assert caught.value.message == "temperature must be between 0.1 and 2.0 (got 3.0)"


@pytest.mark.parametrize("name", ["cfg_scale", "temperature", "top_p", "speed_factor"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_rejected(name, value):
    with pytest.raises(InvalidParameterError, match=name):
        GenerationParams(**{name: value})


@pytest.mark.parametrize("name", list(PARAM_SPECS))
@pytest.mark.parametrize("value", [True, False, "3", None])
def test_bools_strings_and_none_are_rejected(name, value):
    with pytest.raises(InvalidParameterError, match=name):
        GenerationParams(**{name: value})


@pytest.mark.parametrize("name", ["cfg_filter_top_k", "max_new_tokens", "seed"])
@pytest.mark.parametrize("value", [50.5, 512.0])
def test_integer_fields_reject_floats(name, value):
    with pytest.raises(InvalidParameterError, match=f"{name} must be an integer"):
        GenerationParams(**{name: value})


def test_ints_for_float_fields_are_normalised_to_float():
    params = GenerationParams(cfg_scale=4, speed_factor=1)
    assert type(params.cfg_scale) is float and params.cfg_scale == 4.0
    assert params == GenerationParams(cfg_scale=4.0, speed_factor=1.0)


def test_seed_range():
    for seed in (-1, 0, 12345, 2**63 - 1):
        assert GenerationParams(seed=seed).seed == seed
    for seed in (-2, 2**63):
        with pytest.raises(InvalidParameterError, match="seed"):
            GenerationParams(seed=seed)


def test_validate_passes_on_valid_params():
    GenerationParams().validate()


def test_dict_round_trip():
    params = GenerationParams(cfg_scale=4.5, temperature=1.2, top_p=0.8, cfg_filter_top_k=20,
                              speed_factor=0.9, max_new_tokens=2048, seed=42)
    data = params.to_dict()
    assert data == {"cfg_scale": 4.5, "temperature": 1.2, "top_p": 0.8, "cfg_filter_top_k": 20,
                    "speed_factor": 0.9, "max_new_tokens": 2048, "seed": 42}
    assert GenerationParams.from_dict(data) == params


def test_from_dict_defaults_missing_and_none_values():
    assert GenerationParams.from_dict({}) == GenerationParams()
    assert GenerationParams.from_dict({"seed": None, "top_p": 0.5}) == GenerationParams(top_p=0.5)


def test_from_dict_rejects_unknown_keys_and_bad_values():
    with pytest.raises(InvalidParameterError, match="temprature"):
        GenerationParams.from_dict({"temprature": 1.0})
    with pytest.raises(InvalidParameterError, match="top_p"):
        GenerationParams.from_dict({"top_p": 0})


@pytest.mark.parametrize("data", [{1: 2.0}, {("top_p",): 0.5}, {"top_p": 0.5, 7: 1}, {None: 1}])
def test_from_dict_rejects_keys_that_are_not_strings(data):
    with pytest.raises(InvalidParameterError, match="parameter names must be strings"):
        GenerationParams.from_dict(data)


@pytest.mark.parametrize("data", [None, [("top_p", 0.5)], "top_p=0.5", 3])
def test_from_dict_rejects_what_is_not_a_mapping(data):
    with pytest.raises(InvalidParameterError, match="must be a mapping"):
        GenerationParams.from_dict(data)


def test_a_huge_bad_value_gives_a_short_message():
    with pytest.raises(InvalidParameterError) as caught:
        GenerationParams(top_p="x" * 1_000_000)
    assert "top_p must be a number" in str(caught.value) and len(str(caught.value)) < 200


def test_replace_returns_a_validated_copy():
    params = GenerationParams()
    changed = params.replace(temperature=1.0, seed=7)
    assert (changed.temperature, changed.seed) == (1.0, 7)
    assert params.temperature == 1.8
    with pytest.raises(InvalidParameterError, match="temperature"):
        params.replace(temperature=0.0)
    with pytest.raises(InvalidParameterError, match="unknown"):
        params.replace(volume=2)


def test_params_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GenerationParams().temperature = 1.0  # type: ignore[misc]


def test_presets_are_valid_and_documented():
    assert PRESETS["Default"] == GenerationParams()
    assert set(PRESET_NOTES) == set(PRESETS)
    for name, params in PRESETS.items():
        assert isinstance(params, GenerationParams)
        assert GenerationParams.from_dict(params.to_dict()) == params
        assert PRESET_NOTES[name]
    clone = PRESETS["Voice clone"]
    assert (clone.cfg_scale, clone.temperature, clone.top_p, clone.cfg_filter_top_k) == (4.0, 1.8, 0.90, 50)
    assert PRESETS["Steady"].temperature < GenerationParams().temperature < PRESETS["Expressive"].temperature


def test_resolve_seed():
    assert resolve_seed(0) == 0
    assert resolve_seed(2**63 - 1) == 2**63 - 1
    drawn = {resolve_seed(-1) for _ in range(20)}
    assert all(0 <= seed < 2**63 for seed in drawn)
    assert len(drawn) > 1
    for bad in (-2, 2**63, True, 1.5):
        with pytest.raises(InvalidParameterError):
            resolve_seed(bad)
