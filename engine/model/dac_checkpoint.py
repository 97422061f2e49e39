"""Loading and saving DAC weights in the two official formats.

* transformers: a folder with ``config.json`` + ``model.safetensors`` (``descript/dac_44khz``);
  the tensor names are ``DacCodec``'s own.
* original: descript's ``weights.pth`` (e.g. ``weights_44khz_8kbps_0.0.1.pth``), a ``torch.save``
  dict ``{"state_dict": ..., "metadata": {"kwargs": {...}}}`` whose convs are weight-normalised
  (``weight_g``/``weight_v``) and named after the original ``nn.Sequential`` layout.

Weights go straight from the file into the target dtype and device, one tensor at a time, into
a module built on the ``meta`` device, so loading never holds a second full copy of the model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engine.errors import CheckpointError, ModelNotFoundError
from engine.files import atomic_write
from engine.model.dac import DacCodec, DacConfig
from engine.model.weights_io import read_json, torch_load_tensors

__all__ = [
    "DacLayer",
    "ORIGINAL_WEIGHT_FILES",
    "convert_original_state_dict",
    "dac_layers",
    "expected_shapes",
    "load_dac",
    "save_dac_transformers",
]

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
# Names the original weights go by: the generic one and descript's download name for 44.1 kHz.
ORIGINAL_WEIGHT_FILES = ("weights.pth", "weights_44khz_8kbps_0.0.1.pth")

LayerKind = Literal["conv", "snake", "codebook"]


@dataclass(frozen=True)
class DacLayer:
    """One parameterised layer, by its module path in both layouts."""

    original: str
    name: str  # transformers / DacCodec path
    kind: LayerKind

    def original_tensors(self) -> dict[str, str]:
        """Original tensor name → the DacCodec tensor it becomes (g and v both go to weight)."""
        if self.kind == "conv":
            return {f"{self.original}.weight_g": f"{self.name}.weight",
                    f"{self.original}.weight_v": f"{self.name}.weight",
                    f"{self.original}.bias": f"{self.name}.bias"}
        if self.kind == "snake":
            return {f"{self.original}.alpha": f"{self.name}.alpha"}
        return {f"{self.original}.weight": f"{self.name}.weight"}


def dac_layers(config: DacConfig) -> list[DacLayer]:
    """Every parameterised layer of a DAC with this geometry, in network order."""
    layers: list[DacLayer] = []

    def residual_units(original: str, name: str, first: int) -> None:
        for unit in range(3):
            o, n = f"{original}.block.{first + unit}.block", f"{name}.res_unit{unit + 1}"
            layers.extend([DacLayer(f"{o}.0", f"{n}.snake1", "snake"), DacLayer(f"{o}.1", f"{n}.conv1", "conv"),
                           DacLayer(f"{o}.2", f"{n}.snake2", "snake"), DacLayer(f"{o}.3", f"{n}.conv2", "conv")])

    n_enc = len(config.encoder_rates)
    layers.append(DacLayer("encoder.block.0", "encoder.conv1", "conv"))
    for i in range(n_enc):
        o, n = f"encoder.block.{i + 1}", f"encoder.block.{i}"
        residual_units(o, n, 0)
        layers += [DacLayer(f"{o}.block.3", f"{n}.snake1", "snake"), DacLayer(f"{o}.block.4", f"{n}.conv1", "conv")]
    layers += [DacLayer(f"encoder.block.{n_enc + 1}", "encoder.snake1", "snake"),
               DacLayer(f"encoder.block.{n_enc + 2}", "encoder.conv2", "conv")]

    n_dec = len(config.decoder_rates)
    layers.append(DacLayer("decoder.model.0", "decoder.conv1", "conv"))
    for i in range(n_dec):
        o, n = f"decoder.model.{i + 1}", f"decoder.block.{i}"
        layers += [DacLayer(f"{o}.block.0", f"{n}.snake1", "snake"), DacLayer(f"{o}.block.1", f"{n}.conv_t1", "conv")]
        residual_units(o, n, 2)
    layers += [DacLayer(f"decoder.model.{n_dec + 1}", "decoder.snake1", "snake"),
               DacLayer(f"decoder.model.{n_dec + 2}", "decoder.conv2", "conv")]

    for q in range(config.n_codebooks):
        p = f"quantizer.quantizers.{q}"
        layers += [DacLayer(f"{p}.in_proj", f"{p}.in_proj", "conv"), DacLayer(f"{p}.out_proj", f"{p}.out_proj", "conv"),
                   DacLayer(f"{p}.codebook", f"{p}.codebook", "codebook")]
    return layers


def expected_shapes(config: DacConfig) -> dict[str, torch.Size]:
    """DacCodec tensor name → shape, computed on the meta device (no memory)."""
    with torch.device("meta"):
        codec = DacCodec(config)
    return {name: tensor.shape for name, tensor in codec.state_dict().items()}


def _expected_original_shapes(config: DacConfig) -> dict[str, torch.Size]:
    shapes = expected_shapes(config)
    out: dict[str, torch.Size] = {}
    for layer in dac_layers(config):
        for original, name in layer.original_tensors().items():
            shape = shapes[name]
            out[original] = torch.Size([shape[0], 1, 1]) if original.endswith(".weight_g") else shape
    return out


# ------------------------------------------------------------------------------------------
# Loading


def load_dac(path: str | os.PathLike[str], *, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> DacCodec:
    """Load a DAC codec from a transformers folder or an original ``weights.pth``.

    ``path`` may be the folder, its ``config.json``/``model.safetensors``, the ``.pth`` file or
    a folder holding one of :data:`ORIGINAL_WEIGHT_FILES`. Raises :class:`ModelNotFoundError`
    when nothing loadable is there and :class:`CheckpointError` when a file is broken or does
    not match the DAC layout.
    """
    kind, file = _locate(Path(path))
    device = torch.device(device)
    if kind == "original":
        config, tensors = _read_original(file, device, dtype)
    else:
        config, tensors = _read_transformers(file, device, dtype)
    with torch.device("meta"):
        codec = DacCodec(config)
    codec.load_state_dict(tensors, strict=True, assign=True)
    codec.requires_grad_(False)
    return codec.eval()


def _locate(path: Path) -> tuple[Literal["original", "transformers"], Path]:
    """The checkpoint format and its main file (the safetensors or the pth file)."""
    if path.is_file():
        if path.suffix == ".pth":
            return "original", path
        if path.name in (CONFIG_FILE, SAFETENSORS_FILE):
            path = path.parent
        else:
            raise ModelNotFoundError(f"{path} is not a DAC checkpoint (expected a folder with "
                                     f"{CONFIG_FILE} + {SAFETENSORS_FILE}, or a .pth file)")
    if not path.is_dir():
        raise ModelNotFoundError(f"DAC checkpoint not found: {path} does not exist")
    safetensors, config = path / SAFETENSORS_FILE, path / CONFIG_FILE
    if safetensors.is_file():
        if not config.is_file():
            raise CheckpointError(f"{path}: {SAFETENSORS_FILE} is there but {CONFIG_FILE} is missing")
        return "transformers", safetensors
    for name in ORIGINAL_WEIGHT_FILES:
        if (path / name).is_file():
            return "original", path / name
    if config.is_file():
        raise CheckpointError(f"{path}: {CONFIG_FILE} is there but {SAFETENSORS_FILE} is missing")
    raise ModelNotFoundError(f"no DAC checkpoint in {path}: expected {CONFIG_FILE} + {SAFETENSORS_FILE} "
                             f"or one of {', '.join(ORIGINAL_WEIGHT_FILES)}")


def _read_transformers(file: Path, device: torch.device,
                       dtype: torch.dtype) -> tuple[DacConfig, dict[str, torch.Tensor]]:
    config_file = file.parent / CONFIG_FILE
    data = read_json(config_file, "the DAC config")
    if not isinstance(data, dict):
        raise CheckpointError(f"{config_file}: expected a JSON object")
    if data.get("model_type", "dac") != "dac":
        raise CheckpointError(f"{config_file}: model_type is {data['model_type']!r}, not 'dac'")
    try:
        config = DacConfig.from_transformers_dict(data)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{config_file}: {exc}") from exc

    try:
        handle = safe_open(str(file), framework="pt", device="cpu")
        shapes = {key: torch.Size(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own error type for a broken header
        raise CheckpointError(f"{file}: cannot read the safetensors file, it may be truncated or "
                              f"corrupt ({exc})") from exc
    with handle:
        plan = _fold_plan(shapes)
        _check_tensors(file, dict(_planned_shapes(plan, shapes)), expected_shapes(config))
        for sources in plan.values():
            if len(sources) == 2 and tuple(shapes[sources[0]]) != (shapes[sources[1]][0], 1, 1):
                raise CheckpointError(f"{file}: {sources[0]}: expected [{shapes[sources[1]][0]}, 1, 1], "
                                      f"got {list(shapes[sources[0]])}")

        def get(key: str) -> torch.Tensor:
            try:
                return handle.get_tensor(key)
            except Exception as exc:
                raise CheckpointError(f"{file}: cannot read tensor {key!r}, the file may be truncated "
                                      f"or corrupt ({exc})") from exc

        tensors = {name: _materialise(sources, get, device, dtype) for name, sources in plan.items()}
    return config, tensors


def _read_original(file: Path, device: torch.device,
                   dtype: torch.dtype) -> tuple[DacConfig, dict[str, torch.Tensor]]:
    package = torch_load_tensors(file)
    if not isinstance(package, dict) or not isinstance(package.get("state_dict"), Mapping):
        raise CheckpointError(f"{file}: not an original DAC checkpoint "
                              "(expected a dict with 'state_dict' and 'metadata')")
    state: Mapping[str, Any] = package["state_dict"]
    metadata = package.get("metadata")
    kwargs = metadata.get("kwargs") if isinstance(metadata, Mapping) else None
    if not isinstance(kwargs, Mapping):
        kwargs = {}  # no recorded geometry: assume the 44.1 kHz model; the shape check catches others
    try:
        config = DacConfig.from_original_kwargs(kwargs)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{file}: metadata.kwargs: {exc}") from exc
    bad = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{file}: state_dict entries that are not tensors: {_few(bad)}")
    _check_tensors(file, {key: value.shape for key, value in state.items()}, _expected_original_shapes(config))
    tensors = convert_original_state_dict(state, config, device=device, dtype=dtype)
    return config, tensors


def convert_original_state_dict(state: Mapping[str, torch.Tensor], config: DacConfig, *,
                                device: str | torch.device = "cpu",
                                dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Original-layout tensors → DacCodec names, weight norm folded on ``device``.

    Folding uses PyTorch's own ``torch._weight_norm`` (the kernel the original module runs),
    in at least fp32 and on the device that will run the model: a hand-written ``g·v/‖v‖``
    or a fold on another device differs by rounding that the deep decoder amplifies.
    """
    device = torch.device(device)
    out: dict[str, torch.Tensor] = {}
    for layer in dac_layers(config):
        if layer.kind == "conv":
            g, v = state[f"{layer.original}.weight_g"], state[f"{layer.original}.weight_v"]
            out[f"{layer.name}.weight"] = _fold(v, g, device, dtype)
            out[f"{layer.name}.bias"] = state[f"{layer.original}.bias"].to(device=device, dtype=dtype, copy=True)
        else:
            for original, name in layer.original_tensors().items():
                # copy: do not keep parameters backed by the memory-mapped file
                out[name] = state[original].to(device=device, dtype=dtype, copy=True)
    return out


