"""Dia model configuration: one dataclass, read from either published ``config.json`` schema.

* the transformers-style schema of ``nari-labs/Dia-1.6B-0626`` (``encoder_config``/``decoder_config``);
* the legacy nari schema of ``nari-labs/Dia-1.6B`` (``version``/``model``/``data``), which also
  implies the v0.1 graph (RoPE inside cross-attention).

Every value is checked against :data:`INT_BOUNDS`/:data:`FLOAT_BOUNDS` and for consistency before
anything is built from it; a bad one is a :class:`CheckpointError` naming the field as written in
``config.json``. A JSON ``null`` counts as an absent field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.constants import FRAME_RATE, HOP_LENGTH, SAMPLE_RATE, TRAINED_POSITIONS  # noqa: F401  (re-exported)
from engine.errors import CheckpointError
from engine.model.weights_io import read_json

# Sane bounds (inclusive): generous multiples of Dia-1.6B's sizes, yet small enough that no single
# value can make building the model run away. The weights' files bound the total (see checkpoint.py).
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "enc_vocab_size": (256, 1 << 16),  # byte-level text: every byte value needs a row
    "enc_hidden": (1, 1 << 14),
    "enc_layers": (1, 128),
    "enc_heads": (1, 256),
    "enc_kv_heads": (1, 256),
    "enc_head_dim": (2, 1024),
    "enc_ffn": (1, 1 << 16),
    "enc_max_positions": (1, 1 << 16),
    "dec_vocab_size": (4, 1 << 16),  # at least one audio code, EOS, PAD and BOS
    "num_channels": (1, 64),
    "dec_hidden": (1, 1 << 14),
    "dec_layers": (1, 128),
    "dec_heads": (1, 256),
    "dec_kv_heads": (1, 256),
    "dec_head_dim": (2, 1024),
    "cross_heads": (1, 256),
    "cross_kv_heads": (1, 256),
    "cross_head_dim": (2, 1024),
    "dec_ffn": (1, 1 << 16),
    "dec_max_positions": (1, 1 << 16),
    "eos_token_id": (1, (1 << 16) - 1),
    "pad_token_id": (1, (1 << 16) - 1),
    "bos_token_id": (1, (1 << 16) - 1),
}
# (low, high): low is excluded, high included
FLOAT_BOUNDS: dict[str, tuple[float, float]] = {
    "norm_eps": (0.0, 1.0),
    "rope_theta": (0.0, 1e12),
}
# rotate-half RoPE splits every head in two
EVEN_FIELDS = ("enc_head_dim", "dec_head_dim", "cross_head_dim")
# (query heads, key/value heads): grouped-query attention shares each kv head among a whole group
HEAD_GROUPS = (("enc_heads", "enc_kv_heads"), ("dec_heads", "dec_kv_heads"), ("cross_heads", "cross_kv_heads"))

_ABSENT = object()


def show_value(value: Any) -> str:
    """A short repr for error messages (a hostile value may be enormous)."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return "a number too large to print"
    return text if len(text) <= 40 else text[:37] + "..."


def is_whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(value: Any, name: str, label: str) -> int:
    low, high = INT_BOUNDS[name]
    if not is_whole_number(value) or not low <= value <= high:
        raise CheckpointError(f"{label} must be a whole number from {low} to {high}, got {show_value(value)}")
    return value


def _check_float(value: Any, name: str, label: str) -> float:
    low, high = FLOAT_BOUNDS[name]
    # NaN and the infinities fail the comparison; ints compare exactly however large
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high:
        raise CheckpointError(f"{label} must be a number above {low:g} and at most {high:g}, got {show_value(value)}")
    return float(value)


