"""The engine's fixed numbers, in one torch-free place; everything else derives from these.

Dia speaks through the DAC 44.1 kHz codec: one frame of codes per 512 samples. The decoder's
position budget (``max_new_tokens``) also pays for the delay pattern's tail and the start token.
Parameter ranges and defaults live in ``engine.params`` (they are the hosted API's contract).
"""

from __future__ import annotations

SAMPLE_RATE = 44100
"""Samples per second of everything the engine renders, and of voice prompts."""

HOP_LENGTH = 512
"""Audio samples per codec frame."""

FRAME_RATE = SAMPLE_RATE / HOP_LENGTH
"""Codec frames per second of audio (about 86.13)."""

DECODER_OVERHEAD_FRAMES = 16
"""Decoder positions a render spends on other things than audio: 1 BOS + 15 delay-pattern frames."""

TRAINED_POSITIONS = 3072
"""Decoder positions Dia-1.6B was trained on; the default ``max_new_tokens`` stays inside them."""

DEVICES = ("auto", "cpu", "cuda", "mps")
"""Where the engine can run (``auto`` picks CUDA, then Apple MPS, then the CPU)."""

DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")
"""Weight precisions by name (``auto``: see ``engine.device.pick_dtype``)."""


def frames_to_seconds(frames: float) -> float:
    """Seconds of audio in ``frames`` codec frames."""
    return frames / FRAME_RATE


def seconds_to_frames(seconds: float) -> float:
    """Codec frames in ``seconds`` of audio (not rounded)."""
    return seconds * FRAME_RATE


__all__ = ["SAMPLE_RATE", "HOP_LENGTH", "FRAME_RATE", "DECODER_OVERHEAD_FRAMES", "TRAINED_POSITIONS", "DEVICES",
           "DTYPE_NAMES", "frames_to_seconds", "seconds_to_frames"]
