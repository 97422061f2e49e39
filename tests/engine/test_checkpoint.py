"""Checkpoint layouts: the full-size key table, legacy configs, the v0.1 graph, broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.errors import CheckpointError, ModelNotFoundError
from engine.model.checkpoint import load_dia, nari_table, transformers_shapes
from engine.model.config import DiaConfig
from engine.model.dia import DiaModel
from tests.engine.dia_fixtures import TINY, save_nari_folder, save_transformers_folder, tiny_transformers_model


@pytest.fixture(scope="module")
def hf_model():
    return tiny_transformers_model()


def test_full_size_key_and_shape_tables_match_transformers_on_meta():
    from transformers import DiaConfig as HFConfig
    from transformers import DiaForConditionalGeneration

    cfg = DiaConfig()
    with torch.device("meta"):
        hf = DiaForConditionalGeneration(HFConfig.from_dict(cfg.to_transformers_dict()))
        ours = DiaModel(cfg)
    hf_shapes = {k: tuple(v.shape) for k, v in hf.state_dict().items()}
    assert hf_shapes == transformers_shapes(cfg)
    assert len(hf_shapes) == 335
    table = nari_table(cfg)
    assert len(table) == 343  # the published nari layout
    assert table["decoder.layers.3.self_attention.k_proj.weight"].shape == (2048, 4, 128)
    assert table["decoder.logits_dense.weight"].shape == (2048, 9, 1028)
    total = sum(v.numel() for v in hf.state_dict().values())
    assert total == sum(v.numel() for v in ours.state_dict().values()) == 1_611_160_576


def test_sharded_transformers_layout_and_every_nari_file(hf_model, tmp_path):
    ref = load_dia(save_transformers_folder(hf_model, tmp_path / "hf", max_shard_size="200KB"))
    assert len(list((tmp_path / "hf").glob("model-*.safetensors"))) > 1
    for name in ("dia-v0_1.pth", "pytorch_model.bin", "model.safetensors"):
        other = load_dia(save_nari_folder(hf_model, tmp_path / name, filename=name))
        assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), other.state_dict().values()))


def test_bfloat16_load_keeps_norms_in_float32(hf_model, tmp_path):
    model = load_dia(save_transformers_folder(hf_model, tmp_path / "hf"), dtype=torch.bfloat16)
    assert model.decoder_layers[0].qkv.weight.dtype == torch.bfloat16
    assert model.decoder_embedding.dtype == torch.bfloat16
    assert model.decoder_layers[0].pre_sa_norm.weight.dtype == torch.float32


def test_legacy_config_selects_the_v01_graph(hf_model, tmp_path):
    folder = save_nari_folder(hf_model, tmp_path / "v01", filename="dia-v0_1.pth", legacy_config=True)
    legacy = load_dia(folder)
    assert legacy.cfg.cross_attn_rope
    assert DiaConfig.from_file(folder / "config.json").dec_kv_heads == TINY.dec_kv_heads
    plain = load_dia(folder, cross_attn_rope=False)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12], [0] * 8])
    tokens = torch.randint(0, 1024, (2, 6, 9))
    a = legacy.decode(tokens, legacy.start_decoder(legacy.encode(ids), None, 8), last_only=False)
    b = plain.decode(tokens, plain.start_decoder(plain.encode(ids), None, 8), last_only=False)
    assert not torch.allclose(a, b)
    # position 0 of the decoder with the query rotated by 0 differs only through the rotated keys;
    # check one cross-attention by hand against the v0.1 definition
    layer = legacy.decoder_layers[0]
    from engine.model.layers import apply_rope, rope_tables

    enc = legacy.encode(ids)
    k, v = layer.cross_kv(enc).split(64, dim=-1)
    k = k.view(2, 8, 4, 16).transpose(1, 2)
    v = v.view(2, 8, 4, 16).transpose(1, 2)
    x = torch.randn(2, 3, 96)
    q = layer.cross_q(x).view(2, 3, 4, 16).transpose(1, 2)
    cos_q, sin_q = rope_tables(torch.arange(3), 16, 10000.0)
    cos_k, sin_k = rope_tables(torch.arange(8), 16, 10000.0)
    qr, kr = apply_rope(q, cos_q, sin_q), apply_rope(k, cos_k, sin_k)
    manual = torch.softmax(qr @ kr.transpose(-1, -2), dim=-1) @ v
    state = legacy.start_decoder(enc, None, 8)
    from engine.model.layers import attention

    torch.testing.assert_close(attention(apply_rope(q, cos_q, sin_q), state.cross_k[0], state.cross_v[0], None), manual)


def test_broken_checkpoints_give_clear_errors(hf_model, tmp_path):
    folder = save_transformers_folder(hf_model, tmp_path / "hf")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_dia(folder)

    nari = save_nari_folder(hf_model, tmp_path / "nari", filename="dia-v1.pth")
    raw = (nari / "dia-v1.pth").read_bytes()
    (nari / "dia-v1.pth").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(CheckpointError, match="dia-v1.pth"):
        load_dia(nari)

    state = torch.load(save_nari_folder(hf_model, tmp_path / "n2") / "dia-v1.pth", weights_only=True)
    state.pop("decoder.norm.weight")
    state["decoder.logits_dense.weight"] = state["decoder.logits_dense.weight"][:, :, :100]
    torch.save(state, tmp_path / "n2" / "dia-v1.pth")
    with pytest.raises(CheckpointError, match="missing decoder.norm.weight"):
        load_dia(tmp_path / "n2")

    state["decoder.norm.weight"] = torch.ones(TINY.dec_hidden)
    torch.save(state, tmp_path / "n2" / "dia-v1.pth")
    with pytest.raises(CheckpointError, match=r"logits_dense.weight' has shape \(96, 9, 100\)"):
        load_dia(tmp_path / "n2")

    bigger = json.loads((folder / "config.json").read_text())
    bigger["decoder_config"]["num_hidden_layers"] = 3
    (tmp_path / "hf2").mkdir()
    (tmp_path / "hf2" / "config.json").write_text(json.dumps(bigger))
    (tmp_path / "hf2" / "model.safetensors").write_bytes(data)
    with pytest.raises(CheckpointError, match="missing model.decoder.layers.2"):
        load_dia(tmp_path / "hf2")


def test_pickles_with_code_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY.to_transformers_dict()))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    # as large as the real weights, so that only the unpickling can refuse it
    padding = torch.zeros(sum(torch.Size(s).numel() for s in transformers_shapes(TINY).values()))
    torch.save({"x": Evil(), "padding": padding}, tmp_path / "dia-v1.pth")
    with pytest.raises(CheckpointError, match="weights-only"):
        load_dia(tmp_path)


def test_missing_files(tmp_path):
    with pytest.raises(ModelNotFoundError, match="config.json"):
        load_dia(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(TINY.to_transformers_dict()))
    with pytest.raises(ModelNotFoundError, match="no Dia weights"):
        load_dia(tmp_path)


def test_format_round_trip_is_exact(hf_model):
    from engine.model.checkpoint import nari_to_transformers_tensor, transformers_to_nari
    from tests.engine.dia_fixtures import hf_state

    state = hf_state(hf_model)
    nari = transformers_to_nari(state, TINY)
    table = nari_table(TINY)
    back = {spec.hf_key: nari_to_transformers_tensor(spec, nari[key]) for key, spec in table.items() if spec.hf_key}
    back["model.decoder.embeddings.embed.weight"] = torch.cat([nari[f"decoder.embeddings.{c}.weight"] for c in range(9)])
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


MEMORY_PROBE = r"""
import sys, threading, time, torch
from engine.model.checkpoint import load_dia
peak = [0]
def sample():
    while True:
        for line in open('/proc/self/status'):
            if line.startswith('RssAnon:'):
                peak[0] = max(peak[0], int(line.split()[1]))
        time.sleep(0.002)
