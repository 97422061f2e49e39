"""The device/dtype seam: what "auto" picks on each kind of machine (availability faked per platform)."""

from __future__ import annotations

import pytest
import torch

from engine import device as dev
from engine import native
from engine.errors import DeviceUnavailableError, InvalidParameterError


@pytest.fixture
def machine(monkeypatch):
    """Pretend the machine has the given accelerators."""

    def make(cuda: bool = False, mps: bool = False, bf16: bool = True):
        monkeypatch.setattr(dev, "available", lambda name: name == "cpu" or (name == "cuda" and cuda) or (name == "mps" and mps))
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)

    return make


def test_auto_prefers_cuda_then_mps_then_cpu(machine):
    machine(cuda=True, mps=True)
    assert dev.pick_device("auto").type == "cuda"
    machine(mps=True)
    assert dev.pick_device("auto").type == "mps"
    machine()
    assert dev.pick_device("auto").type == "cpu"
    assert dev.pick_device(None).type == "cpu"


def test_explicit_device_must_exist(machine):
    machine()
    assert dev.pick_device("CPU").type == "cpu"
    with pytest.raises(DeviceUnavailableError, match="cuda"):
        dev.pick_device("cuda")
    with pytest.raises(InvalidParameterError):
        dev.pick_device("tpu")


def test_auto_dtype_per_device(machine):
    machine(cuda=True, bf16=True)
    assert dev.pick_dtype("auto", torch.device("cuda")) == torch.bfloat16
    machine(cuda=True, bf16=False)  # pre-Ampere GPUs
    assert dev.pick_dtype("auto", torch.device("cuda")) == torch.float16
    assert dev.pick_dtype("auto", torch.device("mps")) == torch.float32
    assert dev.pick_dtype("auto", torch.device("cpu")) == torch.bfloat16
    assert dev.pick_dtype("float16", torch.device("cpu")) == torch.float16
    with pytest.raises(InvalidParameterError):
        dev.pick_dtype("int4", torch.device("cpu"))


def test_report_describes_this_machine():
    report = dev.report()
    assert report.chosen in ("cpu", "cuda", "mps") and report.cpu_threads >= 1
    assert report.cpu_kernels in ("PyTorch", *(f"native {isa}" for isa in native.FAST_ISAS))
