"""Quantised loads that stay small (issue 14): ``load_dia(quantize=...)`` quantises the decoder's
per-step projections one at a time as it reads them, so the full-precision decoder never sits in
memory. The result is bitwise what quantising a plainly loaded model gives, and a load's peak
anonymous memory is the weights it keeps plus one projection in flight."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from engine.errors import InvalidParameterError
from engine.model.checkpoint import load_dia, transformers_shapes, transformers_to_nari
from engine.model.quant_cache import QuantCache
from engine.testing import TINY_DIA, random_dia_state, write_dia

ROOT = Path(__file__).resolve().parents[2]
MODES = ["int4", "int8", "int8-dynamic"]
# odd widths: int4 groups of 128 end part-way (K = 320, 1000), GQA, three layers
MEDIUM = replace(TINY_DIA, enc_hidden=192, enc_heads=3, enc_kv_heads=3, enc_head_dim=64, enc_ffn=384,
                 dec_hidden=320, dec_layers=3, dec_heads=5, dec_kv_heads=1, dec_head_dim=64,
                 cross_heads=5, cross_kv_heads=5, cross_head_dim=64, dec_ffn=1000)
# large enough that the full-precision decoder (~200 MB in bf16) dwarfs one projection (~10 MB)
LARGE = replace(TINY_DIA, enc_hidden=256, enc_heads=4, enc_kv_heads=4, enc_head_dim=64, enc_ffn=1024,
                dec_hidden=512, dec_layers=16, dec_heads=4, dec_kv_heads=2, dec_head_dim=128,
                cross_heads=4, cross_kv_heads=4, cross_head_dim=128, dec_ffn=2048)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_dia(tmp_path_factory.mktemp("tiny") / "dia")


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    return write_dia(tmp_path_factory.mktemp("medium") / "dia", MEDIUM, seed=3, scale=0.05)


def _step_logits(model):
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [0] * 6])
    tokens = torch.randint(0, 1024, (2, 4, 9), generator=torch.Generator().manual_seed(0))
    state = model.start_decoder(model.encode(ids), None, 8)
    model.decode(tokens[:, :3], state)
    return model.decode(tokens[:, 3:], state)


def _quantized_after_loading(folder, mode, dtype):
    model = load_dia(folder, dtype=dtype)
    model.quantize(mode)
    return model


def _assert_same_model(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key
    assert [type(getattr(o, n)) for o, n in a.projections()] == [type(getattr(o, n)) for o, n in b.projections()]
    assert torch.equal(_step_logits(a), _step_logits(b))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
@pytest.mark.parametrize("mode", MODES)
def test_quantising_while_loading_is_bitwise_quantising_after_loading(tiny, mode, dtype):
    streamed = load_dia(tiny, dtype=dtype, quantize=mode, quant_cache=False)
    assert streamed.quantized_from_cache is False
    _assert_same_model(streamed, _quantized_after_loading(tiny, mode, dtype))


@pytest.mark.parametrize("mode", ["int4", "int8"])
def test_quantising_while_loading_a_medium_model_is_bitwise_the_same(medium, mode):
    streamed = load_dia(medium, dtype=torch.bfloat16, quantize=mode, quant_cache=False)
    _assert_same_model(streamed, _quantized_after_loading(medium, mode, torch.bfloat16))


@pytest.mark.parametrize("mode", ["int4", "int8"])
def test_quantising_while_loading_the_nari_layout_is_bitwise_the_same(tmp_path, mode):
    """nari's DenseGeneral kernels are transposed (and the fused ones concatenated) on the way in."""
    state = transformers_to_nari(dict(random_dia_state(TINY_DIA, seed=5)), TINY_DIA)
    torch.save(state, tmp_path / "dia-v1.pth")
    (tmp_path / "config.json").write_text(json.dumps(TINY_DIA.to_transformers_dict()))
    streamed = load_dia(tmp_path, dtype=torch.bfloat16, quantize=mode, quant_cache=False)
    _assert_same_model(streamed, _quantized_after_loading(tmp_path, mode, torch.bfloat16))


