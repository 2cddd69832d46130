"""Realistic traffic against the prediction service, for locust (``make bench-load``).

A client quotes bookings: mostly one ``/predict`` per booking, now and then a
``/predict_batch`` of several bookings (a re-pricing job), and ``/feedback`` with the
booking's true rate for an earlier prediction (the ground truth arrives later). The
bodies are real held-out bookings (after the training window), written to a JSON file
by ``benchmarks.load`` and named by ``SHIPWAY_LOAD_BODIES``.

Each user runs at most ``SHIPWAY_LOAD_USER_RPS`` tasks per second (constant throughput),
so ``users x rate`` sets the offered load, which is how ``benchmarks.load`` steps it.
Run alone against a running service::

    SHIPWAY_LOAD_BODIES=bodies.json locust -f benchmarks/locustfile.py --headless \
        -H http://127.0.0.1:3000 -u 50 -r 50 -t 60s
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

from locust import FastHttpUser, constant_throughput, events, task

USER_RPS = float(os.environ.get("SHIPWAY_LOAD_USER_RPS", "1"))
BATCH_ROWS = (2, 20)
"""Rows per /predict_batch call: a small re-pricing job, not a bulk export."""
WEIGHTS = {"predict": 17, "predict_batch": 1, "feedback": 2}
"""85% single quotes, 5% batches, 10% feedback (the share of bookings whose outcome is
reported back while the test runs)."""


WARMUP_SECONDS = float(os.environ.get("SHIPWAY_LOAD_WARMUP", "3"))
"""Samples of the first seconds (users spawning, connections opening) are not recorded."""
_samples: list[tuple[str, float, str]] = []
"""(endpoint, response time in ms, error message or "" for a success)."""
_started: list[float] = []
_stopped: list[float] = []


@events.test_start.add_listener
def _on_start(**_: Any) -> None:
    _started[:] = [time.monotonic()]


@events.test_stop.add_listener
def _on_stop(**_: Any) -> None:
    _stopped[:] = [time.monotonic()]


@events.request.add_listener
def _on_request(name: str, response_time: float, exception: BaseException | None, **_: Any) -> None:
    """Keep every sample exactly (locust's own percentiles are rounded into buckets)."""
    if _started and time.monotonic() - _started[0] >= WARMUP_SECONDS:
        error = "" if exception is None else str(exception)[:200] or type(exception).__name__
        _samples.append((name, float(response_time), error))


@events.quitting.add_listener
def _on_quit(**_: Any) -> None:
    """Write the samples for ``benchmarks.load`` (``SHIPWAY_LOAD_SAMPLES``), if asked."""
    out = os.environ.get("SHIPWAY_LOAD_SAMPLES")
    if out:
        end = _stopped[0] if _stopped else time.monotonic()
        span = end - _started[0] - WARMUP_SECONDS if _started else 0.0
        Path(out).write_text(json.dumps({"seconds": span, "samples": _samples}))


def load_bodies(path: str | None = None) -> list[dict[str, Any]]:
    """The request bodies (with their true rate under ``_actual``), from the JSON file."""
    src = path or os.environ.get("SHIPWAY_LOAD_BODIES")
    if not src:
        raise RuntimeError("set SHIPWAY_LOAD_BODIES to the JSON file benchmarks.load writes")
    bodies: list[dict[str, Any]] = json.loads(Path(src).read_text())
    if not bodies:
        raise RuntimeError(f"{src} holds no request bodies")
    return bodies


class BookingClient(FastHttpUser):
    """One booking front-end: quotes, an occasional batch, and feedback on earlier quotes."""

    wait_time = constant_throughput(USER_RPS)
    bodies: ClassVar[list[dict[str, Any]]] = []
    """Shared by all users: loaded once, by the first user that starts."""

    def on_start(self) -> None:
        if not BookingClient.bodies:
            BookingClient.bodies = load_bodies()
        token = os.environ.get("SHIPWAY_LOAD_TOKEN")
        self.headers: dict[str, str] = {"Authorization": f"Bearer {token}"} if token else {}
        self.rng = random.Random(id(self))
        self.answered: deque[tuple[str, float]] = deque(maxlen=200)

    def _booking(self) -> tuple[dict[str, Any], float]:
        body = dict(self.rng.choice(self.bodies))
        return body, float(body.pop("_actual"))

    @task(WEIGHTS["predict"])
    def predict(self) -> None:
        body, actual = self._booking()
        with self.client.post(
            "/predict", json=body, headers=self.headers, catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")
                return
            self.answered.append((str(resp.json()["request_id"]), actual))

    @task(WEIGHTS["predict_batch"])
    def predict_batch(self) -> None:
        rows = [self._booking()[0] for _ in range(self.rng.randint(*BATCH_ROWS))]
        with self.client.post(
            "/predict_batch", json=rows, headers=self.headers, catch_response=True
        ) as resp:
            if resp.status_code != 200 or len(resp.json()) != len(rows):
                resp.failure(f"status {resp.status_code}")

    @task(WEIGHTS["feedback"])
    def feedback(self) -> None:
        if not self.answered:
            self.predict()
            return
        rid, actual = self.answered.popleft()
        with self.client.post(
            "/feedback",
            json={"request_id": rid, "actual": actual},
            headers=self.headers,
            catch_response=True,
        ) as resp:
            if resp.status_code != 200 or resp.json().get("recorded") is not True:
                resp.failure(f"status {resp.status_code}")
