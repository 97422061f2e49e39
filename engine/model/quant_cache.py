"""Quantised decoder weights cached on disk, so only the first load of a checkpoint pays for
quantising (``load_dia(quantize=...)``, ``DiaModel.quantize``); later loads read the result instead
of the projections' full-precision weights, faster than a bf16 load.

Entries live in ``<data dir>/cache/quantized`` as private safetensors files, one per checkpoint
fingerprint, mode, kernel and model dtype, written atomically (``engine.files``). The fingerprint is
cheap: each weight file's name, size and modification time plus a hash of its first 64 KiB (a
safetensors header names every tensor, its dtype and offsets), so an edited or replaced checkpoint
gets a new entry. Entries are bounded (``MAX_CACHE_BYTES``, least recently used go first); an
entry that cannot be read, or does not fit the model, is deleted and rebuilt. The cache is an
optimisation only: any failure to read or write it leaves the load as it would be without it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

CACHE_VERSION = 2  # bump when a quantised format changes (2: int4 nibble order and 4-row blocks, int8 4-row blocks)
MAX_CACHE_BYTES = 8 << 30  # about five int8 / ten int4 entries of Dia-1.6B
MIN_CACHED_BYTES = 64 << 20  # smaller models quantise faster than an entry is read back
HEAD_BYTES = 64 << 10
SUFFIX = ".safetensors"


def checkpoint_fingerprint(path: str | os.PathLike) -> str:
    """A hash that changes whenever the checkpoint's weight files (or its config) change."""
    from engine.model.checkpoint import find_weights, weight_files

    path = Path(path)
    files = weight_files(find_weights(path))
    config = (path if path.is_dir() else path.parent) / "config.json"
    digest = hashlib.sha256()
    for file in files + ([config] if config.is_file() else []):
        stat = file.stat()
        digest.update(f"{file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        with open(file, "rb") as f:
            digest.update(f.read(HEAD_BYTES))
    return digest.hexdigest()


class QuantCache:
    """A folder of quantised-weight entries (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike, *, max_bytes: int = MAX_CACHE_BYTES,
                 min_bytes: int = MIN_CACHED_BYTES) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.min_bytes = min_bytes

    @classmethod
    def default(cls) -> QuantCache | None:
        """The cache under the user data folder, or None when that folder is unusable."""
        from engine.errors import DiaStudioError
        from engine.paths import data_dir

        try:
            return cls(data_dir(create=False) / "cache" / "quantized")  # created on the first save
        except (DiaStudioError, OSError):
            return None

    @staticmethod
    def key(fingerprint: str, mode: str, kind: str, dtype: torch.dtype) -> str:
        text = f"v{CACHE_VERSION}\0{fingerprint}\0{mode}\0{kind}\0{dtype}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def key_for(self, checkpoint: str | os.PathLike, mode: str, kind: str, dtype: torch.dtype) -> str:
        """The entry key of ``checkpoint`` (its folder or weight file) quantised to ``mode``/``kind``."""
        return self.key(checkpoint_fingerprint(checkpoint), mode, kind, dtype)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}{SUFFIX}"

    def load(self, key: str) -> dict[str, torch.Tensor] | None:
        """The entry's tensors, or None (missing; unreadable entries are deleted).

        The tensors are copies: safetensors maps the file, and a model must not alias a file that
        another process may replace or damage while it runs.
        """
        from safetensors import safe_open

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt", device="cpu") as entry:
                tensors = {name: entry.get_tensor(name).clone() for name in entry.keys()}
            os.utime(path)  # recently used: evicted last
            return tensors
        except Exception:  # noqa: BLE001 - truncated/corrupt file of any kind: rebuild it
            self.discard(key)
            return None

    def save(self, key: str, tensors: dict[str, torch.Tensor]) -> bool:
        """Store an entry (private file, atomic); False when skipped (small) or not writable."""
        from safetensors.torch import save_file

        from engine.files import atomic_write, ensure_private_dir

        if sum(t.numel() * t.element_size() for t in tensors.values()) < self.min_bytes:
            return False
        try:
            ensure_private_dir(self.folder)
            atomic_write(self.path(key), lambda p: save_file(tensors, str(p), metadata={"key": key}), private=True)
        except (OSError, RuntimeError, ValueError):
            return False
        self.evict(keep=key)
        return True

    def discard(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except OSError:
            pass

    def evict(self, keep: str | None = None) -> None:
        """Delete least recently used entries until the folder holds at most ``max_bytes``."""
        try:
            entries = sorted(self.folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True)
            total = 0
            for entry in entries:
                total += entry.stat().st_size
                if total > self.max_bytes and entry.name != f"{keep}{SUFFIX}":
                    entry.unlink()
        except OSError:
            pass
