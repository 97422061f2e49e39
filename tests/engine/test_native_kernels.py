"""The native CPU kernels (engine/native): GEMVs and single-query attention against float64
references, every instruction-set path, loading rules, and their use by the model. CI builds them
(scripts/setup.sh) and sets DIA_STUDIO_REQUIRE_NATIVE=1, so a broken build fails there instead of
being skipped."""

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


def _int16_steps(x: torch.Tensor) -> torch.Tensor:
    """(rows, k) float64: the step max|x_group| / 32767 each activation's int16 code stands for."""
    k = x.shape[1]
    groups = -(-k // 128)
    padded = F.pad(x.double().abs(), (0, groups * 128 - k))
    return (padded.view(x.shape[0], groups, 128).amax(-1) / 32767).repeat_interleave(128, dim=1)[:, :k]


@pytest.mark.parametrize("rows,n,k", SHAPES)
def test_int8_gemv_matches_float64(built, rows, n, k):
    """Within the int16 activation codes' rounding (half a step per activation) plus float32 sums."""
    gen = torch.Generator().manual_seed(rows * 7 + n * 3 + k)
    x = torch.randn(rows, k, generator=gen)
    x[:, :2] *= 40  # an outlier: only its own group's step grows
    q = torch.randint(-127, 128, (n, k), generator=gen, dtype=torch.int8)
    scales = torch.rand(n, generator=gen) / 100
    w = q.double() * scales.double()[:, None]
    want = x.double() @ w.T
    bound = (_int16_steps(x) / 2) @ w.abs().T + 1e-6 * (x.double().abs() @ w.abs().T) + 1e-6
    got = native.gemv_int8(x, native.block_int8(q), scales)
    assert got.dtype == torch.float32 and got.shape == (rows, n)
    assert ((got.double() - want).abs() <= bound).all()


@pytest.mark.parametrize("n,k", [(1, 5), (4, 64), (5, 100), (9, 130), (12, 2048), (7, 63)])
def test_int8_blocks_are_stored_a_cache_line_at_a_time(built, n, k):
    """native.block_int8 = layers.block_rows, unblock_rows is its inverse, and a block's rows' 64-weight
    chunks lie one after another (the layout the GEMV streams)."""
    from engine.model.layers import block_rows, unblock_rows

    gen = torch.Generator().manual_seed(n * 100 + k)
    q = torch.randint(-127, 128, (n, k), generator=gen, dtype=torch.int8)
    blocked = native.block_int8(q)
    assert torch.equal(blocked, block_rows(q)) and torch.equal(unblock_rows(blocked), q)
    if n >= 4 and k >= 128:
        assert torch.equal(blocked.flatten()[64:128], q[1, :64]) and torch.equal(blocked.flatten()[256:320], q[0, 64:128])


def test_the_bandwidth_probe_sums_the_buffer(built):
    """stream_sum reads in 4-row blocks like the GEMVs; whatever its order, it must read every value once."""
    gen = torch.Generator().manual_seed(4)
    buf = torch.rand((1 << 20) + 4096 * 3 + 37, generator=gen)  # chunks, then a tail that is not a whole block
    assert native.stream_sum(buf) == pytest.approx(buf.double().sum().item(), rel=1e-5)


@pytest.mark.parametrize("shape", [(2, 1, 2048), (3, 5), (1, 1024), (2, 1, 1)])
def test_rms_norm_matches_pytorch(built, shape):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(*shape, generator=gen) * 3
    w = torch.rand(shape[-1], generator=gen) + 0.5
    got = native.rms_norm(x, w, 1e-5)
    assert got.shape == x.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, F.rms_norm(x, (shape[-1],), w, 1e-5), rtol=2e-6, atol=1e-6)
    torch.testing.assert_close(native.rms_norm(x.to(torch.bfloat16), w, 1e-5),
                               F.rms_norm(x.to(torch.bfloat16).float(), (shape[-1],), w, 1e-5), rtol=2e-6, atol=1e-6)


