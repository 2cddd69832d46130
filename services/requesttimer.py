"""The request timeout (``traffic.timeout``) without a timer left behind per request.

BentoML's ``TimeoutMiddleware`` (bentoml 1.4) arms ``loop.call_later(timeout, ...)`` for
every request and never cancels it, so each answered request leaves a timer handle, a
future, a bound method and a context alive for the whole timeout. With the service's
30 s and 750 req/s per worker that was about 22,000 live timers and 135,000 objects per
worker (found with ``gc.get_objects`` under the load benchmark, issue 15), and every
full garbage collection walked them: 50-110 ms with the GIL held, every two seconds,
which was the /predict p99 of the realistic mix at 1,500 req/s.

:func:`install` replaces the middleware's ``__call__`` with the same logic that cancels
its timer once the request is answered: the same 504 when the timeout passes first, the
same answer otherwise.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bentoml._internal.server.http.traffic import TimeoutMiddleware
from starlette.responses import JSONResponse


async def _call(self: TimeoutMiddleware, scope: Any, receive: Any, send: Any) -> None:
    """``TimeoutMiddleware.__call__`` as BentoML wrote it, plus the timer's cancel."""
    if scope["type"] not in ("http", "websocket"):
        return await self.app(scope, receive, send)
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

    async def _send(message: Any) -> None:
        if not waiter.done():
            waiter.set_result(None)
        await send(message)

    fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
    try:
        await waiter
    except TimeoutError:
        if fut.cancel():
            body = {"error": f"Not able to process the request in {self.timeout} seconds"}
            await JSONResponse(body, status_code=504)(scope, receive, send)
    else:
        await fut  # the response is under way: let it finish
    finally:
        timer.cancel()  # frees the handle, the waiter and the context at once
    return None


def install() -> None:
    """Use :func:`_call` for every ``TimeoutMiddleware`` BentoML builds (idempotent)."""
    TimeoutMiddleware.__call__ = _call  # type: ignore[method-assign]
