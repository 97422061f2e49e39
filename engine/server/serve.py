"""``dia-studio serve``: load the model once and answer the API on this computer.

``register(subparsers, add_engine_options)`` adds the subcommand; ``engine.cli`` passes in its own
``--model/--codec/--dtype/--device/--quantize/--offline`` option builder so both commands take the
same engine options.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable

from engine import PARAM_SPECS, EngineOptions, GenerationParams
from engine.server.config import (
    DEFAULT_HOST,
    DEFAULT_MAX_INPUT_CHARS,
    DEFAULT_PORT,
    DEFAULT_QUEUE_SIZE,
    ServerConfig,
    bind_socket,
    is_loopback,
    resolve_token,
)


def register(subparsers, add_engine_options: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """Add ``serve`` to the ``dia-studio`` parser."""
    p = subparsers.add_parser(
        "serve", help="run the local API server (OpenAI-compatible /v1/audio/speech, /v1/voice/generations)",
        description="Serve Dia over HTTP on this computer: POST /v1/voice/generations, POST /v1/audio/speech "
                    "(OpenAI's SDKs work unchanged), the voice library under /v1/voice/samples, the history "
                    "under /v1/history. Every endpoint but /health needs the printed bearer token.")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}; anything "
                                                        "but loopback needs --allow-remote)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--token", help="the API token (default: $DIA_STUDIO_API_TOKEN, else one generated once and "
                                   "kept in the data folder, readable only by you)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --host that other computers can reach (keep the token secret)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="let web pages from ORIGIN (e.g. http://localhost:3000) call the API; repeatable")
    p.add_argument("--queue-size", type=int, default=DEFAULT_QUEUE_SIZE,
                   help=f"requests that may wait for the model; more get 429 (default {DEFAULT_QUEUE_SIZE})")
    p.add_argument("--max-input-chars", type=int, default=DEFAULT_MAX_INPUT_CHARS,
                   help=f"longest input accepted, in characters (default {DEFAULT_MAX_INPUT_CHARS}); longer is 413")
    p.add_argument("--stt-model", metavar="MODEL",
                   help="the Whisper model that fills in the transcript of a voice uploaded without one: a size "
                        "(base.en, small …), a Hugging Face repo id or a folder, never downloaded here; 'off' "
                        "never transcribes (default: base.en from the Hugging Face cache; needs pip install "
                        "'dia-studio[stt]')")
    add_engine_options(p)
    for name, spec in PARAM_SPECS.items():
        p.add_argument("--" + name.replace("_", "-"), type=int if spec.is_integer else float, default=None,
                       help=f"default {name} for requests that don't set it ({spec.minimum}–{spec.maximum}, "
                            f"default {spec.default})")
    p.set_defaults(handler=cmd_serve)
    return p


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _transcriber(model: str | None):
    """Whisper for uploads without a transcript (``engine.optional_transcriber``), with a warning when
    ``--stt-model`` names one that can't run without faster-whisper."""
    import engine

    if model and model != engine.STT_OFF and not engine.stt_available():
        print("warning: --stt-model needs faster-whisper (pip install 'dia-studio[stt]'); uploads without a "
              "transcript keep none", file=sys.stderr)
    return engine.optional_transcriber(model)


def cmd_serve(args) -> int:
    import uvicorn

    from engine import RenderHistory, VoiceLibrary
    from engine.server.app import create_app
    from engine.server.backend import EngineBackend

    overrides = {name: getattr(args, name) for name in PARAM_SPECS if getattr(args, name) is not None}
    defaults = GenerationParams.from_dict(overrides)
    token, source = resolve_token(args.token)
    config = ServerConfig(token=token, host=args.host, port=args.port, allow_remote=args.allow_remote,
                          cors_origins=tuple(args.cors_origin), queue_size=args.queue_size,
                          max_input_chars=args.max_input_chars)
    if not is_loopback(config.host):
        print(f"warning: listening on {config.host}: other computers can reach this server; anyone with the token "
              "can render and change your voice library", file=sys.stderr)
    sock = bind_socket(config.host, config.port)
    options = EngineOptions(model=args.model, codec=args.codec, device=args.device, dtype=args.dtype,
                            quantize=args.quantize, offline=True if args.offline else None)
    backend = EngineBackend(options)
    print("Loading the model…", file=sys.stderr, flush=True)
    backend.load()
    with VoiceLibrary() as library, RenderHistory() as history:
        app = create_app(config, backend, library=library, history=history, defaults=defaults,
                         transcriber=_transcriber(args.stt_model))
        verbose = getattr(args, "verbose", False)
        server = uvicorn.Server(uvicorn.Config(app, log_level="info" if verbose else "warning",
                                               access_log=verbose, server_header=False))
        url = _url(sock)
        print(f"Dia Studio API: {url}/v1  (model {backend.model_id})", flush=True)
        print(f"Token ({source}): {token}", flush=True)
        print(f"Try: curl -H 'Authorization: Bearer <token>' {url}/v1/models", flush=True)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn shut down cleanly, then passed Ctrl-C on
            pass
        finally:
            sock.close()
    print("Server stopped.", file=sys.stderr)
    return 0


__all__ = ["cmd_serve", "register"]