def test_decoding_steps_norm_natively_and_prefill_on_pytorch(built):
    from engine.model.layers import RMSNorm

    norm = RMSNorm(64, 1e-5)
    norm.native_rows = 4
    x = torch.randn(2, 8, 64)
    torch.testing.assert_close(norm(x[:, :1]), F.rms_norm(x[:, :1], (64,), norm.weight, 1e-5), rtol=2e-6, atol=1e-6)
    assert torch.equal(norm(x), F.rms_norm(x, (64,), norm.weight, 1e-5))  # 16 rows: PyTorch's op


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


def _ref_attention(q, k, v, mask):
    """float64 softmax attention with grouped heads, the definition the kernel must meet."""
    r, hq, _, d = q.shape
    group = hq // k.shape[1]
    k64 = k.double().repeat_interleave(group, dim=1)
    v64 = v.double().repeat_interleave(group, dim=1)
    scores = q.double() @ k64.transpose(-1, -2)
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    return (scores.softmax(-1) @ v64).float()


@pytest.mark.parametrize("hq,hkv,length,d", [(16, 4, 1, 128), (16, 4, 5, 128), (16, 16, 162, 128),
                                             (4, 2, 37, 64), (2, 1, 19, 24), (3, 3, 300, 16)])
@pytest.mark.parametrize("masked", [False, True])
def test_bf16_attention_matches_float64(built, hq, hkv, length, d, masked):
    gen = torch.Generator().manual_seed(hq * 100 + length + d)
    q = torch.randn(2, hq, 1, d, generator=gen) * 0.3
    k = torch.randn(2, hkv, length, d, generator=gen).to(torch.bfloat16)
    v = torch.randn(2, hkv, length, d, generator=gen).to(torch.bfloat16)
    mask = None
    if masked:
        mask = torch.rand(2, length, generator=gen) > 0.4
        mask[:, 0] = True  # every row keeps something to attend to
    got = native.attend_bf16(q, k, v, mask)
    assert got.shape == (2, hq, 1, d) and got.dtype == torch.float32
    torch.testing.assert_close(got, _ref_attention(q, k, v, mask), atol=2e-5, rtol=1e-4)


def test_bf16_attention_reads_a_slice_of_a_longer_cache(built):
    gen = torch.Generator().manual_seed(5)
    cache_k = torch.randn(2, 4, 64, 128, generator=gen).to(torch.bfloat16)
    cache_v = torch.randn(2, 4, 64, 128, generator=gen).to(torch.bfloat16)
    q = torch.randn(2, 16, 1, 128, generator=gen) * 0.2
    k, v = cache_k[:, :, :23], cache_v[:, :, :23]  # what a decoding step passes: not contiguous
    assert not k.is_contiguous()
    torch.testing.assert_close(native.attend_bf16(q, k, v, None), _ref_attention(q, k, v, None), atol=2e-5, rtol=1e-4)
    # and it agrees with the float32 SDPA path the model takes without the native kernels
    sdpa = F.scaled_dot_product_attention(q.reshape(2, 4, 4, 128), k.float(), v.float(), scale=1.0)
    torch.testing.assert_close(native.attend_bf16(q, k, v, None), sdpa.reshape(2, 16, 1, 128), atol=2e-5, rtol=1e-4)


def test_bf16_attention_with_nothing_to_attend_gives_zeros(built):
    q = torch.randn(2, 4, 1, 32)
    k = torch.randn(2, 4, 9, 32).to(torch.bfloat16)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1] = False
    out = native.attend_bf16(q, k, k, mask)
    assert torch.isfinite(out).all() and out[1].abs().max() == 0 and out[0].abs().max() > 0