threading.Thread(target=sample, daemon=True).start()
time.sleep(0.05)
base = peak[0]
model = load_dia(sys.argv[1], dtype=torch.bfloat16)
time.sleep(0.05)
weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
print((peak[0] - base) * 1024, weights)
"""


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_bfloat16_load_never_holds_a_float32_copy(tmp_path):
    """Loading fp32 files into bf16 grows memory by about the bf16 model, not by an fp32 model."""
    import subprocess
    import sys
    from dataclasses import replace

    from engine.model.checkpoint import transformers_shapes

    cfg = replace(TINY, enc_hidden=256, enc_ffn=1024, dec_hidden=768, dec_layers=6, dec_heads=8, dec_kv_heads=2,
                  dec_head_dim=96, cross_heads=8, cross_kv_heads=8, cross_head_dim=96, dec_ffn=3072)
    from safetensors.torch import save_file

    shapes = transformers_shapes(cfg)
    save_file({k: torch.full(s, 0.01) for k, s in shapes.items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_transformers_dict()))
    fp32_bytes = sum(torch.Size(s).numel() * 4 for s in shapes.values())
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tmp_path)], capture_output=True, text=True,
                         check=True, cwd=__import__("pathlib").Path(__file__).resolve().parents[2])
    grown, weights = map(int, out.stdout.split())
    assert weights < 0.55 * fp32_bytes  # the model really is bf16 (norms stay fp32)
    # measured: the bf16 model + ~70 MB (tensors in flight, allocator slack); an fp32 copy of the
    # whole model on the way would add at least fp32_bytes on top of the bf16 weights
    assert grown < weights + 0.5 * fp32_bytes, (grown, weights, fp32_bytes)


def _same_weights(a: DiaModel, b: DiaModel) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_legacy_format_pth_loads_like_the_zip_format(hf_model, tmp_path):
    """torch's old, non-zip serialisation cannot be memory-mapped; it is read whole, still weights-only."""
    reference = load_dia(save_nari_folder(hf_model, tmp_path / "zip", filename="dia-v1.pth"))
    folder = save_nari_folder(hf_model, tmp_path / "legacy", filename="dia-v1.pth")
    state = torch.load(folder / "dia-v1.pth", weights_only=True)
    torch.save(state, folder / "dia-v1.pth", _use_new_zipfile_serialization=False)
    assert not (folder / "dia-v1.pth").read_bytes().startswith(b"PK")
    assert _same_weights(load_dia(folder), reference)


