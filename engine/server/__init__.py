"""The local API server: seed 000's ``POST /v1/voice/generations``, OpenAI's ``POST /v1/audio/speech``,
the voice library and the render history over HTTP, for scripts, other tools and remote clients.

Built on FastAPI (request models, an OpenAPI document for free, typed errors) and uvicorn (a
well-kept ASGI server that streams responses). One model, one queue: ``create_app(config,
backend)`` takes a ``RenderBackend`` that renders one request at a time; ``dia-studio serve``
gives it an ``EngineBackend`` that owns a ``DiaEngine``, the desktop app one that posts to its own
render worker; the app, the self-test and the tests serve it from a thread with ``BackgroundServer``.
Like the app and the CLI, it uses only the names ``engine`` exports.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "engine.server.app": ["create_app"],
    "engine.server.background": ["BackgroundServer", "ServerStartError"],
    "engine.server.backend": ["EngineBackend", "EngineRunner", "RenderBackend", "model_id_for", "precision_for"],
    "engine.server.config": ["DEFAULT_PORT", "ServerConfig", "bind_socket", "is_loopback", "resolve_token"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = ["DEFAULT_PORT", "BackgroundServer", "EngineBackend", "EngineRunner", "RenderBackend", "ServerConfig",
           "ServerStartError", "bind_socket", "create_app", "is_loopback", "model_id_for", "precision_for", "resolve_token"]


def __getattr__(name: str):
    """Load lazily: ``dia-studio``'s argument parser imports ``serve`` without FastAPI."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.server' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
