"""Finding model files: a local folder, the Hugging Face cache, or a download with progress.

A model is named either by a path (a folder or a weight file) or by a Hugging Face repository id.
Repository files are looked up in the standard Hugging Face cache first; only when they are
missing, and only when offline mode is off, are they downloaded (through ``huggingface_hub``, with
byte-level progress and cancellation). ``HF_HUB_OFFLINE=1`` is always respected.

Without network a download fails fast: the Hub is probed first (``PROBE_TIMEOUT_S``), each failed
probe is reported through the progress callback with the delay before the next try, and
``should_stop`` ends the waiting at once. huggingface_hub's own retries (server errors, broken
downloads) are reported the same way, and its log lines are left to the application's logging
instead of being printed to stderr.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from engine.errors import CancelledError, DownloadError, ModelNotFoundError

# An offline desktop app sends nothing it does not have to (huggingface_hub reads this on import).
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

DIA_REPO = "nari-labs/Dia-1.6B-0626"
DIA_V01_REPO = "nari-labs/Dia-1.6B"
DAC_REPO = "descript/dac_44khz"

# What a download of each default repository weighs (the files Dia Studio fetches), for asking first.
DOWNLOAD_BYTES = {DIA_REPO: 6_400_000_000, DAC_REPO: 300_000_000}

PROBE_TIMEOUT_S = 3.0  # how long the Hub has to answer before we say it can't be reached
RETRY_DELAYS_S = (1.0, 2.0)  # waits before the 2nd and 3rd probe (then the download fails)
_STOP_POLL_S = 0.1  # how often a wait checks should_stop


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes of the current file and of the whole download so far, or a retry notice.

    A retry notice has ``retry_in`` set: a try failed because of ``problem`` and retry number ``retry`` (from 1) of
    ``retries`` starts in ``retry_in`` seconds (``retries`` is 0 where the number of retries is not known).
    """

    filename: str
    file_bytes: int
    file_total: int | None
    files_done: int
    files_total: int
    retry_in: float | None = None
    problem: str = ""
    retry: int = 0
    retries: int = 0

    @property
    def text(self) -> str:
        """One line for a status label or a terminal."""
        if self.retry_in is not None:
            count = f" (retry {self.retry} of {self.retries})" if self.retries else ""
            return f"{_sentence_start(self.problem)}: retrying in {self.retry_in:.0f} s…{count}"
        if self.file_total:
            return f"Downloading {self.filename}: {self.file_bytes / 1e6:,.0f} of {self.file_total / 1e6:,.0f} MB"
        return f"Downloading {self.filename}: {self.file_bytes / 1e6:,.0f} MB"


def _sentence_start(text: str) -> str:
    return text[:1].upper() + text[1:]


def hub_cache_dir() -> Path:
    """The Hugging Face cache folder downloads go to (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ~/.cache/...)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_endpoint() -> str:
    """The Hub's address (``$HF_ENDPOINT`` or https://huggingface.co)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` asks for no network access."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "~", ".", "\\")) or (len(spec) > 1 and spec[1] == ":") or spec.count("/") != 1


