"""load_dac / save_dac_transformers: both official formats, bf16, and the typed errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from engine.errors import CheckpointError, ModelNotFoundError
from engine.model.dac import DacConfig
from engine.model.dac_checkpoint import dac_layers, expected_shapes, load_dac, save_dac_transformers
from tests.engine.dac_fixtures import (
    TINY_DAC,
    chirp_audio,
    original_to_transformers_parametrized,
    random_original_state_dict,
    random_state_dict,
    torch_threads,
    write_original_dac,
    write_transformers_dac,
)

transformers = pytest.importorskip("transformers")

CODES = torch.randint(0, 1024, (1, 9, 19), generator=torch.Generator().manual_seed(5))


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    with torch_threads(1):
        yield


def _hf_model(config: DacConfig = TINY_DAC):
    hf_config = transformers.DacConfig(encoder_hidden_size=config.encoder_dim, decoder_hidden_size=config.decoder_dim,
                                       sampling_rate=config.sample_rate)
    return transformers.DacModel(hf_config).eval()


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    return write_transformers_dac(tmp_path_factory.mktemp("dac_hf"), seed=0)


def test_transformers_round_trip(hf_folder):
    codec = load_dac(hf_folder)
    state = codec.state_dict()
    expected = random_state_dict(TINY_DAC, seed=0)
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    assert codec.config == TINY_DAC and not codec.training
    assert not any(p.requires_grad for p in codec.parameters())
    # the folder's files, and a re-save of the loaded codec, load the same
    assert torch.equal(load_dac(hf_folder / "config.json").decode(CODES), codec.decode(CODES))
    again = save_dac_transformers(codec, codec.config, hf_folder.parent / "again")
    assert torch.equal(load_dac(again / "model.safetensors").decode(CODES), codec.decode(CODES))


def test_transformers_reads_what_we_write(hf_folder, tmp_path):
    model, info = transformers.DacModel.from_pretrained(hf_folder, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    with torch.no_grad():
        expected = model.eval().decode(audio_codes=CODES).audio_values
    torch.testing.assert_close(load_dac(hf_folder).decode(CODES)[:, 0], expected, atol=1e-5, rtol=0)
    # config.json is byte-for-byte what save_pretrained writes, minus its version stamp
    model.save_pretrained(tmp_path)
    theirs = [line for line in (tmp_path / "config.json").read_text().splitlines()
              if "transformers_version" not in line]
    assert (hf_folder / "config.json").read_text().splitlines() == theirs


@pytest.mark.parametrize("name", ["weights.pth", "weights_44khz_8kbps_0.0.1.pth"])
def test_original_format_matches_weight_normed_reference(tmp_path, name):
    original = random_original_state_dict(TINY_DAC, seed=7)
    pth = write_original_dac(tmp_path / name, state_dict=original)
    assert len(original) == 301
    codec_from_file, codec_from_folder = load_dac(pth), load_dac(tmp_path)
    # Reference: transformers' DacModel with weight norm applied recomputes each weight from
    # g and v with torch._weight_norm on every forward, as the original module does.
    ref = _hf_model()
    ref.apply_weight_norm()
    ref.load_state_dict(original_to_transformers_parametrized(original), strict=True)
    audio = chirp_audio(seed=3)
    with torch.no_grad():
        ref_codes = ref.encode(torch.nn.functional.pad(audio, (0, -audio.shape[-1] % 512))).audio_codes
        ref_audio = ref.decode(audio_codes=CODES).audio_values
    for codec in (codec_from_file, codec_from_folder):
        assert torch.equal(codec.encode(audio), ref_codes)
        # measured max |Δ| = 0.0: the fold uses the very kernel the reference runs (a hand-written
        # g·v/‖v‖ fold gives 3e-5 here, so this tolerance tells them apart)
        torch.testing.assert_close(codec.decode(CODES)[:, 0], ref_audio, atol=1e-5, rtol=0)


def test_original_key_table_full_size():
    config = DacConfig()
    layers = dac_layers(config)
    originals = [key for layer in layers for key in layer.original_tensors()]
    targets = {target for layer in layers for target in layer.original_tensors().values()}
    assert len(originals) == len(set(originals)) == 301  # as descript's weights_44khz_8kbps_0.0.1.pth
    assert targets == set(expected_shapes(config)) and len(targets) == 223
    table = {layer.original: layer.name for layer in layers}
    assert table["encoder.block.2.block.1.block.3"] == "encoder.block.1.res_unit2.conv2"
    assert table["encoder.block.4.block.4"] == "encoder.block.3.conv1"
    assert table["encoder.block.6"] == "encoder.conv2"
    assert table["decoder.model.3.block.1"] == "decoder.block.2.conv_t1"
    assert table["decoder.model.1.block.4.block.2"] == "decoder.block.0.res_unit3.snake2"
    assert table["decoder.model.6"] == "decoder.conv2"


def test_weight_norm_pairs_inside_safetensors_are_folded(tmp_path):
    """Older conversions stored the parametrisation; those files load too."""
    original = random_original_state_dict(TINY_DAC, seed=2)
    save_dac_transformers(random_state_dict(TINY_DAC, seed=2), TINY_DAC, tmp_path)
    save_file({k: v.contiguous() for k, v in original_to_transformers_parametrized(original).items()},
              str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    from_original = load_dac(write_original_dac(tmp_path / "o.pth", state_dict=original))
    assert torch.equal(load_dac(tmp_path).decode(CODES), from_original.decode(CODES))


def test_bf16_load(hf_folder):
    fp32, bf16 = load_dac(hf_folder), load_dac(hf_folder, dtype=torch.bfloat16)
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    assert bf16.dtype == torch.bfloat16 and bf16.device.type == "cpu"
    a, b = fp32.decode_numpy(CODES[0].T.numpy()), bf16.decode_numpy(CODES[0].T.numpy())
    assert b.dtype == np.float32 and a.shape == b.shape
    # measured on this tiny random codec: mean |Δ| 0.03, max 0.55, correlation 0.997
    assert np.mean(np.abs(a - b)) < 0.1 and np.corrcoef(a, b)[0, 1] > 0.98
    assert bf16.encode(chirp_audio()).shape == (1, 9, 22)


def test_truncated_safetensors(hf_folder, tmp_path):
    for keep in (4, 2000, None):
        folder = tmp_path / f"cut{keep}"
        folder.mkdir()
        data = (hf_folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: keep if keep else len(data) // 2])
        (folder / "config.json").write_text((hf_folder / "config.json").read_text())
        with pytest.raises(CheckpointError, match=r"model\.safetensors.*(truncated|corrupt)") as err:
            load_dac(folder)
        assert err.value.code == "invalid_checkpoint"


def test_safetensors_unexpected_and_mismatched(tmp_path):
    state = random_state_dict(TINY_DAC, seed=1)
    save_dac_transformers(state, TINY_DAC, tmp_path)
    save_file({**state, "decoder.extra.weight": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"unexpected.*decoder\.extra\.weight"):
        load_dac(tmp_path)
    save_file({**state, "decoder.conv1.bias": torch.zeros(31)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"decoder\.conv1\.bias: expected \[32\], got \[31\]"):
        load_dac(tmp_path)


def test_pth_missing_key_and_shape_mismatch(tmp_path):
    original = random_original_state_dict(TINY_DAC, seed=0)
    missing = {k: v for k, v in original.items() if k != "decoder.model.2.block.1.weight_g"}
    with pytest.raises(CheckpointError, match=r"weights\.pth.*1 missing.*decoder\.model\.2\.block\.1\.weight_g"):
        load_dac(write_original_dac(tmp_path / "a", state_dict=missing))
    wrong = {**original, "quantizer.quantizers.3.codebook.weight": torch.zeros(1024, 4)}
    with pytest.raises(CheckpointError, match=r"quantizer\.quantizers\.3\.codebook\.weight: expected \[1024, 8\], "
                                              r"got \[1024, 4\]"):
        load_dac(write_original_dac(tmp_path / "b", state_dict=wrong))


def test_pth_broken_or_unsafe(tmp_path):
    pth = write_original_dac(tmp_path / "ok")
    cut = tmp_path / "cut.pth"
    cut.write_bytes(pth.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"cut\.pth.*(truncated|corrupt)"):
        load_dac(cut)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": {}, "metadata": {"kwargs": {}}, "obj": _NotATensor()}, unsafe)
    with pytest.raises(CheckpointError, match=r"unsafe\.pth"):
        load_dac(unsafe)
    plain = tmp_path / "plain.pth"
    torch.save([1, 2, 3], plain)
    with pytest.raises(CheckpointError, match="state_dict"):
        load_dac(plain)


class _NotATensor:
    """Anything weights_only unpickling must refuse."""


def test_missing_files(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no DAC checkpoint") as err:
        load_dac(tmp_path)  # empty folder
    assert err.value.code == "model_not_found"
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_dac(tmp_path / "nowhere")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_dac(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "dac"}))
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_dac(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json.*cannot read"):
        load_dac(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "encodec"}))
    with pytest.raises(CheckpointError, match="encodec"):
        load_dac(tmp_path)


def test_save_rejects_wrong_layout(tmp_path):
    state = random_state_dict(TINY_DAC)
    del state["decoder.conv2.bias"]
    with pytest.raises(ValueError, match=r"decoder\.conv2\.bias"):
        save_dac_transformers(state, TINY_DAC, tmp_path)


def test_original_format_in_torch_legacy_serialisation_loads(tmp_path):
    """torch's pre-zip format cannot be memory-mapped; it is read whole, still weights-only."""
    original = random_original_state_dict(TINY_DAC, seed=4)
    zipped = load_dac(write_original_dac(tmp_path / "zip", state_dict=original))
    legacy = tmp_path / "legacy" / "weights.pth"
    legacy.parent.mkdir()
    torch.save({"state_dict": original, "metadata": {"kwargs": TINY_DAC.to_original_kwargs()}}, legacy,
               _use_new_zipfile_serialization=False)
    assert torch.equal(load_dac(legacy).decode(CODES), zipped.decode(CODES))