@pytest.mark.parametrize("mode", ["int4", "int8"])
def test_entries_written_either_way_serve_the_other(tiny, tmp_path, mode):
    """A cache entry is the same whether the model was quantised while or after loading."""
    after_cache, streamed_cache = QuantCache(tmp_path / "a", min_bytes=0), QuantCache(tmp_path / "b", min_bytes=0)
    load_dia(tiny, dtype=torch.bfloat16).quantize(mode, checkpoint=tiny, cache=after_cache)
    load_dia(tiny, dtype=torch.bfloat16, quantize=mode, quant_cache=streamed_cache)
    (a,), (b,) = after_cache.folder.glob("*.safetensors"), streamed_cache.folder.glob("*.safetensors")
    assert a.name == b.name and a.read_bytes() == b.read_bytes()
    served = load_dia(tiny, dtype=torch.bfloat16, quantize=mode, quant_cache=after_cache)
    assert served.quantized_from_cache is True
    _assert_same_model(served, _quantized_after_loading(tiny, mode, torch.bfloat16))


def test_an_unknown_mode_is_refused_with_the_modes_to_choose(tiny):
    with pytest.raises(InvalidParameterError, match="int3.*int8, int8-dynamic, int4") as err:
        load_dia(tiny, quantize="int3", quant_cache=False)
    assert err.value.code == "invalid_parameter"


# ----------------------------------------------------------------------------------------- memory
MEMORY_PROBE = r"""
import sys, threading, time, torch
from engine.model.checkpoint import load_dia
from engine.model.quant_cache import QuantCache

def rss_anon():
    for line in open('/proc/self/status'):
        if line.startswith('RssAnon:'):
            return int(line.split()[1]) * 1024

folder, warm_up, mode, cache = sys.argv[1:5]
quantize = None if mode == 'bf16' else mode
# first use of torch, its thread pools and the native kernels costs memory no load should be charged
load_dia(warm_up, dtype=torch.bfloat16, quantize=quantize, quant_cache=False)
peak = [rss_anon()]
def sample():
    while True:
        peak[0] = max(peak[0], rss_anon())
        time.sleep(0.001)
threading.Thread(target=sample, daemon=True).start()
time.sleep(0.05)
base = peak[0]
model = load_dia(folder, dtype=torch.bfloat16, quantize=quantize, quant_cache=QuantCache(cache, min_bytes=0))
time.sleep(0.05)
peak[0] = max(peak[0], rss_anon())
held = sum(t.numel() * t.element_size() for t in model.state_dict().values())
print(peak[0] - base, held, int(bool(getattr(model, 'quantized_from_cache', False))))
"""
SLACK_BYTES = 16 << 20  # allocator slack and the small tensors of one step of the load


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """A random model of about 280 MB (float32 files, as published)."""
    return write_dia(tmp_path_factory.mktemp("large") / "dia", LARGE, scale=0.02)


def _peak_load(folder: Path, warm_up: Path, mode: str, cache: Path) -> tuple[int, int, bool]:
    """(peak anonymous memory grown by a bf16 load in ``mode``, bytes of weights kept, from the cache)."""
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(folder), str(warm_up), mode, str(cache)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    grown, held, cached = map(int, out.stdout.split())
    return grown, held, bool(cached)


def _bf16_bytes(cfg) -> tuple[int, int]:
    """(bf16 bytes of the whole model, of its largest projection) as the checkpoint's shapes give them."""
    sizes = [2 * torch.Size(shape).numel() for shape in transformers_shapes(cfg).values()]
    projection = 2 * max(2 * cfg.dec_ffn * cfg.dec_hidden, cfg.num_channels * cfg.dec_vocab_size * cfg.dec_hidden)
    return sum(sizes), projection


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("mode", ["bf16", "int8", "int4"])
def test_a_load_grows_memory_by_the_weights_it_keeps_and_one_projection(large, tiny, tmp_path, mode):
    """Peak anonymous memory of a load (fresh, then from the cache) stays below the kept weights plus a
    few projections in flight: never the bf16 decoder that quantising after the load has to build."""
    model_bytes, projection_bytes = _bf16_bytes(LARGE)
    loads = [_peak_load(large, tiny, mode, tmp_path / "cache")]
    if mode != "bf16":
        loads.append(_peak_load(large, tiny, mode, tmp_path / "cache"))
        assert [cached for *_, cached in loads] == [False, True]
    for grown, held, _ in loads:
        bound = held + 4 * projection_bytes + SLACK_BYTES
        if mode != "bf16":
            assert bound < model_bytes  # holding the bf16 model at any point would break it
        assert grown <= bound, (mode, grown, held, bound)
