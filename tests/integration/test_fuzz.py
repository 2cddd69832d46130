"""Hostile input against the real served app (`bentoml serve`, bearer auth on as in the chart).

* Property-based fuzzing from the service's own OpenAPI schema (schemathesis): valid and
  schema-violating requests to /predict, /predict_batch and /feedback, at least
  ``MIN_REQUESTS`` in all, never a 5xx and every answer conforming to the schema
  (status code, content type, body) with schemathesis' default checks. Every
  schema-violating request gets exactly 400: refused by validation, never scored,
  recorded, or passed on to a lookup that would answer 404.
* An oversized body (declared or streamed) and 100,000-level nested JSON are refused
  with a 4xx, the service's memory stays bounded and it still answers afterwards.
* The bearer token (and a wrong one a client sent) never appears in the service's log.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil
import pytest
import requests

from shipway.core.launch import ServiceHandle, start_service, wait_ready
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.data.replay import future_bookings, request_body
from tests.integration.test_service import champion  # noqa: F401  (the served champion)

try:  # tests/ may or may not be a package
    from tests.conftest import free_port, require, tool_env
except ImportError:
    from conftest import free_port, require, tool_env  # type: ignore[no-redef]

pytestmark = pytest.mark.integration

TOKEN = secrets.token_urlsafe(32)
WRONG_TOKEN = secrets.token_urlsafe(32)
MIN_REQUESTS = 1000
EXAMPLES: dict[tuple[str, str], int] = {
    ("/predict", "positive"): 260,
    ("/predict", "negative"): 140,
    ("/predict_batch", "positive"): 160,
    ("/predict_batch", "negative"): 100,
    ("/feedback", "positive"): 220,
    ("/feedback", "negative"): 140,
}
"""Hypothesis examples per operation and mode (1,020 in all; a mode whose space is
smaller stops early, so the total actually sent is asserted, not assumed)."""
NESTING = 100_000
RSS_GROWTH_BOUND = 150 * 1024 * 1024
"""The service's process tree may grow by at most 150 MiB over the hostile requests: a
parser that materialised 100k nested containers, or buffered bodies beyond the limit,
would add far more (and a leak per request would show over the repetitions)."""


@dataclass
class Fuzzed:
    """The running service plus everything sent to it (for the log checks)."""

    handle: ServiceHandle
    sent: list[tuple[str, str, int]] = field(default_factory=list)
    """(operation, mode, status) of every generated request."""


@pytest.fixture(scope="module")
def served(
    settings: Settings,
    hotel: UseCaseSpec,
    champion: dict[str, str],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fuzzed]:
    require(shutil.which("bentoml", path=tool_env()["PATH"]) is not None, "bentoml CLI missing")
    root = tmp_path_factory.mktemp("fuzz")
    env = {
        "SHIPWAY_MLFLOW_TRACKING_URI": champion["uri"],
        "SHIPWAY_API_TOKEN": TOKEN,
        "SHIPWAY_PREDICTION_LOG_URI": str(root / "predictions.db"),
    }
    handle = start_service(
        settings, hotel, free_port(), env=env, base_env=tool_env(), log_path=root / "service.log"
    )
    try:
        wait_ready(handle)
        yield Fuzzed(handle)
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def body(settings: Settings, hotel: UseCaseSpec) -> dict[str, Any]:
    """A real booking from after the training window."""
    rows: pd.DataFrame = future_bookings(settings, hotel, 1)
    return request_body(hotel, rows.iloc[0])


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _rss(pid: int) -> int:
    """Resident memory of the service: the bentoml process and all its workers."""
    proc = psutil.Process(pid)
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def _fuzz(served: Fuzzed, path: str, mode: str, examples: int) -> None:
    """Run schemathesis' generated cases for one operation and mode against the service."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings

    url = served.handle.url
    schema = schemathesis.openapi.from_url(f"{url}/docs.json", timeout=30)
    operation = schema[path]["POST"]
    generation = (
        schemathesis.GenerationMode.POSITIVE
        if mode == "positive"
        else schemathesis.GenerationMode.NEGATIVE
    )
    session = requests.Session()

    @settings(
        max_examples=examples,
        derandomize=True,  # the same cases every run: a failure reproduces
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=generation, headers=_auth()))
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=url, session=session, headers=_auth(), timeout=60)
        served.sent.append((path, mode, response.status_code))
        assert response.status_code < 500, f"{path} {mode}: {response.status_code} for {case!r}"
        case.validate_response(response, headers=_auth())

    check()


