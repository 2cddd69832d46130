"""Serving benchmark: Shipway's /predict against the bare floor, same run, driven by wrk.

Run ``python -m benchmarks.serving`` (``make bench-serving``). Two servers answer the
same real bookings from after the training window:

* **Shipway**: the real ``bentoml serve`` of the champion (``shipway.core.launch``), as
  shipped (validation, Feast features, durable prediction log, metrics);
* **floor**: ``benchmarks/serving_baseline.py``, the least code doing the same work with
  the same guarantees (a Starlette app under uvicorn: sqlite3 reads of the same Feast
  online rows, the fitted encoder's table, the LightGBM Booster, the logged record
  inserted and fsynced before the answer).

Before anything is timed both must return exactly the same prediction for every body
(the run stops otherwise: a ratio between two different computations means nothing).
Then, for one worker each and two workers each, rounds alternate floor, Shipway, floor,
Shipway at 1 and 16 closed-loop wrk connections (``benchmarks/lua/cycle.lua``), and
each figure is the median over rounds: p50, p99, requests/s, CPU per answered request
(user + system time of the server's whole process tree, psutil), RSS per worker, and the
load average around every round. Goals (issue #15) are ratios against the floor of the
same run; RSS per worker is held against the reference recorded in ``benchmarks.goals``.

Shipway's ``POST /explain`` (the same bodies, top 5 contributions) gets its own latency
figure at 1 connection after the A/B rounds, against its /predict of the same run,
measured without a goal.

Knobs: ``SHIPWAY_BENCH_SECONDS`` per measured round (default 10), ``SHIPWAY_BENCH_ROUNDS``
(3), ``SHIPWAY_BENCH_WORKERS`` ("1,2"), ``SHIPWAY_BENCH_BATCH=0`` skips the batch-job
comparison (``benchmarks.batch``). Writes ``benchmarks/results/serving.json`` and
``serving.md``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import procs
from benchmarks.common import Comparison, markdown, post_ready, save, table
from benchmarks.floor_bundle import write_bundle
from benchmarks.goals import RSS_GOAL_SHARE, RSS_REFERENCE
from benchmarks.servers import start_shipway, tool_env
from benchmarks.wrk import Closed, run_closed
from shipway.core.launch import ServiceHandle
from shipway.core.net import free_port
from shipway.core.settings import Settings, get_settings
from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase
from shipway.data.replay import future_bookings, request_body

ROOT = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("SHIPWAY_BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("SHIPWAY_BENCH_ROUNDS", "3"))
WORKERS = [int(w) for w in os.environ.get("SHIPWAY_BENCH_WORKERS", "1,2").split(",")]
CONNECTIONS = (1, 16)
WARMUP = 3.0
BODIES = 200
BENTO_WORKER = "_bentoml_impl.worker"
"""Command-line marker of a BentoML worker process (the server's other process is the
circus arbiter, which answers no request)."""


def start_floor(settings: Settings, bundle: Path, workers: int) -> ServiceHandle:
    port = free_port()
    logs = settings.state / f"floor-logs-{port}"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    log_path = settings.state / "logs" / f"floor-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **tool_env(),
        "SHIPWAY_FLOOR_BUNDLE": str(bundle),
        "SHIPWAY_FLOOR_LOG": str(logs / "floor"),  # one file per worker: <path>-<pid>.db
    }
    cmd = [sys.executable, "-m", "uvicorn", "benchmarks.serving_baseline:app",
           "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    if workers > 1:
        cmd += ["--workers", str(workers)]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    handle = ServiceHandle(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"floor exited:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{handle.url}/healthz", timeout=2).status_code == 200:
                return handle
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    handle.stop()
    raise TimeoutError("the floor did not start")


def check_same(floor: str, shipway: str, bodies: list[dict[str, Any]]) -> int:
    """Both answer every body with exactly the same prediction; stop the run otherwise."""
    with httpx.Client(timeout=30) as c:
        for i, body in enumerate(bodies):
            a = post_ready(c, f"{floor}/predict", body)
            b = post_ready(c, f"{shipway}/predict", body)
            pa, pb = a.json()["prediction"], b.json()["prediction"]
            if pa != pb:
                raise SystemExit(
                    f"floor and Shipway disagree on body {i}: {pa!r} vs {pb!r} ({body}); "
                    "the benchmark would time two different computations"
                )
    return len(bodies)


def measure(
    handle: ServiceHandle, bodies: Path, connections: int, path: str = "/predict"
) -> dict[str, Any]:
    """One wrk round on ``path``; the server tree's CPU and wrk's own CPU over it."""
    cpu0, client0, load0 = procs.tree_cpu_seconds(handle.proc.pid), procs.children_cpu_seconds(), procs.load_average()  # fmt: skip
    res: Closed = run_closed(handle.url, bodies, connections, SECONDS, path)
    cpu = procs.tree_cpu_seconds(handle.proc.pid) - cpu0
    return {
        "connections": connections,
        "seconds": res.seconds,
        "answered": res.answered,
        "errors": res.errors,
        "rps": res.rps,
        "p50_ms": res.latency_ms["p50"],
        "p99_ms": res.latency_ms["p99"],
        "latency_ms": res.latency_ms,
        "cpu_ms_per_request": 1000.0 * cpu / res.answered if res.answered else float("nan"),
        "server_cores": cpu / res.seconds,
        "wrk_cores": (procs.children_cpu_seconds() - client0) / res.seconds,
        "load_before": load0,
        "load_after": procs.load_average(),
    }


def run_workers(
    settings: Settings, spec: UseCaseSpec, bundle: Path, bodies: list[dict[str, Any]],
    body_file: Path, workers: int,
) -> dict[str, Any]:  # fmt: skip
    """Both servers with ``workers`` workers each, alternating rounds; raw rounds + RSS."""
    floor = start_floor(settings, bundle, workers)
    try:
        ship = start_shipway(settings, spec, workers, f"bench-predictions-{workers}.db")
    except BaseException:
        floor.stop()
        raise
    sides = {"floor": floor, "shipway": ship}
    markers = {"floor": None, "shipway": BENTO_WORKER}
    rounds: list[dict[str, Any]] = []
    try:
        checked = check_same(floor.url, ship.url, bodies)
        for handle in sides.values():  # warm: first feature reads, first batches, JIT caches
            run_closed(handle.url, body_file, 16, WARMUP)
        for r in range(ROUNDS):
            for conns in CONNECTIONS:
                for name, handle in sides.items():  # A, B, A, B
                    m = measure(handle, body_file, conns)
                    rounds.append({"round": r, "side": name, **m})
                    print(f"  {workers}w r{r} c{conns:<2} {name:8} p50 {m['p50_ms']:7.2f} ms  "
                          f"p99 {m['p99_ms']:7.2f} ms  {m['rps']:8.0f} req/s  "
                          f"CPU {m['cpu_ms_per_request']:.3f} ms/req  errors {m['errors']}  "
                          f"load {m['load_after']['getloadavg'][0]}", flush=True)  # fmt: skip
        rss = {n: procs.rss_mb(procs.workers(h.proc.pid, markers[n])) for n, h in sides.items()}
        for n, h in sides.items():  # every process, workers or not (BentoML's own: the feed)
            rss[f"{n}_all"] = [sum(procs.rss_mb(procs.tree(h.proc.pid)))]
        with httpx.Client(timeout=120) as c:  # the first /explain loads the pipeline (lazy)
            for _ in range(4 * workers):
                post_ready(c, f"{ship.url}/explain", bodies[0])
        explain = [measure(ship, body_file, 1, "/explain") for _ in range(ROUNDS)]
        rss["shipway_after_explain"] = procs.rss_mb(procs.workers(ship.proc.pid, BENTO_WORKER))
    finally:
        ship.stop()
        floor.stop()
    return {"workers": workers, "checked_bodies": checked, "rounds": rounds, "rss_mb": rss,
            "explain": explain}  # fmt: skip


def summary(run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Median over rounds of each figure, per side and connection count."""
    out: dict[str, dict[str, float]] = {}
    for side in ("floor", "shipway"):
        for conns in CONNECTIONS:
            rs = [r for r in run["rounds"] if r["side"] == side and r["connections"] == conns]
            out[f"{side}_{conns}"] = {
                k: statistics.median(r[k] for r in rs)
                for k in ("p50_ms", "p99_ms", "rps", "cpu_ms_per_request")
            }
        rss = run["rss_mb"][side]
        out[f"{side}_rss"] = {"mean": statistics.fmean(rss) if rss else float("nan")}
    return out