def _check_delays(values: Mapping[str, Any], label: Mapping[str, str]) -> tuple[int, ...]:
    pattern, channels, limit = values["delay_pattern"], values["num_channels"], values["dec_max_positions"]
    name = label.get("delay_pattern", "delay_pattern")
    if not isinstance(pattern, (list, tuple)) or not all(is_whole_number(d) and 0 <= d < limit for d in pattern):
        raise CheckpointError(f"{name} must be a list of whole numbers from 0 to {limit - 1} (the decoder's "
                              f"positions), got {show_value(pattern)}")
    if len(pattern) != channels:
        raise CheckpointError(f"{name} has {len(pattern)} entries but {label.get('num_channels', 'num_channels')} "
                              f"is {channels}: there must be one delay per audio channel")
    return tuple(pattern)


def _check_token_ids(values: Mapping[str, Any], label: Mapping[str, str]) -> None:
    """Codes lie below EOS; PAD and BOS above it, distinct, inside the vocabulary (as sampling assumes)."""
    eos, vocab = values["eos_token_id"], values["dec_vocab_size"]
    for name in ("pad_token_id", "bos_token_id"):
        if not eos < values[name] < vocab:
            raise CheckpointError(
                f"{label.get(name, name)} is {values[name]}: it must lie above "
                f"{label.get('eos_token_id', 'eos_token_id')} "
                f"({eos}) and below {label.get('dec_vocab_size', 'dec_vocab_size')} ({vocab})")
    if values["pad_token_id"] == values["bos_token_id"]:
        raise CheckpointError(f"{label.get('pad_token_id', 'pad_token_id')} and "
                              f"{label.get('bos_token_id', 'bos_token_id')} are both {values['pad_token_id']}")


