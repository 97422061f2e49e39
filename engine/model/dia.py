"""The Dia encoder-decoder transformer (inference only).

Weights are held in an internal layout tuned for decoding (q/k/v fused into one projection,
gate/up fused, the 9 channel embeddings stacked); ``engine.model.checkpoint`` maps the official
nari and transformers layouts onto it. One render keeps the conditional and the unconditional
(classifier-free guidance) rows together as a batch of two.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine.model.config import DiaConfig
from engine.model.layers import Linear, RMSNorm, apply_rope, attention, rope_tables
from engine.model.quant_cache import QuantCache


class EncoderLayer(nn.Module):
    def __init__(self, cfg: DiaConfig, device=None, dtype=None) -> None:
        super().__init__()
        e, h, kv, d = cfg.enc_hidden, cfg.enc_heads, cfg.enc_kv_heads, cfg.enc_head_dim
        self.heads, self.kv_heads, self.head_dim = h, kv, d
        self.pre_sa_norm = RMSNorm(e, cfg.norm_eps, device)
        self.qkv = Linear(e, (h + 2 * kv) * d, device, dtype)
        self.o = Linear(h * d, e, device, dtype)
        self.post_sa_norm = RMSNorm(e, cfg.norm_eps, device)
        self.gate_up = Linear(e, 2 * cfg.enc_ffn, device, dtype)
        self.down = Linear(cfg.enc_ffn, e, device, dtype)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        r, s, _ = x.shape
        h, kv, d = self.heads, self.kv_heads, self.head_dim
        qkv = self.qkv(self.pre_sa_norm(x)).to(cos.dtype)
        q, k, v = qkv.split((h * d, kv * d, kv * d), dim=-1)
        q = apply_rope(q.view(r, s, h, d).transpose(1, 2), cos, sin)
        k = apply_rope(k.view(r, s, kv, d).transpose(1, 2), cos, sin)
        v = v.view(r, s, kv, d).transpose(1, 2)
        a = attention(q, k, v, mask).transpose(1, 2).reshape(r, s, h * d)
        x = x + self.o(a).float()
        return x + _gated_mlp(self.gate_up, self.down, self.post_sa_norm(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: DiaConfig, device=None, dtype=None) -> None:
        super().__init__()
        dm, h, kv, d = cfg.dec_hidden, cfg.dec_heads, cfg.dec_kv_heads, cfg.dec_head_dim
        ch, ckv, cd = cfg.cross_heads, cfg.cross_kv_heads, cfg.cross_head_dim
        self.heads, self.kv_heads, self.head_dim = h, kv, d
        self.cross_heads, self.cross_kv_heads, self.cross_head_dim = ch, ckv, cd
        self.pre_sa_norm = RMSNorm(dm, cfg.norm_eps, device)
        self.qkv = Linear(dm, (h + 2 * kv) * d, device, dtype)
        self.o = Linear(h * d, dm, device, dtype)
        self.pre_ca_norm = RMSNorm(dm, cfg.norm_eps, device)
        self.cross_q = Linear(dm, ch * cd, device, dtype)
        self.cross_kv = Linear(cfg.enc_hidden, 2 * ckv * cd, device, dtype)
        self.cross_o = Linear(ch * cd, dm, device, dtype)
        self.pre_mlp_norm = RMSNorm(dm, cfg.norm_eps, device)
        self.gate_up = Linear(dm, 2 * cfg.dec_ffn, device, dtype)
        self.down = Linear(cfg.dec_ffn, dm, device, dtype)


def _gated_mlp(gate_up: nn.Module, down: nn.Module, x: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up(x).chunk(2, dim=-1)
    return down(F.silu(gate) * up).float()


@dataclass
class DecoderState:
    """Per-render caches: self-attention K/V (static, written in place) and cross-attention K/V."""

    self_k: list[torch.Tensor]
    self_v: list[torch.Tensor]
    cross_k: list[torch.Tensor]
    cross_v: list[torch.Tensor]
    cross_mask: torch.Tensor | None
    capacity: int
    length: int = 0


class DiaModel(nn.Module):
    """Dia: a byte-level text encoder and a 9-channel audio-code decoder."""

    def __init__(self, cfg: DiaConfig, device=None, dtype=torch.float32) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder_embedding = nn.Parameter(
            torch.empty(cfg.enc_vocab_size, cfg.enc_hidden, device=device, dtype=dtype), requires_grad=False)
        self.encoder_layers = nn.ModuleList(EncoderLayer(cfg, device, dtype) for _ in range(cfg.enc_layers))
        self.encoder_norm = RMSNorm(cfg.enc_hidden, cfg.norm_eps, device)
        # the 9 channel tables stacked: row c * vocab + token
        self.decoder_embedding = nn.Parameter(
            torch.empty(cfg.num_channels * cfg.dec_vocab_size, cfg.dec_hidden, device=device, dtype=dtype),
            requires_grad=False)
        self.decoder_layers = nn.ModuleList(DecoderLayer(cfg, device, dtype) for _ in range(cfg.dec_layers))
        self.decoder_norm = RMSNorm(cfg.dec_hidden, cfg.norm_eps, device)
        self.head = Linear(cfg.dec_hidden, cfg.num_channels * cfg.dec_vocab_size, device, dtype)
        self.register_buffer(
            "channel_offsets", torch.arange(cfg.num_channels, device=device) * cfg.dec_vocab_size, persistent=False)

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return self.decoder_embedding.device

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder_embedding.dtype

    @property
    def attn_dtype(self) -> torch.dtype:
        """Attention and its caches: float32 on the CPU, whose reduced-precision attention kernels are
        3-5x slower for decoding shapes; the model dtype on GPUs (half the cache bandwidth)."""
        return torch.float32 if self.device.type == "cpu" else self.dtype

    @property
    def native_kernels(self) -> bool:
        """Whether decoding steps run on ``engine.native`` (bf16 models on a CPU where it is built)."""
        from engine import native

        return self.device.type == "cpu" and self.dtype == torch.bfloat16 and native.available()

    @property
    def cache_dtype(self) -> torch.dtype:
        """Key/value caches: bfloat16 when the native single-query attention reads them (half the bytes
        per step, as transformers keeps them in bf16), else the attention dtype."""
        return torch.bfloat16 if self.native_kernels else self.attn_dtype

    # ------------------------------------------------------------------ encoder
    @torch.inference_mode()
    def encode(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder states (R, S, E) in float32 for token ids (R, S); ``mask`` (R, S) marks real tokens."""
        cfg = self.cfg
        x = F.embedding(ids, self.encoder_embedding).float()
        positions = torch.arange(ids.shape[1], device=ids.device)
        cos, sin = (t.to(self.attn_dtype) for t in rope_tables(positions, cfg.enc_head_dim, cfg.rope_theta))
        attn_mask = None if mask is None or bool(mask.all()) else mask[:, None, None, :]
        for layer in self.encoder_layers:
            x = layer(x, cos, sin, attn_mask)
        return self.encoder_norm(x)

    # ------------------------------------------------------------------ decoder
    @torch.inference_mode()
    def start_decoder(self, enc: torch.Tensor, enc_mask: torch.Tensor | None, capacity: int) -> DecoderState:
        """Compute cross-attention K/V once and allocate the self-attention cache for ``capacity`` positions."""
        cfg = self.cfg
        r, s, _ = enc.shape
        cache_dtype = self.cache_dtype
        cross_k, cross_v = [], []
        for layer in self.decoder_layers:
            kv = layer.cross_kv(enc).to(self.attn_dtype)
            k, v = kv.split(layer.cross_kv_heads * layer.cross_head_dim, dim=-1)
            k = k.view(r, s, layer.cross_kv_heads, layer.cross_head_dim).transpose(1, 2)
            v = v.view(r, s, layer.cross_kv_heads, layer.cross_head_dim).transpose(1, 2)
            if cfg.cross_attn_rope:
                cos, sin = rope_tables(torch.arange(s, device=enc.device), layer.cross_head_dim, cfg.rope_theta)
                k = apply_rope(k, cos.to(k.dtype), sin.to(k.dtype))
            cross_k.append(k.to(cache_dtype).contiguous())
            cross_v.append(v.to(cache_dtype).contiguous())
        cache_shape = (r, cfg.dec_kv_heads, capacity, cfg.dec_head_dim)
        self_k = [torch.zeros(cache_shape, device=enc.device, dtype=cache_dtype) for _ in self.decoder_layers]
        self_v = [torch.zeros(cache_shape, device=enc.device, dtype=cache_dtype) for _ in self.decoder_layers]
        cross_mask = None if enc_mask is None or bool(enc_mask.all()) else enc_mask[:, None, None, :]
        return DecoderState(self_k, self_v, cross_k, cross_v, cross_mask, capacity)

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, state: DecoderState, last_only: bool = True) -> torch.Tensor:
        """Run the decoder on ``tokens`` (R, T, C) at the next T positions; returns float32 logits.

        Shape (R, C, V) for the last position when ``last_only``, else (R, T, C, V).
        """
        cfg = self.cfg
        r, t, _ = tokens.shape
        start = state.length
        if start + t > state.capacity:
            raise ValueError(f"decoder cache holds {state.capacity} positions, asked for {start + t}")
        positions = torch.arange(start, start + t, device=tokens.device)
        cos, sin = (t.to(self.attn_dtype) for t in rope_tables(positions, cfg.dec_head_dim, cfg.rope_theta))
        x = F.embedding(tokens + self.channel_offsets, self.decoder_embedding).float().sum(dim=2)
        causal = None
        if t > 1:
            keys = torch.arange(start + t, device=tokens.device)
            causal = (keys[None, :] <= positions[:, None])[None, None]
        for i, layer in enumerate(self.decoder_layers):
            x = self._decoder_layer(layer, x, i, state, start, cos, sin, causal)
        state.length = start + t
        if last_only:
            x = x[:, -1:]
        logits = self.head(self.decoder_norm(x)).float().view(r, x.shape[1], cfg.num_channels, cfg.dec_vocab_size)
        return logits[:, 0] if last_only else logits

    @torch.inference_mode()
    def decode_static(self, tokens: torch.Tensor, state: DecoderState, position: torch.Tensor, span: int) -> torch.Tensor:
        """One decoding step, graph-ready: ``tokens`` (R, 1, C) at the device-side ``position`` ((1,) long).

        Every shape is fixed by ``span`` (the cache slots attended, masked beyond ``position``) and
        nothing reads a value back to the host, so a CUDA graph can capture it once and replay it
        every step. Leaves ``state.length`` alone. Returns float32 logits (R, C, V).
        """
        cfg = self.cfg
        r = tokens.shape[0]
        cos, sin = (t.to(self.attn_dtype) for t in rope_tables(position, cfg.dec_head_dim, cfg.rope_theta))
        x = F.embedding(tokens + self.channel_offsets, self.decoder_embedding).float().sum(dim=2)
        visible = (torch.arange(span, device=tokens.device) <= position).expand(r, 1, 1, span)
        for i, layer in enumerate(self.decoder_layers):
            x = self._decoder_layer(layer, x, i, state, position, cos, sin, visible, span)
        return self.head(self.decoder_norm(x)).float().view(r, cfg.num_channels, cfg.dec_vocab_size)

    def _decoder_layer(self, layer: DecoderLayer, x: torch.Tensor, i: int, state: DecoderState,
                       start: int | torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, causal: torch.Tensor | None,
                       span: int | None = None) -> torch.Tensor:
        """``start``: the first position (an int), or a (1,) device tensor for a graph-ready step that
        attends the first ``span`` cache slots under the ``causal`` mask."""
        r, t, _ = x.shape
        h, kv, d = layer.heads, layer.kv_heads, layer.head_dim
        # self-attention over the cache
        qkv = layer.qkv(layer.pre_sa_norm(x)).to(cos.dtype)
        q, k, v = qkv.split((h * d, kv * d, kv * d), dim=-1)
        q = apply_rope(q.view(r, t, h, d).transpose(1, 2), cos, sin)
        k = apply_rope(k.view(r, t, kv, d).transpose(1, 2), cos, sin)
        v = v.view(r, t, kv, d).transpose(1, 2)
        if isinstance(start, torch.Tensor):
            end = span
            state.self_k[i].index_copy_(2, start, k.to(state.self_k[i].dtype))
            state.self_v[i].index_copy_(2, start, v.to(state.self_v[i].dtype))
        else:
            end = start + t
            state.self_k[i][:, :, start:end] = k
            state.self_v[i][:, :, start:end] = v
        a = attention(q, state.self_k[i][:, :, :end], state.self_v[i][:, :, :end], causal)
        x = x + layer.o(a.transpose(1, 2).reshape(r, t, h * d)).float()
        # cross-attention over the encoder states
        ch, cd = layer.cross_heads, layer.cross_head_dim
        q = layer.cross_q(layer.pre_ca_norm(x)).to(cos.dtype).view(r, t, ch, cd).transpose(1, 2)
        if self.cfg.cross_attn_rope:
            q = apply_rope(q, cos, sin)
        a = attention(q, state.cross_k[i], state.cross_v[i], state.cross_mask)
        x = x + layer.cross_o(a.transpose(1, 2).reshape(r, t, ch * cd)).float()
        return x + _gated_mlp(layer.gate_up, layer.down, layer.pre_mlp_norm(x))

    # ------------------------------------------------------------------ speed modes
    def tune_for_device(self) -> None:
        """Per-machine kernel choices; call after loading (``load_dia`` does)."""
        from engine.model.layers import slow_reduced_precision_matmul

        upcast = 16 if self.dtype != torch.float32 and slow_reduced_precision_matmul(self.device) else None
        native_rows = 4 if self.native_kernels else 0
        for module in self.modules():
            if isinstance(module, Linear):
                module.upcast_rows = upcast
                module.native_rows = native_rows
            elif isinstance(module, RMSNorm):
                module.native_rows = native_rows

    def projections(self) -> list[tuple[nn.Module, str]]:
        """(owner, attribute) of every projection streamed per decoder step."""
        found: list[tuple[nn.Module, str]] = [(self, "head")]
        for layer in self.decoder_layers:
            found += [(layer, name) for name in ("qkv", "o", "cross_q", "cross_o", "gate_up", "down")]
        return found

    def use_kernel(self, kind: str) -> None:
        """Swap the per-step projections to another CPU kernel (see ``engine.model.kernels``)."""
        from engine.model.kernels import convert_linear

        for owner, name in self.projections():
            setattr(owner, name, convert_linear(getattr(owner, name), kind))

    def quantize(self, mode: str, checkpoint: str | Path | None = None, cache: QuantCache | None = None) -> str:
        """Quantised decoder projections (fewer bytes streamed per step); returns the kernel used.

        With ``checkpoint`` (the folder or file the model was loaded from), the result is cached on
        disk (``cache``, default ``QuantCache.default()``; see ``engine.model.quant_cache``) and a
        later load of the same checkpoint reads it instead of quantising; ``quantized_from_cache``
        says which happened. ``load_dia(path, quantize=mode)`` makes the same model while loading,
        without ever holding the full-precision decoder: prefer it for a model loaded to be quantised.

        ``int4``: group-wise int4 weights (a quarter of bf16's bytes, see ``layers.Int4Linear``): the
        fastest mode on CPUs with the native kernels, the least exact; elsewhere it runs on a
        dequantising fallback (correct, slower than bf16).
        ``int8``: weight-only (activations keep bf16/fp32 precision), the faithful mode; on x86 CPUs
        with ``engine.native`` built it runs at memory speed, activations as int16 codes per group of 128.
        ``int8-dynamic``: FBGEMM/QNNPACK's int8 GEMV, which also quantises each step's activations
        per call: a little less exact; about as fast as native weight-only on x86, faster than
        ``aten._weight_int8pack_mm`` where the native kernels are not built; falls back to
        weight-only where those kernels are missing (GPUs, builds without them).
        """
        from engine.model.kernels import CACHEABLE_KINDS, quantized_kind, quantized_state, restore_quantized

        kind = quantized_kind(mode, self.device)
        self.quantized_from_cache = False
        key = None
        if checkpoint is not None and kind in CACHEABLE_KINDS:
            cache = cache or QuantCache.default()
            key = cache.key_for(checkpoint, mode, kind, self.dtype) if cache else None
        if key is not None and restore_quantized(self.projections(), kind, cache.load(key)):
            self.quantized_from_cache = True
            return kind
        self.use_kernel(kind)
        if key is not None:
            cache.save(key, quantized_state(self.projections()))
        return kind
