"""Finding model files: a local folder, the Hugging Face cache, or a download with progress.

A model is named either by a path (a folder or a weight file) or by a Hugging Face repository id.
Repository files are looked up in the standard Hugging Face cache first; only when they are
missing, and only when offline mode is off, are they downloaded (through ``huggingface_hub``, with
byte-level progress and cancellation). ``HF_HUB_OFFLINE=1`` is always respected.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import CancelledError, DownloadError, ModelNotFoundError

# An offline desktop app sends nothing it does not have to (huggingface_hub reads this on import).
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

DIA_REPO = "nari-labs/Dia-1.6B-0626"
DIA_V01_REPO = "nari-labs/Dia-1.6B"
DAC_REPO = "descript/dac_44khz"


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes of the current file and of the whole download so far."""

    filename: str
    file_bytes: int
    file_total: int | None
    files_done: int
    files_total: int


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` asks for no network access."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "~", ".", "\\")) or (len(spec) > 1 and spec[1] == ":") or spec.count("/") != 1


def resolve_model(spec: str | os.PathLike | None, *, default_repo: str = DIA_REPO, offline: bool | None = None,
                  progress: Callable[[DownloadProgress], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, cache_dir: str | Path | None = None) -> Path:
    """A local folder (or file) holding the model named by ``spec`` (path or repo id; None = default)."""
    spec = default_repo if spec is None or str(spec).strip() == "" else spec
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.exists():
        return path
    if isinstance(spec, os.PathLike) or looks_like_path(text):
        raise ModelNotFoundError(f"the model folder {path} does not exist")
    offline = hub_offline() if offline is None else offline
    cached = cached_snapshot(text, cache_dir=cache_dir)
    if cached is not None:
        return cached
    if offline:
        raise ModelNotFoundError(_offline_message(text))
    return download_repo(text, progress=progress, should_stop=should_stop, cache_dir=cache_dir)


def _offline_message(repo_id: str) -> str:
    return (f"{repo_id} is not in the Hugging Face cache and offline mode is on: download it once with network "
            f"access (dia-studio download {repo_id}), or point Dia Studio at a folder that holds it")


def _repo_files(repo_id: str, read_json: Callable[[str], dict]) -> list[str]:
    """The files a repository needs for loading (the 0626 repo stores its weights three times)."""
    try:
        index = read_json("model.safetensors.index.json")
    except FileNotFoundError:
        return ["config.json", "model.safetensors"]
    shards = sorted(set(index.get("weight_map", {}).values()))
    return ["config.json", "model.safetensors.index.json", *shards]


def cached_snapshot(repo_id: str, *, cache_dir: str | Path | None = None) -> Path | None:
    """The cached snapshot folder of ``repo_id`` if every file it needs is present, else None."""
    from huggingface_hub import try_to_load_from_cache

    def local(name: str) -> Path | None:
        found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
        return Path(found) if isinstance(found, str) else None

    config = local("config.json")
    if config is None:
        return None

    def read_json(name: str) -> dict:
        found = local(name)
        if found is None:
            raise FileNotFoundError(name)
        return json.loads(found.read_text(encoding="utf-8"))

    files = _repo_files(repo_id, read_json)
    if all(local(name) is not None for name in files):
        return config.parent
    return None


def download_repo(repo_id: str, *, progress: Callable[[DownloadProgress], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, cache_dir: str | Path | None = None) -> Path:
    """Download what ``repo_id`` needs into the Hugging Face cache, reporting bytes as they arrive."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError)

    transport_errors = _transport_errors()
    state = {"files_done": 0, "files_total": 1}

    def fetch(name: str) -> Path:
        tqdm_class = _progress_tqdm(name, state, progress, should_stop)
        try:
            return Path(hf_hub_download(repo_id, name, cache_dir=cache_dir, tqdm_class=tqdm_class))
        except CancelledError:
            raise
        except LocalEntryNotFoundError as exc:
            # The metadata request failed and the file is not cached: the hub was unreachable, answered with an
            # error, or huggingface_hub is in offline mode. Not "the file does not exist" (that is a remote 404).
            raise _metadata_failure(repo_id, name, exc) from exc
        except EntryNotFoundError:
            raise FileNotFoundError(name) from None
        except RepositoryNotFoundError as exc:
            raise ModelNotFoundError(f"the repository {repo_id} does not exist or is private") from exc
        except (HfHubHTTPError, OSError, ValueError, *transport_errors) as exc:
            raise DownloadError(f"downloading {name} from {repo_id} failed: {_describe(exc)}") from exc

    try:
        config = fetch("config.json")
    except FileNotFoundError:
        raise ModelNotFoundError(f"{repo_id} has no config.json: it is not a model repository Dia Studio can load") from None
    files = _repo_files(repo_id, lambda name: json.loads(fetch(name).read_text(encoding="utf-8")))
    state["files_total"] = len(files)
    for name in files:
        try:
            fetch(name)
        except FileNotFoundError:
            raise ModelNotFoundError(f"{repo_id} lacks {name}") from None
        state["files_done"] += 1
    return config.parent


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's own errors, raised when a download breaks off for good (huggingface_hub >= 1.0 uses
    httpx, 2.x httpx2: their errors are not OSErrors; those of requests, used before, are)."""
    found = []
    for module in ("httpx2", "httpx"):
        error = getattr(sys.modules.get(module), "HTTPError", None)
        if isinstance(error, type) and issubclass(error, BaseException):
            found.append(error)
    return tuple(found)


def _metadata_failure(repo_id: str, name: str, exc: Exception) -> Exception:
    """The error to raise when ``hf_hub_download`` could not get a file's metadata (its cause tells why)."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    cause = exc.__cause__
    status = getattr(getattr(cause, "response", None), "status_code", None)
    if status == 404:  # a plain 404 (no Hub error code, e.g. a mirror): the file is not there
        return FileNotFoundError(name)
    if isinstance(cause, OfflineModeIsEnabled):  # HF_HUB_OFFLINE was set when huggingface_hub was imported
        return ModelNotFoundError(_offline_message(repo_id))
    if status is not None:
        detail = _describe(cause)
    else:
        detail = (f"the Hugging Face Hub could not be reached ({_describe(cause or exc)}); check the network "
                  f"connection and try again")
    return DownloadError(f"downloading {name} from {repo_id} failed: {detail}")


def _describe(exc: BaseException) -> str:
    """A one-line reason (huggingface_hub's HTTP errors span several lines and quote the response body)."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return f"the server answered HTTP {status}" + ("; try again later" if status >= 500 else "")
    return " ".join(str(exc).split()) or type(exc).__name__


def _progress_tqdm(name: str, state: dict, progress: Callable[[DownloadProgress], None] | None,
                   should_stop: Callable[[], bool] | None):
    """A tqdm class that forwards byte counts to ``progress`` and aborts when ``should_stop()``."""
    from tqdm.auto import tqdm

    class _Progress(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = progress is not None or kwargs.get("disable", False)
            super().__init__(*args, **kwargs)
            self._bytes = 0

        def update(self, n=1):
            if should_stop is not None and should_stop():
                raise CancelledError(f"download of {name} cancelled")
            self._bytes += n or 0
            if progress is not None:
                progress(DownloadProgress(name, self._bytes, self.total, state["files_done"], state["files_total"]))
            return super().update(n)

    return _Progress