def resolve_model(spec: str | os.PathLike | None, *, default_repo: str = DIA_REPO, offline: bool | None = None,
                  progress: Callable[[DownloadProgress], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, cache_dir: str | Path | None = None,
                  endpoint: str | None = None) -> Path:
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
    return download_repo(text, progress=progress, should_stop=should_stop, cache_dir=cache_dir, endpoint=endpoint)


# Messages never start with a repo id: a user interface capitalises the first letter ("Nari-labs/...").
def _offline_message(repo_id: str) -> str:
    return (f"the model {repo_id} is not in the Hugging Face cache and offline mode is on: download it once with "
            f"network access (dia-studio download {repo_id}), or point Dia Studio at a folder that holds it")


def _repo_files(repo_id: str, read_json: Callable[[str], dict]) -> list[str]:
    """The files a repository needs for loading (the 0626 repo stores its weights three times).
    Raises ``ModelNotFoundError`` when its shard index is not one Dia Studio can trust."""
    try:
        index = read_json("model.safetensors.index.json")
    except FileNotFoundError:
        return ["config.json", "model.safetensors"]
    except ValueError as exc:  # not JSON (a corrupt or truncated download)
        raise ModelNotFoundError(f"the repository {repo_id} has a model.safetensors.index.json that is not valid "
                                 f"JSON ({exc})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise ModelNotFoundError(f"the repository {repo_id} has a model.safetensors.index.json without a "
                                 f"weight_map of tensor names to shard files")
    for shard in weight_map.values():
        _check_shard_name(repo_id, shard)
    return ["config.json", "model.safetensors.index.json", *sorted(set(weight_map.values()))]


def _check_shard_name(repo_id: str, name: object) -> None:
    """Refuse a shard name the index could use to reach outside the repository: it must be a relative
    POSIX path (no ``..`` or empty parts; no backslash, colon, as in a drive letter, or control
    character) of a ``.safetensors`` file."""
    if not isinstance(name, str):
        problem = f"a shard that is not a file name ({name!r})"
    elif not name.endswith(".safetensors"):
        problem = f"the shard {name!r}, which is not a .safetensors file"
    elif any(c in "\\:" or ord(c) < 32 for c in name) or any(part in ("", ".", "..") for part in name.split("/")):
        # an empty part is a leading slash (an absolute path) or a doubled one
        problem = f"the shard {name!r}, which is not a relative path inside the repository"
    else:
        return
    raise ModelNotFoundError(f"the repository {repo_id} can't be loaded: its model.safetensors.index.json names "
                             f"{problem}")


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
                  should_stop: Callable[[], bool] | None = None, cache_dir: str | Path | None = None,
                  endpoint: str | None = None) -> Path:
    """Download what ``repo_id`` needs into the Hugging Face cache, reporting bytes and retries as they happen.

    Raises ``DownloadError`` within a few seconds when the Hub can't be reached (after ``RETRY_DELAYS_S``),
    ``CancelledError`` as soon as ``should_stop()`` is true.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    if hub_offline():  # checked here too: the probe below would otherwise reach the network
        raise ModelNotFoundError(f"offline mode is on (HF_HUB_OFFLINE is set), so the model {repo_id} can't be "
                                 f"downloaded: unset HF_HUB_OFFLINE to download it, or point Dia Studio at a folder "
                                 f"that holds it")
    _route_hub_logging()
    transport_errors = _transport_errors()
    state = {"files_done": 0, "files_total": 1, "filename": "config.json"}
    _wait_for_hub(f"{endpoint or hub_endpoint()}/{repo_id}/resolve/main/config.json", repo_id, progress, should_stop)

    def fetch(name: str) -> Path:
        tqdm_class = _progress_tqdm(name, state, progress, should_stop)
        state["filename"] = name
        try:
            with _relay_hub_retries(state, progress, should_stop):
                return Path(hf_hub_download(repo_id, name, cache_dir=cache_dir, tqdm_class=tqdm_class,
                                            endpoint=endpoint))
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
        raise ModelNotFoundError(f"the repository {repo_id} has no config.json: it is not a model Dia Studio can "
                                 f"load") from None
    files = _repo_files(repo_id, lambda name: json.loads(fetch(name).read_text(encoding="utf-8")))
    state["files_total"] = len(files)
    for name in files:
        try:
            fetch(name)
        except FileNotFoundError:
            raise ModelNotFoundError(f"the repository {repo_id} lacks {name}") from None
        state["files_done"] += 1
    return config.parent


# -- reaching the Hub


def _wait_for_hub(url: str, repo_id: str, progress: Callable[[DownloadProgress], None] | None,
                  should_stop: Callable[[], bool] | None) -> None:
    """Return once the server at ``url`` answers; report each failed try and wait ``RETRY_DELAYS_S`` between
    them; raise ``DownloadError`` after the last one."""
    for retry, delay in enumerate((*RETRY_DELAYS_S, None), start=1):
        _check_stop(repo_id, should_stop)
        problem = _probe_in_thread(url, PROBE_TIMEOUT_S, should_stop, repo_id)
        if problem is None:
            return
        if delay is None:
            raise DownloadError(
                f"can't download {repo_id} (config.json): the Hugging Face Hub could not be reached at "
                f"{_origin(url)} ({problem}); check the network connection and try again, or copy the model "
                f"folder from a computer that has it and point Dia Studio at that folder")
        if progress is not None:
            progress(DownloadProgress("config.json", 0, None, 0, 1, retry_in=delay,
                                      problem=f"can't reach the Hugging Face Hub ({problem})",
                                      retry=retry, retries=len(RETRY_DELAYS_S)))
        _wait(delay, repo_id, should_stop)


def _probe_in_thread(url: str, timeout: float, should_stop: Callable[[], bool] | None, repo_id: str) -> str | None:
    """``_probe(url)`` bounded by ``timeout`` even where the resolver hangs (name lookups ignore socket timeouts)."""
    outcome: list[str | None] = []
    worker = threading.Thread(target=lambda: outcome.append(_probe(url, timeout)), name="hub-probe", daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout + 0.5  # the probe's own timeout fires first; this is a backstop
    while worker.is_alive() and time.monotonic() < deadline:
        _check_stop(repo_id, should_stop)
        worker.join(_STOP_POLL_S)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect is an answer: that is all the probe needs
        return None


def _probe(url: str, timeout: float) -> str | None:
    """None when a server at ``url`` answers anything; otherwise why nothing answered."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, method="HEAD", headers={"User-Agent": "dia-studio"}),
                         timeout=timeout):
            return None
    except urllib.error.HTTPError:  # any status, error or not: the Hub is there and huggingface_hub handles it
        return None
    except urllib.error.URLError as exc:
        return _network_problem(exc.reason, timeout, url)
    except OSError as exc:  # timeouts, resets and closed connections while waiting for the answer
        return _network_problem(exc, timeout, url)
    except http.client.HTTPException:  # something answered, if oddly: huggingface_hub will say what is wrong
        return None