@pytest.mark.parametrize(("key", "value"), [
    ("n_codebooks", 0), ("n_codebooks", "9"), ("n_codebooks", 10**9), ("codebook_size", -1),
    ("codebook_dim", 8.5), ("sampling_rate", None), ("encoder_hidden_size", True),
    ("decoder_hidden_size", 2**40), ("downsampling_ratios", 8), ("downsampling_ratios", [2, 0]),
    ("downsampling_ratios", [2] * 100),
])
def test_bad_config_value_names_the_field(hf_folder, tmp_path, key, value):
    folder = tmp_path / "dac"
    folder.mkdir()
    (folder / "model.safetensors").symlink_to(hf_folder / "model.safetensors")
    config = json.loads((hf_folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, key: value}))
    with pytest.raises(CheckpointError, match=rf"config\.json: DAC config: {key} must be") as err:
        load_dac(folder)
    assert err.value.code == "invalid_checkpoint"


@pytest.mark.parametrize(("key", "value"), [("n_codebooks", 10**9), ("encoder_rates", "2488"),
                                            ("codebook_dim", [8, [8]]), ("decoder_dim", -1)])
def test_bad_original_metadata_names_the_field(tmp_path, key, value):
    pth = tmp_path / "weights.pth"
    torch.save({"state_dict": {}, "metadata": {"kwargs": {**TINY_DAC.to_original_kwargs(), key: value}}}, pth)
    with pytest.raises(CheckpointError, match=rf"metadata\.kwargs: .*{key}") as err:
        load_dac(pth)
    assert err.value.code == "invalid_checkpoint"
