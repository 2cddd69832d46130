"""The HTTP guard in front of the prediction API: request ids, auth, body limit, metrics.

A plain ASGI middleware (no per-request Starlette objects, so it costs microseconds):

* every response carries ``X-Request-ID`` (the client's, if valid, else a new uuid4),
  and the id is put into the request headers so the API method logs the same id;
* with a configured token, the prediction and feedback routes need
  ``Authorization: Bearer <token>`` (compared in constant time) or get 401;
* a body that is not ``application/json`` gets 415 whatever its type (BentoML would
  hand a multipart or form body to its form parser, which answers a multipart type
  without a boundary with a 500, and any other type to its JSON parser);
* bodies larger than the limit get 413 before anything parses them, whether the client
  sent a Content-Length or streamed chunks; on ``/predict_batch`` a body that is
  malformed or nested deeper than about 200 levels gets 400 (BentoML's list parser
  would answer it with a 500). The single-row routes are parsed once, by pydantic in
  BentoML, which answers the same bodies with the same 400, so they are not parsed here;
  a body with a Content-Length within the limit is not even buffered here;
* ``/docs.json`` states every answer the API gives (``schema.document_answers``);
* every request is counted and timed by endpoint and status, including the 4xx this
  middleware answers itself and the 404s of unknown routes (labelled ``other`` so a
  scanner cannot blow up the label cardinality); the Open Inference Protocol's routes by
  their template (``/v2/models/{model_name}/infer``), and its infer routes are guarded
  like ``/predict``; any other ``/v2/`` path gets the protocol's JSON 404 (Starlette's
  would be plain text, and its mount cannot route a path parameter holding a newline).
"""

from __future__ import annotations

import hmac
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pydantic_core

from services.metrics import ServiceMetrics
from services.oip import INFER_ROUTES, route_template
from services.rebalance import CLOSE, Rebalancer
from services.schema import REQUEST_ID_PATTERN, document_answers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PROTECTED = frozenset({"/predict", "/predict_batch", "/explain", "/feedback"})
JSON_CHECKED = frozenset({"/predict_batch"})
"""Routes whose body BentoML parses with the unbounded ``json`` module (list inputs)."""
JSON_TYPES = frozenset({"application/json", ""})
"""Request media types the API takes (none declared: BentoML's default, JSON)."""
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
        rebalance_busy: int = 0,
        rebalancer: Rebalancer | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.token = token.encode() if token else None
        self.max_body = max_body_bytes
        self.rebalancer = rebalancer or Rebalancer(rebalance_busy)
        """Counts the worker's requests in flight and their clients (given, when the
        service asks it whether a request is a lone client's) and hands connections back
        when the worker is overloaded."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in KNOWN else route_template(path) or "other"
        started = time.perf_counter()
        status = 500
        headers = list(scope.get("headers", []))
        rid = _header(headers, b"x-request-id")
        if rid is None or not _RID.match(rid):
            given, rid = rid, str(uuid.uuid4())
        else:
            given = None
        rid_header = (b"x-request-id", rid.encode())
        rebalancer = self.rebalancer
        rebalancer.start(scope.get("client"))

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [rid_header, CLOSE] if rebalancer.close_now() else [rid_header]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            if endpoint == "other" and path.startswith("/v2/"):  # the protocol's 404 body
                await _reply(
                    send_wrapper, 404, {"error": "no such Open Inference Protocol route"}, []
                )
                return
            if path in PROTECTED or endpoint in INFER_ROUTES:
                error = self._refuse(headers, given, scope.get("method", "POST"))
                if error is not None:
                    await _reply(send_wrapper, *error)
                    return
                answered, data = await self._read_body(headers, receive, send_wrapper, path)
                if answered:
                    return
                if path in JSON_CHECKED:
                    problem = _json_problem(data or b"")
                    if problem is not None:
                        await _reply(send_wrapper, 400, problem, [])
                        return
                if data is not None:
                    receive = await _replaying(data, receive)
            out: Send = self._documenting(send_wrapper) if path == "/docs.json" else send_wrapper
            headers = [h for h in headers if h[0].lower() != b"x-request-id"] + [rid_header]
            await self.app({**scope, "headers": headers}, receive, out)
        finally:
            rebalancer.finish()
            self.metrics.request(endpoint, status, time.perf_counter() - started)

    def _documenting(self, send: Send) -> Send:
        """Rewrite the OpenAPI document on its way out (see ``document_answers``)."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_doc(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            data = b"".join(chunks)
            if start["status"] == 200:
                doc = document_answers(
                    json.loads(data), PROTECTED | set(INFER_ROUTES), self.token is not None
                )
                data = json.dumps(doc).encode()
            start["headers"] = [
                (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
            ] + [(b"content-length", str(len(data)).encode())]
            await send(start)
            await send({"type": "http.response.body", "body": data})

        return send_doc

    def _refuse(
        self, headers: list[Any], given_rid: str | None, method: str
    ) -> tuple[int, dict[str, Any], list[Any]] | None:
        """401 without a valid token; 415 for a body that is not JSON; 400 for an unusable
        client request id."""
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
        media = (_header(headers, b"content-type") or "").split(";", 1)[0].strip().lower()
        if method == "POST" and media not in JSON_TYPES:
            return (
                415,
                {
                    "error": "unsupported Content-Type; send application/json",
                    "detail": [
                        {
                            "loc": ["header", "Content-Type"],
                            "msg": "must be application/json",
                            "type": "media_type",
                        }
                    ],
                },
                [(b"accept", b"application/json")],
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

    async def _read_body(
        self, headers: list[Any], receive: Receive, send: Send, path: str
    ) -> tuple[bool, bytes | None]:
        """(answered, body): the whole body, or None when the app may read it itself;
        answered is True after a 413.

        A declared Content-Length over the limit is refused before reading; a declared one
        within it is left to the app (the server never delivers more than it declared),
        unless the body must be checked here; a streamed body is counted as it arrives.
        Either way the service never buffers more than the limit.
        """
        length = _header(headers, b"content-length")
        too_large: tuple[int, dict[str, Any], list[Any]] = (
            413,
            {"error": f"request body larger than {self.max_body} bytes"},
            [],
        )
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _reply(send, *too_large)
            return True, None
        if length is not None and path not in JSON_CHECKED:
            return False, None
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
                return True, None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return False, b"".join(chunks)


def _json_problem(body: bytes) -> dict[str, Any] | None:
    """A 400 body when a JSON request is not JSON or nests deeper than ``pydantic_core``
    allows (about 200 levels), else None.

    BentoML parses list inputs (``/predict_batch``) with the standard ``json`` module,
    which answers malformed JSON with a 500 and 100,000 nested brackets with a
    RecursionError (also a 500). Checking here, with the same bounded parser that
    validates the other routes, gives every route the same 400 for the same body; it
    costs a few milliseconds for a 1 MiB batch.
    """
    try:
        pydantic_core.from_json(body or b"null", allow_inf_nan=False)
    except ValueError as exc:
        return {
            "error": "request body is not valid JSON",
            "detail": [{"loc": ["body"], "msg": str(exc)[:200], "type": "json_invalid"}],
        }
    return None


async def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive callable that hands the app the already-read body, then the rest."""
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