def _network_problem(reason: object, timeout: float, url: str) -> str | None:
    """Words for why a connection failed; None for TLS errors (a server did answer: let huggingface_hub say more)."""
    import ssl

    if isinstance(reason, (ssl.SSLError, ssl.CertificateError)):
        return None
    if isinstance(reason, socket.gaierror):
        return f"{urlsplit(url).hostname} can't be looked up: is there a network connection?"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    return " ".join(str(reason).split()) or type(reason).__name__


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _check_stop(repo_id: str, should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise CancelledError(f"download of {repo_id} cancelled")


def _wait(seconds: float, repo_id: str, should_stop: Callable[[], bool] | None) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        _check_stop(repo_id, should_stop)
        time.sleep(min(_STOP_POLL_S, left))
    _check_stop(repo_id, should_stop)


# -- huggingface_hub's own retries and log lines

_HUB_LOGGER = "huggingface_hub"
_RETRY_LINE = re.compile(r"Retrying in ([\d.]+)s \[Retry (\d+)/(\d+)\]")
_HTTP_ERROR_LINE = re.compile(r"HTTP Error (\d+) thrown while requesting")
_EXCEPTION_LINE = re.compile(r"^'(.*)' thrown while requesting", re.DOTALL)
_RESUME_LINE = "Trying to resume download"
_RESUME_DELAY_S = 1.0  # huggingface_hub waits this long before resuming a broken download


def _route_hub_logging() -> None:
    """Send huggingface_hub's log lines to the application's logging only (a log file; the terminal with
    ``--verbose``): it installs its own stderr handler, which printed every retry to the user's terminal."""
    logger = logging.getLogger(_HUB_LOGGER)
    for handler in list(logger.handlers):
        if type(handler) is logging.StreamHandler and handler.stream in (sys.stderr, sys.__stderr__):
            logger.removeHandler(handler)


class _RetryRelay(logging.Handler):
    """Turns huggingface_hub's retry log lines (this thread's only) into retry notices; stops them on request.

    huggingface_hub has no retry callback: its log lines are the only signal. Raising ``CancelledError`` here
    (before it sleeps) is what makes its backoff stoppable. Lines it changes wording of are simply not relayed.
    """

    def __init__(self, state: dict, progress: Callable[[DownloadProgress], None] | None,
                 should_stop: Callable[[], bool] | None) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.state, self.progress, self.should_stop = state, progress, should_stop
        self.problem = "the Hugging Face Hub did not answer"

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        message = record.getMessage()
        if found := _HTTP_ERROR_LINE.search(message):
            self.problem = f"the Hugging Face Hub answered HTTP {found.group(1)}"
        elif found := _EXCEPTION_LINE.search(message):
            self.problem = f"the Hugging Face Hub did not answer ({' '.join(found.group(1).split())})"
        elif found := _RETRY_LINE.search(message):
            self._notice(float(found.group(1)), int(found.group(2)), int(found.group(3)), self.problem)
        elif _RESUME_LINE in message:
            self._notice(_RESUME_DELAY_S, 0, 0, "the download broke off")

    def _notice(self, delay: float, retry: int, retries: int, problem: str) -> None:
        name = self.state["filename"]
        if self.should_stop is not None and self.should_stop():
            raise CancelledError(f"download of {name} cancelled")
        if self.progress is not None:
            self.progress(DownloadProgress(name, 0, None, self.state["files_done"], self.state["files_total"],
                                           retry_in=delay, problem=problem, retry=retry, retries=retries))


@contextmanager
def _relay_hub_retries(state: dict, progress: Callable[[DownloadProgress], None] | None,
                       should_stop: Callable[[], bool] | None) -> Iterator[None]:
    relay = _RetryRelay(state, progress, should_stop)
    logger = logging.getLogger(_HUB_LOGGER)
    logger.addHandler(relay)
    try:
        yield
    finally:
        logger.removeHandler(relay)


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
