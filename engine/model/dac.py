"""DAC (Descript Audio Codec) in plain PyTorch, inference only.

The network follows the original descript code operation for operation, so that with weights
folded by ``torch._weight_norm`` it reproduces the original module bit for bit in fp32. The
parameter names are those of transformers' ``DacModel``, so the published
``descript/dac_44khz`` ``model.safetensors`` loads with strict key checking.

Shapes: audio is ``[batch, 1, samples]`` at ``config.sample_rate``; codes are
``[batch, n_codebooks, frames]`` with one frame per ``config.hop_length`` samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.constants import SAMPLE_RATE
from engine.model.config import is_whole_number, show_value

__all__ = ["DacCodec", "DacConfig"]

# Training-only settings transformers writes into config.json; they do not change inference.
_TRANSFORMERS_TRAINING_DEFAULTS: dict[str, Any] = {
    "codebook_loss_weight": 1.0,
    "commitment_loss_weight": 0.25,
    "quantizer_dropout": 0.0,
}

# Sane bounds (inclusive), generous multiples of the 44.1 kHz model's: no value in a config can
# make building the codec run away (10⁹ codebooks used to hang the loader).
DAC_BOUNDS: dict[str, tuple[int, int]] = {
    "sample_rate": (1000, 384_000),
    "encoder_dim": (1, 4096),
    "decoder_dim": (1, 1 << 16),
    "n_codebooks": (1, 64),
    "codebook_size": (2, 1 << 16),
    "codebook_dim": (1, 1024),
}
MAX_RATES = 8  # strided blocks on each side (4 in every published DAC)
MIN_RATE = 2  # the stride of one block: at 1 the decoder's transposed conv (output padding 1) cannot run
MAX_RATE = 64
MAX_LATENT_DIM = 1 << 14  # encoder_dim · 2^len(encoder_rates): 1024 in the 44.1 kHz model

# DacConfig field → (transformers config.json key, transformers' default)
_TRANSFORMERS_FIELDS: dict[str, tuple[str, Any]] = {
    "sample_rate": ("sampling_rate", 16000),  # transformers' default is the 16 kHz model
    "encoder_dim": ("encoder_hidden_size", 64),
    "encoder_rates": ("downsampling_ratios", (2, 4, 8, 8)),
    "decoder_dim": ("decoder_hidden_size", 1536),
    "n_codebooks": ("n_codebooks", 9),
    "codebook_size": ("codebook_size", 1024),
    "codebook_dim": ("codebook_dim", 8),
}


@dataclass(frozen=True)
class DacConfig:
    """Geometry of a DAC codec. The defaults are the 44.1 kHz, 8 kbps model Dia uses."""

    sample_rate: int = SAMPLE_RATE
    encoder_dim: int = 64
    encoder_rates: tuple[int, ...] = (2, 4, 8, 8)
    decoder_dim: int = 1536
    decoder_rates: tuple[int, ...] = (8, 8, 4, 2)
    n_codebooks: int = 9
    codebook_size: int = 1024
    codebook_dim: int = 8

    def __post_init__(self) -> None:
        values = {name: getattr(self, name) for name in (*DAC_BOUNDS, "encoder_rates", "decoder_rates")}
        _check_values(values, {})
        object.__setattr__(self, "encoder_rates", tuple(self.encoder_rates))
        object.__setattr__(self, "decoder_rates", tuple(self.decoder_rates))
        if math.prod(self.decoder_rates) != math.prod(self.encoder_rates):
            raise ValueError(
                f"DAC config: decoder_rates {list(self.decoder_rates)} must upsample by the same "
                f"factor as encoder_rates {list(self.encoder_rates)} downsample")
        if self.decoder_dim % (2 ** len(self.decoder_rates)):
            raise ValueError(f"DAC config: decoder_dim {self.decoder_dim} must be divisible by "
                             f"2**{len(self.decoder_rates)}")

    @property
    def latent_dim(self) -> int:
        """Width of the latent between encoder, quantizer and decoder (1024 for 44.1 kHz)."""
        return self.encoder_dim * 2 ** len(self.encoder_rates)

    @property
    def hop_length(self) -> int:
        """Audio samples per code frame (512 for 44.1 kHz)."""
        return math.prod(self.encoder_rates)

    @property
    def frame_rate(self) -> float:
        """Code frames per second (≈86.13 for 44.1 kHz)."""
        return self.sample_rate / self.hop_length

    @classmethod
    def from_transformers_dict(cls, data: Mapping[str, Any]) -> DacConfig:
        """From a transformers ``config.json`` dict; missing fields take transformers' defaults.

        A bad value raises ValueError naming its ``config.json`` key.
        """
        values = {name: data.get(key, default) for name, (key, default) in _TRANSFORMERS_FIELDS.items()}
        _check_values(values, {name: key for name, (key, _) in _TRANSFORMERS_FIELDS.items()})
        rates = tuple(values["encoder_rates"])
        return cls(**values, decoder_rates=rates[::-1])  # transformers always mirrors the encoder

    @classmethod
    def from_original_kwargs(cls, kwargs: Mapping[str, Any]) -> DacConfig:
        """From the ``metadata["kwargs"]`` of an original DAC ``weights.pth``."""
        defaults = cls()
        codebook_dim = kwargs.get("codebook_dim", defaults.codebook_dim)
        if isinstance(codebook_dim, (list, tuple)):
            if not all(is_whole_number(dim) for dim in codebook_dim) or len(set(codebook_dim)) != 1:
                raise ValueError(f"DAC config: codebook_dim {show_value(codebook_dim)}: per-codebook dims are not "
                                 "supported")
            codebook_dim = codebook_dim[0]
        config = cls(
            sample_rate=kwargs.get("sample_rate", defaults.sample_rate),
            encoder_dim=kwargs.get("encoder_dim", defaults.encoder_dim),
            encoder_rates=kwargs.get("encoder_rates", defaults.encoder_rates),
            decoder_dim=kwargs.get("decoder_dim", defaults.decoder_dim),
            decoder_rates=kwargs.get("decoder_rates", defaults.decoder_rates),
            n_codebooks=kwargs.get("n_codebooks", defaults.n_codebooks),
            codebook_size=kwargs.get("codebook_size", defaults.codebook_size),
            codebook_dim=codebook_dim,
        )
        latent_dim = kwargs.get("latent_dim")
        if latent_dim is not None and latent_dim != config.latent_dim:
            raise ValueError(f"DAC config: latent_dim {latent_dim} is not supported "
                             f"(this layout needs encoder_dim·2^len(rates) = {config.latent_dim})")
        return config

    def to_transformers_dict(self) -> dict[str, Any]:
        """The fields transformers writes into ``config.json`` (without dtype and version)."""
        if self.decoder_rates != self.encoder_rates[::-1]:
            raise ValueError("transformers' DacConfig can only express decoder_rates that mirror "
                             f"encoder_rates; got {list(self.decoder_rates)} vs {list(self.encoder_rates)}")
        return {
            "architectures": ["DacModel"],
            **_TRANSFORMERS_TRAINING_DEFAULTS,
            "codebook_dim": self.codebook_dim,
            "codebook_size": self.codebook_size,
            "decoder_hidden_size": self.decoder_dim,
            "downsampling_ratios": list(self.encoder_rates),
            "encoder_hidden_size": self.encoder_dim,
            "hidden_size": self.latent_dim,
            "hop_length": self.hop_length,
            "model_type": "dac",
            "n_codebooks": self.n_codebooks,
            "sampling_rate": self.sample_rate,
            "upsampling_ratios": list(self.decoder_rates),
        }

    def to_original_kwargs(self) -> dict[str, Any]:
        """The ``metadata["kwargs"]`` the original DAC stores in ``weights.pth``."""
        return {
            "encoder_dim": self.encoder_dim,
            "encoder_rates": list(self.encoder_rates),
            "latent_dim": self.latent_dim,
            "decoder_dim": self.decoder_dim,
            "decoder_rates": list(self.decoder_rates),
            "n_codebooks": self.n_codebooks,
            "codebook_size": self.codebook_size,
            "codebook_dim": self.codebook_dim,
            "quantizer_dropout": 0.0,
            "sample_rate": self.sample_rate,
        }


def _check_values(values: Mapping[str, Any], label: Mapping[str, str]) -> None:
    """Check sizes and rate lists against the bounds, before anything is built from them.

    ``label`` maps a field to the name an error should use (its key in ``config.json``).
    Raises ValueError.
    """
    for name, (low, high) in DAC_BOUNDS.items():
        value = values[name]
        if not is_whole_number(value) or not low <= value <= high:
            raise ValueError(f"DAC config: {label.get(name, name)} must be a whole number from {low} to "
                             f"{high}, got {show_value(value)}")
    for name in ("encoder_rates", "decoder_rates"):
        rates = values.get(name)
        if name in values and (not isinstance(rates, (list, tuple)) or not 0 < len(rates) <= MAX_RATES
                               or not all(is_whole_number(r) and MIN_RATE <= r <= MAX_RATE for r in rates)):
            raise ValueError(f"DAC config: {label.get(name, name)} must be a list of 1 to {MAX_RATES} "
                             f"whole numbers from {MIN_RATE} to {MAX_RATE}, got {show_value(rates)}")
    latent_dim = values["encoder_dim"] * 2 ** len(values["encoder_rates"])
    if latent_dim > MAX_LATENT_DIM:
        raise ValueError(f"DAC config: {label.get('encoder_dim', 'encoder_dim')} · 2^len("
                         f"{label.get('encoder_rates', 'encoder_rates')}) = {latent_dim} exceeds {MAX_LATENT_DIM}")


# ------------------------------------------------------------------------------------------
# Building blocks


class Snake(nn.Module):
    """``x + sin²(αx)/(α + 1e-9)`` with one α per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Snake of ``x``, written into ``out`` if given (a view of x's shape, e.g. part of a buffer)."""
        # Same operations as the original TorchScript function (bit-exact: IEEE multiplication and
        # addition commute), done in place on one temporary: the full-rate layers are memory-bound.
        y = torch.mul(x, self.alpha) if out is None else torch.mul(x, self.alpha, out=out)
        y.sin_().square_().mul_((self.alpha + 1e-9).reciprocal())
        return y.add_(x)


class ResidualUnit(nn.Module):
    """``x + conv1x1(snake(conv7_dilated(snake(x))))``; the length never changes."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.snake1 = Snake(channels)
        self.conv1 = nn.Conv1d(channels, channels, kernel_size=7, dilation=dilation, padding=3 * dilation)
        self.snake2 = Snake(channels)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.snake2(self.conv1(self.snake1(x))))


def _residual_stack(module: nn.Module, channels: int) -> None:
    module.res_unit1 = ResidualUnit(channels, 1)
    module.res_unit2 = ResidualUnit(channels, 3)
    module.res_unit3 = ResidualUnit(channels, 9)


class EncoderBlock(nn.Module):
    """Three residual units at ``in_ch``, then a strided conv to ``out_ch``."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        _residual_stack(self, in_ch)
        self.snake1 = Snake(in_ch)
        self.conv1 = nn.Conv1d(in_ch, out_ch, kernel_size=2 * stride, stride=stride,
                               padding=math.ceil(stride / 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.res_unit3(self.res_unit2(self.res_unit1(x)))
        return self.conv1(self.snake1(x))


class DecoderBlock(nn.Module):
    """A transposed conv upsampling by ``stride``, then three residual units."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.snake1 = Snake(in_ch)
        # output_padding as in the original DAC: it keeps odd strides at exactly ×stride
        # (transformers omits it; all 44.1 kHz strides are even, where it is 0).
        self.conv_t1 = nn.ConvTranspose1d(in_ch, out_ch, kernel_size=2 * stride, stride=stride,
                                          padding=math.ceil(stride / 2), output_padding=stride % 2)
        _residual_stack(self, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_t1(self.snake1(x))
        return self.res_unit3(self.res_unit2(self.res_unit1(x)))


class Encoder(nn.Module):
    """Audio ``[B, 1, T]`` → latent ``[B, latent_dim, T / hop]``."""

    def __init__(self, config: DacConfig) -> None:
        super().__init__()
        dim = config.encoder_dim
        self.conv1 = nn.Conv1d(1, dim, kernel_size=7, padding=3)
        blocks = []
        for stride in config.encoder_rates:
            blocks.append(EncoderBlock(dim, 2 * dim, stride))
            dim *= 2
        self.block = nn.ModuleList(blocks)
        self.snake1 = Snake(dim)
        self.conv2 = nn.Conv1d(dim, config.latent_dim, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for block in self.block:
            x = block(x)
        return self.conv2(self.snake1(x))


class Decoder(nn.Module):
    """Latent ``[B, latent_dim, F]`` → audio ``[B, 1, F · hop]`` in [-1, 1]."""

    def __init__(self, config: DacConfig) -> None:
        super().__init__()
        dim = config.decoder_dim
        self.conv1 = nn.Conv1d(config.latent_dim, dim, kernel_size=7, padding=3)
        blocks = []
        for stride in config.decoder_rates:
            blocks.append(DecoderBlock(dim, dim // 2, stride))
            dim //= 2
        self.block = nn.ModuleList(blocks)
        self.snake1 = Snake(dim)
        self.conv2 = nn.Conv1d(dim, 1, kernel_size=7, padding=3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.conv1(z)
        for block in self.block:
            x = block(x)
        return torch.tanh(self.conv2(self.snake1(x)))


class VectorQuantizer(nn.Module):
    """One codebook: project down, nearest neighbour by cosine similarity, project up."""

    def __init__(self, config: DacConfig) -> None:
        super().__init__()
        self.in_proj = nn.Conv1d(config.latent_dim, config.codebook_dim, kernel_size=1)
        self.out_proj = nn.Conv1d(config.codebook_dim, config.latent_dim, kernel_size=1)
        self.codebook = nn.Embedding(config.codebook_size, config.codebook_dim)

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """Codebook indices ``[B, T]`` for projected latents ``[B, codebook_dim, T]``."""
        batch = z_e.shape[0]
        flat = F.normalize(z_e.permute(0, 2, 1).reshape(-1, z_e.shape[1]))
        book = F.normalize(self.codebook.weight)
        # The original's squared-distance expression, kept verbatim in order so ties and
        # rounding resolve the same way. (transformers flips the sign of the last term; with
        # unit rows that is constant up to an ulp.)
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ book.t() + book.pow(2).sum(1, keepdim=True).t()
        return (-dist).max(1)[1].reshape(batch, -1)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Raw (unnormalised) codebook rows ``[B, codebook_dim, T]`` for indices ``[B, T]``."""
        return F.embedding(codes, self.codebook.weight).transpose(1, 2)


class ResidualQuantizer(nn.Module):
    """Residual VQ: each codebook quantizes what the previous ones left over."""

    def __init__(self, config: DacConfig) -> None:
        super().__init__()
        self.quantizers = nn.ModuleList(VectorQuantizer(config) for _ in range(config.n_codebooks))

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        residual = z
        codes = []
        for quantizer in self.quantizers:
            z_e = quantizer.in_proj(residual)
            idx = quantizer.nearest(z_e)
            z_q = quantizer.embed(idx)
            # Straight-through form of the original: equal to z_q up to rounding, which the
            # following codebooks see, so keep it for identical codes.
            out = quantizer.out_proj(z_e + (z_q - z_e))
            residual = residual - out
            codes.append(idx)
        return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        z = 0.0
        for q in range(codes.shape[1]):
            quantizer = self.quantizers[q]
            z = z + quantizer.out_proj(quantizer.embed(codes[:, q]))
        return z


# ------------------------------------------------------------------------------------------
# Codec


class DacCodec(nn.Module):
    """The DAC codec: audio ↔ residual-VQ codes. Inference only."""

    def __init__(self, config: DacConfig | None = None) -> None:
        super().__init__()
        self.config = config or DacConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        self.quantizer = ResidualQuantizer(self.config)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.decoder.conv1.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.conv1.weight.dtype

    @torch.inference_mode()
    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, 1, T]`` → codes ``[B, n_codebooks, ceil(T / hop)]`` (int64).

        The audio is right-padded with zeros to a multiple of ``hop_length``.
        """
        if audio.dim() != 3 or audio.shape[1] != 1:
            raise ValueError(f"encode expects audio of shape [batch, 1, samples], got {list(audio.shape)}")
        hop = self.config.hop_length
        audio = F.pad(audio, (0, -audio.shape[-1] % hop))
        z = self.encoder(audio.to(device=self.device, dtype=self.dtype))
        return self.quantizer.encode(z)

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, n_q, F]`` (``n_q`` ≤ n_codebooks) → audio ``[B, 1, F · hop]``."""
        if codes.dim() != 3 or not 0 < codes.shape[1] <= self.config.n_codebooks:
            raise ValueError(f"decode expects codes of shape [batch, n_q ≤ {self.config.n_codebooks}, "
                             f"frames], got {list(codes.shape)}")
        if codes.is_floating_point() or codes.is_complex():
            raise ValueError(f"decode expects integer codes, got {codes.dtype}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.config.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.config.codebook_size}); got values in "
                             f"[{int(codes.min())}, {int(codes.max())}]")
        z = self.quantizer.decode(codes.to(device=self.device, dtype=torch.long))
        return self.decoder(z)

    def encode_numpy(self, mono: np.ndarray) -> np.ndarray:
        """Mono float audio ``[T]`` at ``sample_rate`` → codes ``[frames, n_codebooks]`` (int64)."""
        mono = np.asarray(mono)
        if mono.ndim != 1:
            raise ValueError(f"encode_numpy expects mono audio [samples], got shape {mono.shape}")
        audio = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32)).view(1, 1, -1)
        return self.encode(audio)[0].T.cpu().numpy()

    def decode_numpy(self, codes: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """Codes ``[frames, n_q]`` → float32 audio ``[frames · hop]``."""
        array = np.asarray(codes)
        if array.ndim != 2:
            raise ValueError(f"decode_numpy expects codes [frames, n_q], got shape {array.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(array.T, dtype=np.int64)).unsqueeze(0)
        return self.decode(tensor)[0, 0].float().cpu().numpy()
