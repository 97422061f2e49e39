"""engine.testing, the one recipe for random test models: what it writes loads as the published
checkpoints do, sharded or not, in either DAC format, and it needs no transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from engine.model.checkpoint import load_dia
from engine.model.dac_checkpoint import load_dac
from engine.testing import (
    TINY_DAC,
    TINY_DIA,
    random_dac_state,
    write_dac,
    write_dia,
    write_original_dac,
    write_tiny_models,
)

ROOT = Path(__file__).resolve().parents[2]


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_tiny_models_load_with_the_tiny_geometries(tmp_path):
    dia, dac = write_tiny_models(tmp_path)
    assert (dia.name, dac.name) == ("dia", "dac")
    assert load_dia(dia).cfg == TINY_DIA
    assert load_dac(dac).config == TINY_DAC


def test_the_same_seed_writes_the_same_weights_and_another_seed_others(tmp_path):
    a, b, c = (load_dia(write_dia(tmp_path / name, seed=seed)) for name, seed in (("a", 1), ("b", 1), ("c", 2)))
    assert same_weights(a, b) and not same_weights(a, c)


def test_a_sharded_checkpoint_has_an_index_and_loads_like_one_file(tmp_path):
    whole = write_dia(tmp_path / "whole")
    sharded = write_dia(tmp_path / "sharded", shard_bytes=200_000)
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    shards = sorted(p.name for p in sharded.glob("model-*-of-*.safetensors"))
    assert len(shards) > 2 and sorted(set(index["weight_map"].values())) == shards
    assert not (sharded / "model.safetensors").exists()
    assert same_weights(load_dia(whole), load_dia(sharded))


def test_both_dac_formats_hold_the_same_codec(tmp_path):
    transformers = load_dac(write_dac(tmp_path / "hf", seed=3))
    original = load_dac(write_original_dac(tmp_path / "orig", seed=3))
    assert same_weights(transformers, original)
    assert all(torch.equal(v, transformers.state_dict()[k]) for k, v in random_dac_state(seed=3).items())


def test_writing_models_needs_no_transformers(tmp_path):
    code = ("import sys; from engine.testing import write_tiny_models; "
            f"write_tiny_models({str(tmp_path)!r}); print('transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
