"""Serving benchmark: the Shipway service vs a hand-written FastAPI baseline, same run.

Run ``python -m benchmarks.serving``. State (a materialized online store and a
champion) comes from ``SHIPWAY_STATE_DIR`` when it is set (e.g. the state of ``make
demo``), else from the load benchmark's ``.shipway/bench-load``, which
``benchmarks.load.prepare`` trains once on a fresh machine. It measures, against real
bookings from after the training window:

* p50/p99 latency of ``/predict`` at 1 client (Shipway vs baseline; goal p99 <= 3x);
* throughput at saturation, 16 clients (goal >= 50% of the baseline);
* adaptive batching on vs off at 16 clients (goal >= 1.5x);
* the batch job vs a bare read -> predict -> write (``benchmarks.batch``; goal >= 70%).

Writes ``benchmarks/results/serving.json`` and prints the table. Each load phase runs
``SHIPWAY_BENCH_SECONDS`` (default 12 s) after a short warm-up.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.common import Comparison, save, table
from shipway.core.launch import ServiceHandle, start_service, wait_ready
from shipway.core.settings import Settings, get_settings
from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase
from shipway.data.replay import future_bookings, request_body

ROOT = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("SHIPWAY_BENCH_SECONDS", "12"))
WARMUP = 2.0


async def _load(url: str, bodies: list[dict], clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` closed-loop clients for ``seconds``: latencies of the 200s, error count."""
    lat: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def one(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                resp = await client.post("/predict", json=bodies[i % len(bodies)])
                if resp.status_code == 200:
                    lat.append(time.perf_counter() - t)
                else:
                    errors += 1
                i += clients

        t0 = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(clients)))
        wall = time.perf_counter() - t0
    arr = np.array(lat) * 1000.0
    return {
        "requests": len(lat),
        "errors": errors,
        "rps": len(lat) / wall,
        "p50_ms": float(np.percentile(arr, 50)) if len(arr) else float("nan"),
        "p99_ms": float(np.percentile(arr, 99)) if len(arr) else float("nan"),
    }


def measure(url: str, bodies: list[dict], clients: int) -> dict[str, Any]:
    asyncio.run(_load(url, bodies, clients, WARMUP))
    return asyncio.run(_load(url, bodies, clients, SECONDS))


def _baseline(settings: Settings, spec: UseCaseSpec, port: int) -> ServiceHandle:
    log_path = settings.state / "logs" / f"baseline-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SHIPWAY_STATE_DIR": str(settings.state),
        "SHIPWAY_ROOT": str(settings.root),
        "SHIPWAY_USECASE": spec.name,
    }
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "benchmarks.serving_baseline:app", "--port", str(port),
             "--log-level", "warning", "--no-access-log"],
            cwd=settings.root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    handle = ServiceHandle(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{handle.url}/docs", timeout=2)
            return handle
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise RuntimeError(log_path.read_text()) from None
            time.sleep(0.5)
    raise TimeoutError("baseline did not start")


def _shipway(settings: Settings, spec: UseCaseSpec, port: int, batching: bool) -> ServiceHandle:
    env = {
        "SHIPWAY_ADAPTIVE_BATCHING": str(batching).lower(),
        "SHIPWAY_PREDICTION_LOG_URI": str(settings.state / "bench-predictions.db"),
    }
    handle = start_service(settings, spec, port, env=env)
    wait_ready(handle)
    return handle


def run_phases(settings: Settings, spec: UseCaseSpec) -> dict[str, dict[str, Any]]:
    bodies = [request_body(spec, r) for _, r in future_bookings(settings, spec, 200).iterrows()]
    out: dict[str, dict[str, Any]] = {}
    for name, starter in (
        ("baseline", lambda: _baseline(settings, spec, 3301)),
        ("shipway", lambda: _shipway(settings, spec, 3302, True)),
        ("shipway_no_batching", lambda: _shipway(settings, spec, 3303, False)),
    ):
        handle = starter()
        try:
            if name != "shipway_no_batching":
                out[f"{name}_1"] = measure(handle.url, bodies, 1)
            out[f"{name}_16"] = measure(handle.url, bodies, 16)
        finally:
            handle.stop()
        print(name, {k: v for k, v in out.items() if k.startswith(name)}, flush=True)
    return out


def comparisons(r: dict[str, dict[str, Any]]) -> list[Comparison]:
    b1, s1 = r["baseline_1"], r["shipway_1"]
    b16, s16, off16 = r["baseline_16"], r["shipway_16"], r["shipway_no_batching_16"]
    comps = [
        Comparison("/predict p50 latency, 1 client", s1["p50_ms"], "ms", b1["p50_ms"]),
        Comparison("/predict p99 latency, 1 client", s1["p99_ms"], "ms", b1["p99_ms"], "ratio <= 3"),
        Comparison("throughput at saturation (16 clients)", s16["rps"], "req/s", b16["rps"],
                   "ratio >= 0.5"),
        Comparison("adaptive batching on vs off (16 clients)", s16["rps"], "req/s", off16["rps"],
                   "ratio >= 1.5"),
        Comparison("/predict p99 latency, 16 clients", s16["p99_ms"], "ms", b16["p99_ms"]),
    ]  # fmt: skip
    comps[1].met = (comps[1].ratio or 99) <= 3
    comps[2].met = (comps[2].ratio or 0) >= 0.5
    comps[3].met = (comps[3].ratio or 0) >= 1.5
    return comps


def main() -> None:
    from benchmarks.batch import batch_comparison

    if os.environ.get("SHIPWAY_STATE_DIR"):
        settings = get_settings()
        settings.export_env()
        spec = load_usecase(settings.usecase, settings)
    else:  # a fresh machine has no champion: the benchmarks' own state, trained once
        from benchmarks.load import prepare

        state = Path(os.environ.get("SHIPWAY_LOAD_STATE") or ROOT / ".shipway" / "bench-load")
        settings, spec, _ = prepare(state.resolve())
    phases = run_phases(settings, spec)
    comps = comparisons(phases)
    batch_cmp, batch_raw = batch_comparison(settings, spec)
    comps.append(batch_cmp)
    errors = sum(p["errors"] for p in phases.values())
    path = save("serving", comps, {"phases": phases, "batch": batch_raw, "errors": errors,
                                   "seconds_per_phase": SECONDS})  # fmt: skip
    print(table("serving", comps))
    print(f"errors during load: {errors}; results: {Path(path).relative_to(settings.root)}")


if __name__ == "__main__":
    main()
