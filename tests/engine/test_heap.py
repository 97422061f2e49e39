"""engine.heap: freed large temporaries go back to the system instead of staying resident."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import pytest

from engine import heap

ROOT = Path(__file__).resolve().parents[2]


def _has_glibc() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "mallopt") and Path("/proc/self/status").exists()
    except OSError:
        return False


glibc_only = pytest.mark.skipif(not _has_glibc(), reason="glibc's allocator (Linux)")

# In a fresh process: free one 24 MB tensor (glibc then raises its dynamic mmap threshold past
# 24 MB), allocate 20 MB and a small tensor after it (so the heap cannot just shrink at its top),
# free the 20 MB, and print how much of it is still resident.
PROBE = """
import sys, torch
from engine import heap
if sys.argv[1] == "fixed":
    assert heap.fix_mmap_threshold()
def anon():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon:")) * 1024
big = torch.ones(6 * 1024 * 1024); del big
block = torch.ones(5 * 1024 * 1024)  # 20 MB, touched
pin = torch.ones(1024)
before = anon()
del block
print(before - anon())
"""


def _returned_bytes(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, cwd=ROOT)
    return int(out.stdout.split()[-1])


@glibc_only
def test_glibc_keeps_a_freed_20_mb_tensor_resident_by_default():
    """The problem engine.heap exists for (if glibc ever stops doing this, the seam can go)."""
    assert _returned_bytes("default") < 4 * 1024 * 1024


@glibc_only
def test_with_a_fixed_threshold_a_freed_20_mb_tensor_goes_back_to_the_system():
    assert _returned_bytes("fixed") > 16 * 1024 * 1024


@glibc_only
def test_trim_reports_that_it_ran():
    assert heap.trim() is True


def test_the_threshold_keeps_a_decoding_windows_activations_in_the_heap():
    """A streaming step of the 44.1 kHz DAC ends in activations of (last channels × step samples)
    float32: mapping those anew every window made decoding a third slower."""
    from engine.model.dac import DacConfig
    from engine.model.dac_stream import WINDOW_FRAMES, decoder_context

    config = DacConfig()
    channels = config.decoder_dim >> len(config.decoder_rates)
    window_bytes = channels * (WINDOW_FRAMES + decoder_context(config).right) * config.hop_length * 4
    assert 8 * 1024 * 1024 < window_bytes < heap.MMAP_THRESHOLD_BYTES
