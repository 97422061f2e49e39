"""The guard in front of every route: the Host rule, the bearer token and the body limits.

- Loopback-only servers answer only requests addressed to this computer (``Host: 127.0.0.1``,
  ``localhost``, ``[::1]``): a web page can't reach them through DNS rebinding.
- Every path but ``/health`` needs ``Authorization: Bearer <token>``, compared in constant time.
- Bodies are read here, up to their limit (JSON 1 MB, an upload 10 MB plus its form), before any
  route sees them: a larger one is answered 413 without being stored.
"""

from __future__ import annotations

import hmac
import json

from engine.server.config import (
    MAX_JSON_BYTES,
    MAX_UPLOAD_BYTES,
    MULTIPART_OVERHEAD_BYTES,
    is_loopback,
)
from engine.server.errors import ApiError

OPEN_PATHS = frozenset({"/health"})
UPLOAD_PATHS = frozenset({"/v1/voice/samples"})


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def host_of(header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8765`` → ``::1``)."""
    header = header.strip()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def body_limit(method: str, path: str) -> int:
    if method == "POST" and path.rstrip("/") in UPLOAD_PATHS:
        return MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES
    return MAX_JSON_BYTES


def too_large(limit: int) -> ApiError:
    what = "an upload" if limit > MAX_JSON_BYTES else "a JSON body"
    return ApiError("request_too_large", f"the request is larger than {limit // 1024} KB, the limit for {what}")


class Guard:
    """ASGI middleware applying the Host rule, the token and the body limits."""

    def __init__(self, app, *, token: str, loopback_only: bool) -> None:
        self.app = app
        self.token = token.encode("utf-8")
        self.loopback_only = loopback_only

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._check(scope)
        if problem is not None:
            await _reply(send, problem)
            return
        limit = body_limit(scope["method"], scope["path"])
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await _reply(send, too_large(limit))
            return
        messages, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                messages.append(message)
                break
            size += len(message.get("body", b""))
            if size > limit:
                await _reply(send, too_large(limit))
                return
            messages.append(message)
            if not message.get("more_body", False):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def _check(self, scope) -> ApiError | None:
        if self.loopback_only:
            host = _header(scope, b"host")
            if host is not None and not is_loopback(host_of(host)):
                return ApiError("invalid_host", "this server only answers requests addressed to this computer "
                                                "(127.0.0.1 or localhost); start it with --allow-remote to "
                                                "serve other computers")
        if scope["path"] in OPEN_PATHS:
            return None
        given = _header(scope, b"authorization") or ""
        scheme, _, credentials = given.strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode("utf-8"), self.token):
            return ApiError("unauthorized", "a valid API token is required: send 'Authorization: Bearer <token>' "
                                            "(dia-studio serve prints the token)",
                            headers={"WWW-Authenticate": "Bearer"})
        return None


async def _reply(send, error: ApiError) -> None:
    body = json.dumps(error.body()).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