def check_config_values(values: Mapping[str, Any], label: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Check every field of a DiaConfig's values against the bounds and each other.

    ``label`` maps a field to the name a message should use (its path in ``config.json``). Returns
    the values normalised (floats as float, the delay pattern as a tuple); raises CheckpointError.
    """
    label = label or {}
    out = dict(values)
    for name in INT_BOUNDS:
        _check_int(values[name], name, label.get(name, name))
    for name in FLOAT_BOUNDS:
        out[name] = _check_float(values[name], name, label.get(name, name))
    for name in EVEN_FIELDS:
        if values[name] % 2:
            raise CheckpointError(f"{label.get(name, name)} must be even (rotary position embedding), "
                                  f"got {values[name]}")
    for heads, kv in HEAD_GROUPS:
        if values[heads] % values[kv]:
            raise CheckpointError(f"{label.get(heads, heads)} ({values[heads]}) must be a multiple of "
                                  f"{label.get(kv, kv)} ({values[kv]})")
    out["delay_pattern"] = _check_delays(values, label)
    _check_token_ids(values, label)
    if not isinstance(values["cross_attn_rope"], bool):
        raise CheckpointError(f"cross_attn_rope must be true or false, got {show_value(values['cross_attn_rope'])}")
    return out


class _Fields:
    """Raw values read from one config.json, and where in the file each came from."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.where: dict[str, str] = {}

    def take(self, name: str, section: Mapping[str, Any], path: str, default: Any = _ABSENT) -> Any:
        """Read ``path``'s last key from ``section`` into field ``name``; ``default`` when absent or null."""
        value = section.get(path.rsplit(".", 1)[-1])
        if value is None:
            if default is _ABSENT:
                raise CheckpointError(f"the field {path} is missing")
            value = default
        self.values[name], self.where[name] = value, path
        return value

    def int_(self, name: str) -> int:
        """A field already taken, checked as a bounded integer (before deriving others from it)."""
        return _check_int(self.values[name], name, self.where[name])

    def head_dim(self, name: str, section: Mapping[str, Any], prefix: str, hidden: str, heads: str) -> None:
        """``head_dim``, or hidden size / heads when absent (then the heads must divide the width)."""
        if section.get("head_dim") is not None:
            self.take(name, section, f"{prefix}.head_dim")
            return
        width, count = self.int_(hidden), self.int_(heads)
        if width % count:
            raise CheckpointError(f"{self.where[hidden]} ({width}) must be divisible by {self.where[heads]} ({count}) "
                                  f"when {prefix}.head_dim is not given")
        self.values[name], self.where[name] = width // count, f"{prefix}.head_dim (hidden_size / num_attention_heads)"

    def build(self, **fixed: Any) -> DiaConfig:
        values = {**self.values, **fixed}
        return DiaConfig(**check_config_values(values, self.where))


def _section(data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        what = "is missing" if value is None else f"must be a JSON object, got {show_value(value)}"
        raise CheckpointError(f"{path} {what}")
    return value


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
    dec_max_positions: int = TRAINED_POSITIONS
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
        values = check_config_values({f.name: getattr(self, f.name) for f in fields(self)})
        for name in ("norm_eps", "rope_theta", "delay_pattern"):
            object.__setattr__(self, name, values[name])

    @property
    def max_delay(self) -> int:
        return max(self.delay_pattern)

    # ------------------------------------------------------------------ readers
    @classmethod
    def from_dict(cls, data: Any, *, source: str = "config.json") -> DiaConfig:
        """Read either published schema (detected from its keys).

        A bad value is a CheckpointError naming ``source`` and the field (its path in the JSON).
        """
        try:
            if not isinstance(data, dict):
                raise CheckpointError(f"it must hold a JSON object, got {show_value(data)}")
            if "encoder_config" in data and "decoder_config" in data:
                return cls._from_transformers(data)
            if "model" in data and "data" in data:
                return cls._from_legacy(data)
            raise CheckpointError("it is neither a Dia (transformers) nor a legacy nari Dia configuration")
        except CheckpointError as exc:
            raise CheckpointError(f"{source}: {exc.message}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> DiaConfig:
        """Read ``config.json``; the error names the file and says how to recover."""
        path = Path(path)
        data = read_json(path, "the model configuration")
        try:
            return cls.from_dict(data, source=str(path))
        except CheckpointError as exc:
            raise CheckpointError(f"{exc.message}. Restore this model's own config.json "
                                  "(download the model again)") from None

    @classmethod
    def _from_transformers(cls, data: dict) -> DiaConfig:
        enc = _section(data, "encoder_config", "encoder_config")
        dec = _section(data, "decoder_config", "decoder_config")
        f = _Fields()
        f.take("enc_vocab_size", enc, "encoder_config.vocab_size", 256)
        f.take("enc_hidden", enc, "encoder_config.hidden_size")
        f.take("enc_layers", enc, "encoder_config.num_hidden_layers")
        f.take("enc_heads", enc, "encoder_config.num_attention_heads")
        f.take("enc_kv_heads", enc, "encoder_config.num_key_value_heads", f.values["enc_heads"])
        f.head_dim("enc_head_dim", enc, "encoder_config", "enc_hidden", "enc_heads")
        f.take("enc_ffn", enc, "encoder_config.intermediate_size")
        f.take("enc_max_positions", enc, "encoder_config.max_position_embeddings", 1024)
        f.take("dec_vocab_size", dec, "decoder_config.vocab_size", 1028)
        f.take("num_channels", dec, "decoder_config.num_channels", 9)
        f.take("dec_hidden", dec, "decoder_config.hidden_size")
        f.take("dec_layers", dec, "decoder_config.num_hidden_layers")
        f.take("dec_heads", dec, "decoder_config.num_attention_heads")
        f.take("dec_kv_heads", dec, "decoder_config.num_key_value_heads", f.values["dec_heads"])
        f.head_dim("dec_head_dim", dec, "decoder_config", "dec_hidden", "dec_heads")
        f.take("cross_heads", dec, "decoder_config.cross_num_attention_heads", 16)
        f.take("cross_kv_heads", dec, "decoder_config.cross_num_key_value_heads", 16)
        f.take("cross_head_dim", dec, "decoder_config.cross_head_dim", 128)
        f.take("dec_ffn", dec, "decoder_config.intermediate_size")
        f.take("dec_max_positions", dec, "decoder_config.max_position_embeddings", TRAINED_POSITIONS)
        cross_width = dec.get("cross_hidden_size")
        if cross_width is not None and cross_width != f.int_("enc_hidden"):
            raise CheckpointError(f"decoder_config.cross_hidden_size ({show_value(cross_width)}) must equal "
                                  f"encoder_config.hidden_size ({f.values['enc_hidden']})")
        f.take("norm_eps", data if data.get("norm_eps") is not None else dec,
               "norm_eps" if data.get("norm_eps") is not None else "decoder_config.norm_eps", 1e-5)
        rope = dec.get("rope_parameters")
        if rope is not None and not isinstance(rope, dict):
            raise CheckpointError("decoder_config.rope_parameters must be a JSON object, "
                                  f"got {show_value(rope)}")
        if rope and rope.get("rope_theta") is not None:
            f.take("rope_theta", rope, "decoder_config.rope_parameters.rope_theta")
        else:
            f.take("rope_theta", dec, "decoder_config.rope_theta", 10000.0)
        f.take("delay_pattern", data, "delay_pattern", (0, 8, 9, 10, 11, 12, 13, 14, 15))
        for name, default in (("eos_token_id", 1024), ("pad_token_id", 1025), ("bos_token_id", 1026)):
            top = data.get(name) is not None
            f.take(name, data if top else dec, name if top else f"decoder_config.{name}", default)
        return f.build(cross_attn_rope=False)

    @classmethod
    def _from_legacy(cls, data: dict) -> DiaConfig:
        model, dat = _section(data, "model", "model"), _section(data, "data", "data")
        enc, dec = _section(model, "encoder", "model.encoder"), _section(model, "decoder", "model.decoder")
        f = _Fields()
        f.take("enc_vocab_size", model, "model.src_vocab_size", 256)
        f.take("enc_hidden", enc, "model.encoder.n_embd")
        f.take("enc_layers", enc, "model.encoder.n_layer")
        f.take("enc_heads", enc, "model.encoder.n_head")
        f.values["enc_kv_heads"], f.where["enc_kv_heads"] = f.values["enc_heads"], "model.encoder.n_head"
        f.take("enc_head_dim", enc, "model.encoder.head_dim")
        f.take("enc_ffn", enc, "model.encoder.n_hidden")
        f.take("enc_max_positions", dat, "data.text_length", 1024)
        f.take("dec_vocab_size", model, "model.tgt_vocab_size", 1028)
        f.take("num_channels", dat, "data.channels", 9)
        f.take("dec_hidden", dec, "model.decoder.n_embd")
        f.take("dec_layers", dec, "model.decoder.n_layer")
        f.take("dec_heads", dec, "model.decoder.gqa_query_heads")
        f.take("dec_kv_heads", dec, "model.decoder.kv_heads")
        f.take("dec_head_dim", dec, "model.decoder.gqa_head_dim")
        f.take("cross_heads", dec, "model.decoder.cross_query_heads")
        f.values["cross_kv_heads"] = f.values["cross_heads"]
        f.where["cross_kv_heads"] = "model.decoder.cross_query_heads"
        f.take("cross_head_dim", dec, "model.decoder.cross_head_dim")
        f.take("dec_ffn", dec, "model.decoder.n_hidden")
        f.take("dec_max_positions", dat, "data.audio_length", TRAINED_POSITIONS)
        f.take("norm_eps", model, "model.normalization_layer_epsilon", 1e-5)
        f.take("rope_theta", model, "model.rope_max_timescale", 10000.0)
        f.take("delay_pattern", dat, "data.delay_pattern", (0, 8, 9, 10, 11, 12, 13, 14, 15))
        f.take("eos_token_id", dat, "data.audio_eos_value", 1024)
        f.take("pad_token_id", dat, "data.audio_pad_value", 1025)
        f.take("bos_token_id", dat, "data.audio_bos_value", 1026)
        return f.build(cross_attn_rope=True)

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
