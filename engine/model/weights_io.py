"""Reading checkpoint files safely, shared by the Dia and DAC loaders.

* JSON files (``config.json``, safetensors indexes) are read with a size cap, so a huge or
  deeply nested file is refused instead of filling memory or the stack;
* ``.pth``/``.bin`` files are read with ``torch.load(weights_only=True)``: memory-mapped for the
  zip format (torch ≥ 1.6), read whole for the legacy format, which cannot be mapped.

Every failure is a :class:`~engine.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.errors import CheckpointError

MAX_JSON_BYTES = 16 * 1024 * 1024
"""Far above any real config.json (2 KB) or safetensors index (30 KB for Dia-1.6B-0626)."""

ZIP_MAGIC = b"PK\x03\x04"  # how torch.load itself tells its zip format from the legacy pickle stream


def read_json(path: Path, what: str) -> Any:
    """The parsed JSON of ``path``; ``what`` names the file's role in the error message."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise CheckpointError(f"{path}: {size} bytes is far too large for {what}; "
                                  "restore the original file (download the model again)")
        with open(path, "rb") as fh:
            return json.loads(fh.read(MAX_JSON_BYTES + 1).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: cannot read {what} ({exc}); "
                              "restore the original file (download the model again)") from exc


def is_zip_checkpoint(path: Path) -> bool:
    """True for torch's zip format (memory-mappable), False for the legacy pickle stream."""
    with open(path, "rb") as fh:
        return fh.read(len(ZIP_MAGIC)) == ZIP_MAGIC


def torch_load_tensors(path: Path) -> Any:
    """``torch.load(weights_only=True)`` of either torch format: nothing but tensors is unpickled."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip_checkpoint(path))
    except Exception as exc:  # UnpicklingError for disallowed objects, EOFError, zip errors...
        raise CheckpointError(f"{path}: cannot be read as a weights-only PyTorch checkpoint: it is truncated "
                              f"or corrupt, or it holds more than tensors ({exc})") from exc
