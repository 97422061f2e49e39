"""Quantised weights cached on disk (engine/model/quant_cache.py): a second load reads them, the
output is the same with and without the cache, and corrupt, stale or foreign entries are rebuilt."""

from __future__ import annotations

import os

import pytest
import torch

from engine.model.checkpoint import load_dia
from engine.model.quant_cache import QuantCache, checkpoint_fingerprint
from engine.testing import write_dia

MODES = ["int4", "int8"]


@pytest.fixture
def folder(tmp_path):
    return write_dia(tmp_path / "dia")


@pytest.fixture
def cache(tmp_path):
    return QuantCache(tmp_path / "cache", min_bytes=0)  # the tiny model is below the default threshold


@pytest.fixture(params=["after", "while"], ids=["quantised after loading", "quantised while loading"])
def quantized(request):
    """Loads a bf16 model quantised to ``mode`` through ``cache``, either way the engine offers."""
    def load(folder, mode, cache):
        if request.param == "while":
            return load_dia(folder, dtype=torch.bfloat16, quantize=mode, quant_cache=cache)
        model = load_dia(folder, dtype=torch.bfloat16)
        model.quantize(mode, checkpoint=folder, cache=cache)
        return model
    return load


def _step_logits(model):
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [0] * 6])
    tokens = torch.randint(0, 1024, (2, 4, 9), generator=torch.Generator().manual_seed(0))
    state = model.start_decoder(model.encode(ids), None, 8)
    model.decode(tokens[:, :3], state)
    return model.decode(tokens[:, 3:], state)


def _entries(cache):
    return sorted(cache.folder.glob("*.safetensors"))


@pytest.mark.parametrize("mode", MODES)
def test_a_second_load_reads_the_cache_and_computes_the_same(folder, cache, mode, quantized):
    first = quantized(folder, mode, cache)
    assert first.quantized_from_cache is False
    assert len(_entries(cache)) == 1
    second = quantized(folder, mode, cache)
    assert second.quantized_from_cache is True
    assert type(first.head) is type(second.head)
    assert torch.equal(_step_logits(first), _step_logits(second))


def test_without_a_checkpoint_nothing_is_cached(folder, cache):
    model = load_dia(folder, dtype=torch.bfloat16)
    model.quantize("int4", cache=cache)
    assert model.quantized_from_cache is False and not cache.folder.exists()


def test_entries_are_private_files(folder, cache, quantized):
    quantized(folder, "int4", cache)
    (entry,) = _entries(cache)
    if os.name != "nt":
        assert entry.stat().st_mode & 0o777 == 0o600
        assert cache.folder.stat().st_mode & 0o777 == 0o700
    assert not list(cache.folder.glob(".*.part"))  # written atomically, nothing left behind


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_corrupt_entry_is_ignored_and_rebuilt(folder, cache, damage, quantized):
    want = _step_logits(quantized(folder, "int4", cache))
    (entry,) = _entries(cache)
    data = entry.read_bytes()
    entry.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(len(data)), "empty": b""}[damage])
    rebuilt = quantized(folder, "int4", cache)
    assert rebuilt.quantized_from_cache is False
    assert torch.equal(_step_logits(rebuilt), want)
    assert quantized(folder, "int4", cache).quantized_from_cache is True  # the entry was written again


def test_an_entry_that_does_not_fit_the_model_is_rebuilt(folder, cache, quantized):
    model = quantized(folder, "int4", cache)
    (entry,) = _entries(cache)
    key = entry.name.removesuffix(".safetensors")
    tensors = cache.load(key)
    tensors["0.scales"] = tensors["0.scales"][:-1].contiguous()  # a wrong shape under the right key
    cache.save(key, tensors)
    again = quantized(folder, "int4", cache)
    assert again.quantized_from_cache is False
    assert torch.equal(_step_logits(again), _step_logits(model))


def test_a_changed_checkpoint_is_not_served_from_the_old_entry(tmp_path, folder, cache, quantized):
    quantized(folder, "int4", cache)
    before = checkpoint_fingerprint(folder)
    other = write_dia(tmp_path / "other", seed=1)
    for f in other.iterdir():  # new weights in the same folder
        (folder / f.name).write_bytes(f.read_bytes())
    assert checkpoint_fingerprint(folder) != before
    model = quantized(folder, "int4", cache)
    assert model.quantized_from_cache is False
    assert len(_entries(cache)) == 2


