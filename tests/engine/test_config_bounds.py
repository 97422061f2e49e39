"""Model and codec configurations are bounded and consistent before anything is built from them.

Every bad value in a ``config.json`` is an ``invalid_checkpoint`` error naming the field, raised
without allocating; values large enough to exhaust memory run in a subprocess under an address-space
limit, so a regression fails there instead of eating the machine.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from engine.errors import CheckpointError, ModelNotFoundError
from engine.model.checkpoint import load_dia, transformers_shapes
from engine.model.config import DiaConfig
from engine.model.dac import DacConfig
from engine.model.dac_checkpoint import load_dac
from tests.engine.dac_fixtures import TINY_DAC, write_transformers_dac
from tests.engine.dia_fixtures import TINY

ROOT = Path(__file__).resolve().parents[2]
DELETE = object()


def _mutated(data: dict, changes: dict[tuple[str, ...], object]) -> dict:
    """A deep copy of ``data`` with each path set to a value (or removed, for DELETE)."""
    out = copy.deepcopy(data)
    for path, value in changes.items():
        section = out
        for key in path[:-1]:
            section = section[key]
        if value is DELETE:
            section.pop(path[-1], None)
        else:
            section[path[-1]] = value
    return out


def _tiny_dia_folder(folder: Path, cfg: DiaConfig = TINY, extra: dict[str, torch.Tensor] | None = None) -> Path:
    """config.json + model.safetensors of zeros in the transformers layout (no transformers needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {key: torch.zeros(shape) for key, shape in transformers_shapes(cfg).items()}
    save_file({**tensors, **(extra or {})}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(cfg.to_transformers_dict()))
    return folder


ENC, DEC = "encoder_config", "decoder_config"
LAYERS, HEADS, KV = "num_hidden_layers", "num_attention_heads", "num_key_value_heads"

# (changes to TINY's transformers config.json, the field name the error must mention)
BAD_TRANSFORMERS_VALUES = {
    "hidden_size_text": ({(ENC, "hidden_size"): "64"}, "encoder_config.hidden_size"),
    "hidden_size_zero": ({(ENC, "hidden_size"): 0}, "encoder_config.hidden_size"),
    "hidden_size_negative": ({(ENC, "hidden_size"): -64}, "encoder_config.hidden_size"),
    "hidden_size_fraction": ({(ENC, "hidden_size"): 64.5}, "encoder_config.hidden_size"),
    "hidden_size_bool": ({(ENC, "hidden_size"): True}, "encoder_config.hidden_size"),
    "hidden_size_list": ({(ENC, "hidden_size"): [64]}, "encoder_config.hidden_size"),
    "hidden_size_missing": ({(ENC, "hidden_size"): DELETE}, "encoder_config.hidden_size"),
    "hidden_size_null": ({(ENC, "hidden_size"): None}, "encoder_config.hidden_size"),
    "layers_text": ({(DEC, LAYERS): "2"}, "decoder_config.num_hidden_layers"),
    "layers_zero": ({(DEC, LAYERS): 0}, "decoder_config.num_hidden_layers"),
    "layers_negative": ({(DEC, LAYERS): -1}, "decoder_config.num_hidden_layers"),
    "layers_float": ({(ENC, LAYERS): 2.0}, "encoder_config.num_hidden_layers"),
    "layers_too_many": ({(DEC, LAYERS): 129}, "decoder_config.num_hidden_layers"),
    "heads_zero": ({(DEC, HEADS): 0}, "decoder_config.num_attention_heads"),
    "kv_heads_zero": ({(DEC, KV): 0}, "decoder_config.num_key_value_heads"),
    "kv_heads_do_not_divide_heads": ({(DEC, KV): 3}, "decoder_config.num_key_value_heads"),
    "heads_do_not_divide_width": ({(DEC, "head_dim"): DELETE, (DEC, HEADS): 5, (DEC, KV): 5},
                                  "decoder_config.num_attention_heads"),
    "cross_heads_do_not_divide": ({(DEC, "cross_num_key_value_heads"): 3}, "cross_num_key_value_heads"),
    "head_dim_odd": ({(DEC, "head_dim"): 15}, "decoder_config.head_dim"),
    "head_dim_text": ({(ENC, "head_dim"): "16"}, "encoder_config.head_dim"),
    "ffn_negative": ({(ENC, "intermediate_size"): -128}, "encoder_config.intermediate_size"),
    "ffn_missing": ({(DEC, "intermediate_size"): DELETE}, "decoder_config.intermediate_size"),
    "vocab_below_special_tokens": ({(DEC, "vocab_size"): 1000}, "decoder_config.vocab_size"),
    "text_vocab_below_bytes": ({(ENC, "vocab_size"): 100}, "encoder_config.vocab_size"),
    "positions_zero": ({(ENC, "max_position_embeddings"): 0}, "encoder_config.max_position_embeddings"),
    "channels_disagree_with_delays": ({(DEC, "num_channels"): 8}, "delay_pattern"),
    "delay_pattern_short": ({("delay_pattern",): [0, 8, 9]}, "delay_pattern"),
    "delay_pattern_text": ({("delay_pattern",): "0,8,9"}, "delay_pattern"),
    "delay_pattern_negative": ({("delay_pattern",): [-1, 8, 9, 10, 11, 12, 13, 14, 15]}, "delay_pattern"),
    "delay_beyond_positions": ({("delay_pattern",): [0, 8, 9, 10, 11, 12, 13, 14, 5000]}, "delay_pattern"),
    "norm_eps_zero": ({("norm_eps",): 0}, "norm_eps"),
    "norm_eps_text": ({("norm_eps",): "1e-5"}, "norm_eps"),
    "norm_eps_nan": ({("norm_eps",): float("nan")}, "norm_eps"),
    "rope_theta_infinite": ({(DEC, "rope_theta"): float("inf")}, "decoder_config.rope_theta"),
    "rope_theta_negative": ({(DEC, "rope_theta"): -10000}, "decoder_config.rope_theta"),
    "rope_parameters_not_object": ({(DEC, "rope_parameters"): "x"}, "decoder_config.rope_parameters"),
    "eos_outside_vocab": ({("eos_token_id",): 5000}, "eos_token_id"),
    "pad_equals_bos": ({("bos_token_id",): 1025}, "bos_token_id"),
    "eos_text": ({("eos_token_id",): "1024"}, "eos_token_id"),
    "cross_width_disagrees": ({(DEC, "cross_hidden_size"): 32}, "decoder_config.cross_hidden_size"),
    "encoder_config_not_object": ({(ENC,): [1, 2]}, "encoder_config"),
    "decoder_config_null": ({(DEC,): None}, "decoder_config"),
}

BAD_LEGACY_VALUES = {
    "layers_zero": ({("model", "decoder", "n_layer"): 0}, "model.decoder.n_layer"),
    "kv_heads_do_not_divide": ({("model", "decoder", "kv_heads"): 3}, "model.decoder.kv_heads"),
    "channels_text": ({("data", "channels"): "9"}, "data.channels"),
    "channels_disagree_with_delays": ({("data", "channels"): 4}, "data.delay_pattern"),
    "encoder_missing": ({("model", "encoder"): DELETE}, "model.encoder"),
    "width_missing": ({("model", "encoder", "n_embd"): DELETE}, "model.encoder.n_embd"),
    "eps_negative": ({("model", "normalization_layer_epsilon"): -1.0}, "model.normalization_layer_epsilon"),
}


@pytest.mark.parametrize(("changes", "field"), BAD_TRANSFORMERS_VALUES.values(), ids=BAD_TRANSFORMERS_VALUES.keys())
def test_bad_transformers_config_value_names_the_field(changes, field):
    with pytest.raises(CheckpointError) as err:
        DiaConfig.from_dict(_mutated(TINY.to_transformers_dict(), changes))
    assert err.value.code == "invalid_checkpoint"
    assert field in err.value.message


@pytest.mark.parametrize(("changes", "field"), BAD_LEGACY_VALUES.values(), ids=BAD_LEGACY_VALUES.keys())
def test_bad_legacy_config_value_names_the_field(changes, field):
    with pytest.raises(CheckpointError) as err:
        DiaConfig.from_dict(_mutated(TINY.to_legacy_dict(), changes))
    assert field in err.value.message


@pytest.mark.parametrize("data", [[], "config", 3, None, {"something": "else"}])
def test_config_that_is_not_a_dia_json_object_is_refused(data):
    with pytest.raises(CheckpointError, match="config.json"):
        DiaConfig.from_dict(data)


def test_bad_config_file_names_the_file_and_how_to_recover(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_mutated(TINY.to_transformers_dict(), {(DEC, LAYERS): 0})))
    with pytest.raises(CheckpointError, match=r"config\.json: .*num_hidden_layers.*download the model again"):
        DiaConfig.from_file(path)


