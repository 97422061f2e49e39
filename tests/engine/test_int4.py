"""Group-wise int4 weights (``--quantize int4``): the format, the native quantiser and GEMV on every
instruction-set path against float64 references, the PyTorch fallback, and the mode end to end.

The kernels feed activations to integer dot products as int8 codes per group of 128 (a step of
max|x| / 127), so their error bound is stated, not guessed: per output, at most
sum_k |w_k| * step_k / 2 from that rounding, plus float32 accumulation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine import native
from engine.model.layers import (
    INT4_GROUP,
    Int4Linear,
    Linear,
    dequantize_int4,
    pack_int4,
    quantize_int4_reference,
    unpack_int4,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built():
    if not native.available():
        if os.environ.get("DIA_STUDIO_REQUIRE_NATIVE") == "1":
            pytest.fail("engine/native is not built or not loadable (python -m engine.native says why)")
        pytest.skip("engine/native is not built on this machine")
    return native.isa()


def _activation_steps(x: torch.Tensor, k: int) -> torch.Tensor:
    """(rows, k) float64: the int8 step max|x_group| / 127 each activation is rounded with."""
    groups = -(-k // INT4_GROUP)
    padded = torch.nn.functional.pad(x.double().abs(), (0, groups * INT4_GROUP - k))
    step = padded.view(x.shape[0], groups, INT4_GROUP).amax(-1) / 127
    return step.repeat_interleave(INT4_GROUP, dim=1)[:, :k]


def assert_meets_int4_bound(got: torch.Tensor, x: torch.Tensor, w_hat: torch.Tensor) -> None:
    """``got`` equals x @ w_hat.T (float64) within the activation rounding bound plus float32 sums."""
    ref = x.double() @ w_hat.double().T
    bound = (_activation_steps(x, x.shape[1]) / 2) @ w_hat.double().abs().T
    bound += 1e-6 * (x.double().abs() @ w_hat.double().abs().T) + 1e-6
    assert got.shape == ref.shape and got.dtype == torch.float32
    excess = (got.double() - ref).abs() - bound
    assert excess.max() <= 0, f"over the bound by {excess.max().item():.3g}"


# (rows, N, K): odd row counts, N not a multiple of the 4-row block, K with partial groups
SHAPES = [(1, 1, 1), (2, 3, 17), (2, 4, 128), (3, 7, 300), (5, 9, 256), (2, 37, 2056), (4, 130, 96), (2, 64, 1024)]


def _weights(n, k, seed, scale=0.05):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=gen) * scale, torch.Generator().manual_seed(seed + 1)


# ------------------------------------------------------------------------------------------ format
def test_packed_layout_is_weight_j_and_j_plus_64_in_byte_j():
    """Within a group, byte j holds weight j in its low nibble and weight j + 64 in its high nibble."""
    q = torch.zeros(1, 2 * INT4_GROUP, dtype=torch.uint8)
    q[0, 5] = 0xA  # group 0, byte 5, low nibble
    q[0, 64 + 31] = 0x3  # group 0, byte 31, high nibble
    q[0, INT4_GROUP + 64] = 0x7  # group 1, byte 0, high nibble
    packed = pack_int4(q)
    assert packed.shape == (1, 128) and packed.dtype == torch.uint8
    assert packed[0, 5].item() == 0xA and packed[0, 31].item() == 0x30 and packed[0, 64].item() == 0x70
    assert packed.sum().item() == 0xA + 0x30 + 0x70


def test_whole_blocks_of_four_rows_are_stored_group_by_group():
    """Rows 0-3 form a block: row i's group g lies at bytes (g * 4 + i) * 64; row 4 (no whole block) is plain."""
    q = torch.zeros(5, 2 * INT4_GROUP, dtype=torch.uint8)
    q[2, INT4_GROUP + 1] = 0x9  # row 2, group 1, byte 1 (low nibble)
    q[4, INT4_GROUP + 1] = 0x5  # row 4: after the last whole block
    packed = pack_int4(q).flatten()
    assert packed[(1 * 4 + 2) * 64 + 1].item() == 0x9
    assert packed[4 * 128 + 64 + 1].item() == 0x5
    assert packed.sum().item() == 0x9 + 0x5


def test_pack_and_unpack_are_inverse():
    gen = torch.Generator().manual_seed(0)
    for rows in (1, 4, 5, 11):
        q = torch.randint(0, 16, (rows, 3 * INT4_GROUP), generator=gen, dtype=torch.uint8)
        assert torch.equal(unpack_int4(pack_int4(q)), q)