def test_a_loaded_model_keeps_its_weights_when_the_pth_file_is_rewritten(hf_model, tmp_path):
    """Weights read through a memory map are copied: the model never aliases the file on disk."""
    folder = save_nari_folder(hf_model, tmp_path / "nari", filename="dia-v1.pth")
    model = load_dia(folder)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.load(folder / "dia-v1.pth", weights_only=True)
    torch.save({k: torch.zeros_like(v) for k, v in state.items()}, folder / "dia-v1.pth")  # same file, new bytes
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_loaded_model_keeps_its_weights_when_the_safetensors_file_is_rewritten(tmp_path):
    """safetensors maps its file and hands out views of it: a float32 load must copy them, or
    rewriting (or truncating) the file in place would change (or crash) the loaded model."""
    from engine.testing import write_dia

    folder = write_dia(tmp_path / "dia")
    model = load_dia(folder)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _zero_tensor_bytes(folder / "model.safetensors")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_legacy_format_pth_with_code_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY.to_transformers_dict()))
    padding = torch.zeros(sum(torch.Size(s).numel() for s in transformers_shapes(TINY).values()))
    torch.save({"x": _Evil(), "padding": padding}, tmp_path / "dia-v1.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_dia(tmp_path)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.fixture(scope="module")
def sharded(hf_model, tmp_path_factory):
    """A transformers folder in several shards, and its index."""
    folder = save_transformers_folder(hf_model, tmp_path_factory.mktemp("sharded") / "hf", max_shard_size="200KB")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    return folder, index


def _copy_folder(src, dst):
    import shutil

    return shutil.copytree(src, dst)


def _rewrite_index(folder, index, shard: str, new_name: str) -> None:
    weight_map = {k: (new_name if v == shard else v) for k, v in index["weight_map"].items()}
    (folder / "model.safetensors.index.json").write_text(json.dumps({**index, "weight_map": weight_map}))


def test_index_entry_pointing_outside_the_folder_is_refused(sharded, tmp_path):
    """A shard moved out of the folder (a valid file!) is not followed through '../'."""
    folder, index = sharded
    model = _copy_folder(folder, tmp_path / "models" / "dia")
    shard = sorted(set(index["weight_map"].values()))[0]
    (tmp_path / "outside").mkdir()
    (model / shard).rename(tmp_path / "outside" / shard)
    _rewrite_index(model, index, shard, f"../../outside/{shard}")
    with pytest.raises(CheckpointError, match=r"outside the model folder.*refused") as err:
        load_dia(model)
    assert err.value.code == "invalid_checkpoint"


@pytest.mark.parametrize("name", ["/etc/passwd", "../../../../etc/passwd", "sub/../../x.safetensors",
                                  "C:\\Windows\\x.safetensors", "..\\..\\x.safetensors"])
def test_index_entry_with_an_absolute_or_parent_path_is_refused(sharded, tmp_path, name):
    folder, index = sharded
    model = _copy_folder(folder, tmp_path / "dia")
    _rewrite_index(model, index, sorted(set(index["weight_map"].values()))[0], name)
    with pytest.raises(CheckpointError, match="outside the model folder"):
        load_dia(model)


def test_index_entry_that_is_a_symlink_leading_outside_is_refused(sharded, tmp_path):
    folder, index = sharded
    model = _copy_folder(folder, tmp_path / "dia")
    shard = sorted(set(index["weight_map"].values()))[0]
    (tmp_path / "elsewhere").mkdir()
    (model / shard).rename(tmp_path / "elsewhere" / shard)
    (model / shard).symlink_to(tmp_path / "elsewhere" / shard)
    with pytest.raises(CheckpointError, match="a link to .*outside the model folder"):
        load_dia(model)


def test_hugging_face_cache_snapshot_with_links_into_blobs_loads(sharded, tmp_path):
    """The HF cache keeps files in blobs/ and links them from snapshots/<rev>/: that must keep working."""
    folder, _ = sharded
    repo = tmp_path / "hub" / "models--nari-labs--Dia-1.6B-0626"
    snapshot = repo / "snapshots" / "0123abcd"
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for n, file in enumerate(sorted(folder.iterdir())):
        blob = repo / "blobs" / f"{n:040x}"
        blob.write_bytes(file.read_bytes())
        (snapshot / file.name).symlink_to(f"../../blobs/{blob.name}")
    assert _same_weights(load_dia(snapshot), load_dia(folder))


def test_index_without_a_weight_map_is_refused(sharded, tmp_path):
    folder, _ = sharded
    model = _copy_folder(folder, tmp_path / "dia")
    for content in ("[]", '{"weight_map": ["a"]}', '{"weight_map": {"k": 5}}', "{not json"):
        (model / "model.safetensors.index.json").write_text(content)
        with pytest.raises(CheckpointError, match="model.safetensors.index.json"):
            load_dia(model)


def _zero_tensor_bytes(weights) -> None:
    """Overwrite every tensor of a safetensors file with zeros, in place (same file, same size)."""
    data = bytearray(weights.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    data[start:] = bytes(len(data) - start)
    with open(weights, "r+b") as f:
        f.write(data)


def test_a_sharded_model_keeps_its_weights_when_its_shards_are_rewritten(sharded, tmp_path):
    """Each shard is memory-mapped like a single file: a float32 load copies its tensors too."""
    folder, index = sharded
    model_folder = _copy_folder(folder, tmp_path / "dia")
    model = load_dia(model_folder)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for shard in sorted(set(index["weight_map"].values())):
        _zero_tensor_bytes(model_folder / shard)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_loaded_sharded_model_leaves_no_shard_mapped(sharded, tmp_path):
    """Once loaded, no shard stays mapped into the process (a bf16 load's float32 norms used to pin them:
    the whole checkpoint's pages then stayed in the process's resident memory)."""
    folder, _ = sharded
    model_folder = _copy_folder(folder, tmp_path / "dia")
    model = load_dia(model_folder, dtype=torch.bfloat16)
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("needs /proc/self/maps (Linux)")
    assert str(model_folder) not in maps.read_text()
    assert model.dtype == torch.bfloat16
