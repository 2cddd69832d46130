"""An overloaded worker hands keep-alive connections back (``Connection: close``), at most
one per interval, never while it is not overloaded, never with the rebalancer off; the
request itself is answered normally."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from services.metrics import ServiceMetrics
from services.middleware import GuardMiddleware
from services.rebalance import Rebalancer
from shipway.core.settings import Settings
from shipway.core.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]


def test_sheds_only_while_busy_and_at_most_once_per_interval() -> None:
    r = Rebalancer(busy=2, every_seconds=0.1)
    for _ in range(2):
        r.start()
    assert not r.close_now(now=10.0)  # 2 in flight: not more than busy
    r.start()
    assert r.close_now(now=10.0)
    assert not r.close_now(now=10.05)  # within the interval
    assert r.close_now(now=10.2)
    for _ in range(2):
        r.finish()
    assert not r.close_now(now=11.0) and r.closed == 2


def test_a_lone_client_is_alone_and_a_second_connection_makes_a_crowd() -> None:
    r = Rebalancer(busy=0, quiet_seconds=0.05)
    one, two = ("10.0.0.1", 5001), ("10.0.0.1", 5002)
    r.start(one)  # a new connection: crowded for the quiet time, to be sure
    assert not r.alone()
    r.finish()
    time.sleep(0.06)
    r.start(one)
    assert r.alone()  # the same connection again, nothing else in flight
    r.finish()
    r.start(two)  # another connection within the quiet time: a crowd
    assert not r.alone()
    r.start(two)
    r.finish()
    assert not r.alone()  # two in flight even after one finished: still crowded
    r.finish()
    time.sleep(0.06)
    r.start(two)
    assert r.alone()
    r.start(one)
    assert not r.alone()  # two in flight


def test_off_never_sheds() -> None:
    r = Rebalancer(busy=0)
    for _ in range(100):
        r.start()
    assert not r.close_now(now=1.0) and r.closed == 0


def test_default_is_on_at_sixteen() -> None:
    assert Settings().rebalance_inflight == 16


def test_guard_closes_a_connection_of_an_overloaded_worker() -> None:
    spec = load_spec(ROOT / "usecases" / "hotel_rates" / "usecase.yaml")
    gate = asyncio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = GuardMiddleware(
        slow,
        metrics=ServiceMetrics(spec, CollectorRegistry()),
        token=None,
        max_body_bytes=100,
        rebalance_busy=2,
    )

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            calls = [asyncio.create_task(client.get("/livez")) for _ in range(4)]
            while app.rebalancer.inflight < 4:
                await asyncio.sleep(0.01)
            gate.set()
            return await asyncio.gather(*calls)

    answers = asyncio.run(main())
    assert all(a.status_code == 200 and a.text == "ok" for a in answers)
    closing = [a for a in answers if a.headers.get("connection") == "close"]
    assert len(closing) == 1 and app.rebalancer.inflight == 0