def _fold(v: torch.Tensor, g: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    work = torch.promote_types(v.dtype, torch.float32)
    weight = torch._weight_norm(v.to(device=device, dtype=work), g.to(device=device, dtype=work), 0)
    return weight.to(dtype)


# A transformers-format file may hold weight-norm pairs too: older conversions kept the
# parametrisation (``parametrizations.weight.original0/1``) or the ``weight_g``/``weight_v`` names.
_WEIGHT_NORM_SUFFIXES = ((".parametrizations.weight.original0", ".parametrizations.weight.original1"),
                         (".weight_g", ".weight_v"))


def _fold_plan(shapes: Mapping[str, torch.Size]) -> dict[str, tuple[str, ...]]:
    """DacCodec name → the file's tensor(s) it comes from: (key,) or (g_key, v_key)."""
    plan: dict[str, tuple[str, ...]] = {}
    for key in shapes:
        for g_suffix, v_suffix in _WEIGHT_NORM_SUFFIXES:
            if key.endswith(g_suffix) and key[: -len(g_suffix)] + v_suffix in shapes:
                plan[key[: -len(g_suffix)] + ".weight"] = (key, key[: -len(g_suffix)] + v_suffix)
                break
            if key.endswith(v_suffix) and key[: -len(v_suffix)] + g_suffix in shapes:
                break
        else:
            plan[key] = (key,)
    return plan


def _planned_shapes(plan: Mapping[str, tuple[str, ...]],
                    shapes: Mapping[str, torch.Size]) -> Iterator[tuple[str, torch.Size]]:
    for name, sources in plan.items():
        yield name, shapes[sources[-1]]  # for a pair, v has the weight's shape


def _materialise(sources: tuple[str, ...], get: Callable[[str], torch.Tensor], device: torch.device,
                 dtype: torch.dtype) -> torch.Tensor:
    if len(sources) == 2:
        return _fold(get(sources[1]), get(sources[0]), device, dtype)
    return get(sources[0]).to(device=device, dtype=dtype)


def _check_tensors(file: Path, found: Mapping[str, torch.Size], expected: Mapping[str, torch.Size]) -> None:
    """Raise CheckpointError naming the file and the first problems found."""
    missing = [key for key in expected if key not in found]
    if missing:
        raise CheckpointError(f"{file}: {len(missing)} missing DAC tensor(s), e.g. {_few(missing)} "
                              f"(file has {len(found)}, the layout needs {len(expected)})")
    unexpected = [key for key in found if key not in expected]
    if unexpected:
        raise CheckpointError(f"{file}: {len(unexpected)} unexpected tensor(s), e.g. {_few(unexpected)}; "
                              "is this a DAC checkpoint of a different version?")
    wrong = [(key, expected[key], found[key]) for key in expected if tuple(found[key]) != tuple(expected[key])]
    if wrong:
        detail = "; ".join(f"{key}: expected {list(exp)}, got {list(got)}" for key, exp, got in wrong[:3])
        raise CheckpointError(f"{file}: {len(wrong)} tensor(s) with the wrong shape for the configured "
                              f"DAC ({detail})")


def _few(keys: list[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (", …" if len(keys) > n else "")


# ------------------------------------------------------------------------------------------
# Saving


def save_dac_transformers(codec_or_state_dict: DacCodec | Mapping[str, torch.Tensor], config: DacConfig,
                          folder: str | os.PathLike[str]) -> Path:
    """Write ``config.json`` + ``model.safetensors`` as transformers' ``save_pretrained`` does.

    Returns the folder. Each file is written atomically (:func:`engine.files.atomic_write`).
    """
    state = codec_or_state_dict.state_dict() if isinstance(codec_or_state_dict, torch.nn.Module) \
        else dict(codec_or_state_dict)
    expected = expected_shapes(config)
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise ValueError(f"state dict does not match the DAC layout: missing {_few(missing)}; "
                         f"unexpected {_few(extra)}")
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in state.items()}
    dtypes = {t.dtype for t in tensors.values()}
    data = config.to_transformers_dict()
    data["dtype"] = str(dtypes.pop()).removeprefix("torch.") if len(dtypes) == 1 else "float32"

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / CONFIG_FILE, lambda p: p.write_text(
        json.dumps(dict(sorted(data.items())), indent=2) + "\n", encoding="utf-8"))
    atomic_write(folder / SAFETENSORS_FILE, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    return folder
