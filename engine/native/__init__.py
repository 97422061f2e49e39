"""Optional native CPU kernels (``kernels.cpp``): few-row bf16, weight-only int8 and group-wise
int4 matrix products, and single-query attention over a bf16 key/value cache, that run at memory speed where
PyTorch's own kernels do not (see ``engine.model.kernels`` and ``DiaModel.cache_dtype``).

The library is compiled once per install against the installed PyTorch (``python -m
engine.native``; ``scripts/setup.sh`` and the bundle build do it) and loaded with
``torch.ops.load_library``. Everything works without it: ``available()`` is then False and the
engine keeps PyTorch's kernels. It is never compiled at run time.

Set ``DIA_STUDIO_NATIVE=0`` to disable it, ``DIA_NATIVE_ISA=avx512|avx2|scalar`` to cap the code path
("avx512_vnni", the best, adds VNNI dot products for int4; the other kernels are the same).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
from functools import cache
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SOURCES = (HERE / "kernels.cpp", HERE / "kernels_simd.inc")
NAME = "dia_native"
# instruction sets whose code beats PyTorch's kernels; "scalar" is only a correctness fallback
FAST_ISAS = ("avx512_vnni", "avx512", "avx2")


def build_tag() -> str:
    """What a built library is tied to: the PyTorch build (C++ ABI), the platform and the sources."""
    digest = hashlib.sha256()
    for source in SOURCES:
        digest.update(source.read_bytes())
    return f"torch-{torch.__version__}-{sys.platform}-{platform.machine()}-{digest.hexdigest()[:12]}"


def build_dir(root: Path | None = None) -> Path:
    return (root or HERE / "_build") / build_tag()


def library_file(root: Path | None = None) -> Path:
    return build_dir(root) / f"{NAME}.so"


def supported() -> bool:
    """Where the kernels are built: Linux on x86-64 (GCC/Clang vector code, OpenMP like PyTorch's).

    Elsewhere the engine keeps PyTorch's kernels: MSVC has no per-function target attributes for
    the vector paths, Apple silicon has no x86 vectors, and Apple's clang has no OpenMP.
    """
    return sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")


def build(root: Path | None = None, verbose: bool = False) -> Path:
    """Compile the library for the installed PyTorch (needs a C++ compiler and ``ninja``)."""
    from torch.utils import cpp_extension

    if not supported():
        raise RuntimeError(f"native kernels are built on Linux x86-64 only (this is {sys.platform} "
                           f"{platform.machine()})")
    out = build_dir(root)
    for stale in out.parent.glob("torch-*"):  # builds for another torch or older sources
        if stale != out:
            shutil.rmtree(stale, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    path = cpp_extension.load(name=NAME, sources=[str(SOURCES[0])], build_directory=str(out),
                              extra_cflags=["-O3", "-fopenmp"], extra_ldflags=["-fopenmp"],
                              is_python_module=False, verbose=verbose)
    (out / "build.json").write_text(json.dumps({"tag": build_tag(), "library": Path(path).name}))
    return Path(path)


@cache
def _load(root: str | None) -> str:
    """Load the built library once; returns its ISA ("" when it is missing, stale or disabled)."""
    if os.environ.get("DIA_STUDIO_NATIVE", "1") == "0":
        return ""
    try:
        # library_file() hashes the sources: a bundle built without the kernels doesn't ship them
        path = library_file(Path(root) if root else None)
        stamp = path.parent / "build.json"
        if not path.is_file() or not stamp.is_file():
            return ""
        if json.loads(stamp.read_text()).get("tag") != build_tag():
            return ""
        torch.ops.load_library(str(path))
        return str(torch.ops.dia_native.isa())
    except (OSError, RuntimeError, ValueError):
        return ""


def isa(root: Path | None = None) -> str:
    """The code path the loaded library takes on this CPU, or "" when it is not loaded."""
    return _load(str(root) if root else None)


def available(root: Path | None = None) -> bool:
    """True when the native kernels are loaded and faster than PyTorch's on this CPU."""
    return isa(root) in FAST_ISAS


def gemv_bf16(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x (R, K) @ weight (N, K) bf16 .T`` in float32; call only when ``available()``."""
    return torch.ops.dia_native.gemv_bf16(x, weight)


def gemv_int8(x: torch.Tensor, weight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``(x (R, K) @ W.T) * scales (N)`` in float32 for int8 ``W`` (N, K) in ``block_int8``'s order, the
    activations as int16 codes per group of 128; call only when ``available()``."""
    return torch.ops.dia_native.gemv_int8(x, weight, scales)


def block_int8(q: torch.Tensor) -> torch.Tensor:
    """Plain (N, K) int8 weights in the blocked order ``gemv_int8`` reads (``layers.block_rows``, faster)."""
    return torch.ops.dia_native.block_int8(q)


def attend_bf16(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                scale: float = 1.0) -> torch.Tensor:
    """Single-query attention ``q (R, Hq, 1, d)`` over a bf16 cache ``k``/``v`` (R, Hkv, L, d) with an
    optional "may attend" ``mask`` (R, L); float32 out (R, Hq, 1, d). Call only when ``available()``."""
    return torch.ops.dia_native.attend_bf16(q, k, v, mask, scale)


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row symmetric int8 ``(q, scales)`` of a bf16/float32 weight in one pass, equal to
    ``layers.Int8Linear``'s PyTorch expression; call only when ``available()``."""
    return torch.ops.dia_native.quantize_int8(weight)


def gemv_int4(x: torch.Tensor, weight: torch.Tensor, scales: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``x (R, K) @ W.T`` in float32 for group-wise int4 ``W`` (``layers.quantize_int4_reference``'s
    format: uint8 (N, groups * 64), bf16 scales/offsets (N, groups)); call only when ``available()``."""
    return torch.ops.dia_native.gemv_int4(x, weight, scales, offsets)


def quantize_int4(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``layers.quantize_int4_reference`` in one native pass (equal results); call only when ``available()``."""
    return torch.ops.dia_native.quantize_int4(weight)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """float32 RMSNorm of a few rows (``x * weight / sqrt(mean(x^2) + eps)``) in one pass; call only when
    ``available()``."""
    return torch.ops.dia_native.rms_norm(x, weight, eps)


def stream_sum(buf: torch.Tensor) -> float:
    """Sum of a contiguous float32 buffer on PyTorch's threads: a streaming read at memory speed (the
    bench's bandwidth probe); call only when ``available()``."""
    return float(torch.ops.dia_native.stream_sum(buf))


def check_kernels() -> dict:
    """Prove the loaded kernels compute what PyTorch computes (for ``dia-studio --self-test``)."""
    state = isa()
    detail = {"isa": state or None, "library": str(library_file()) if state else None, "supported": supported()}
    if state:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(3, 200, generator=gen)
        w = torch.randn(37, 200, generator=gen)
        scales = torch.rand(37, generator=gen)
        want = x @ w.to(torch.bfloat16).float().T
        if not torch.allclose(gemv_bf16(x, w.to(torch.bfloat16)), want, atol=1e-3, rtol=1e-4):
            raise RuntimeError("the native bf16 GEMV disagrees with PyTorch")
        q = w.clamp(-3, 3).mul(40).round().to(torch.int8)
        weights = q.float() * scales[:, None]
        # activations enter as int16 codes: each off by at most half of max|x| / 32767
        bound = x.abs().amax(dim=1, keepdim=True) / 65534 * weights.abs().sum(dim=1) + 1e-3
        if not ((gemv_int8(x, block_int8(q), scales) - x @ weights.T).abs() <= bound).all():
            raise RuntimeError("the native int8 GEMV disagrees with PyTorch")
    return detail
