"""Choosing the compute device and dtype ("auto" included) behind one small, testable seam."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine import constants
from engine.errors import DeviceUnavailableError, InvalidParameterError

DEVICES = constants.DEVICES
DTYPES = {name: getattr(torch, name) for name in constants.DTYPE_NAMES if name != "auto"}


@dataclass(frozen=True)
class DeviceReport:
    """What this machine offers, for the settings page and the self-test."""

    cuda: bool
    cuda_name: str | None
    mps: bool
    cpu_threads: int
    chosen: str
    cpu_kernels: str  # "native avx512" / "native avx2" (engine.native built) or "PyTorch"


def available(name: str) -> bool:
    if name == "cpu":
        return True
    if name == "cuda":
        return torch.cuda.is_available()
    if name == "mps":
        return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    return False


def pick_device(preference: str = "auto") -> torch.device:
    """``auto`` prefers CUDA, then Apple MPS, then the CPU; an explicit choice must be available."""
    preference = (preference or "auto").lower()
    if preference not in DEVICES:
        raise InvalidParameterError(f"device must be one of {', '.join(DEVICES)} (got {preference!r})")
    if preference == "auto":
        for name in ("cuda", "mps"):
            if available(name):
                return torch.device(name)
        return torch.device("cpu")
    if not available(preference):
        raise DeviceUnavailableError(f"the {preference} device is not available on this machine "
                                     f"(this PyTorch build: {torch.__version__})")
    return torch.device(preference)


def pick_dtype(preference: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 where the hardware supports it (CUDA with bf16, CPU), float32 on MPS.

    On the CPU, bfloat16 halves the bytes every decoder step streams, which is what its speed
    depends on; MPS follows the reference app's float32 advice.
    """
    preference = (preference or "auto").lower()
    if preference == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float32
        return torch.bfloat16
    if preference not in DTYPES:
        raise InvalidParameterError(f"dtype must be auto or one of {', '.join(DTYPES)} (got {preference!r})")
    return DTYPES[preference]


def cpu_kernels() -> str:
    """Which matrix kernels CPU decoding uses: the native GEMV (and its instruction set) or PyTorch's."""
    from engine import native

    return f"native {native.isa()}" if native.available() else "PyTorch"


def report() -> DeviceReport:
    cuda = available("cuda")
    return DeviceReport(cuda=cuda, cuda_name=torch.cuda.get_device_name(0) if cuda else None, mps=available("mps"),
                        cpu_threads=torch.get_num_threads(), chosen=pick_device("auto").type,
                        cpu_kernels=cpu_kernels())
