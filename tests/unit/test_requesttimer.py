"""BentoML's request timeout without a timer left alive per request (services/requesttimer.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from bentoml._internal.server.http.traffic import TimeoutMiddleware

from services import requesttimer

requesttimer.install()


async def _answer(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _too_slow(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(10)


def _serve(app: Any, timeout: float) -> tuple[list[dict[str, Any]], list[asyncio.TimerHandle]]:
    """One HTTP request through the middleware: what was sent, and the timers it armed."""
    sent: list[dict[str, Any]] = []
    timers: list[asyncio.TimerHandle] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        arm = loop.call_later

        def call_later(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
            timers.append(arm(delay, callback, *args))
            return timers[-1]

        loop.call_later = call_later  # type: ignore[method-assign]
        await TimeoutMiddleware(app, timeout=timeout)({"type": "http"}, receive, send)

    asyncio.run(main())
    return sent, timers


def test_an_answered_request_leaves_no_timer_armed() -> None:
    sent, timers = _serve(_answer, timeout=30)
    assert [m.get("status") for m in sent[:1]] == [200] and sent[1]["body"] == b"ok"
    assert len(timers) == 1 and timers[0].cancelled()  # BentoML's own left it for 30 s


def test_a_request_past_the_timeout_still_gets_the_504() -> None:
    sent, _ = _serve(_too_slow, timeout=0.05)
    assert sent[0]["status"] == 504
    assert b"Not able to process the request in 0.05 seconds" in sent[1]["body"]


def test_install_is_idempotent() -> None:
    requesttimer.install()
    assert TimeoutMiddleware.__call__ is requesttimer._call