def test_quantisation_error_is_at_most_half_a_step():
    w, _ = _weights(6, 300, 1)
    packed, scales, offsets = quantize_int4_reference(w)
    assert packed.shape == (6, 3 * 64) and scales.shape == offsets.shape == (6, 3)
    assert scales.dtype == offsets.dtype == torch.bfloat16
    w_hat = dequantize_int4(packed, scales, offsets, 300)
    step = scales.float().repeat_interleave(INT4_GROUP, dim=1)[:, :300]
    # half a step of rounding, plus the bf16 rounding of the scale and offset (2^-8 relative)
    slack = 15 * step * 2 ** -8 + offsets.float().abs().repeat_interleave(INT4_GROUP, dim=1)[:, :300] * 2 ** -8
    assert ((w - w_hat).abs() <= step / 2 + slack).all()


def test_a_constant_group_is_exact():
    w = torch.full((2, INT4_GROUP), 0.25)
    w[1] = 0.0
    packed, scales, offsets = quantize_int4_reference(w)
    assert torch.equal(dequantize_int4(packed, scales, offsets, INT4_GROUP), w)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_native_quantisation_equals_the_reference(built, dtype):
    w, _ = _weights(70, 333, 9, scale=1.0)
    w = w * torch.logspace(-4, 1, 70)[:, None]
    w[3] = 0  # an all-zero row
    w[4, :INT4_GROUP] = 1.5  # a constant group
    w[5, :4] = torch.tensor([0.0, 15.0, 7.5, 2.5])  # codes landing on ties: round half to even
    w = w.to(dtype)
    got = native.quantize_int4(w)
    want = quantize_int4_reference(w)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and torch.equal(a, b)


# ------------------------------------------------------------------------------------------ GEMV
@pytest.mark.parametrize("rows,n,k", SHAPES)
def test_int4_gemv_matches_float64(built, rows, n, k):
    w, gen = _weights(n, k, rows * 1000 + n + k)
    packed, scales, offsets = native.quantize_int4(w)
    x = torch.randn(rows, k, generator=gen)
    x[:, :3] *= 50  # an outlier: only its own group's step grows
    got = native.gemv_int4(x, packed, scales, offsets)
    assert_meets_int4_bound(got, x, dequantize_int4(packed, scales, offsets, k))


def test_int4_gemv_of_zero_activations_is_zero(built):
    w, _ = _weights(9, 256, 2)
    out = native.gemv_int4(torch.zeros(2, 256), *native.quantize_int4(w))
    assert torch.equal(out, torch.zeros(2, 9))


def test_int4_results_do_not_depend_on_the_thread_count(built):
    w, gen = _weights(4100, 2048, 3)
    q = native.quantize_int4(w)
    x = torch.randn(2, 2048, generator=gen)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native.gemv_int4(x, *q)
        torch.set_num_threads(max(2, threads))
        many = native.gemv_int4(x, *q)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, many)


def test_int4_bad_inputs_are_refused(built):
    w, _ = _weights(4, 256, 4)
    packed, scales, offsets = native.quantize_int4(w)
    with pytest.raises(RuntimeError, match="columns"):
        native.gemv_int4(torch.randn(2, 100), packed, scales, offsets)  # one group short
    with pytest.raises(RuntimeError, match="uint8"):
        native.gemv_int4(torch.randn(2, 256), packed.to(torch.int8), scales, offsets)
    with pytest.raises(RuntimeError, match="scales and offsets"):
        native.gemv_int4(torch.randn(2, 256), packed, scales.float(), offsets)
    with pytest.raises(RuntimeError, match="scales and offsets"):
        native.gemv_int4(torch.randn(2, 256), packed, scales[:, :1].contiguous(), offsets)


_PATH_PROBE = """
import json, torch
from engine import native
gen = torch.Generator().manual_seed(1)
w = torch.randn(41, 1000, generator=gen) * 0.05
x = torch.randn(3, 1000, generator=gen)
print(json.dumps({"isa": native.isa(), "out": native.gemv_int4(x, *native.quantize_int4(w)).tolist()}))
"""