@pytest.mark.parametrize("content", ["[" * 100_000, "{not json", "\xff\xfe"])
def test_unreadable_config_file_is_refused(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_text(content, encoding="latin-1")
    with pytest.raises(CheckpointError, match="config.json"):
        DiaConfig.from_file(path)


def test_config_built_in_code_is_checked_too():
    from dataclasses import replace

    with pytest.raises(CheckpointError, match="dec_layers"):
        replace(TINY, dec_layers=10**6)
    assert replace(TINY, delay_pattern=[0, 1, 2, 3, 4, 5, 6, 7, 8]).delay_pattern == (0, 1, 2, 3, 4, 5, 6, 7, 8)


def test_published_configs_read_back():
    for cfg in (DiaConfig(), TINY):
        assert DiaConfig.from_dict(cfg.to_transformers_dict()) == cfg
        assert DiaConfig.from_dict(cfg.to_legacy_dict()).dec_layers == cfg.dec_layers


# ------------------------------------------------------------------------------------------
# Estimated weight size against the files


def test_config_larger_than_its_files_is_refused_before_reading_them(tmp_path):
    folder = _tiny_dia_folder(tmp_path / "dia")
    (folder / "config.json").write_text(json.dumps(_mutated(TINY.to_transformers_dict(), {(DEC, LAYERS): 100})))
    with pytest.raises(CheckpointError, match=r"model\.safetensors holds .* too few for the .* parameters"):
        load_dia(folder)


def test_files_far_larger_than_the_config_are_refused(tmp_path):
    params = sum(torch.Size(s).numel() for s in transformers_shapes(TINY).values())
    folder = _tiny_dia_folder(tmp_path / "dia", extra={"stowaway": torch.zeros(2 * params)})
    with pytest.raises(CheckpointError, match=r"more than the .* parameters config\.json describes"):
        load_dia(folder)


def test_files_of_the_right_size_load(tmp_path):
    assert load_dia(_tiny_dia_folder(tmp_path / "dia")).cfg == TINY


# ------------------------------------------------------------------------------------------
# Huge values, under an address-space limit

HUGE_PROBE = r"""
import json, resource, sys
import torch
from engine.model.checkpoint import load_dia
from engine.model.dac_checkpoint import load_dac

torch.set_num_threads(1)
with open('/proc/self/status') as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith('VmSize:'))
headroom = 1 << 30  # 1 GiB above what the imports mapped: far more than a refusal needs
resource.setrlimit(resource.RLIMIT_AS, (vm + headroom, vm + headroom))
resource.setrlimit(resource.RLIMIT_CPU, (120, 120))  # a backstop against a hang, not a measurement
results = {}
for case in json.loads(sys.argv[1]):
    loader = load_dia if case["kind"] == "dia" else load_dac
    try:
        loader(case["path"])
        results[case["id"]] = ["loaded", ""]
    except BaseException as exc:
        results[case["id"]] = [type(exc).__name__, str(exc)]
print(json.dumps(results))
"""

# (kind, changes to the tiny config.json, the field the error must name)
HUGE_VALUES = {
    "dia_decoder_layers": ("dia", {(DEC, LAYERS): 10**6}, "decoder_config.num_hidden_layers"),
    "dia_encoder_layers": ("dia", {(ENC, LAYERS): 10**6}, "encoder_config.num_hidden_layers"),
    "dia_decoder_width": ("dia", {(DEC, "hidden_size"): 10**9}, "decoder_config.hidden_size"),
    "dia_ffn": ("dia", {(DEC, "intermediate_size"): 10**12}, "decoder_config.intermediate_size"),
    "dia_vocab": ("dia", {(DEC, "vocab_size"): 10**9}, "decoder_config.vocab_size"),
    "dia_heads": ("dia", {(DEC, HEADS): 2**40, (DEC, KV): 2**40}, "decoder_config.num_attention_heads"),
    "dia_head_dim": ("dia", {(ENC, "head_dim"): 2**40}, "encoder_config.head_dim"),
    "dia_positions": ("dia", {(DEC, "max_position_embeddings"): 10**12}, "decoder_config.max_position_embeddings"),
    "dia_channels": ("dia", {(DEC, "num_channels"): 10**5, ("delay_pattern",): [0] * 10**5},
                     "decoder_config.num_channels"),
    "dia_all_within_bounds": ("dia", {(DEC, LAYERS): 128, (DEC, "hidden_size"): 1 << 14,
                                      (DEC, "intermediate_size"): 1 << 16}, "config.json"),
    "dac_codebooks": ("dac", {("n_codebooks",): 10**9}, "n_codebooks"),
    "dac_codebook_size": ("dac", {("codebook_size",): 10**12}, "codebook_size"),
    "dac_decoder_width": ("dac", {("decoder_hidden_size",): 2**40}, "decoder_hidden_size"),
    "dac_rates": ("dac", {("downsampling_ratios",): [2] * 10**5}, "downsampling_ratios"),
    "dac_latent": ("dac", {("encoder_hidden_size",): 4096, ("downsampling_ratios",): [2] * 8},
                   "encoder_hidden_size"),
    "dac_original_codebooks": ("dac_pth", {("n_codebooks",): 10**9}, "n_codebooks"),
}


@pytest.fixture(scope="module")
def huge_results(tmp_path_factory):
    """Load every HUGE_VALUES case in one subprocess under RLIMIT_AS; {case: [exception type, message]}."""
    base = tmp_path_factory.mktemp("huge")
    dia, dac = _tiny_dia_folder(base / "dia"), write_transformers_dac(base / "dac")
    cases = []
    for name, (kind, changes, _) in HUGE_VALUES.items():
        folder = base / name
        folder.mkdir()
        if kind == "dac_pth":
            kwargs = _mutated(TINY_DAC.to_original_kwargs(), changes)
            torch.save({"state_dict": {}, "metadata": {"kwargs": kwargs}}, folder / "weights.pth")
        else:
            source = dia if kind == "dia" else dac
            weights = "model.safetensors"
            (folder / weights).symlink_to(source / weights)
            config = json.loads((source / "config.json").read_text())
            (folder / "config.json").write_text(json.dumps(_mutated(config, changes)))
        cases.append({"id": name, "kind": "dia" if kind == "dia" else "dac", "path": str(folder)})
    out = subprocess.run([sys.executable, "-c", HUGE_PROBE, json.dumps(cases)], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc and RLIMIT_AS")
@pytest.mark.parametrize(("kind", "changes", "field"), HUGE_VALUES.values(), ids=HUGE_VALUES.keys())
def test_huge_value_is_refused_without_allocating(huge_results, request, kind, changes, field):
    kind_name, message = huge_results[request.node.callspec.id]
    assert kind_name == "CheckpointError", message
    assert field in message


# ------------------------------------------------------------------------------------------
# Fuzzing: any mutation of the fields gives a model or an invalid_checkpoint error, nothing else

JSON_VALUES = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([16, 64, 96, 128, 1023, 1024, 1025, 1026, 1028, 4096, 10**6, 10**9, 2**63, -(2**63)]),
    st.integers(),
    st.floats(),
    st.text(max_size=4),
    st.none(),
    st.booleans(),
    st.lists(st.integers(-2, 20), max_size=10),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(DELETE),
)


def _paths(data: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in data.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out += _paths(value, (*prefix, key))
    return out


TRANSFORMERS_PATHS = _paths(TINY.to_transformers_dict())
LEGACY_PATHS = _paths(TINY.to_legacy_dict())


def _mutations(paths: list[tuple[str, ...]]):
    return st.dictionaries(st.sampled_from(paths), JSON_VALUES, min_size=1, max_size=3)


def _apply_any(data: dict, changes: dict) -> dict:
    """Like _mutated, but a path whose parent was replaced by a non-object is skipped."""
    out = copy.deepcopy(data)
    for path, value in sorted(changes.items(), key=lambda kv: len(kv[0])):
        section = out
        for key in path[:-1]:
            section = section.get(key) if isinstance(section, dict) else None
        if isinstance(section, dict):
            if value is DELETE:
                section.pop(path[-1], None)
            else:
                section[path[-1]] = value
    return out


@settings(max_examples=300, deadline=None)
@given(changes=_mutations(TRANSFORMERS_PATHS), legacy_changes=_mutations(LEGACY_PATHS))
def test_any_mutated_config_reads_or_gives_invalid_checkpoint(changes, legacy_changes):
    for data in (_apply_any(TINY.to_transformers_dict(), changes), _apply_any(TINY.to_legacy_dict(), legacy_changes)):
        try:
            cfg = DiaConfig.from_dict(data)
        except CheckpointError as exc:
            assert exc.code == "invalid_checkpoint" and exc.message
        else:
            assert isinstance(cfg, DiaConfig)


@pytest.fixture(scope="module")
def fuzz_folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    return _tiny_dia_folder(base / "dia"), write_transformers_dac(base / "dac")


@settings(max_examples=30, deadline=None)
@given(changes=_mutations(TRANSFORMERS_PATHS))
def test_any_mutated_dia_config_loads_or_gives_invalid_checkpoint(fuzz_folders, changes):
    folder = fuzz_folders[0]
    (folder / "config.json").write_text(json.dumps(_apply_any(TINY.to_transformers_dict(), changes)))
    try:
        model = load_dia(folder)
    except CheckpointError as exc:
        assert exc.code == "invalid_checkpoint"
    else:
        assert model.cfg.dec_layers == TINY.dec_layers


DAC_PATHS = [(key,) for key in TINY_DAC.to_transformers_dict()]


@settings(max_examples=30, deadline=None)
@given(changes=_mutations(DAC_PATHS))
def test_any_mutated_dac_config_loads_or_gives_invalid_checkpoint(fuzz_folders, changes):
    folder = fuzz_folders[1]
    (folder / "config.json").write_text(json.dumps(_apply_any(TINY_DAC.to_transformers_dict(), changes)))
    try:
        codec = load_dac(folder)
    except (CheckpointError, ModelNotFoundError) as exc:
        assert exc.code in ("invalid_checkpoint", "model_not_found")
    else:
        assert isinstance(codec.config, DacConfig)
