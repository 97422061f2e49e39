"""What renders the server's requests: a ``RenderBackend``.

The server never touches a model itself. It hands each request, one at a time and in order, to a
backend from its single queue thread. ``EngineBackend`` (``dia-studio serve``) owns a
``DiaEngine``; the desktop app gives the server a backend that posts the request to its own render
worker and blocks until it is done, so the app and the API share one model in memory.

A script longer than one render goes through the episode engine, which needs the engine itself
(many renders, voices encoded once): a backend that can lend it is an ``EngineRunner``. Without
that, long scripts are refused with ``request_too_large``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from engine import (
    DIA_REPO,
    AudioChunk,
    DiaEngine,
    DiaStudioError,
    EngineOptions,
    EpisodeProgress,
    LoadProgress,
    RenderRequest,
    RenderResult,
    pick_device,
    pick_dtype,
)

WEIGHT_SUFFIXES = (".pth", ".bin", ".safetensors", ".pt")
DTYPE_TAGS = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
"""How ``precision_for`` names the transformer's dtype."""
T = TypeVar("T")
Report = Callable[[EpisodeProgress], None]


@runtime_checkable
class RenderBackend(Protocol):
    """Renders one request at a time; called only from the server's queue thread."""

    @property
    def model_id(self) -> str:
        """The id ``GET /v1/models`` lists for the loaded model (``model_id_for``)."""
        ...

    @property
    def precision(self) -> str:
        """How that model runs (``precision_for``): the model card and ``/health`` report it."""
        ...

    def render(self, request: RenderRequest, *, on_audio: Callable[[AudioChunk], None] | None,
               should_stop: Callable[[], bool]) -> RenderResult:
        """Render ``request``; ``on_audio`` gets chunks while it runs, ``should_stop`` cancels it
        (raising the engine's ``CancelledError``). Raises the engine's typed errors."""
        ...


@runtime_checkable
class EngineRunner(Protocol):
    """A backend that can also lend its loaded engine, where its renders run."""

    def with_engine(self, work: Callable[[DiaEngine, Report], T]) -> T:
        """Run ``work(engine, report)`` with the loaded ``DiaEngine`` on the thread that owns it and
        return its result (called only from the server's queue thread, so it holds the one queue
        slot). The work tells ``report`` how far it is (a long script's blocks), for a runner that
        shows it, as the desktop app's Queue does."""
        ...


def model_id_for(options: EngineOptions) -> str:
    """The id the server lists for the model ``options`` load: the repo's or folder's name (a weight
    file's folder), lower-case, e.g. ``dia-1.6b-0626``. It stays the same whatever the precision
    (``precision_for``), so API clients and remote episodes that name it keep working."""
    return _model_name(options.model)


def precision_for(options: EngineOptions, dtype: str | None = None) -> str:
    """How the model runs, as the server reports it beside the id: ``<dtype>[-<quantisation>]``, e.g.
    ``bf16``, ``fp32-int8``, ``bf16-int4``. The dtype (fp32, bf16, fp16) is ``dtype`` (the name a
    loaded model has, e.g. ``torch.bfloat16``), else the options' with ``auto`` resolved for this
    machine; the quantisation is the options' (none: exact weights)."""
    tag = _dtype_name(options) if dtype is None else dtype.replace("torch.", "")
    return "-".join([DTYPE_TAGS.get(tag, tag), *([options.quantize] if options.quantize else [])])


def _model_name(spec: str | None) -> str:
    text = (spec or DIA_REPO).rstrip("/\\")
    path = Path(text)
    name = path.parent.name if path.suffix.lower() in WEIGHT_SUFFIXES and path.parent.name else path.name
    return (name or "dia").lower()


def _dtype_name(options: EngineOptions) -> str:
    """The dtype ``options`` load the transformer in (``auto`` as this machine resolves it)."""
    preference = (options.dtype or "auto").lower()
    if preference != "auto":
        return preference
    try:
        return str(pick_dtype(preference, pick_device(options.device))).replace("torch.", "")
    except DiaStudioError:  # a device this machine lacks: loading will say so
        return preference


class EngineBackend:
    """A backend that owns one ``DiaEngine`` (loaded on first use, or by ``load``)."""

    def __init__(self, options: EngineOptions, engine: DiaEngine | None = None) -> None:
        self.options = options
        self.engine = engine

    @property
    def model_id(self) -> str:
        return model_id_for(self.options)

    @property
    def precision(self) -> str:
        """``precision_for`` the options, with the dtype the model loaded in once it is loaded."""
        loaded = None if self.engine is None else str(self.engine.model.dtype)
        return precision_for(self.options, loaded)

    def load(self, on_progress: Callable[[LoadProgress], None] | None = None) -> DiaEngine:
        """Load the model and codec now (typed errors if they can't be)."""
        if self.engine is None:
            self.engine = DiaEngine.load(self.options, on_progress=on_progress)
        return self.engine

    def render(self, request: RenderRequest, *, on_audio: Callable[[AudioChunk], None] | None,
               should_stop: Callable[[], bool]) -> RenderResult:
        return self.load().render(request, on_audio=on_audio, should_stop=should_stop)

    def with_engine(self, work: Callable[[DiaEngine, Report], T]) -> T:
        return work(self.load(), _ignore)


def _ignore(_progress: EpisodeProgress) -> None:
    """A runner that shows no progress."""
