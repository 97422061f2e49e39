"""Dia model configuration: one dataclass, read from either published ``config.json`` schema.

* the transformers-style schema of ``nari-labs/Dia-1.6B-0626`` (``encoder_config``/``decoder_config``);
* the legacy nari schema of ``nari-labs/Dia-1.6B`` (``version``/``model``/``data``), which also
  implies the v0.1 graph (RoPE inside cross-attention).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.errors import CheckpointError

SAMPLE_RATE = 44100
HOP_LENGTH = 512
FRAME_RATE = SAMPLE_RATE / HOP_LENGTH  # 86.13 frames per second of audio


@dataclass(frozen=True)
class DiaConfig:
    """Hyper-parameters of the Dia encoder-decoder (defaults: Dia-1.6B)."""

    # encoder (byte-level text)
    enc_vocab_size: int = 256
    enc_hidden: int = 1024
    enc_layers: int = 12
    enc_heads: int = 16
    enc_kv_heads: int = 16
    enc_head_dim: int = 128
    enc_ffn: int = 4096
    enc_max_positions: int = 1024
    # decoder (audio codes)
    dec_vocab_size: int = 1028
    num_channels: int = 9
    dec_hidden: int = 2048
    dec_layers: int = 18
    dec_heads: int = 16
    dec_kv_heads: int = 4
    dec_head_dim: int = 128
    cross_heads: int = 16
    cross_kv_heads: int = 16
    cross_head_dim: int = 128
    dec_ffn: int = 8192
    dec_max_positions: int = 3072
    # shared
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    delay_pattern: tuple[int, ...] = (0, 8, 9, 10, 11, 12, 13, 14, 15)
    eos_token_id: int = 1024
    pad_token_id: int = 1025
    bos_token_id: int = 1026
    # v0.1 graph: the query/key of cross-attention are rotated too (decoder/encoder positions)
    cross_attn_rope: bool = False
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.delay_pattern) != self.num_channels:
            raise CheckpointError(
                f"config: delay_pattern has {len(self.delay_pattern)} entries but num_channels is {self.num_channels}"
            )
        if self.dec_heads % self.dec_kv_heads or self.cross_heads % self.cross_kv_heads:
            raise CheckpointError("config: attention heads must be a multiple of key/value heads")

    @property
    def max_delay(self) -> int:
        return max(self.delay_pattern)

    # ------------------------------------------------------------------ readers
    @classmethod
    def from_dict(cls, data: dict) -> "DiaConfig":
        """Read either published schema (detected from its keys)."""
        if "encoder_config" in data and "decoder_config" in data:
            return cls._from_transformers(data)
        if "model" in data and "data" in data:
            return cls._from_legacy(data)
        raise CheckpointError("config.json is neither a Dia (transformers) nor a legacy nari Dia configuration")

    @classmethod
    def from_file(cls, path: str | Path) -> "DiaConfig":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read the model configuration {path}: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def _from_transformers(cls, data: dict) -> "DiaConfig":
        enc, dec = data["encoder_config"], data["decoder_config"]

        def theta(cfg: dict) -> float:
            params = cfg.get("rope_parameters") or {}
            return float(params.get("rope_theta", cfg.get("rope_theta", 10000.0)))

        def ids(name: str, default: int) -> int:
            value = data.get(name)
            return int(value if value is not None else dec.get(name, default))

        try:
            return cls(
                enc_vocab_size=enc.get("vocab_size", 256),
                enc_hidden=enc["hidden_size"],
                enc_layers=enc["num_hidden_layers"],
                enc_heads=enc["num_attention_heads"],
                enc_kv_heads=enc.get("num_key_value_heads") or enc["num_attention_heads"],
                enc_head_dim=enc.get("head_dim", enc["hidden_size"] // enc["num_attention_heads"]),
                enc_ffn=enc["intermediate_size"],
                enc_max_positions=enc.get("max_position_embeddings", 1024),
                dec_vocab_size=dec.get("vocab_size", 1028),
                num_channels=dec.get("num_channels", 9),
                dec_hidden=dec["hidden_size"],
                dec_layers=dec["num_hidden_layers"],
                dec_heads=dec["num_attention_heads"],
                dec_kv_heads=dec.get("num_key_value_heads") or dec["num_attention_heads"],
                dec_head_dim=dec.get("head_dim", dec["hidden_size"] // dec["num_attention_heads"]),
                cross_heads=dec.get("cross_num_attention_heads", 16),
                cross_kv_heads=dec.get("cross_num_key_value_heads", 16),
                cross_head_dim=dec.get("cross_head_dim", 128),
                dec_ffn=dec["intermediate_size"],
                dec_max_positions=dec.get("max_position_embeddings", 3072),
                norm_eps=float(data.get("norm_eps", dec.get("norm_eps", 1e-5))),
                rope_theta=theta(dec),
                delay_pattern=tuple(data.get("delay_pattern", (0, 8, 9, 10, 11, 12, 13, 14, 15))),
                eos_token_id=ids("eos_token_id", 1024),
                pad_token_id=ids("pad_token_id", 1025),
                bos_token_id=ids("bos_token_id", 1026),
                cross_attn_rope=False,
            )
        except KeyError as exc:
            raise CheckpointError(f"config.json lacks the field {exc}") from exc

    @classmethod
    def _from_legacy(cls, data: dict) -> "DiaConfig":
        model, dat = data["model"], data["data"]
        enc, dec = model["encoder"], model["decoder"]
        try:
            return cls(
                enc_vocab_size=model.get("src_vocab_size", 256),
                enc_hidden=enc["n_embd"],
                enc_layers=enc["n_layer"],
                enc_heads=enc["n_head"],
                enc_kv_heads=enc["n_head"],
                enc_head_dim=enc["head_dim"],
                enc_ffn=enc["n_hidden"],
                enc_max_positions=dat.get("text_length", 1024),
                dec_vocab_size=model.get("tgt_vocab_size", 1028),
                num_channels=dat.get("channels", 9),
                dec_hidden=dec["n_embd"],
                dec_layers=dec["n_layer"],
                dec_heads=dec["gqa_query_heads"],
                dec_kv_heads=dec["kv_heads"],
                dec_head_dim=dec["gqa_head_dim"],
                cross_heads=dec["cross_query_heads"],
                cross_kv_heads=dec["cross_query_heads"],
                cross_head_dim=dec["cross_head_dim"],
                dec_ffn=dec["n_hidden"],
                dec_max_positions=dat.get("audio_length", 3072),
                norm_eps=float(model.get("normalization_layer_epsilon", 1e-5)),
                rope_theta=float(model.get("rope_max_timescale", 10000)),
                delay_pattern=tuple(dat.get("delay_pattern", (0, 8, 9, 10, 11, 12, 13, 14, 15))),
                eos_token_id=dat.get("audio_eos_value", 1024),
                pad_token_id=dat.get("audio_pad_value", 1025),
                bos_token_id=dat.get("audio_bos_value", 1026),
                cross_attn_rope=True,
            )
        except KeyError as exc:
            raise CheckpointError(f"legacy config.json lacks the field {exc}") from exc

    # ------------------------------------------------------------------ writers
    def to_transformers_dict(self) -> dict:
        """The 0626 ``config.json`` layout (what ``DiaConfig.from_pretrained`` in transformers reads)."""
        return {
            "architectures": ["DiaForConditionalGeneration"],
            "model_type": "dia",
            "is_encoder_decoder": True,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "delay_pattern": list(self.delay_pattern),
            "norm_eps": self.norm_eps,
            "initializer_range": 0.02,
            "torch_dtype": "float32",
            "encoder_config": {
                "model_type": "dia_encoder",
                "vocab_size": self.enc_vocab_size,
                "hidden_size": self.enc_hidden,
                "num_hidden_layers": self.enc_layers,
                "num_attention_heads": self.enc_heads,
                "num_key_value_heads": self.enc_kv_heads,
                "head_dim": self.enc_head_dim,
                "intermediate_size": self.enc_ffn,
                "max_position_embeddings": self.enc_max_positions,
                "hidden_act": "silu",
                "norm_eps": self.norm_eps,
                "rope_theta": self.rope_theta,
                "rope_scaling": None,
            },
            "decoder_config": {
                "model_type": "dia_decoder",
                "vocab_size": self.dec_vocab_size,
                "num_channels": self.num_channels,
                "hidden_size": self.dec_hidden,
                "num_hidden_layers": self.dec_layers,
                "num_attention_heads": self.dec_heads,
                "num_key_value_heads": self.dec_kv_heads,
                "head_dim": self.dec_head_dim,
                "cross_num_attention_heads": self.cross_heads,
                "cross_num_key_value_heads": self.cross_kv_heads,
                "cross_head_dim": self.cross_head_dim,
                "cross_hidden_size": self.enc_hidden,
                "intermediate_size": self.dec_ffn,
                "max_position_embeddings": self.dec_max_positions,
                "hidden_act": "silu",
                "norm_eps": self.norm_eps,
                "rope_theta": self.rope_theta,
                "rope_scaling": None,
                "use_cache": True,
            },
        }

    def to_legacy_dict(self) -> dict:
        """The legacy nari ``config.json`` (``nari-labs/Dia-1.6B``)."""
        return {
            "version": "0.1",
            "model": {
                "encoder": {"n_layer": self.enc_layers, "n_embd": self.enc_hidden, "n_hidden": self.enc_ffn,
                            "n_head": self.enc_heads, "head_dim": self.enc_head_dim},
                "decoder": {"n_layer": self.dec_layers, "n_embd": self.dec_hidden, "n_hidden": self.dec_ffn,
                            "gqa_query_heads": self.dec_heads, "kv_heads": self.dec_kv_heads,
                            "gqa_head_dim": self.dec_head_dim, "cross_query_heads": self.cross_heads,
                            "cross_head_dim": self.cross_head_dim},
                "src_vocab_size": self.enc_vocab_size,
                "tgt_vocab_size": self.dec_vocab_size,
                "dropout": 0.0,
                "normalization_layer_epsilon": self.norm_eps,
                "rope_min_timescale": 1,
                "rope_max_timescale": int(self.rope_theta),
            },
            "training": {"dtype": "bfloat16"},
            "data": {
                "text_length": self.enc_max_positions, "audio_length": self.dec_max_positions,
                "channels": self.num_channels, "text_pad_value": 0,
                "audio_eos_value": self.eos_token_id, "audio_pad_value": self.pad_token_id,
                "audio_bos_value": self.bos_token_id, "delay_pattern": list(self.delay_pattern),
            },
        }

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("extra", None)
        data["delay_pattern"] = list(self.delay_pattern)
        return data
