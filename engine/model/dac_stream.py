"""Streaming DAC decoding, so playback can start while a render is still producing frames.

The DAC decoder is a stack of non-causal convolutions. Each stage here keeps the few inputs its
kernel still needs from the previous push (its left context) and emits the outputs whose right
context has arrived, so every sample is computed once, from the same inputs as in a one-shot
decode: the streamed audio equals ``DacCodec.decode`` up to float rounding, with no seam and no
work decoded twice. (Decoding overlapping windows instead cost ~30 % more at 64-frame windows.)

``decoder_context(config)`` gives the receptive field in frames (±10 for the 44.1 kHz model): audio
for a frame is final once that many frames after it have arrived.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.model.dac import DacCodec, DacConfig, ResidualUnit, Snake

__all__ = ["DecoderContext", "StreamingDacDecoder", "WINDOW_FRAMES", "decoder_context"]

# New frames per decoding step once a stream is under way. With the 44.1 kHz DAC on two cores
# (bench/bench_dac.py) steps of 64 frames run the convolutions near full speed; bigger steps add
# activation memory (~13 MB per 64 frames at the last stage, engine.heap) for little gain.
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


# ------------------------------------------------------------------------------------------
# Stages: each takes the next stretch of its input ``[1, C, n]`` (``final`` on the last one) and
# returns the next stretch of its output, as much as its inputs so far determine.


class _SameConv:
    """A stride-1 'same'-padded convolution (after an optional Snake) that carries its left context.

    ``as_matmul`` runs it as one GEMM over unfolded inputs: at the frame rate (few positions, wide
    weights) that is ~2.5× faster than oneDNN's convolution, which re-lays out its weights per call.
    """

    def __init__(self, conv: nn.Conv1d, snake: Snake | None = None, *, as_matmul: bool = False) -> None:
        self.conv, self.snake = conv, snake
        self.pad = conv.padding[0]
        self.span = conv.dilation[0] * (conv.kernel_size[0] - 1)  # inputs per output beyond the first
        self.as_matmul = as_matmul and conv.dilation[0] == 1
        self.tail: torch.Tensor | None = None  # the last `span` inputs (after the Snake), or fewer

    def __call__(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        batch, channels, n = x.shape
        if self.tail is None:
            self.tail = x.new_zeros(batch, channels, self.pad)  # the left zero padding
        kept = self.tail.shape[-1]
        buf = x.new_empty(batch, channels, kept + n + (self.pad if final else 0))
        buf[..., :kept] = self.tail
        if self.snake is None:
            buf[..., kept:kept + n] = x
        else:
            self.snake(x, out=buf[..., kept:kept + n])
        buf[..., kept + n:] = 0  # the right zero padding, at the end
        outputs = buf.shape[-1] - self.span
        if outputs <= 0:
            self.tail = buf
            return x.new_empty(batch, self.conv.out_channels, 0)
        self.tail = buf[..., outputs:].clone()
        if self.as_matmul:
            return _conv_as_matmul(buf, self.conv)
        return F.conv1d(buf, self.conv.weight, self.conv.bias, dilation=self.conv.dilation)


def _conv_as_matmul(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """An unpadded stride-1, dilation-1 ``conv`` of a ``[1, C, n]`` input as one GEMM."""
    kernel = conv.kernel_size[0]
    columns = x[0].unfold(1, kernel, 1).permute(1, 0, 2).reshape(-1, x.shape[1] * kernel)  # [n', C·k]
    weight = conv.weight.view(conv.out_channels, -1)  # [out, C·k]: the same (channel, tap) order
    return torch.addmm(conv.bias[:, None], weight, columns.t()).unsqueeze(0)


class _Upsample:
    """Snake, then a transposed convolution (kernel 2·stride) that carries its last input.

    Output ``j`` (before cropping ``padding``) at ``u = q·stride + r`` reads inputs ``q`` and ``q − 1``
    only, so a stretch of inputs finalises the outputs of its own positions once the previous
    input is kept. ``as_matmul`` as for ``_SameConv`` (measured ~2.3× faster at the frame rate).
    """

    def __init__(self, conv: nn.ConvTranspose1d, snake: Snake, *, as_matmul: bool = False) -> None:
        self.conv, self.snake, self.as_matmul = conv, snake, as_matmul
        self.stride = conv.stride[0]
        if conv.kernel_size[0] != 2 * self.stride:
            raise ValueError("streaming expects transposed convs with kernel 2·stride, as in every DAC")
        self.previous: torch.Tensor | None = None
        self.inputs = 0  # real inputs seen so far
        self.to_skip = conv.padding[0]  # leading outputs the padding crops

    def __call__(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        batch, channels, n = x.shape
        if self.previous is None:
            self.previous = x.new_zeros(batch, channels, 1)  # input −1 adds nothing
        if n == 0 and not final:
            return x.new_empty(batch, self.conv.out_channels, 0)
        buf = x.new_empty(batch, channels, 1 + n + (1 if final else 0))
        buf[..., :1] = self.previous
        self.snake(x, out=buf[..., 1:1 + n])
        buf[..., 1 + n:] = 0  # at the end an input past the last one adds nothing either
        self.previous = buf[..., n:n + 1].clone()
        first = self.inputs  # the first new input's position
        self.inputs += n
        stride = self.stride
        out = self._positions(buf)  # unpadded u from first·stride on
        if final:  # the one-shot length is inputs·stride: crop `padding` at each end
            out = out[..., :self.inputs * stride + self.conv.padding[0] - first * stride]
        skip = min(self.to_skip, out.shape[-1])
        self.to_skip -= skip
        return out[..., skip:]

    def _positions(self, buf: torch.Tensor) -> torch.Tensor:
        """Outputs ``[1, out, (len(buf) − 1)·stride]`` of the positions of ``buf[1:]``."""
        stride, length = self.stride, buf.shape[-1]
        if not self.as_matmul:
            return F.conv_transpose1d(buf, self.conv.weight, self.conv.bias, stride=stride)[..., stride:length * stride]
        out_ch = self.conv.out_channels
        taps = (buf[0].t() @ self.conv.weight.view(buf.shape[1], -1)).view(length, out_ch, 2, stride)
        joined = taps[1:, :, 0, :] + taps[:-1, :, 1, :]  # input q with taps r, input q−1 with taps r + stride
        return (joined.permute(1, 0, 2).reshape(out_ch, -1) + self.conv.bias[:, None]).unsqueeze(0)


class _Residual:
    """``x + conv1x1(snake(conv7(snake(x))))`` where the convolution lags: x waits for it."""

    def __init__(self, unit: ResidualUnit) -> None:
        self.conv = _SameConv(unit.conv1, unit.snake1)
        self.snake2, self.conv2 = unit.snake2, unit.conv2
        self.waiting: torch.Tensor | None = None  # inputs whose branch output has not come yet

    def __call__(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        branch = self.conv(x, final)
        done = branch.shape[-1]
        waiting = x[..., :0] if self.waiting is None else self.waiting
        held = waiting.shape[-1]
        if done:  # x + y, added into y (IEEE addition commutes), from the waiting inputs then x
            branch = self.conv2(self.snake2(branch))
            branch[..., :min(held, done)].add_(waiting[..., :done])
            if done > held:
                branch[..., held:].add_(x[..., :done - held])
        self.waiting = x[..., done - held:].clone() if done >= held else torch.cat([waiting[..., done:], x], dim=-1)
        return branch


class _Tail:
    """The decoder's last Snake, conv and tanh."""

    def __init__(self, conv: nn.Conv1d, snake: Snake) -> None:
        self.conv = _SameConv(conv, snake)

    def __call__(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        return torch.tanh(self.conv(x, final))


def _stages(codec: DacCodec) -> list:
    decoder = codec.decoder
    stages: list = [_SameConv(decoder.conv1, as_matmul=True)]  # the only stages at the frame rate
    for index, block in enumerate(decoder.block):
        stages.append(_Upsample(block.conv_t1, block.snake1, as_matmul=index == 0))
        stages += [_Residual(block.res_unit1), _Residual(block.res_unit2), _Residual(block.res_unit3)]
    return stages + [_Tail(decoder.conv2, decoder.snake1)]


class StreamingDacDecoder:
    """Decode codes pushed a few frames at a time into final audio samples.

    ``first_chunk_frames`` is the latency knob: the first decoding step runs once that many frames
    plus the look-ahead (the decoder's right receptive field) have arrived, and returns about that
    many frames of audio. Each later step takes twice the frames of the one before, up to
    ``chunk_frames``: audio comes early, then in steps big enough to run the convolutions at speed.
    Memory stays bounded by ``chunk_frames`` whatever the length.
    """

    def __init__(self, codec: DacCodec, *, first_chunk_frames: int = 4, chunk_frames: int = WINDOW_FRAMES) -> None:
        if min(first_chunk_frames, chunk_frames) < 1:
            raise ValueError("chunk sizes must be ≥ 1")
        self.codec = codec
        self.first_chunk_frames = first_chunk_frames
        self.chunk_frames = chunk_frames
        self.lookahead_frames = decoder_context(codec.config).right
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
        return self._emitted

    def reset(self) -> None:
        """Forget everything; the next push starts a new utterance."""
        self._stages = _stages(self.codec)
        self._queued: list[torch.Tensor] = []  # [n_q, k] pieces not yet decoded
        self._n_queued = 0
        self._n_q: int | None = None
        self._received = 0
        self._emitted = 0
        self._size = self.first_chunk_frames  # new frames of audio the current step yields
        self._next_step = self.latency_frames  # frames the next step takes (the first also the look-ahead)
        self._flushed = False

    def push(self, codes: np.ndarray | torch.Tensor) -> np.ndarray:
        """Add newly final frames ``[k, n_q]``; return the audio samples that became final."""
        if self._flushed:
            raise RuntimeError("flush() was called; reset() before pushing a new utterance")
        new = self._as_tensor(codes)
        self._queued.append(new)
        self._n_queued += new.shape[1]
        self._received += new.shape[1]
        out = []
        while self._n_queued >= self._next_step:
            out.append(self._step(self._take(self._next_step), final=False))
            self._size = self._next_step = min(self.chunk_frames, 2 * self._size)
        return _concat(out)

    def flush(self) -> np.ndarray:
        """The end of the codes: return the remaining audio."""
        out = []
        if self._received:
            while self._n_queued > self.chunk_frames:
                out.append(self._step(self._take(self.chunk_frames), final=False))
            out.append(self._step(self._take(self._n_queued), final=True))
        self._flushed = True
        self._queued = []
        return _concat(out)

    def _take(self, frames: int) -> torch.Tensor:
        if not self._queued:
            return torch.zeros(self._n_q or 0, 0, dtype=torch.long)
        codes = torch.cat(self._queued, dim=1) if len(self._queued) > 1 else self._queued[0]
        self._queued = [codes[:, frames:]] if frames < codes.shape[1] else []
        self._n_queued -= frames
        return codes[:, :frames]

    @torch.inference_mode()
    def _step(self, codes: torch.Tensor, *, final: bool) -> np.ndarray:
        quantizer = self.codec.quantizer
        if codes.shape[1]:
            x = quantizer.decode(codes.unsqueeze(0).to(device=self.codec.device))
        else:
            x = torch.zeros(1, self.codec.config.latent_dim, 0, device=self.codec.device, dtype=self.codec.dtype)
        for stage in self._stages:
            x = stage(x, final)
        self._emitted += x.shape[-1]
        return x[0, 0].float().cpu().numpy()

    def _as_tensor(self, codes: np.ndarray | torch.Tensor) -> torch.Tensor:
        tensor = codes if isinstance(codes, torch.Tensor) else torch.from_numpy(np.asarray(codes))
        n_q = self.codec.config.n_codebooks if self._n_q is None else self._n_q
        if tensor.dim() != 2 or not 0 < tensor.shape[1] <= self.codec.config.n_codebooks:
            raise ValueError(f"push expects codes [frames, n_q ≤ {self.codec.config.n_codebooks}], "
                             f"got shape {list(tensor.shape)}")
        if self._n_q is not None and tensor.shape[1] != n_q:
            raise ValueError(f"push got {tensor.shape[1]} codebooks after {n_q} earlier")
        if tensor.is_floating_point() or tensor.is_complex():
            raise ValueError(f"push expects integer codes, got {tensor.dtype}")
        size = self.codec.config.codebook_size
        if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) >= size):
            raise ValueError(f"codes must lie in [0, {size}); got values in [{int(tensor.min())}, {int(tensor.max())}]")
        self._n_q = tensor.shape[1]
        return tensor.to(dtype=torch.long).T.contiguous()


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
