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
                    (``--quantize int8`` elsewhere).
"""

from __future__ import annotations

import torch
from torch import nn

from engine import native
from engine.model.layers import Int8Linear, Linear, NativeInt8Linear, PackedLinear

KINDS = ("dense", "int8", "int8-native", "int8-wo")


def convert_linear(linear: nn.Module, kind: str) -> nn.Module:
    if kind == "dense" or not isinstance(linear, Linear):
        return linear
    if kind == "int8":
        return PackedLinear.from_linear(linear, "int8")
    if kind == "int8-native":
        return NativeInt8Linear.from_linear(linear)
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
