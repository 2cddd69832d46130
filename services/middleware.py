"""The HTTP guard in front of the prediction API: request ids, auth, body limit, metrics.

A plain ASGI middleware (no per-request Starlette objects, so it costs microseconds):

* every response carries ``X-Request-ID`` (the client's, if valid, else a new uuid4),
  and the id is put into the request headers so the API method logs the same id;
* with a configured token, the prediction and feedback routes need
  ``Authorization: Bearer <token>`` (compared in constant time) or get 401;
* bodies larger than the limit get 413 before anything parses them, whether the client
  sent a Content-Length or streamed chunks;
* every request is counted and timed by endpoint and status, including the 4xx this
  middleware answers itself and the 404s of unknown routes (labelled ``other`` so a
  scanner cannot blow up the label cardinality).
"""

from __future__ import annotations

import hmac
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from services.metrics import ServiceMetrics
from services.schema import REQUEST_ID_PATTERN

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PROTECTED = frozenset({"/predict", "/predict_batch", "/feedback"})
KNOWN = PROTECTED | {"/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/", "/schema.json"}
_RID = re.compile(REQUEST_ID_PATTERN)


class BodyTooLarge(Exception):
    """Raised while buffering a chunked body that outgrows the limit."""


async def _reply(send: Send, status: int, body: dict[str, Any], headers: list[Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class GuardMiddleware:
    """See the module docstring; options come from ``Settings`` via ``add_asgi_middleware``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ServiceMetrics,
        token: str | None,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.token = token.encode() if token else None
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in KNOWN else "other"
        started = time.perf_counter()
        status = 500
        headers = list(scope.get("headers", []))
        rid = _header(headers, b"x-request-id")
        if rid is None or not _RID.match(rid):
            given, rid = rid, str(uuid.uuid4())
        else:
            given = None
        rid_header = (b"x-request-id", rid.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        try:
            if path in PROTECTED:
                error = self._refuse(headers, given)
                if error is not None:
                    code, body, extra = error
                    await _reply(send_wrapper, code, body, extra)
                    return
                limited = await self._limit_body(headers, receive, send_wrapper)
                if limited is None:
                    return
                receive = limited
            headers = [h for h in headers if h[0].lower() != b"x-request-id"] + [rid_header]
            await self.app({**scope, "headers": headers}, receive, send_wrapper)
        finally:
            self.metrics.request(endpoint, status, time.perf_counter() - started)

    def _refuse(
        self, headers: list[Any], given_rid: str | None
    ) -> tuple[int, dict[str, Any], list[Any]] | None:
        """401 without a valid token; 400 for an unusable client request id."""
        if self.token is not None:
            auth = _header(headers, b"authorization") or ""
            scheme, _, cred = auth.partition(" ")
            ok = scheme.lower() == "bearer" and hmac.compare_digest(
                cred.strip().encode(), self.token
            )
            if not ok:
                return (
                    401,
                    {"error": "missing or invalid bearer token"},
                    [(b"www-authenticate", b'Bearer realm="shipway"')],
                )
        if given_rid is not None:
            return (
                400,
                {
                    "error": "invalid X-Request-ID",
                    "detail": [
                        {
                            "loc": ["header", "X-Request-ID"],
                            "msg": f"must match {REQUEST_ID_PATTERN}",
                            "type": "value_error",
                        }
                    ],
                },
                [],
            )
        return None

    async def _limit_body(self, headers: list[Any], receive: Receive, send: Send) -> Receive | None:
        """Refuse oversize bodies with 413; a body without Content-Length is read (up to the
        limit) and replayed, so a streamed body cannot sneak past the limit."""
        length = _header(headers, b"content-length")
        too_large: tuple[int, dict[str, Any], list[Any]] = (
            413,
            {"error": f"request body larger than {self.max_body} bytes"},
            [],
        )
        if length is not None:
            if not length.isdigit() or int(length) > self.max_body:
                await _reply(send, *too_large)
                return None
            return receive
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _reply(send, *too_large)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay


def _header(headers: list[Any], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None
