"""The native CPU kernels (engine/native): numbers, every instruction-set path, loading rules, and
their use by the model. CI builds them (scripts/setup.sh) and sets DIA_STUDIO_REQUIRE_NATIVE=1, so
a broken build fails there instead of being skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine import native

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built():
    if not native.available():
        if os.environ.get("DIA_STUDIO_REQUIRE_NATIVE") == "1":
            pytest.fail("engine/native is not built or not loadable (python -m engine.native says why)")
        pytest.skip("engine/native is not built on this machine")
    return native.isa()


# (rows, N, K): odd row counts, N not a multiple of the 4-row block, K with and without a vector tail
SHAPES = [(1, 1, 1), (2, 3, 17), (2, 4, 64), (3, 7, 100), (5, 9, 48), (2, 37, 2056), (4, 130, 96), (2, 64, 1024)]


def _ref_bf16(x, w):
    return (x.double() @ w.double().T).float()


@pytest.mark.parametrize("rows,n,k", SHAPES)
def test_bf16_gemv_matches_float64(built, rows, n, k):
    gen = torch.Generator().manual_seed(rows * 1000 + n + k)
    x = torch.randn(rows, k, generator=gen)
    w = torch.randn(n, k, generator=gen).to(torch.bfloat16)
    got = native.gemv_bf16(x, w)
    assert got.dtype == torch.float32 and got.shape == (rows, n)
    # float32 accumulation of k products: error grows like sqrt(k) * eps * |terms|
    torch.testing.assert_close(got, _ref_bf16(x, w), atol=2e-5 * k ** 0.5, rtol=1e-5)
    # bf16 activations are accepted and widened
    torch.testing.assert_close(native.gemv_bf16(x.to(torch.bfloat16), w), _ref_bf16(x.to(torch.bfloat16), w),
                               atol=2e-5 * k ** 0.5, rtol=1e-5)


@pytest.mark.parametrize("rows,n,k", SHAPES)
def test_int8_gemv_matches_float64(built, rows, n, k):
    gen = torch.Generator().manual_seed(rows * 7 + n * 3 + k)
    x = torch.randn(rows, k, generator=gen)
    q = torch.randint(-127, 128, (n, k), generator=gen, dtype=torch.int8)
    scales = torch.rand(n, generator=gen) / 100
    want = (x.double() @ q.double().T * scales.double()).float()
    torch.testing.assert_close(native.gemv_int8(x, q, scales), want, atol=2e-5 * k ** 0.5, rtol=1e-5)


def test_results_do_not_depend_on_the_thread_count(built):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2048, generator=gen)
    w = torch.randn(4100, 2048, generator=gen).to(torch.bfloat16)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native.gemv_bf16(x, w)
        torch.set_num_threads(max(2, threads))
        many = native.gemv_bf16(x, w)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, many)  # each output is summed by one thread in a fixed order


def test_bad_inputs_are_refused(built):
    x = torch.randn(2, 8)
    with pytest.raises(RuntimeError, match="bfloat16"):
        native.gemv_bf16(x, torch.randn(4, 8))
    with pytest.raises(RuntimeError, match="columns"):
        native.gemv_bf16(x, torch.randn(4, 9).to(torch.bfloat16))
    with pytest.raises(RuntimeError, match="one scale per row"):
        native.gemv_int8(x, torch.zeros(4, 8, dtype=torch.int8), torch.ones(3))
    with pytest.raises(RuntimeError, match="contiguous"):
        native.gemv_bf16(x, torch.randn(8, 4).to(torch.bfloat16).T)


_PATH_PROBE = """
import json, torch
from engine import native
isa = native.isa()  # loads the library
gen = torch.Generator().manual_seed(1)
x = torch.randn(3, 1000, generator=gen)
w = torch.randn(41, 1000, generator=gen)
q = torch.randint(-127, 128, (41, 1000), generator=gen, dtype=torch.int8)
s = torch.rand(41, generator=gen)
bf = (native.gemv_bf16(x, w.to(torch.bfloat16)) - x.double() @ w.to(torch.bfloat16).double().T).abs().max()
i8 = (native.gemv_int8(x, q, s) - (x.double() @ q.double().T) * s.double()).abs().max()
print(json.dumps({"isa": isa, "bf16": float(bf), "int8": float(i8), "available": native.available()}))
"""


@pytest.mark.parametrize("cap", ["avx2", "scalar"])
def test_every_instruction_set_path_computes_the_same(built, cap):
    """The AVX2 path and the portable loop run here too, capped by DIA_NATIVE_ISA."""
    env = {**os.environ, "DIA_NATIVE_ISA": cap}
    out = subprocess.run([sys.executable, "-c", _PATH_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True)
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["isa"] == cap
    assert probe["bf16"] < 1e-3 and probe["int8"] < 1e-2
    # the portable loop is correct but slower than PyTorch: the engine does not use it
    assert probe["available"] is (cap != "scalar")


def test_disabled_or_stale_builds_are_not_loaded(tmp_path, monkeypatch):
    assert native.isa(tmp_path) == ""  # nothing built there
    folder = native.build_dir(tmp_path)
    folder.mkdir(parents=True)
    native.library_file(tmp_path).write_bytes(b"not a library")
    (folder / "build.json").write_text(json.dumps({"tag": "torch-0.0-other"}))
    assert native.isa(tmp_path) == ""  # stamp of another torch/source: never dlopen'ed
    (folder / "build.json").write_text(json.dumps({"tag": native.build_tag()}))
    native._load.cache_clear()
    assert native.isa(tmp_path) == ""  # right stamp, broken file: refused, no crash
    monkeypatch.setenv("DIA_STUDIO_NATIVE", "0")
    native._load.cache_clear()
    try:
        assert not native.available()
    finally:
        monkeypatch.delenv("DIA_STUDIO_NATIVE")
        native._load.cache_clear()


def test_build_tag_follows_torch_and_sources():
    tag = native.build_tag()
    assert torch.__version__ in tag and sys.platform in tag
    assert tag == native.build_tag()


def test_model_uses_the_native_kernels_for_decoding_steps(built, tmp_path):
    from engine.model.checkpoint import load_dia
    from engine.model.layers import Linear, NativeInt8Linear
    from tests.engine.dia_fixtures import save_transformers_folder, tiny_transformers_model

    save_transformers_folder(tiny_transformers_model(), tmp_path / "dia")
    fp32 = load_dia(tmp_path / "dia", dtype=torch.float32)
    bf16 = load_dia(tmp_path / "dia", dtype=torch.bfloat16)
    linears = [m for m in bf16.modules() if isinstance(m, Linear)]
    assert linears and all(m.native_rows == 4 for m in linears)
    assert all(m.native_rows == 0 for m in fp32.modules() if isinstance(m, Linear))

    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [0] * 6])
    tokens = torch.randint(0, 1024, (2, 6, 9), generator=torch.Generator().manual_seed(0))

    def step_logits(model):  # prefill 5 positions (many rows), then one step of 2 rows (the GEMV)
        state = model.start_decoder(model.encode(ids), None, 8)
        model.decode(tokens[:, :5], state)
        return model.decode(tokens[:, 5:], state)

    ref = step_logits(fp32)
    got = step_logits(bf16)
    for m in linears:
        m.native_rows = 0
    torch_kernels = step_logits(bf16)
    # float32 activations: the native path is at least as close to float32 as PyTorch's bf16 GEMV
    err_native = (got - ref).abs().max()
    err_torch = (torch_kernels - ref).abs().max()
    assert err_native < 0.05 * ref.abs().max()
    assert err_native <= err_torch * 1.5

    assert bf16.quantize("int8") == "int8-native"
    assert isinstance(bf16.decoder_layers[0].gate_up, NativeInt8Linear)
    int8 = step_logits(bf16)
    assert (int8.argmax(-1) == ref.argmax(-1)).float().mean() > 0.9


def test_native_int8_prefill_path_matches_its_gemv(built):
    from engine.model.layers import Linear, NativeInt8Linear

    lin = Linear(96, 40, dtype=torch.bfloat16)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(40, 96))
    q = NativeInt8Linear.from_linear(lin)
    x = torch.randn(1, 6, 96)  # 6 rows: the dequantised float32 path
    many = q(x)
    few = torch.cat([q(x[:, i:i + 2]) for i in range(0, 6, 2)], dim=1)  # 2 rows: the GEMV
    torch.testing.assert_close(many, few, atol=1e-4, rtol=1e-5)
    assert (many - F.linear(x, lin.weight.float())).abs().max() < 0.02 * many.abs().max()