def comparisons(run: dict[str, Any]) -> list[Comparison]:
    """Issue #15's goals, each a ratio against the floor of the same run."""
    s, w = summary(run), f"{run['workers']}w"
    f1, s1, f16, s16 = s["floor_1"], s["shipway_1"], s["floor_16"], s["shipway_16"]
    ship_rss = s["shipway_rss"]["mean"]
    return [
        Comparison(f"{w}: /predict p50, 1 connection", s1["p50_ms"], "ms", f1["p50_ms"], "ratio <= 2"),
        Comparison(f"{w}: /predict p99, 1 connection", s1["p99_ms"], "ms", f1["p99_ms"]),
        Comparison(f"{w}: requests/s, 16 connections", s16["rps"], "req/s", f16["rps"], "ratio >= 0.5"),
        Comparison(f"{w}: /predict p50, 16 connections", s16["p50_ms"], "ms", f16["p50_ms"]),
        Comparison(f"{w}: /predict p99, 16 connections", s16["p99_ms"], "ms", f16["p99_ms"], "ratio <= 3"),
        Comparison(f"{w}: CPU per request, 1 connection", s1["cpu_ms_per_request"], "ms",
                   f1["cpu_ms_per_request"], "ratio <= 2.5"),
        Comparison(f"{w}: CPU per request, 16 connections", s16["cpu_ms_per_request"], "ms",
                   f16["cpu_ms_per_request"], "ratio <= 2.5"),
        Comparison(f"{w}: RSS per worker vs floor (context)", ship_rss, "MB", s["floor_rss"]["mean"]),
        *all_rss(run),
        *explain_rss(run, ship_rss),
        *explain_figures(run, s1),
        Comparison(f"{w}: RSS per worker vs reference {RSS_REFERENCE.mb:g} MB ({RSS_REFERENCE.when})",
                   ship_rss, "MB", RSS_REFERENCE.mb, f"ratio <= {RSS_GOAL_SHARE:g}"),
    ]  # fmt: skip