def test_bf16_attention_refuses_bad_layouts(built):
    q = torch.randn(2, 4, 1, 32)
    k = torch.randn(2, 4, 9, 32).to(torch.bfloat16)
    with pytest.raises(RuntimeError, match="bfloat16"):
        native.attend_bf16(q, k.float(), k.float(), None)
    with pytest.raises(RuntimeError, match="multiple|match"):
        native.attend_bf16(torch.randn(2, 6, 1, 32), torch.randn(2, 4, 9, 32).to(torch.bfloat16), k, None)
    with pytest.raises(RuntimeError, match="contiguous"):
        kt = torch.randn(2, 4, 32, 9).to(torch.bfloat16).transpose(2, 3)
        native.attend_bf16(q, kt, kt, None)
    with pytest.raises(RuntimeError, match="mask"):
        native.attend_bf16(q, k, k, torch.ones(2, 8, dtype=torch.bool))


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
i8_ref = (x.double() @ q.double().T) * s.double()
i8 = (native.gemv_int8(x, native.block_int8(q), s) - i8_ref).abs().max() / i8_ref.abs().max()
qa = torch.randn(2, 8, 1, 40, generator=gen) * 0.3
ka = torch.randn(2, 2, 70, 40, generator=gen).to(torch.bfloat16)
va = torch.randn(2, 2, 70, 40, generator=gen).to(torch.bfloat16)
ref = torch.nn.functional.scaled_dot_product_attention(qa.reshape(2, 2, 4, 40), ka.float(), va.float(), scale=1.0)
att = (native.attend_bf16(qa, ka, va, None) - ref.reshape(2, 8, 1, 40)).abs().max()
print(json.dumps({"isa": isa, "bf16": float(bf), "int8": float(i8), "attend": float(att),
                  "available": native.available()}))
"""


@pytest.mark.parametrize("cap", ["avx2", "scalar"])
def test_every_instruction_set_path_computes_the_same(built, cap):
    """The AVX2 path and the portable loop run here too, capped by DIA_NATIVE_ISA."""
    env = {**os.environ, "DIA_NATIVE_ISA": cap}
    out = subprocess.run([sys.executable, "-c", _PATH_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True)
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["isa"] == cap
    assert probe["bf16"] < 1e-3 and probe["int8"] < 1e-4 and probe["attend"] < 1e-4  # int8: relative (int16 codes)
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


def test_platform_seam(monkeypatch):
    import platform as platform_module

    monkeypatch.setattr(sys, "platform", "win32")
    assert not native.supported()
    with pytest.raises(RuntimeError, match="Linux x86-64 only"):
        native.build()
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(platform_module, "machine", lambda: "aarch64")
    assert not native.supported()
    monkeypatch.setattr(platform_module, "machine", lambda: "x86_64")
    assert native.supported()


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
    assert bf16.cache_dtype == torch.bfloat16 and fp32.cache_dtype == torch.float32
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
    w = q.dequantized().double()
    bound = (_int16_steps(x.view(6, 96)) / 2) @ w.abs().T + 1e-5
    assert ((many - few).view(6, 40).double().abs() <= bound).all()  # the GEMV's int16 activation codes
    assert (many - F.linear(x, lin.weight.float())).abs().max() < 0.02 * many.abs().max()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_native_quantisation_equals_the_pytorch_expression(built, dtype):
    from engine.model.layers import Int8Linear, Linear

    gen = torch.Generator().manual_seed(9)
    w = torch.randn(300, 77, generator=gen) * torch.logspace(-4, 1, 300)[:, None]
    w[3] = 0  # an all-zero row: the 1e-12 floor, all codes 0
    w[4, :5] = torch.tensor([2.5, -2.5, 0.5, -1.5, 127.0])  # ties round half to even
    lin = Linear(77, 300, dtype=dtype)
    with torch.no_grad():
        lin.weight.copy_(w)
    ref = Int8Linear.from_linear(lin, torch.float32)
    q, scales = native.quantize_int8(lin.weight)
    assert torch.equal(q, ref.weight_int8) and torch.equal(scales, ref.scales)
    with pytest.raises(RuntimeError, match="bfloat16 or float32"):
        native.quantize_int8(torch.zeros(2, 2, dtype=torch.float16))
