"""The server's settings and limits, the API token, and the bind-address rule."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass

from engine import InvalidParameterError, StorageError, atomic_write_text, data_dir

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_QUEUE_SIZE = 8
DEFAULT_MAX_INPUT_CHARS = 20_000
"""About 20 minutes of speech at the engine's ~14 characters per second."""
MAX_JSON_BYTES = 1 << 20
MAX_UPLOAD_BYTES = 10 * (1 << 20)
MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Room for the form's other fields and boundaries on top of an upload's 10 MB."""

TOKEN_ENV = "DIA_STUDIO_API_TOKEN"
TOKEN_FILE = "api-token"
MIN_TOKEN_CHARS = 16

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True)
class ServerConfig:
    """How the API server listens and what it accepts. ``token`` is required on every endpoint
    but ``/health``."""

    token: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    allow_remote: bool = False
    cors_origins: tuple[str, ...] = ()
    queue_size: int = DEFAULT_QUEUE_SIZE
    max_input_chars: int = DEFAULT_MAX_INPUT_CHARS

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or len(self.token) < MIN_TOKEN_CHARS:
            raise InvalidParameterError(f"the API token must have at least {MIN_TOKEN_CHARS} characters")
        if not 0 <= self.port <= 65535:
            raise InvalidParameterError(f"--port must be between 0 and 65535 (got {self.port})")
        if self.queue_size < 1:
            raise InvalidParameterError(f"--queue-size must be at least 1 (got {self.queue_size})")
        if self.max_input_chars < 1:
            raise InvalidParameterError(f"--max-input-chars must be at least 1 (got {self.max_input_chars})")
        if not is_loopback(self.host) and not self.allow_remote:
            raise InvalidParameterError(
                f"--host {self.host} would let other computers reach the server; add --allow-remote if you "
                "mean it (keep the token secret), or leave --host at 127.0.0.1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only accepts connections from this computer."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def resolve_token(explicit: str | None) -> tuple[str, str]:
    """The API token and where it came from: ``--token``, else ``DIA_STUDIO_API_TOKEN``, else the one
    stored in the data folder (generated and stored, owner-only, on first use)."""
    if explicit:
        return explicit, "--token"
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return from_env, TOKEN_ENV
    return stored_token(), "stored"


def stored_token() -> str:
    """The token kept in ``<data dir>/api-token`` (0600); generated on first use."""
    path = data_dir() / TOKEN_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise StorageError(f"cannot read the stored API token ({exc.strerror or exc}); pass --token or set "
                           f"{TOKEN_ENV}") from None
    if len(text) >= MIN_TOKEN_CHARS:
        return text
    token = secrets.token_urlsafe(32)
    try:
        atomic_write_text(path, token + "\n", private=True)
    except OSError as exc:
        raise StorageError(f"cannot store the API token in the data folder ({exc.strerror or exc}); pass "
                           f"--token or set {TOKEN_ENV}") from None
    return token


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening, non-blocking socket on ``host:port`` (``port`` 0: any free one), bound before uvicorn
    starts so the URL shown has the real port; ``invalid_parameter`` if it can't be had."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise InvalidParameterError(f"Can't listen on {host}:{port} ({exc.strerror or exc}): another program may "
                                    "be using it. Choose another port (0 picks any free one).") from None
    sock.setblocking(False)
    return sock
