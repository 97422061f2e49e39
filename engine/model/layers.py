"""Building blocks of the Dia transformer, written for inference.

Numerics: activations that leave a block (the residual stream, norms, attention) are kept in
float32 even when the weights are bfloat16/float16; only the matrix products run in the weight
dtype. On CPU that is both faster (PyTorch's reduced-precision attention kernels are slow for
single-query shapes) and closer to the float32 reference.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from engine import native


class RMSNorm(nn.Module):
    """Root-mean-square norm with an always-float32 gain; returns float32 (one fused kernel)."""

    def __init__(self, dim: int, eps: float, device=None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=torch.float32), requires_grad=False)

    # inputs of at most this many rows run on the native one-pass norm (``engine.native``); 0 = never
    native_rows: int = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native_rows and x.numel() <= self.native_rows * x.shape[-1]:
            return native.rms_norm(x, self.weight, self.eps)
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight, self.eps)


def slow_reduced_precision_matmul(device: torch.device) -> bool:
    """True on CPUs without native bfloat16 dot products, where PyTorch's bf16 GEMM is several
    times slower than float32 (measured 4.4x for a 324-row encoder projection)."""
    return device.type == "cpu" and not torch.cpu._is_avx512_bf16_supported() and not torch.cpu._is_amx_tile_supported()


class Linear(nn.Module):
    """A bias-free projection stored (out, in) so ``F.linear`` streams it row-wise (fast GEMV).

    With ``upcast_rows`` set, inputs of at least that many rows (the encoder, prompt prefill) run in
    float32 on a float32 copy of the weight made for that call: on CPUs whose reduced-precision
    GEMM is slow that is faster, and two-row decoding steps keep streaming the compact weight.
    """

    upcast_rows: int | None = None
    # inputs of at most this many rows run on the native bf16 GEMV (``engine.native``); 0 = never
    native_rows: int = 0

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features, device=device, dtype=dtype),
                                   requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows <= self.native_rows:
            out = native.gemv_bf16(x.reshape(rows, x.shape[-1]), self.weight)
            return out.view(*x.shape[:-1], self.out_features)
        if self.upcast_rows is not None and rows >= self.upcast_rows:
            return F.linear(x.float(), self.weight.float())
        return F.linear(x.to(self.weight.dtype), self.weight)


# Without VNNI, FBGEMM's u8*s8 products can saturate int16 unless activations use 7 bits.
_REDUCE_RANGE = not torch.cpu._is_vnni_supported()


class PackedLinear(nn.Module):
    """A projection whose weight lives in a CPU kernel's packed format (FBGEMM/QNNPACK):
    per-output-channel int8 weights, activations quantised on the fly for each call."""

    def __init__(self, packed, in_features: int, out_features: int, kind: str) -> None:
        super().__init__()
        self.packed = packed
        self.in_features, self.out_features, self.kind = in_features, out_features, kind

    @classmethod
    def from_linear(cls, linear: Linear, kind: str) -> PackedLinear:
        w = linear.weight.detach().float()
        if kind != "int8":
            raise ValueError(f"unknown packed kind {kind!r}")
        scales = (w.abs().amax(dim=1).clamp(min=1e-12) / 127.0).double()
        zero = torch.zeros(w.shape[0], dtype=torch.long)
        with warnings.catch_warnings():  # quantized tensors are deprecated; kernels.py falls back when gone
            warnings.simplefilter("ignore", UserWarning)
            packed = torch.ops.quantized.linear_prepack(torch.quantize_per_channel(w, scales, zero, 0, torch.qint8), None)
        return cls(packed, linear.in_features, linear.out_features, kind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).float()
        out = torch.ops.quantized.linear_dynamic(x2, self.packed, _REDUCE_RANGE)
        return out.reshape(*shape[:-1], self.out_features)


class Int8Linear(nn.Module):
    """Weight-only int8 projection (per-channel scales, activations kept in bf16/fp32) through
    PyTorch's own packed int8 GEMM (``aten._weight_int8pack_mm``); a portable fallback mode."""

    def __init__(self, weight_int8: torch.Tensor, scales: torch.Tensor, act_dtype: torch.dtype) -> None:
        super().__init__()
        self.in_features = weight_int8.shape[1]
        self.out_features = weight_int8.shape[0]
        self.register_buffer("weight_int8", weight_int8.contiguous())
        self.register_buffer("scales", scales.to(act_dtype).contiguous())
        self.act_dtype = act_dtype

    @classmethod
    def from_linear(cls, linear: Linear, act_dtype: torch.dtype = torch.bfloat16) -> Int8Linear:
        w = linear.weight.detach().float()
        scales = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        q = torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8)
        return cls(q, scales, act_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).to(self.act_dtype)
        if x2.device.type == "cpu":
            out = torch.ops.aten._weight_int8pack_mm(x2, self.weight_int8, self.scales)
        else:
            out = F.linear(x2, self.weight_int8.to(self.act_dtype)) * self.scales
        return out.reshape(*shape[:-1], self.out_features)


