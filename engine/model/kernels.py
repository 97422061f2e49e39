"""Which matrix kernel runs the per-step projections, chosen per machine.

Decoding streams every projection weight once per audio frame with only two activation rows
(the guidance pair), so the speed of a step is the speed of these GEMVs. PyTorch offers several
kernels and which is fastest depends on the CPU (native bfloat16 dot products or not, VNNI ...):

* ``dense``       - ``F.linear`` on the stored weight (any device); on the CPU, bf16 weights take
                    the native GEMV of ``engine.native`` for decoding steps when it is built;
* ``int8``        - FBGEMM/QNNPACK per-channel int8 weights with dynamically quantised activations
                    (``--quantize int8-dynamic``);
* ``int8-native`` - weight-only int8 on the native GEMV, activations as int16 codes (``--quantize int8``
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
from engine.errors import InvalidParameterError
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
MODES = ("int8", "int8-dynamic", "int4")
"""The quantisation modes (``--quantize``); ``quantized_kind`` picks each one's kernel per machine."""


def quantized_kind(mode: str, device: torch.device) -> str:
    """The kernel that runs ``mode``'s projections on ``device`` (see ``DiaModel.quantize``)."""
    if mode not in MODES:
        raise InvalidParameterError(f"unknown quantisation {mode!r}: choose {', '.join(MODES)}")
    cpu = device.type == "cpu"
    if mode == "int4":
        return "int4"
    if mode == "int8-dynamic" and cpu and kernel_available("int8"):
        return "int8"
    return "int8-native" if cpu and kernel_available("int8-native") else "int8-wo"


def quantized_state(projections: list[tuple[nn.Module, str]]) -> dict[str, torch.Tensor]:
    """The quantised projections' tensors, keyed ``"<index>.<buffer>"`` in ``projections`` order."""
    return {f"{i}.{name}": t.contiguous() for i, (owner, attr) in enumerate(projections)
            for name, t in getattr(owner, attr).named_buffers()}


def restore_quantized(projections: list[tuple[nn.Module, str]], kind: str,
                      tensors: dict[str, torch.Tensor] | None, device: torch.device | None = None) -> bool:
    """Swap in projections of ``kind`` built from ``quantized_state`` tensors, moved to ``device``
    (default: where each projection's weight is); False (and nothing changed) when they are missing
    or do not fit the model's projections. The projections may still be on the meta device."""
    if tensors is None:
        return False
    by_index: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        index, _, name = key.partition(".")
        by_index.setdefault(index, {})[name] = tensor
    if len(by_index) != len(projections):
        return False
    built = []
    try:
        for i, (owner, attr) in enumerate(projections):
            linear = getattr(owner, attr)
            module = _from_state(kind, linear, by_index[str(i)])
            built.append((owner, attr, module.to(device or linear.weight.device)))
    except (KeyError, ValueError, AttributeError):
        return False
    for owner, attr, module in built:
        setattr(owner, attr, module)
    return True


class ProjectionQuantizer:
    """Quantises a model's per-step projections one at a time, as ``load_dia`` reads their weights,
    so the full-precision decoder never sits in memory; or installs them from a quantised cache entry
    (``quantized_state`` tensors), so their full-precision weights are never read at all.

    Each projection goes through exactly ``convert_linear``, so the result is bitwise what
    ``DiaModel.quantize`` makes of a loaded model.
    """

    def __init__(self, model: nn.Module, mode: str, device: torch.device,
                 cached: dict[str, torch.Tensor] | None = None) -> None:
        self.kind = quantized_kind(mode, device)
        self.projections = model.projections()
        self._names = {id(module): name for name, module in model.named_modules()}
        self._by_key = {self._key(owner, attr, "weight"): (owner, attr) for owner, attr in self.projections}
        self.from_cache = self.kind in CACHEABLE_KINDS and restore_quantized(self.projections, self.kind, cached, device)

    def takes(self, key: str) -> bool:
        """Whether ``key`` (an internal state key) is the weight of a projection this quantises."""
        return key in self._by_key

    def put(self, key: str, weight: torch.Tensor) -> None:
        """Quantise one projection from its full-precision ``weight`` (dropped afterwards)."""
        owner, attr = self._by_key[key]
        linear = getattr(owner, attr)
        linear.weight = nn.Parameter(weight, requires_grad=False)
        setattr(owner, attr, convert_linear(linear, self.kind))

    def state(self) -> dict[str, torch.Tensor]:
        """The quantised projections' tensors under the model's own state keys."""
        return {self._key(owner, attr, name): t for owner, attr in self.projections
                for name, t in getattr(owner, attr).state_dict().items()}

    def cacheable_state(self) -> dict[str, torch.Tensor] | None:
        """What a cache entry stores (``quantized_state``), or None when this kind cannot be cached."""
        return quantized_state(self.projections) if self.kind in CACHEABLE_KINDS else None

    def _key(self, owner: nn.Module, attr: str, name: str) -> str:
        prefix = self._names[id(owner)]
        return f"{prefix}.{attr}.{name}" if prefix else f"{attr}.{name}"


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