@pytest.mark.parametrize("cap", ["avx512", "avx2", "scalar"])
def test_every_instruction_set_path_computes_the_same(built, cap):
    """VNNI, plain AVX-512, AVX2 and the portable loop all run here, capped by DIA_NATIVE_ISA: the integer
    products are exact, so the paths differ only in the order of the float32 sums."""
    if cap == "avx512" and not built.startswith("avx512"):
        pytest.skip("this CPU has no AVX-512")
    env = {**os.environ, "DIA_NATIVE_ISA": cap}
    out = subprocess.run([sys.executable, "-c", _PATH_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True)
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["isa"] == cap
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(41, 1000, generator=gen) * 0.05
    x = torch.randn(3, 1000, generator=gen)
    here = native.gemv_int4(x, *native.quantize_int4(w))
    torch.testing.assert_close(torch.tensor(probe["out"]), here, rtol=1e-5, atol=1e-5 * here.abs().max().item())


# ------------------------------------------------------------------------------------------ layer
def _linear(n, k, dtype, seed=5) -> Linear:
    lin = Linear(k, n, dtype=dtype)
    with torch.no_grad():
        lin.weight.copy_(_weights(n, k, seed)[0])
    return lin


def test_int4_linear_decodes_natively_and_prefills_on_the_dequantised_weight(built):
    q = Int4Linear.from_linear(_linear(40, 300, torch.bfloat16))
    assert q.use_native
    x = torch.randn(1, 6, 300)
    many = q(x)  # 6 rows: float32 product with the dequantised weight
    few = torch.cat([q(x[:, i:i + 2]) for i in range(0, 6, 2)], dim=1)  # 2 rows: the native GEMV
    assert_meets_int4_bound(few.view(6, 40), x.view(6, 300), q.dequantized())
    torch.testing.assert_close(many, x @ q.dequantized().T, atol=1e-5, rtol=1e-5)


def test_the_pytorch_fallback_computes_the_same(built):
    lin = _linear(33, 260, torch.float32)
    fast = Int4Linear.from_linear(lin)
    slow = Int4Linear(*quantize_int4_reference(lin.weight), 260)
    slow.use_native = False  # what a machine without the kernels runs
    assert torch.equal(fast.weight_int4, slow.weight_int4)
    x = torch.randn(2, 260)
    want = slow(x)
    torch.testing.assert_close(want, x @ slow.dequantized().T)
    assert_meets_int4_bound(fast(x), x, slow.dequantized())


def test_int4_stays_close_to_the_float_weights():
    """The price of int4, measured: per-output error relative to the float32 product."""
    lin = _linear(512, 1024, torch.float32, seed=8)
    x = torch.randn(2, 1024, generator=torch.Generator().manual_seed(8))
    q = Int4Linear(*quantize_int4_reference(lin.weight), 1024)
    q.use_native = False
    exact = x @ lin.weight.T
    rel = (q(x) - exact).norm() / exact.norm()
    assert rel < 0.12  # uniform 16-level rounding of Gaussian groups: ~0.09


# ------------------------------------------------------------------------------------------ model
def test_quantize_int4_end_to_end(built, tmp_path):
    from engine.model.checkpoint import load_dia
    from engine.testing import write_dia

    folder = write_dia(tmp_path / "dia")
    bf16 = load_dia(folder, dtype=torch.bfloat16)
    int4 = load_dia(folder, dtype=torch.bfloat16)
    assert int4.quantize("int4") == "int4"
    projections = [getattr(owner, name) for owner, name in int4.projections()]
    assert projections and all(isinstance(p, Int4Linear) for p in projections)

    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [0] * 6])
    tokens = torch.randint(0, 1024, (2, 6, 9), generator=torch.Generator().manual_seed(0))

    def step_logits(model):  # prefill 5 positions (many rows), then one step of 2 rows (the GEMV)
        state = model.start_decoder(model.encode(ids), None, 8)
        model.decode(tokens[:, :5], state)
        return model.decode(tokens[:, 5:], state)

    ref, got = step_logits(bf16), step_logits(int4)
    assert torch.isfinite(got).all()
    assert (got - ref).norm() / ref.norm() < 0.25
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() > 0.6


def test_int4_is_a_quantize_mode_of_the_engine_and_the_cli():
    from engine.cli import build_parser
    from engine.requests import QUANTIZE_MODES

    assert "int4" in QUANTIZE_MODES
    args = build_parser().parse_args(["render", "script.txt", "-o", "out.wav", "--quantize", "int4"])
    assert args.quantize == "int4"