@pytest.mark.parametrize(("path", "mode"), list(EXAMPLES))
def test_generated_requests(served: Fuzzed, path: str, mode: str) -> None:
    """Every generated request gets a conforming, non-5xx answer."""
    before = len(served.sent)
    _fuzz(served, path, mode, EXAMPLES[(path, mode)])
    statuses = Counter(s for p, m, s in served.sent[before:] if (p, m) == (path, mode))
    assert statuses and max(statuses) < 500
    if mode == "negative":  # schema-violating input is refused by validation, never used
        assert set(statuses) == {400}, statuses


def test_at_least_min_requests_in_all(served: Fuzzed) -> None:
    """The fuzzing above (same module, runs first) sent enough requests to mean something."""
    require(bool(served.sent), "counts the generated-request tests: run the whole module")
    assert len(served.sent) >= MIN_REQUESTS, len(served.sent)
    assert all(s < 500 for *_, s in served.sent)
    assert {p for p, _, _ in served.sent} == {"/predict", "/predict_batch", "/feedback"}


def _nested(depth: int, opener: str, closer: str) -> bytes:
    return (opener * depth + closer * depth).encode()


HOSTILE: dict[str, Callable[[int], bytes]] = {
    "nested arrays": lambda limit: _nested(NESTING, "[", "]"),
    "nested objects": lambda limit: _nested(NESTING, '{"a":', "}"),
    "nested arrays in a field": lambda limit: b'{"agent":' + _nested(NESTING, "[", "]") + b"}",
    "oversized (declared length)": lambda limit: b'{"agent":"' + b"x" * limit + b'"}',
}


@pytest.mark.parametrize("route", ["/predict", "/predict_batch", "/feedback"])
def test_hostile_bodies_are_refused_without_memory_blowup(
    served: Fuzzed, body: dict[str, Any], settings: Settings, route: str
) -> None:
    limit = settings.max_body_bytes
    pid = served.handle.proc.pid
    url = served.handle.url
    with httpx.Client(base_url=url, timeout=60, headers=_auth()) as client:
        assert client.post("/predict", json=body).status_code == 200  # warm
        rss_before = _rss(pid)
        for _ in range(3):  # repeated: a leak per request would add up
            for what, make in HOSTILE.items():
                resp = client.post(
                    route, content=make(limit), headers={"Content-Type": "application/json"}
                )
                assert 400 <= resp.status_code < 500, f"{what} on {route}: {resp.status_code}"
                assert resp.status_code != 413 or "oversized" in what, what
            # a streamed body (no Content-Length) cannot sneak past the limit
            chunks = iter([b'{"agent":"'] + [b"x" * 65536] * (limit // 65536 + 2) + [b'"}'])
            resp = client.post(route, content=chunks, headers={"Content-Type": "application/json"})
            assert resp.status_code == 413, resp.status_code
        growth = _rss(pid) - rss_before
        assert growth < RSS_GROWTH_BOUND, f"RSS grew by {growth / 2**20:.0f} MiB"
        # still answering, correctly
        resp = client.post("/predict", json=body)
        assert resp.status_code == 200 and resp.json()["prediction"] > 0
        assert client.get("/readyz").status_code == 200


def test_secrets_never_logged(served: Fuzzed, body: dict[str, Any]) -> None:
    """Neither the configured token nor a wrong one a client sent reaches the log."""
    with httpx.Client(base_url=served.handle.url, timeout=60) as client:
        assert client.post("/predict", json=body, headers=_auth(WRONG_TOKEN)).status_code == 401
        assert client.post("/predict", json=body, headers=_auth()).status_code == 200
        bad = client.post("/feedback", json={"request_id": "x", "actual": "no"}, headers=_auth())
        assert bad.status_code == 400
    time.sleep(0.5)  # let the log writer flush
    text = Path(served.handle.log_path).read_text(errors="replace")
    assert "/predict" in text or "POST" in text, "the service log records requests"
    assert TOKEN not in text
    assert WRONG_TOKEN not in text
