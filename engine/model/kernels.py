"""Which matrix kernel runs the per-step projections, chosen per machine.

Decoding streams every projection weight once per audio frame with only two activation rows
(the guidance pair), so the speed of a step is the speed of these GEMVs. PyTorch offers several
kernels and which is fastest depends on the CPU (native bfloat16 dot products or not, VNNI ...):

* ``dense``       - ``F.linear`` on the stored weight (any device); on the CPU, bf16 weights take
                    the native GEMV of ``engine.native`` for decoding steps when it is built;
* ``int8``        - FBGEMM/QNNPACK per-channel int8 weights with dynamically quantised activations
                    (``--quantize int8-dynamic``);
* ``int8-native`` - weight-only int8 on the native GEMV, float32 activations (``--quantize int8``
                    on x86 CPUs where ``engine.native`` is built);
* ``int8-wo``     - weight-only int8 through ``aten._weight_int8pack_mm``, activations stay bfloat16
                    (``--quantize int8`` elsewhere);
* ``int4``        - group-wise int4 weights (``layers.Int4Linear``): the native int4 GEMV where it is
                    built, a dequantising PyTorch fallback elsewhere (``--quantize int4``).
"""

from __future__ import annotations

import torch
from torch import nn

from engine import native
from engine.model.layers import INT4_GROUP, Int4Linear, Int8Linear, Linear, NativeInt8Linear, PackedLinear

KINDS = ("dense", "int8", "int8-native", "int8-wo", "int4")


def convert_linear(linear: nn.Module, kind: str) -> nn.Module:
    if kind == "dense" or not isinstance(linear, Linear):
        return linear
    if kind == "int8":
        return PackedLinear.from_linear(linear, "int8")
    if kind == "int8-native":
        return NativeInt8Linear.from_linear(linear)
    if kind == "int4":
        return Int4Linear.from_linear(linear)
    if kind == "int8-wo":
        act = torch.bfloat16 if linear.weight.dtype != torch.float32 else torch.float32
        return Int8Linear.from_linear(linear, act)
    raise ValueError(f"unknown kernel {kind!r}; choose from {', '.join(KINDS)}")


def kernel_available(kind: str) -> bool:
    """Whether this PyTorch build runs ``kind`` (FBGEMM exists on x86, QNNPACK on ARM)."""
    if kind == "dense":
        return True
    if kind == "int8-native":
        return native.available()
    try:
        probe = Linear(8, 8, dtype=torch.float32)
        with torch.no_grad():
            probe.weight.copy_(torch.randn(8, 8))
        convert_linear(probe, kind)(torch.randn(2, 8))
        return True
    except (RuntimeError, NotImplementedError):
        return False


# kinds whose state is plain tensors, so a quantised model can be cached on disk (engine.model.quant_cache)
CACHEABLE_KINDS = ("int4", "int8-native", "int8-wo")


def quantized_state(projections: list[tuple[nn.Module, str]]) -> dict[str, torch.Tensor]:
    """The quantised projections' tensors, keyed ``"<index>.<buffer>"`` in ``projections`` order."""
    return {f"{i}.{name}": t.contiguous() for i, (owner, attr) in enumerate(projections)
            for name, t in getattr(owner, attr).named_buffers()}


def restore_quantized(projections: list[tuple[nn.Module, str]], kind: str,
                      tensors: dict[str, torch.Tensor] | None) -> bool:
    """Swap in projections of ``kind`` built from ``quantized_state`` tensors; False (and nothing
    changed) when they are missing or do not fit the model's projections."""
    if tensors is None:
        return False
    built = []
    try:
        for i, (owner, attr) in enumerate(projections):
            linear = getattr(owner, attr)
            module = _from_state(kind, linear, {k.split(".", 1)[1]: v for k, v in tensors.items()
                                                if k.split(".", 1)[0] == str(i)})
            built.append((owner, attr, module.to(linear.weight.device)))
    except (KeyError, ValueError, AttributeError):
        return False
    for owner, attr, module in built:
        setattr(owner, attr, module)
    return True


def _from_state(kind: str, linear: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    n, k = linear.out_features, linear.in_features
    if kind == "int4":
        groups = -(-k // INT4_GROUP)
        _check(state["weight_int4"], (n, groups * 64), torch.uint8)
        _check(state["scales"], (n, groups), torch.bfloat16)
        _check(state["offsets"], (n, groups), torch.bfloat16)
        return Int4Linear(state["weight_int4"], state["scales"], state["offsets"], k)
    _check(state["weight_int8"], (n, k), torch.int8)
    _check(state["scales"], (n,), state["scales"].dtype)
    if kind == "int8-native":
        return NativeInt8Linear(state["weight_int8"], state["scales"], torch.float32)
    return Int8Linear(state["weight_int8"], state["scales"], state["scales"].dtype)


def _check(t: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    if tuple(t.shape) != shape or t.dtype != dtype:
        raise ValueError(f"cached tensor {tuple(t.shape)} {t.dtype}, expected {shape} {dtype}")