BLOCK_ROWS = 4
"""Weight rows the native int8/int4 GEMVs walk together, stored interleaved so that the block streams
sequentially (``kRowsPerBlock`` in ``engine/native/kernels.cpp``)."""
BLOCK_LINE = 64  # bytes of a row stored together in a block: one cache line (``kLineBytes``)


def block_rows(p: torch.Tensor) -> torch.Tensor:
    """A plain (N, K) matrix of 1-byte elements -> the blocked order of the native int8/int4 GEMVs
    (int8 weights: ``native.block_int8`` does it faster; int4: ``pack_int4``'s packed groups).

    Whole blocks of ``BLOCK_ROWS`` rows are stored ``BLOCK_LINE`` bytes at a time (the block's rows'
    line 0, then their line 1, ..., then their last ``K % BLOCK_LINE`` bytes row after row); the rows
    after the last whole block are stored as they are.
    """
    n, k = p.shape
    whole, kv = n - n % BLOCK_ROWS, k - k % BLOCK_LINE
    nb = whole // BLOCK_ROWS
    b = p[:whole].reshape(nb, BLOCK_ROWS, k)
    head = b[:, :, :kv].reshape(nb, BLOCK_ROWS, kv // BLOCK_LINE, BLOCK_LINE).transpose(1, 2)
    blocks = torch.cat((head.reshape(nb, BLOCK_ROWS * kv), b[:, :, kv:].reshape(nb, BLOCK_ROWS * (k - kv))), dim=1)
    return torch.cat((blocks.reshape(whole, k), p[whole:])).contiguous()


def unblock_rows(p: torch.Tensor) -> torch.Tensor:
    """The inverse of ``block_rows``: the plain (N, K) matrix."""
    n, k = p.shape
    whole, kv = n - n % BLOCK_ROWS, k - k % BLOCK_LINE
    nb = whole // BLOCK_ROWS
    b = p[:whole].reshape(nb, BLOCK_ROWS * k)
    head = b[:, :BLOCK_ROWS * kv].reshape(nb, kv // BLOCK_LINE, BLOCK_ROWS, BLOCK_LINE).transpose(1, 2)
    rows = torch.cat((head.reshape(nb, BLOCK_ROWS, kv), b[:, BLOCK_ROWS * kv:].reshape(nb, BLOCK_ROWS, k - kv)), dim=2)
    return torch.cat((rows.reshape(whole, k), p[whole:]))


class NativeInt8Linear(Int8Linear):
    """Weight-only int8 on the native GEMV (``engine.native``): float32 scales, activations as int16
    codes per group of 128 (2^-16 of the group's largest value), so in effect only the weights are
    rounded. ``weight_int8`` is stored in the GEMV's blocked order (``block_rows``). Many-row inputs
    (prefill) use a float32 copy of the weight."""

    native_rows = 4

    @classmethod
    def from_linear(cls, linear: Linear, act_dtype: torch.dtype = torch.float32) -> NativeInt8Linear:
        q, scales = native.quantize_int8(linear.weight.detach())  # one pass: ~20x faster at load
        return cls(native.block_int8(q), scales, torch.float32)

    def dequantized(self) -> torch.Tensor:
        """The float32 (N, K) weight these codes and scales stand for."""
        return unblock_rows(self.weight_int8).float() * self.scales[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = x.shape[-1]
        rows = x.numel() // k
        x2 = x.reshape(rows, k)
        if rows <= self.native_rows:
            out = native.gemv_int8(x2, self.weight_int8, self.scales)
        else:
            out = F.linear(x2.float(), self.dequantized())
        return out.view(*x.shape[:-1], self.out_features)


INT4_GROUP = 128
"""int4 weights per (scale, offset) pair; ``engine/native/kernels.cpp``'s kInt4Group is the same number."""


def quantize_int4_reference(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group-wise int4 ``(packed, scales, offsets)`` of a (N, K) weight, in PyTorch (any device).

    Rows are padded with zeros to whole groups of ``INT4_GROUP``; each group stores
    ``w ~ q * scale + offset`` with q in 0..15, scale = bf16((max - min) / 15), offset = bf16(min).
    ``packed`` is uint8 (N, groups * 64) in the native kernels' nibble order (``pack_int4``);
    ``native.quantize_int4`` computes exactly this, faster.
    """
    w = weight.detach().float()
    n, k = w.shape
    groups = -(-k // INT4_GROUP)
    padded = F.pad(w, (0, groups * INT4_GROUP - k)).view(n, groups, INT4_GROUP)
    lo, hi = padded.amin(dim=-1), padded.amax(dim=-1)
    scales = ((hi - lo) / 15).clamp(min=1e-30).to(torch.bfloat16)
    offsets = lo.to(torch.bfloat16)
    q = ((padded - offsets.float()[..., None]) / scales.float()[..., None]).round().clamp(0, 15).to(torch.uint8)
    return pack_int4(q.view(n, groups * INT4_GROUP)), scales, offsets


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """uint8 codes (N, groups * 128) in 0..15 -> (N, groups * 64) bytes, as the native kernels read them.

    A group's 64 bytes: byte ``j`` holds weight ``j`` in its low nibble and weight ``j + 64`` in its high
    nibble (one AND, or a shift and an AND, per vector). The rows are then in ``block_rows``' order: a
    group is one line, so whole blocks of ``BLOCK_ROWS`` rows are stored group by group and a block's
    product reads one sequential stream.
    """
    n = q.shape[0]
    q = q.view(n, -1, 2, 64)  # (N, groups, half, byte)
    return block_rows((q[:, :, 0] | (q[:, :, 1] << 4)).reshape(n, -1))


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """The inverse of ``pack_int4``: uint8 codes (N, groups * 128) in natural order."""
    n = packed.shape[0]
    p = unblock_rows(packed).reshape(n, -1, 64)
    return torch.cat((p & 15, p >> 4), dim=-1).reshape(n, -1)


def dequantize_int4(packed: torch.Tensor, scales: torch.Tensor, offsets: torch.Tensor,
                    in_features: int) -> torch.Tensor:
    """float32 (N, in_features) weights that int4 ``(packed, scales, offsets)`` stand for."""
    n, groups = scales.shape
    q = unpack_int4(packed).view(n, groups, INT4_GROUP).float()
    w = q * scales.float()[..., None] + offsets.float()[..., None]
    return w.view(n, groups * INT4_GROUP)[:, :in_features]


class Int4Linear(nn.Module):
    """Group-wise int4 weights (``quantize_int4_reference``), float32 activations.

    Decoding steps (at most ``native_rows`` rows) run on the native int4 GEMV where it is built; other
    inputs, and machines without it, multiply by the dequantised float32 weight (same numbers, slower).
    """

    native_rows = 4

    def __init__(self, packed: torch.Tensor, scales: torch.Tensor, offsets: torch.Tensor, in_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = packed.shape[0]
        self.register_buffer("weight_int4", packed.contiguous())
        self.register_buffer("scales", scales.contiguous())
        self.register_buffer("offsets", offsets.contiguous())
        self.use_native = packed.device.type == "cpu" and native.available()

    @classmethod
    def from_linear(cls, linear: nn.Module) -> Int4Linear:
        w = linear.weight.detach()
        if w.device.type == "cpu" and w.dtype in (torch.bfloat16, torch.float32) and native.available():
            packed, scales, offsets = native.quantize_int4(w)  # one pass, equal to the reference
        else:
            packed, scales, offsets = quantize_int4_reference(w)
        return cls(packed, scales, offsets, w.shape[1])

    def dequantized(self) -> torch.Tensor:
        return dequantize_int4(self.weight_int4, self.scales, self.offsets, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = x.shape[-1]
        rows = x.numel() // k
        x2 = x.reshape(rows, k)
        if self.use_native and rows <= self.native_rows:
            out = native.gemv_int4(x2, self.weight_int4, self.scales, self.offsets)
        else:
            out = F.linear(x2.float(), self.dequantized())
        return out.view(*x.shape[:-1], self.out_features)


def rope_tables(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (len(positions), head_dim) for rotate-half RoPE, computed in float32."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (..., T, head_dim) with tables (T, head_dim) (rotate-half layout)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Scaled-dot-product attention with Dia's scale of 1.0 (the 1/sqrt(d) is folded into the weights).

    ``q`` (R, Hq, T, d), ``k``/``v`` (R, Hkv, L, d) with Hq a multiple of Hkv; ``mask`` is a boolean
    "may attend" mask broadcastable to (R, Hq, T, L) or None. ``k``/``v`` may be a bf16 cache under
    float32 queries (CPU, ``engine.native`` built). Grouped heads are handled by folding
    the query group into the sequence axis, so no key/value copies are made.
    """
    r, hq, t, d = q.shape
    hkv = k.shape[1]
    if k.dtype != q.dtype:
        if t == 1 and k.dtype == torch.bfloat16 and q.device.type == "cpu":
            # a decoding step over a bf16 cache (DiaModel.cache_dtype): the native kernel reads it as is
            return native.attend_bf16(q, k, v, None if mask is None else mask.reshape(r, k.shape[2]))
        k, v = k.to(q.dtype), v.to(q.dtype)  # prefill over a bf16 cache: PyTorch's float32 attention
    if hq == hkv:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
    group = hq // hkv
    qg = q.reshape(r, hkv, group * t, d)
    if mask is not None:
        mask = mask.expand(r, hq, t, mask.shape[-1]).reshape(r, hkv, group * t, mask.shape[-1])
    out = F.scaled_dot_product_attention(qg, k, v, attn_mask=mask, scale=1.0)
    return out.reshape(r, hq, t, d)