def all_rss(run: dict[str, Any]) -> list[Comparison]:
    """RSS summed over every process of each server (context, no goal): Shipway's
    ``bentoml serve`` process also reads the registry for its workers
    (``services/modelfeed.py``), so the per-worker figure alone would hide that memory."""
    ship, floor = run["rss_mb"].get("shipway_all"), run["rss_mb"].get("floor_all")
    if not ship or not floor:
        return []
    return [Comparison(f"{run['workers']}w: RSS of all server processes vs floor (context)",
                       ship[0], "MB", floor[0])]  # fmt: skip


def explain_rss(run: dict[str, Any], ship_rss: float) -> list[Comparison]:
    """A worker's RSS once it has answered /explain, against its /predict-only RSS: a
    version served through its serving form loads its scikit-learn pipeline only when
    /explain first needs it (context, no goal)."""
    after = run["rss_mb"].get("shipway_after_explain") or []
    if not after:
        return []
    return [Comparison(f"{run['workers']}w: RSS per worker after /explain vs /predict only (context)",
                       statistics.fmean(after), "MB", ship_rss)]  # fmt: skip


def explain_figures(run: dict[str, Any], predict_1: dict[str, float]) -> list[Comparison]:
    """``/explain`` (Shipway alone, 1 connection, default top 5) against Shipway's own
    /predict of the same run: measured, with no goal (issue 17: its own latency figure;
    /predict never pays for an explanation)."""
    rounds, w = run.get("explain") or [], f"{run['workers']}w"
    if not rounds:
        return []
    p50, p99 = (statistics.median(r[k] for r in rounds) for k in ("p50_ms", "p99_ms"))
    return [
        Comparison(f"{w}: /explain p50 vs /predict, 1 connection (no goal)", p50, "ms", predict_1["p50_ms"]),
        Comparison(f"{w}: /explain p99 vs /predict, 1 connection (no goal)", p99, "ms", predict_1["p99_ms"]),
    ]  # fmt: skip


