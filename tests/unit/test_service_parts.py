"""Fast checks of the serving parts that need no server: types, routing, policy, batching,
the HTTP guard and the metric contract."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import ValidationError

from services.batcher import Coalescer
from services.metrics import ServiceMetrics, gauges_text
from services.middleware import GuardMiddleware
from services.models import ModelSet, ServedModel, bucket, route
from services.schema import api_types
from services.scoring import decide, fill_missing
from shipway.core.spec import Task, UseCaseSpec, load_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    return load_spec(ROOT / "usecases" / "hotel_rates" / "usecase.yaml")


def _row(spec: UseCaseSpec) -> dict[str, Any]:
    row: dict[str, Any] = {"agent": "a", "country": "prt"}
    row.update({c.name: c.example for c in spec.request_fields})
    return row


def test_request_model_comes_from_the_spec(spec: UseCaseSpec) -> None:
    types = api_types(spec)
    ok = types.row.model_validate(_row(spec))
    assert ok.model_dump()["lead_time"] == 120
    schema = types.row.model_json_schema()
    assert set(schema["required"]) == {"agent", "country", *spec.request_field_names}
    assert schema["properties"]["meal"]["enum"] == next(
        c.allowed for c in spec.request_fields if c.name == "meal"
    )
    assert schema["properties"]["lead_time"]["maximum"] == 1000
    with pytest.raises(ValidationError) as err:
        types.row.model_validate({**_row(spec), "lead_time": 1001, "meal": "x", "extra": 1})
    assert {e["loc"][0] for e in err.value.errors()} == {"lead_time", "meal", "extra"}
    with pytest.raises(ValidationError):
        types.row.model_validate({**_row(spec), "historical_adr": float("nan")})


def test_split_is_deterministic_and_proportional() -> None:
    champ = ServedModel("m", "1", "champion", None, 0.0)
    chall = ServedModel("m", "2", "challenger", None, 0.0)
    both = ModelSet(champ, chall)
    keys = [[f"agent{i}", "prt"] for i in range(4000)]
    first = [route("split", 20.0, both, k) for k in keys]
    assert first == [route("split", 20.0, both, k) for k in keys]  # stable across calls
    share = first.count("challenger") / len(first)
    assert 0.17 < share < 0.23
    assert bucket(["a", "b"]) == bucket(["a", "b"]) != bucket(["ab", ""])  # separator matters
    assert {route("shadow", 50.0, both, k) for k in keys} == {"champion"}
    assert {route("split", 100.0, ModelSet(champ), k) for k in keys} == {"champion"}


def test_missing_policy_fills_declared_defaults(spec: UseCaseSpec) -> None:
    data: dict[str, list[Any]] = {
        "agent_adr_mean_90d": [150.0, None],
        "agent_bookings_90d": [3.0, None],
        "agent_bookings_365d": [9.0, float("nan")],
        "agent_lead_time_mean_90d": [20.0, None],
        "country_adr_mean_90d": [None, 99.0],  # country_bookings_90d absent altogether
    }
    missing, per_entity = fill_missing(spec, data, 2)
    assert missing == [
        ["country_adr_mean_90d", "country_bookings_90d"],
        [
            "agent_adr_mean_90d",
            "agent_bookings_90d",
            "agent_bookings_365d",
            "agent_lead_time_mean_90d",
            "country_bookings_90d",
        ],
    ]
    assert per_entity == {"agent": 1, "country": 2}
    assert data["agent_adr_mean_90d"] == [150.0, 104.9]  # the spec's declared default
    assert data["agent_bookings_365d"] == [9.0, 0.0]
    assert data["country_adr_mean_90d"] == [104.9, 99.0]
    assert data["country_bookings_90d"] == [0.0, 0.0]


def test_decide_is_classification_only(spec: UseCaseSpec) -> None:
    assert decide(spec, 0.9) == (None, None)
    clf = spec.model_copy(
        update={
            "target": spec.target.model_copy(
                update={"task": Task.binary_classification, "positive_class": "yes"}
            ),
            "acceptance": spec.acceptance.model_copy(update={"decision_threshold": 0.7}),
        }
    )
    assert decide(clf, 0.69) == (0, "not_yes")
    assert decide(clf, 0.7) == (1, "yes")


def test_coalescer_batches_under_load_and_isolates_failures() -> None:
    sizes: list[int] = []

    def score(items: Sequence[int]) -> list[int | Exception]:
        sizes.append(len(items))
        import time

        time.sleep(0.02)
        return [ValueError("odd") if i == 13 else i * 10 for i in items]

    async def main() -> list[Any]:
        c: Coalescer[int, int] = Coalescer(score, max_batch=8)
        alone = await c.submit(1)  # idle service: scored at once, alone
        burst = await asyncio.gather(*(c.submit(i) for i in range(20)), return_exceptions=True)
        return [alone, burst]

    alone, burst = asyncio.run(main())
    assert alone == 10 and sizes[0] == 1
    assert isinstance(burst[13], ValueError)
    assert [b for i, b in enumerate(burst) if i != 13] == [i * 10 for i in range(20) if i != 13]
    assert max(sizes[1:]) == 8 and len(sizes) < 1 + 20  # batched, capped


def test_coalescer_scores_a_lone_clients_request_on_the_loop_and_others_in_a_thread() -> None:
    threads: list[int] = []

    def score(items: Sequence[int]) -> list[int | Exception]:
        threads.append(threading.get_ident())
        return [ValueError("odd") if i == 13 else i * 10 for i in items]

    lone = [True]

    async def main() -> list[Any]:
        c: Coalescer[int, int] = Coalescer(score, max_batch=8, alone=lambda: lone[0])
        here = await c.submit(1)
        with pytest.raises(ValueError, match="odd"):
            await c.submit(13)  # a failure reaches the caller as before
        many = await c.submit_all(list(range(12)))  # one inline call, in max_batch pieces
        lone[0] = False
        there = await c.submit(2)
        return [here, many, there, c.inline, threading.get_ident()]

    here, many, there, inline, loop_thread = asyncio.run(main())
    assert here == 10 and there == 20
    assert many == [i * 10 for i in range(12)]
    assert inline == 4  # 1, 13 and 12 items as 8 + 4
    assert threads[:4] == [loop_thread] * 4 and threads[4] != loop_thread


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    rid = dict(scope["headers"]).get(b"x-request-id", b"")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": rid + b"|" + str(len(body)).encode()})


def _guard(spec: UseCaseSpec, token: str | None) -> tuple[httpx.AsyncClient, CollectorRegistry]:
    reg = CollectorRegistry()
    app = GuardMiddleware(_echo, metrics=ServiceMetrics(spec, reg), token=token, max_body_bytes=100)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t"), reg


def test_guard_auth_size_ids_and_metrics(spec: UseCaseSpec) -> None:
    async def main() -> None:
        client, reg = _guard(spec, "tok")
        async with client:
            assert (await client.post("/predict", content=b"{}")).status_code == 401
            bad = await client.post("/predict", headers={"Authorization": "Bearer tok2"})
            assert bad.status_code == 401
            ok = await client.post(
                "/predict",
                content=b"{}",
                headers={"Authorization": "Bearer tok", "X-Request-ID": "r-1"},
            )
            assert (
                ok.status_code == 200 and ok.text == "r-1|2" and ok.headers["x-request-id"] == "r-1"
            )
            auth = {"Authorization": "Bearer tok"}
            big = await client.post("/predict", content=b"x" * 101, headers=auth)
            assert big.status_code == 413

            async def stream() -> Any:
                for _ in range(30):
                    yield b"x" * 10

            assert (
                await client.post("/predict", content=stream(), headers=auth)
            ).status_code == 413
            assert (await client.get("/livez")).status_code == 200  # unprotected
            made = await client.post("/predict", content=b"{}", headers=auth)
            assert len(made.headers["x-request-id"]) == 36  # a uuid4 when none was sent
            assert (await client.get("/wp-admin")).status_code == 200
        text = generate_latest(reg).decode()
        assert (
            'shipway_requests_total{endpoint="/predict",status="401",usecase="hotel_rates"} 2.0'
            in text
        )
        assert (
            'shipway_requests_total{endpoint="/predict",status="413",usecase="hotel_rates"} 2.0'
            in text
        )
        assert 'endpoint="other"' in text and "wp-admin" not in text

    asyncio.run(main())


def test_served_gauges_follow_the_contract(spec: UseCaseSpec) -> None:
    metrics = ServiceMetrics(spec, CollectorRegistry())
    models = ModelSet(
        ServedModel("hotel_rates", "3", "champion", None, 1.7e9),
        ServedModel("hotel_rates", "4", "challenger", None, 1.8e9),
    )
    text = gauges_text(metrics, models)
    assert (
        'shipway_model_info{model_name="hotel_rates",model_version="3",usecase="hotel_rates",'
        'variant="champion"} 1.0'
    ) in text
    assert (
        'shipway_model_trained_timestamp_seconds{usecase="hotel_rates",variant="challenger"} 1.8e+09'
        in text
    )
    budget = spec.acceptance.latency_p99_ms / 1000
    assert f'shipway_latency_budget_seconds{{usecase="hotel_rates"}} {budget}' in text
    assert "shipway_model_info{" not in gauges_text(metrics, None)
    assert np.isclose(metrics.budget_seconds, spec.acceptance.latency_p99_ms / 1000)


def test_settle_heap_exempts_the_loaded_heap_and_frees_replaced_cycles() -> None:
    import gc
    import weakref

    from services.engine import settle_heap

    class Model:  # a replaced model in a reference cycle
        pass

    old = Model()
    old.me = old  # type: ignore[attr-defined]
    gone = weakref.ref(old)
    try:
        frozen = settle_heap()
        assert frozen > 1000 and gc.get_freeze_count() == frozen
        assert gone() is not None  # still referenced: frozen with the rest
        del old
        settle_heap()  # a swap: the cycle of the replaced model is collected, not leaked
        assert gone() is None
    finally:
        gc.unfreeze()