def test_modes_and_dtypes_have_their_own_entries(folder, cache, quantized):
    quantized(folder, "int4", cache)
    quantized(folder, "int8", cache)
    fp32 = load_dia(folder, dtype=torch.float32)
    fp32.quantize("int4", checkpoint=folder, cache=cache)
    assert fp32.quantized_from_cache is False
    assert len(_entries(cache)) == 3


def test_the_cache_is_bounded_least_recently_used_first(tmp_path, folder, quantized):
    cache = QuantCache(tmp_path / "cache", min_bytes=0)
    quantized(folder, "int4", cache)
    (oldest,) = _entries(cache)
    os.utime(oldest, (1, 1))  # used long ago
    size = oldest.stat().st_size
    cache.max_bytes = size * 2 + size // 2  # room for two entries of about this size
    quantized(folder, "int8", cache)
    fp32 = load_dia(folder, dtype=torch.float32)
    fp32.quantize("int8", checkpoint=folder, cache=cache)
    assert not oldest.exists()
    assert sum(p.stat().st_size for p in _entries(cache)) <= cache.max_bytes


def test_small_models_are_not_cached_by_default(tmp_path, folder, quantized):
    cache = QuantCache(tmp_path / "cache")  # default threshold: quantising them is faster than a read
    quantized(folder, "int4", cache)
    assert not cache.folder.exists() or _entries(cache) == []


def test_an_unwritable_cache_does_not_fail_the_load(tmp_path, folder, quantized):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    model = quantized(folder, "int4", QuantCache(blocked / "cache", min_bytes=0))
    assert model.quantized_from_cache is False and torch.isfinite(_step_logits(model)).all()


def _projection_spans(weights):
    """(start, end) byte ranges of the decoder's per-step projection tensors in a safetensors file."""
    import json as _json

    with open(weights, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = _json.loads(f.read(header_len))
    per_step = ("self_attention.", "cross_attention.q_proj", "cross_attention.o_proj", "mlp.", "logits_dense")
    return [(8 + header_len + v["data_offsets"][0], 8 + header_len + v["data_offsets"][1])
            for k, v in header.items() if k != "__metadata__" and ("decoder" in k or "logits" in k)
            and any(p in k for p in per_step)]


@pytest.mark.parametrize("mode", MODES)
def test_a_load_the_cache_serves_never_reads_the_full_precision_projections(folder, cache, mode):
    """Their bytes in the checkpoint are overwritten with NaNs behind the fingerprint's back (past the
    hashed head, same size and time): a load from the cache computes what it did, a fresh one does not."""
    from engine.model.quant_cache import HEAD_BYTES

    want = _step_logits(load_dia(folder, dtype=torch.bfloat16, quantize=mode, quant_cache=cache))
    weights = folder / "model.safetensors"
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    for start, end in _projection_spans(weights):
        start = max(start, HEAD_BYTES)
        data[start:end] = b"\xff" * max(end - start, 0)  # 0xffffffff is a float32 NaN
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    served = load_dia(folder, dtype=torch.bfloat16, quantize=mode, quant_cache=cache)
    assert served.quantized_from_cache is True
    assert torch.equal(_step_logits(served), want)
    fresh = load_dia(folder, dtype=torch.bfloat16, quantize=mode, quant_cache=False)
    assert not torch.equal(_step_logits(fresh), want)  # the damage is real: reading them shows it


def test_a_loaded_model_keeps_its_weights_when_its_cache_entry_is_damaged(folder, cache):
    """Entries are read as copies: the model never aliases the cache file (safetensors maps it)."""
    load_dia(folder, dtype=torch.bfloat16, quantize="int4", quant_cache=cache)
    model = load_dia(folder, dtype=torch.bfloat16, quantize="int4", quant_cache=cache)
    assert model.quantized_from_cache is True
    want = _step_logits(model)
    (entry,) = _entries(cache)
    with open(entry, "r+b") as f:  # rewritten in place, as a disk tool or another program might
        f.seek(entry.stat().st_size // 2)
        f.write(b"\x00" * (entry.stat().st_size // 2))
    assert torch.equal(_step_logits(model), want)