def state() -> tuple[Settings, UseCaseSpec]:
    """``SHIPWAY_STATE_DIR`` when set (e.g. ``make demo``'s), else the benchmarks' own."""
    if os.environ.get("SHIPWAY_STATE_DIR"):
        settings = get_settings()
        settings.export_env()
        return settings, load_usecase(settings.usecase, settings)
    from benchmarks.load import prepare  # a fresh machine has no champion: trained once

    where = Path(os.environ.get("SHIPWAY_LOAD_STATE") or ROOT / ".shipway" / "bench-load")
    settings, spec, _ = prepare(where.resolve())
    return settings, spec


NOTES = """Method: wrk (C, one thread, closed loop, `benchmarks/lua/cycle.lua` cycling {n}
real bookings from after the training window) against Shipway (`bentoml serve`, as
shipped) and the floor (`benchmarks/serving_baseline.py`, Starlette + uvicorn), both
checked to give identical predictions on every body first. Rounds of {sec:g} s alternate
floor, Shipway at 1 and 16 connections; figures are medians of {rounds} rounds. CPU per
request = user + system seconds of the server's whole process tree / answered requests.
RSS = resident set of each worker process after the rounds (MB, shared pages included);
"all server processes" adds every other process of each server (BentoML's serve process).
Machine: {cpus} cores, Python {py}; load average before: {load0}; after: {load1}."""


def main() -> int:
    settings, spec = state()
    load0 = procs.load_average()
    bodies = [request_body(spec, r) for _, r in future_bookings(settings, spec, BODIES).iterrows()]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="shipway-serving-") as tmp:
        bundle = Path(tmp) / "floor"
        write_bundle(settings, spec, bundle)
        body_file = Path(tmp) / "bodies.jsonl"
        body_file.write_text("".join(json.dumps(b) + "\n" for b in bodies))
        for w in WORKERS:
            print(f"{w} worker(s) each: floor vs Shipway", flush=True)
            runs.append(run_workers(settings, spec, bundle, bodies, body_file, w))
    comps = [c for run in runs for c in comparisons(run)]
    extra: dict[str, Any] = {"runs": runs, "summaries": {r["workers"]: summary(r) for r in runs},
                             "seconds_per_round": SECONDS, "rounds": ROUNDS, "bodies": len(bodies)}  # fmt: skip
    if os.environ.get("SHIPWAY_BENCH_BATCH", "1") != "0":
        from benchmarks.batch import batch_comparison

        batch_cmp, extra["batch"] = batch_comparison(settings, spec)
        comps.append(batch_cmp)
    load1 = procs.load_average()
    extra["load_average"] = {"before": load0, "after": load1}
    path = save("serving", comps, extra)
    notes = NOTES.format(n=len(bodies), sec=SECONDS, rounds=ROUNDS, cpus=os.cpu_count(),
                         py=sys.version.split()[0], load0=load0["proc_loadavg"],
                         load1=load1["proc_loadavg"])  # fmt: skip
    md = markdown("serving", comps, notes)
    print(table("serving", comps))
    print(f"results: {path.relative_to(ROOT)}, {md.relative_to(ROOT)}")
    return 0  # goals are judged by benchmarks.report (make bench-serving runs it next)


if __name__ == "__main__":
    raise SystemExit(main())
