"""Loading Dia checkpoints in every published layout, straight into the target dtype/device.

Supported files (any one of them plus a ``config.json`` in the same folder):

* transformers layout (``nari-labs/Dia-1.6B-0626``): ``model.safetensors.index.json`` with its
  shards, or a single ``model.safetensors`` whose keys start with ``model.``;
* nari layout (``DenseGeneral`` kernels): ``model.safetensors`` (Dia-1.6B), ``dia-v1.pth``,
  ``dia-v0_1.pth``, ``pytorch_model.bin``.

``.pth``/``.bin`` files are read with ``torch.load(weights_only=True)``: nothing but tensors is
ever unpickled (memory-mapped; files in torch's legacy pre-zip format are read whole). Tensors
are read one at a time and cast on the way in, so loading a bfloat16 model never holds a float32
copy of the whole model.

Nothing is built before the files are checked against the configuration: ``config.json`` is
bounded field by field (:mod:`engine.model.config`), and the weight files' total size must fit
the parameter count it implies. A safetensors index may only name shards inside the model
folder (or, in the Hugging Face cache, that repository's blob store).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import torch

from engine import heap
from engine.errors import CheckpointError, ModelNotFoundError
from engine.model.config import DiaConfig
from engine.model.dia import DiaModel
from engine.model.kernels import CACHEABLE_KINDS, ProjectionQuantizer, quantized_kind
from engine.model.quant_cache import QuantCache
from engine.model.weights_io import is_zip_checkpoint, read_json, torch_load_tensors

# Preference order inside one folder: the 0626 repo carries the same weights three times.
WEIGHT_FILES = ("model.safetensors.index.json", "model.safetensors", "dia-v1.pth", "dia-v0_1.pth", "pytorch_model.bin")
# Bytes per parameter a weight file may hold: bfloat16/float16 up to float64.
BYTES_PER_PARAMETER = (2, 8)
# Headers, pickle records and zip alignment on top of the tensors (measured: 110-260 bytes a tensor).
FILE_OVERHEAD_BYTES = 1 << 20
FILE_OVERHEAD_PER_TENSOR = 4096


# ---------------------------------------------------------------------------------------------
# Official key tables
# ---------------------------------------------------------------------------------------------
def transformers_shapes(cfg: DiaConfig) -> dict[str, tuple[int, ...]]:
    """Every key of the transformers layout with its shape (``DiaForConditionalGeneration``)."""
    e, dm = cfg.enc_hidden, cfg.dec_hidden
    shapes: dict[str, tuple[int, ...]] = {"model.encoder.embedding.weight": (cfg.enc_vocab_size, e)}
    for n in range(cfg.enc_layers):
        p = f"model.encoder.layers.{n}."
        shapes[p + "pre_sa_norm.weight"] = (e,)
        shapes[p + "post_sa_norm.weight"] = (e,)
        shapes[p + "self_attention.q_proj.weight"] = (cfg.enc_heads * cfg.enc_head_dim, e)
        shapes[p + "self_attention.k_proj.weight"] = (cfg.enc_kv_heads * cfg.enc_head_dim, e)
        shapes[p + "self_attention.v_proj.weight"] = (cfg.enc_kv_heads * cfg.enc_head_dim, e)
        shapes[p + "self_attention.o_proj.weight"] = (e, cfg.enc_heads * cfg.enc_head_dim)
        shapes[p + "mlp.gate_up_proj.weight"] = (2 * cfg.enc_ffn, e)
        shapes[p + "mlp.down_proj.weight"] = (e, cfg.enc_ffn)
    shapes["model.encoder.norm.weight"] = (e,)
    shapes["model.decoder.embeddings.embed.weight"] = (cfg.num_channels * cfg.dec_vocab_size, dm)
    for n in range(cfg.dec_layers):
        p = f"model.decoder.layers.{n}."
        for norm in ("pre_sa_norm", "pre_ca_norm", "pre_mlp_norm"):
            shapes[p + norm + ".weight"] = (dm,)
        shapes[p + "self_attention.q_proj.weight"] = (cfg.dec_heads * cfg.dec_head_dim, dm)
        shapes[p + "self_attention.k_proj.weight"] = (cfg.dec_kv_heads * cfg.dec_head_dim, dm)
        shapes[p + "self_attention.v_proj.weight"] = (cfg.dec_kv_heads * cfg.dec_head_dim, dm)
        shapes[p + "self_attention.o_proj.weight"] = (dm, cfg.dec_heads * cfg.dec_head_dim)
        shapes[p + "cross_attention.q_proj.weight"] = (cfg.cross_heads * cfg.cross_head_dim, dm)
        shapes[p + "cross_attention.k_proj.weight"] = (cfg.cross_kv_heads * cfg.cross_head_dim, e)
        shapes[p + "cross_attention.v_proj.weight"] = (cfg.cross_kv_heads * cfg.cross_head_dim, e)
        shapes[p + "cross_attention.o_proj.weight"] = (dm, cfg.cross_heads * cfg.cross_head_dim)
        shapes[p + "mlp.gate_up_proj.weight"] = (2 * cfg.dec_ffn, dm)
        shapes[p + "mlp.down_proj.weight"] = (dm, cfg.dec_ffn)
    shapes["model.decoder.norm.weight"] = (dm,)
    shapes["logits_dense.weight"] = (cfg.num_channels * cfg.dec_vocab_size, dm)
    return shapes


@dataclass(frozen=True)
class _NariKey:
    """How one nari tensor maps to a transformers tensor: ``hf = kernel.reshape(rows, cols).T``."""

    hf_key: str | None  # None: one of the 9 decoder embedding tables (concatenated)
    shape: tuple[int, ...]
    n_in: int  # how many leading dims of the nari kernel are input dims (0 = copy unchanged)


def nari_table(cfg: DiaConfig) -> dict[str, _NariKey]:
    """Every key of the nari layout with its shape and transformers counterpart."""
    e, dm = cfg.enc_hidden, cfg.dec_hidden
    t: dict[str, _NariKey] = {"encoder.embedding.weight": _NariKey("model.encoder.embedding.weight", (cfg.enc_vocab_size, e), 0)}

    def attn(prefix: str, hf: str, d_in: int, heads: int, kv_heads: int, head_dim: int, kv_in: int, d_out: int) -> None:
        t[prefix + "q_proj.weight"] = _NariKey(hf + "q_proj.weight", (d_in, heads, head_dim), 1)
        t[prefix + "k_proj.weight"] = _NariKey(hf + "k_proj.weight", (kv_in, kv_heads, head_dim), 1)
        t[prefix + "v_proj.weight"] = _NariKey(hf + "v_proj.weight", (kv_in, kv_heads, head_dim), 1)
        t[prefix + "o_proj.weight"] = _NariKey(hf + "o_proj.weight", (heads, head_dim, d_out), 2)

    for n in range(cfg.enc_layers):
        p, hp = f"encoder.layers.{n}.", f"model.encoder.layers.{n}."
        t[p + "pre_sa_norm.weight"] = _NariKey(hp + "pre_sa_norm.weight", (e,), 0)
        t[p + "post_sa_norm.weight"] = _NariKey(hp + "post_sa_norm.weight", (e,), 0)
        attn(p + "self_attention.", hp + "self_attention.", e, cfg.enc_heads, cfg.enc_kv_heads, cfg.enc_head_dim, e, e)
        t[p + "mlp.wi_fused.weight"] = _NariKey(hp + "mlp.gate_up_proj.weight", (e, 2, cfg.enc_ffn), 1)
        t[p + "mlp.wo.weight"] = _NariKey(hp + "mlp.down_proj.weight", (cfg.enc_ffn, e), 1)
    t["encoder.norm.weight"] = _NariKey("model.encoder.norm.weight", (e,), 0)
    for c in range(cfg.num_channels):
        t[f"decoder.embeddings.{c}.weight"] = _NariKey(None, (cfg.dec_vocab_size, dm), 0)
    for n in range(cfg.dec_layers):
        p, hp = f"decoder.layers.{n}.", f"model.decoder.layers.{n}."
        for norm in ("pre_sa_norm", "pre_ca_norm", "pre_mlp_norm"):
            t[p + norm + ".weight"] = _NariKey(hp + norm + ".weight", (dm,), 0)
        attn(p + "self_attention.", hp + "self_attention.", dm, cfg.dec_heads, cfg.dec_kv_heads, cfg.dec_head_dim, dm, dm)
        attn(p + "cross_attention.", hp + "cross_attention.", dm, cfg.cross_heads, cfg.cross_kv_heads,
             cfg.cross_head_dim, e, dm)
        t[p + "mlp.wi_fused.weight"] = _NariKey(hp + "mlp.gate_up_proj.weight", (dm, 2, cfg.dec_ffn), 1)
        t[p + "mlp.wo.weight"] = _NariKey(hp + "mlp.down_proj.weight", (cfg.dec_ffn, dm), 1)
    t["decoder.norm.weight"] = _NariKey("model.decoder.norm.weight", (dm,), 0)
    t["decoder.logits_dense.weight"] = _NariKey("logits_dense.weight", (dm, cfg.num_channels, cfg.dec_vocab_size), 1)
    return t


def nari_to_transformers_tensor(spec: _NariKey, kernel: torch.Tensor) -> torch.Tensor:
    """A DenseGeneral kernel (in dims + out dims) as an ``nn.Linear`` weight (out, in)."""
    if spec.n_in == 0:
        return kernel
    rows = 1
    for dim in kernel.shape[: spec.n_in]:
        rows *= dim
    return kernel.reshape(rows, -1).t().contiguous()


def transformers_to_nari(state: dict[str, torch.Tensor], cfg: DiaConfig) -> dict[str, torch.Tensor]:
    """Convert a transformers-layout state dict to the nari layout (used for tests and export)."""
    out: dict[str, torch.Tensor] = {}
    emb = state["model.decoder.embeddings.embed.weight"]
    for key, spec in nari_table(cfg).items():
        if spec.hf_key is None:
            c = int(key.split(".")[2])
            out[key] = emb[c * cfg.dec_vocab_size:(c + 1) * cfg.dec_vocab_size].clone()
        elif spec.n_in == 0:
            out[key] = state[spec.hf_key].clone()
        else:
            out[key] = state[spec.hf_key].t().reshape(spec.shape).contiguous()
    return out


# ---------------------------------------------------------------------------------------------
# Reading tensors lazily from any file type
# ---------------------------------------------------------------------------------------------
class _TensorSource:
    """Random access to the tensors of one checkpoint (one file or a sharded set)."""

    def __init__(self, path: Path, stack: ExitStack) -> None:
        self.path = path
        self._getters: dict[str, Callable[[], torch.Tensor]] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        # True when tensors are views of a memory-mapped file: a model must not keep them, or
        # rewriting the file would change its weights (truncating it would crash the process)
        self.mapped = False
        if path.name.endswith(".index.json"):
            self._open_index(path, stack)
        elif path.suffix == ".safetensors":
            self._open_safetensors(path, stack)
        else:
            self._open_pickle(path)

    def keys(self) -> set[str]:
        return set(self._getters)

    def shape(self, key: str) -> tuple[int, ...]:
        return self._shapes[key]

    def get(self, key: str) -> torch.Tensor:
        try:
            return self._getters[key]()
        except Exception as exc:  # a truncated file often fails only when a tensor is read
            raise CheckpointError(f"{self.path.name}: cannot read tensor '{key}': {exc}") from exc

    def _open_safetensors(self, path: Path, stack: ExitStack) -> None:
        from safetensors import safe_open

        self.mapped = True  # safetensors (0.8) hands out views of its memory map, not copies
        try:
            handle = stack.enter_context(safe_open(str(path), framework="pt", device="cpu"))
            for key in handle.keys():
                self._shapes[key] = tuple(handle.get_slice(key).get_shape())
                self._getters[key] = (lambda h=handle, k=key: h.get_tensor(k))
        except Exception as exc:
            raise CheckpointError(f"{path.name} is not a readable safetensors file (truncated or corrupt?): {exc}") from exc
        expected_end = _safetensors_data_end(path)
        if expected_end is not None and path.stat().st_size < expected_end:
            raise CheckpointError(
                f"{path.name} is truncated: {path.stat().st_size} bytes on disk, its header describes {expected_end}")

    def _open_index(self, path: Path, stack: ExitStack) -> None:
        for shard_path in index_shards(path):
            part = _TensorSource(shard_path, stack)
            self._getters.update(part._getters)
            self._shapes.update(part._shapes)
            self.mapped = self.mapped or part.mapped

    def _open_pickle(self, path: Path) -> None:
        state = torch_load_tensors(path)
        self.mapped = is_zip_checkpoint(path)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                  for k, v in state.items()):
            raise CheckpointError(f"{path.name} does not hold a state dict of tensors")
        for key, tensor in state.items():
            self._shapes[key] = tuple(tensor.shape)
            self._getters[key] = (lambda t=tensor: t)


def _safetensors_data_end(path: Path) -> int | None:
    """The file size a safetensors header promises (8 + header + largest data offset)."""
    try:
        with open(path, "rb") as fh:
            header_len = int.from_bytes(fh.read(8), "little")
            if header_len > path.stat().st_size:
                return None
            header = json.loads(fh.read(header_len))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
        return None  # safe_open has already accepted the header; this is only a cross-check
    return 8 + header_len + max(ends, default=0)


# ---------------------------------------------------------------------------------------------
# Which files a checkpoint is made of, and whether they can hold what the configuration says
# ---------------------------------------------------------------------------------------------
def index_shards(index: Path) -> list[Path]:
    """The shard files a ``*.safetensors.index.json`` names, each checked to lie inside its folder."""
    data = read_json(index, "the safetensors index")
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index.name} is not a valid safetensors index: it has no weight_map object")
    if not all(isinstance(name, str) for name in weight_map.values()):
        raise CheckpointError(f"{index.name} is not a valid safetensors index: its weight_map names non-text shards")
    names = set(weight_map.values())
    roots = _allowed_roots(index.parent)
    shards = []
    for shard in sorted(names):
        shard_path = _shard_path(index, shard, roots)
        if not shard_path.is_file():
            raise CheckpointError(f"{index.name} names the shard {shard}, which is missing from {index.parent}")
        shards.append(shard_path)
    return shards


def _allowed_roots(folder: Path) -> tuple[Path, ...]:
    """Where a shard may really be: the folder, and in the HF cache its repository's blob store.

    A Hugging Face cache snapshot (``models--org--name/snapshots/<rev>/``) holds symlinks into
    ``models--org--name/blobs/``.
    """
    real = folder.resolve()
    if real.parent.name == "snapshots":
        return real, real.parent.parent / "blobs"
    return (real,)


def _shard_path(index: Path, shard: str, roots: tuple[Path, ...]) -> Path:
    """``index.parent / shard``, refused (before opening) if the name or a symlink leads elsewhere."""
    escapes = any(p.anchor or ".." in p.parts for p in (PurePosixPath(shard), PureWindowsPath(shard)))
    if escapes or not shard:
        raise CheckpointError(f"{index.name} names the shard {shard!r}, which lies outside the model folder "
                              f"{index.parent}: refused. Only files inside the model folder are read; restore the "
                              "original index (download the model again)")
    path = index.parent / shard
    real = path.resolve()
    if not any(real.is_relative_to(root) for root in roots):
        raise CheckpointError(f"{index.name} names the shard {shard}, a link to {real} outside the model folder "
                              f"{index.parent}: refused. Copy the shard itself into the folder")
    return path


def weight_files(weights: Path) -> list[Path]:
    """The files that hold the weights: the file itself, or the shards an index names."""
    return index_shards(weights) if weights.name.endswith(".index.json") else [weights]


def check_weights_size(weights: Path, cfg: DiaConfig) -> None:
    """Refuse weight files too small or too large for the model ``config.json`` describes.

    Runs before anything is read or built, so a configuration far larger than its files (a
    corrupted layer count, say) is refused instead of growing memory.
    """
    shapes = transformers_shapes(cfg)
    params = sum(math.prod(shape) for shape in shapes.values())
    low, high = (n * params for n in BYTES_PER_PARAMETER)
    high += FILE_OVERHEAD_BYTES + FILE_OVERHEAD_PER_TENSOR * len(shapes)
    files = weight_files(weights)
    size = sum(f.stat().st_size for f in files)
    if low <= size <= high:
        return
    what = f"{weights.name} holds" if files == [weights] else f"the shards {weights.name} names hold"
    if size < low:
        problem = (f"too few for the {params:,} parameters config.json describes (at least {low:,} bytes at "
                   "16 bits): a file is truncated, or config.json belongs to another model")
    else:
        problem = (f"more than the {params:,} parameters config.json describes can fill (at most {high:,} "
                   "bytes at 64 bits): config.json belongs to another model")
    raise CheckpointError(f"{what} {size:,} bytes, {problem}. Restore the model folder (download the model again)")


# ---------------------------------------------------------------------------------------------
# Folder discovery and loading
# ---------------------------------------------------------------------------------------------
def find_weights(folder: Path) -> Path:
    """The weight file to use inside a model folder (or the file itself)."""
    if folder.is_file():
        return folder
    for name in WEIGHT_FILES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise ModelNotFoundError(
        f"no Dia weights in {folder}: expected one of {', '.join(WEIGHT_FILES)} next to config.json")


def read_config(folder: Path) -> DiaConfig:
    path = folder / "config.json"
    if not path.is_file():
        raise ModelNotFoundError(f"no config.json in {folder}: the Dia model folder needs its configuration file")
    return DiaConfig.from_file(path)


def _internal_tensors(source: _TensorSource, cfg: DiaConfig) -> Iterator[tuple[str, Callable[[], torch.Tensor]]]:
    """Yield (internal key, loader) pairs from a source in either official layout, validating keys/shapes."""
    keys = source.keys()
    if any(k.startswith("model.") for k in keys):
        expected = transformers_shapes(cfg)
        _check_keys(source, expected)

        def get(k: str) -> Callable[[], torch.Tensor]:
            return lambda: source.get(k)
    else:
        table = nari_table(cfg)
        _check_keys(source, {k: s.shape for k, s in table.items()})
        by_hf = {s.hf_key: k for k, s in table.items() if s.hf_key is not None}

        def get(k: str) -> Callable[[], torch.Tensor]:
            if k == "model.decoder.embeddings.embed.weight":
                return lambda: torch.cat([source.get(f"decoder.embeddings.{c}.weight") for c in range(cfg.num_channels)])
            nari_key = by_hf[k]
            return lambda: nari_to_transformers_tensor(table[nari_key], source.get(nari_key))

    def fused(*names: str) -> Callable[[], torch.Tensor]:
        getters = [get(n) for n in names]
        return lambda: torch.cat([g() for g in getters], dim=0)

    yield "encoder_embedding", get("model.encoder.embedding.weight")
    for n in range(cfg.enc_layers):
        hp, ip = f"model.encoder.layers.{n}.", f"encoder_layers.{n}."
        yield ip + "pre_sa_norm.weight", get(hp + "pre_sa_norm.weight")
        yield ip + "post_sa_norm.weight", get(hp + "post_sa_norm.weight")
        yield ip + "qkv.weight", fused(*(hp + f"self_attention.{x}_proj.weight" for x in "qkv"))
        yield ip + "o.weight", get(hp + "self_attention.o_proj.weight")
        yield ip + "gate_up.weight", get(hp + "mlp.gate_up_proj.weight")
        yield ip + "down.weight", get(hp + "mlp.down_proj.weight")
    yield "encoder_norm.weight", get("model.encoder.norm.weight")
    yield "decoder_embedding", get("model.decoder.embeddings.embed.weight")
    for n in range(cfg.dec_layers):
        hp, ip = f"model.decoder.layers.{n}.", f"decoder_layers.{n}."
        for norm in ("pre_sa_norm", "pre_ca_norm", "pre_mlp_norm"):
            yield ip + norm + ".weight", get(hp + norm + ".weight")
        yield ip + "qkv.weight", fused(*(hp + f"self_attention.{x}_proj.weight" for x in "qkv"))
        yield ip + "o.weight", get(hp + "self_attention.o_proj.weight")
        yield ip + "cross_q.weight", get(hp + "cross_attention.q_proj.weight")
        yield ip + "cross_kv.weight", fused(hp + "cross_attention.k_proj.weight", hp + "cross_attention.v_proj.weight")
        yield ip + "cross_o.weight", get(hp + "cross_attention.o_proj.weight")
        yield ip + "gate_up.weight", get(hp + "mlp.gate_up_proj.weight")
        yield ip + "down.weight", get(hp + "mlp.down_proj.weight")
    yield "decoder_norm.weight", get("model.decoder.norm.weight")
    yield "head.weight", get("logits_dense.weight")


def _check_keys(source: _TensorSource, expected: dict[str, tuple[int, ...]]) -> None:
    keys = source.keys()
    missing = sorted(set(expected) - keys)
    unexpected = sorted(k for k in keys - set(expected) if not k.endswith(("rotary_emb.inv_freq", "embeddings.offsets")))
    name = source.path.name
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise CheckpointError(f"{name} does not match the Dia configuration: missing {', '.join(missing[:5])}{more}")
    if unexpected:
        more = f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else ""
        raise CheckpointError(f"{name} does not match the Dia configuration: unexpected {', '.join(unexpected[:5])}{more}")
    for key, shape in expected.items():
        got = source.shape(key)
        if tuple(got) != tuple(shape):
            raise CheckpointError(f"{name}: tensor '{key}' has shape {tuple(got)}, the configuration expects {tuple(shape)}")


def load_dia(path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
             cross_attn_rope: bool | None = None, config: DiaConfig | None = None, quantize: str | None = None,
             quant_cache: QuantCache | bool = True) -> DiaModel:
    """Load a Dia model from a folder (``config.json`` + weights) or a weight file next to one.

    ``cross_attn_rope`` forces the v0.1 graph on/off; by default a legacy config implies it.
    ``quantize`` (``"int8"``, ``"int8-dynamic"``, ``"int4"``) quantises the decoder's per-step
    projections as they are read, one at a time, so the full-precision decoder never sits in
    memory; the result is bitwise that of ``DiaModel.quantize`` after a plain load. Quantised
    projections are cached on disk (``quant_cache``: a ``QuantCache``, True for the user's default
    one, False for none); a load the cache serves never reads their full-precision weights.
    ``model.quantized_from_cache`` says which happened.
    """
    path = Path(path)
    if not path.exists():
        raise ModelNotFoundError(f"model path {path} does not exist")
    folder = path if path.is_dir() else path.parent
    cfg = config or read_config(folder)
    if cross_attn_rope is not None and cross_attn_rope != cfg.cross_attn_rope:
        from dataclasses import replace

        cfg = replace(cfg, cross_attn_rope=cross_attn_rope)
    weights = find_weights(path)
    check_weights_size(weights, cfg)
    device = torch.device(device)
    with torch.device("meta"):
        model = DiaModel(cfg, dtype=dtype)
    norm_like = {k for k, v in model.state_dict().items() if v.dtype == torch.float32 and k.endswith("norm.weight")}
    quantizer, cache, key = _quantizer(model, path, device, dtype, quantize, quant_cache) if quantize else (None,) * 3
    state: dict[str, torch.Tensor] = {}
    with ExitStack() as stack:
        source = _TensorSource(weights, stack)
        for name, load in _internal_tensors(source, cfg):
            if quantizer is not None and quantizer.takes(name):
                if not quantizer.from_cache:  # a cached projection's weight is never read
                    quantizer.put(name, load().to(device=device, dtype=dtype, copy=source.mapped).contiguous())
                    heap.trim()
                continue
            target = torch.float32 if name in norm_like else dtype
            state[name] = load().to(device=device, dtype=target, copy=source.mapped).contiguous()
            # loading frees pieces between kept tensors: without a trim their holes stay resident
            # (measured on Dia-1.6B: 330 MB over the bf16 weights' 3.07 GB); a fraction of a ms a call
            heap.trim()
    if quantizer is not None:
        state.update(quantizer.state())
    model.load_state_dict(state, strict=True, assign=True)
    model.channel_offsets = torch.arange(cfg.num_channels, device=device) * cfg.dec_vocab_size
    model.tune_for_device()
    if quantizer is not None:
        model.quantized_from_cache = quantizer.from_cache
        entry = None if quantizer.from_cache or key is None else quantizer.cacheable_state()
        if entry is not None:
            cache.save(key, entry)
    return model.eval()


def _quantizer(model: DiaModel, path: Path, device: torch.device, dtype: torch.dtype, mode: str,
               quant_cache: QuantCache | bool) -> tuple[ProjectionQuantizer, QuantCache | None, str | None]:
    """The projection quantiser for ``mode``, primed from the cache when it holds this checkpoint's
    entry, with the cache and the entry's key (None when not cached)."""
    kind = quantized_kind(mode, device)
    cache = QuantCache.default() if quant_cache is True else quant_cache or None
    key = cache.key_for(path, mode, kind, dtype) if cache is not None and kind in CACHEABLE_KINDS else None
    cached = cache.load(key) if key is not None else None
    quantizer = ProjectionQuantizer(model, mode, device, cached)
    del cached  # the quantiser holds what it took; a misfit entry is freed before the weights are read
    return quantizer, cache, key
