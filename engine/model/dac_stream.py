"""Chunked DAC decoding, so playback can start while a render is still producing frames.

The DAC decoder is a stack of non-causal convolutions, so each output sample depends on a
bounded window of code frames: ``decoder_context(config)`` computes it from the layer geometry
(±10 frames for the 44.1 kHz model). Decoding a window that carries that many frames of left
context and right look-ahead around the new frames, and keeping only the new frames' samples,
gives the same samples as a one-shot decode up to float rounding: there is no seam to hide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from engine.model.dac import DacCodec, DacConfig

__all__ = ["DecoderContext", "StreamingDacDecoder", "WINDOW_FRAMES", "decoder_context"]

# New frames per decoding window once a stream is under way. With the 44.1 kHz DAC on two cores
# (bench/bench_dac.py), windows of 64 frames (84 with context and look-ahead) decode about as fast
# as one shot, 128 up to 10 % faster, but their ~30 MB activations raise a bf16 render's peak
# memory by ~0.1 GB (engine.heap).
WINDOW_FRAMES = 64


@dataclass(frozen=True)
class DecoderContext:
    """Code frames left and right of a frame that its decoded samples depend on."""

    left: int
    right: int


def decoder_context(config: DacConfig) -> DecoderContext:
    """The decoder's receptive field in frames, from its kernel, stride and padding sizes.

    Walks the decoder backwards from the samples of one frame to the latent frames they read.
    """
    hop = config.hop_length
    origin = 4 * hop  # any frame far enough from 0 that the interval stays positive
    lo, hi = origin * hop, origin * hop + hop - 1  # the samples of frame `origin`

    def conv(lo: int, hi: int, kernel: int, dilation: int = 1) -> tuple[int, int]:
        pad = (kernel - 1) * dilation // 2  # all stride-1 convs here are 'same'-padded
        return lo - pad, hi - pad + (kernel - 1) * dilation

    lo, hi = conv(lo, hi, 7)  # decoder.conv2
    for stride in reversed(config.decoder_rates):
        for dilation in (9, 3, 1):  # residual units (their 1×1 convs add nothing)
            lo, hi = conv(lo, hi, 7, dilation)
        kernel, pad = 2 * stride, math.ceil(stride / 2)  # transposed conv: out = in·s − pad + j
        lo, hi = math.ceil((lo + pad - kernel + 1) / stride), (hi + pad) // stride
    lo, hi = conv(lo, hi, 7)  # decoder.conv1 (the quantizer's projections are 1×1)
    return DecoderContext(left=origin - lo, right=hi - origin)


class StreamingDacDecoder:
    """Decode codes pushed a few frames at a time into final audio samples.

    ``first_chunk_frames`` is the latency knob: audio starts once that many frames plus the
    look-ahead have arrived. Each later chunk is twice the one before, up to ``chunk_frames``
    (bigger is cheaper per frame, smaller is smoother): audio keeps coming early on, while the
    look-ahead and context decoded twice soon cost little. ``context_frames``/``lookahead_frames`` default to the
    decoder's receptive field, which makes the stitched audio equal to a one-shot decode.
    """

    def __init__(self, codec: DacCodec, *, first_chunk_frames: int = 4, chunk_frames: int = WINDOW_FRAMES,
                 context_frames: int | None = None, lookahead_frames: int | None = None) -> None:
        field = decoder_context(codec.config)
        self.codec = codec
        self.first_chunk_frames = first_chunk_frames
        self.chunk_frames = chunk_frames
        self.context_frames = field.left if context_frames is None else context_frames
        self.lookahead_frames = field.right if lookahead_frames is None else lookahead_frames
        if min(first_chunk_frames, chunk_frames) < 1 or min(self.context_frames, self.lookahead_frames) < 0:
            raise ValueError("chunk sizes must be ≥ 1 and context/look-ahead ≥ 0")
        self.reset()

    @property
    def latency_frames(self) -> int:
        """Frames that must arrive before the first audio comes out."""
        return self.first_chunk_frames + self.lookahead_frames

    @property
    def frames_received(self) -> int:
        return self._received

    @property
    def samples_emitted(self) -> int:
        return self._emitted * self.codec.config.hop_length

    def reset(self) -> None:
        """Forget everything; the next push starts a new utterance."""
        self._buffer: torch.Tensor | None = None  # [n_q, frames] from absolute frame _start
        self._start = 0
        self._received = 0
        self._emitted = 0
        self._next_size = self.first_chunk_frames
        self._flushed = False

    def push(self, codes: np.ndarray | torch.Tensor) -> np.ndarray:
        """Add newly final frames ``[k, n_q]``; return the audio samples that became final."""
        if self._flushed:
            raise RuntimeError("flush() was called; reset() before pushing a new utterance")
        new = self._as_tensor(codes)
        self._buffer = new if self._buffer is None else torch.cat([self._buffer, new], dim=1)
        self._received += new.shape[1]
        out = []
        while True:
            size = self._next_size
            if self._received - self._emitted < size + self.lookahead_frames:
                break
            out.append(self._decode_next(size))
            self._next_size = min(self.chunk_frames, 2 * size)
        self._trim()
        return _concat(out)

    def flush(self) -> np.ndarray:
        """The end of the codes: return the remaining audio, the tail decoded without look-ahead."""
        out = []
        while self._emitted < self._received:
            out.append(self._decode_next(min(self.chunk_frames, self._received - self._emitted)))
        self._flushed = True
        self._buffer = None
        return _concat(out)

    def _decode_next(self, size: int) -> np.ndarray:
        """Decode frames [emitted, emitted + size) inside their context window, and crop."""
        assert self._buffer is not None
        begin = max(0, self._emitted - self.context_frames)  # at 0 the true start needs no context
        end = min(self._received, self._emitted + size + self.lookahead_frames)
        window = self._buffer[:, begin - self._start:end - self._start]
        audio = self.codec.decode(window.unsqueeze(0))[0, 0]
        hop = self.codec.config.hop_length
        keep = audio[(self._emitted - begin) * hop:(self._emitted - begin + size) * hop]
        self._emitted += size
        return keep.float().cpu().numpy()

    def _trim(self) -> None:
        keep_from = max(0, self._emitted - self.context_frames)
        if self._buffer is not None and keep_from > self._start:
            self._buffer = self._buffer[:, keep_from - self._start:]
            self._start = keep_from

    def _as_tensor(self, codes: np.ndarray | torch.Tensor) -> torch.Tensor:
        tensor = codes if isinstance(codes, torch.Tensor) else torch.from_numpy(np.asarray(codes))
        n_q = self.codec.config.n_codebooks if self._buffer is None else self._buffer.shape[0]
        if tensor.dim() != 2 or not 0 < tensor.shape[1] <= self.codec.config.n_codebooks:
            raise ValueError(f"push expects codes [frames, n_q ≤ {self.codec.config.n_codebooks}], "
                             f"got shape {list(tensor.shape)}")
        if self._buffer is not None and tensor.shape[1] != n_q:
            raise ValueError(f"push got {tensor.shape[1]} codebooks after {n_q} earlier")
        return tensor.to(dtype=torch.long).T.contiguous()


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
