"""Load benchmark: a constant rate of the realistic mix, held for minutes, open loop.

``python -m benchmarks.load`` (``make bench-load``) runs a real ``bentoml serve`` of the
hotel_rates champion as the chart runs it (bearer auth on, ``LOAD_WORKERS`` workers,
default 2, one per core) and drives it with wrk at a constant offered rate
(``benchmarks/lua/paced.lua``): 85% ``/predict``, 5% ``/predict_batch`` of 2-20 rows,
10% ``/feedback`` with the true rate of an earlier answered prediction; every body is a
real booking from after the training window.

Why wrk with a paced script, not h2load ``--rps``: h2load sends one fixed body (``-d``)
to every URI, so it cannot send a mix of different bookings, batches and feedback that
names an earlier answer; and both tools time a request from when it was *sent*, so a
server that falls behind makes the client send later and hides its queue (coordinated
omission). ``paced.lua`` gives each connection its own wrk thread, schedules request
``j`` of connection ``k`` at ``start + (k/N + j) * N/rate`` (an even stream of ``rate``
req/s), waits for it with ``wrk.delay``, and counts a late request's latency from when it
was due, as wrk2 does. The measured rate is what was *answered*, so a server that cannot
keep up shows as a shortfall, never as a lower offered rate.

*Sustained* means: 0 errors on every endpoint (non-200 answers, timeouts, socket errors),
``/predict`` p99 within the spec's single-row budget (``acceptance.latency_p99_ms``), and
at least 99% of the offered rate answered. The goal (issue #15) is ``LOAD_RATE`` = 1,500
req/s for ``LOAD_MINUTES`` = 5 minutes; it is never lowered to pass: a miss exits 1.
``LOAD_SMOKE=1`` checks the harness in seconds (``LOAD_SMOKE_RATE`` req/s, default 50,
for ``LOAD_SMOKE_SECONDS``, default 15) and records nothing. The load generator shares
the machine: every run records the CPU seconds of the service's process tree and of wrk,
and the load average.

State (Feast store, registry with a champion) lives in ``SHIPWAY_LOAD_STATE`` (default
``.shipway/bench-load``); a missing champion is trained once through the same pipeline
steps. Writes ``benchmarks/results/load.json`` and ``load.md``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import procs
from benchmarks.common import Comparison, markdown, post_ready, save, table
from benchmarks.servers import start_shipway, tool_env
from benchmarks.wrk import Paced, run_paced
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase
from shipway.data.replay import future_bookings, request_body

ROOT = Path(__file__).resolve().parent.parent
USECASE = "hotel_rates"
SMOKE = os.environ.get("LOAD_SMOKE", "") == "1"
RATE = float(
    os.environ.get("LOAD_SMOKE_RATE", "50") if SMOKE else os.environ.get("LOAD_RATE", "1500")
)
"""Offered req/s; issue #15's goal is 1,500 on 2 cores, two workers."""
SECONDS = (
    float(os.environ.get("LOAD_SMOKE_SECONDS", "15"))
    if SMOKE
    else 60 * float(os.environ.get("LOAD_MINUTES", "5"))
)
WARMUP = float(os.environ.get("LOAD_WARMUP_SECONDS", "3" if SMOKE else "10"))
"""Leading seconds of the run not measured (connections opening, first requests)."""
CONNECTIONS = int(os.environ.get("LOAD_CONNECTIONS", "64"))
"""Connections (one wrk thread each): the most requests in flight at once."""
WORKERS = int(os.environ.get("LOAD_WORKERS", "2"))
"""BentoML worker processes: the chart's default (``prediction.workers: 2``), one per core."""
MIN_ANSWERED = 0.99
"""Share of the offered rate that must be answered for the rate to count as sustained."""


@dataclass(frozen=True)
class Verdict:
    """Whether one paced run sustained its rate, and each criterion on its own."""

    errors_ok: bool
    p99_ok: bool
    rate_ok: bool

    @property
    def sustained(self) -> bool:
        return self.errors_ok and self.p99_ok and self.rate_ok


def verdict(run: Paced, budget_ms: float) -> Verdict:
    return Verdict(
        errors_ok=run.errors == 0,
        p99_ok=run.percentiles_ms(1)["p99"] <= budget_ms,
        rate_ok=run.achieved_rps >= MIN_ANSWERED * run.rate,
    )


ALLOW_UNGATED = os.environ.get("SHIPWAY_BENCH_ALLOW_UNGATED", "") == "1"
"""Benchmark a version the pipeline did not promote, whatever the reason (recorded)."""
LATENCY_CRITERION = "latency_p99_ms"
"""The gate's wall-clock criterion (pipelines/steps/gate.py): a single-row p99 measured
inside the pipeline, which a machine busy with other work can miss while the model is
sound. The one failure ``prepare`` tolerates without being asked."""
FORCED_TAG = "bench.not_promoted_because"
"""Set on a version ``prepare`` made champion without the pipeline promoting it: why
not (a JSON list), so a later run that reuses the champion records and checks it too."""


def refuse_ungated(why: list[str]) -> None:
    """Stop unless the version was promoted (``why`` empty), failed the gate's latency
    criterion alone, or ``SHIPWAY_BENCH_ALLOW_UNGATED=1`` asks to go on."""
    latency_only = all(w.startswith(f"FAIL {LATENCY_CRITERION}:") for w in why)
    if latency_only or ALLOW_UNGATED:  # all() of nothing: a promoted version
        return
    raise SystemExit(
        "refusing to benchmark a version the pipeline did not promote: "
        + "; ".join(why)
        + " (SHIPWAY_BENCH_ALLOW_UNGATED=1 benchmarks it anyway, recorded in the results)"
    )


def prepare(state: Path) -> tuple[Settings, UseCaseSpec, dict[str, Any]]:
    """Settings on ``state`` with a materialized online store and a champion.

    Trains only when the registry has no champion yet (the data stages come from the
    committed DVC pipeline, as in ``make demo``). A version the pipeline did not promote
    is refused (``refuse_ungated``) except for the gate's latency criterion alone:
    serving does not depend on that wall-clock verdict, so the version is then made
    champion in this private registry. Either way the results record whether it was
    promoted and why not (``champion.not_promoted_because``).
    """
    from feature_repo.store import apply, feature_store, materialize
    from pipelines.runner import run_in_process
    from shipway.core import registry

    settings = Settings(root=ROOT, state_dir=state)
    settings.export_env()
    spec = load_usecase(USECASE, settings)
    name = spec.registered_model_name
    client = registry.connect(settings.tracking_uri)
    mv = registry.alias_version(client, name, registry.CHAMPION)
    if mv is not None:
        forced: list[str] = json.loads((mv.tags or {}).get(FORCED_TAG, "[]"))
        refuse_ungated(forced)
        record = {"version": str(mv.version), "trained_now": False}
        return settings, spec, {**record, "promoted": not forced, "not_promoted_because": forced}
    for args in (["dvc", "repro", "features"], ["dvc", "push", "-q"]):
        subprocess.run(args, cwd=ROOT, env=tool_env(), check=True, capture_output=True)
    store = feature_store(settings)
    apply(store, [spec], settings.data)
    materialize(store, spec, settings.data)
    res = run_in_process(settings, spec.name, "HEAD", state / "train")
    version = str(res["version"])
    why: list[str] = []
    if not res["promoted"]:
        why = [w for w in [*res["failures"], res["promotion_blocked"]] if w] or ["not promoted"]
    refuse_ungated(why)
    if why:
        client.set_model_version_tag(name, version, FORCED_TAG, json.dumps(why))
        registry.set_alias(client, name, registry.CHAMPION, version)
    record = {"version": version, "trained_now": True}
    return settings, spec, {**record, "promoted": not why, "not_promoted_because": why}


def warm(url: str, token: str, bodies: Path, n: int = 60) -> None:
    """A fresh service pays one-off costs on its first requests (lazy imports, first
    feature reads, the first batch shapes); take them before anything is measured."""
    import httpx

    rows = [json.loads(line) for line in bodies.read_text().splitlines()]
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as c:
        for i in range(n):
            post_ready(c, "/predict", rows[i % len(rows)])
        post_ready(c, "/predict_batch", rows[:20])


def write_bodies(
    settings: Settings, spec: UseCaseSpec, where: Path, n: int = 500
) -> tuple[Path, Path]:
    """``n`` real held-out bookings, one JSON body per line, and each one's true rate (the
    feedback the mix sends), one per line in the same order."""
    rows = future_bookings(settings, spec, n)
    bodies, actuals = where / "bodies.jsonl", where / "actuals.txt"
    bodies.write_text("".join(json.dumps(request_body(spec, r)) + "\n" for _, r in rows.iterrows()))
    actuals.write_text("".join(f"{float(v)!r}\n" for v in rows[spec.target.column]))
    return bodies, actuals


def machine_share(
    before: dict[str, float], after: dict[str, float], wall: float, cpu: dict[str, float]
) -> dict[str, float]:
    """Cores busy with anything but the service and wrk, and cores stolen, over the run.

    The service's CPU per request is exact whatever else runs, but its latency is not: a
    run beside other work (or on a host whose hypervisor takes the cores away) queues
    behind it. These figures tell such a run from a slower build of the code."""
    busy = (after["busy"] - before["busy"]) / wall
    return {
        "other_cores": max(0.0, busy - cpu["server_cores"] - cpu["wrk_cores"]),
        "steal_cores": (after["steal"] - before["steal"]) / wall,
        "iowait_cores": (after["iowait"] - before["iowait"]) / wall,
    }


def comparisons(run: Paced, budget: float, cpu: dict[str, float]) -> list[Comparison]:
    """The rows of the ``make bench`` table: goals on the values (no same-run baseline)."""
    held = f"{run.rate:g} req/s for {run.seconds / 60:.3g} min"
    pred = run.percentiles_ms(1, (50, 95, 99))
    every = run.percentiles_ms(2, (99,))
    return [
        Comparison(f"{held}: answered req/s vs offered", run.achieved_rps, "req/s", run.rate,
                   f"ratio >= {MIN_ANSWERED:g}"),
        Comparison(f"{held}: /predict p99 (spec budget)", pred["p99"], "ms", None, f"value <= {budget:g}"),
        Comparison(f"{held}: errors of {len(run.status) + sum(run.socket_errors.values())} requests",
                   float(run.errors), "", None, "value == 0"),
        Comparison(f"{held}: /predict p50", pred["p50"], "ms"),
        Comparison(f"{held}: /predict p95", pred["p95"], "ms"),
        Comparison(f"{held}: /predict_batch p99", every["p99"], "ms"),
        Comparison(f"{held}: service CPU (cores busy)", cpu["server_cores"], "cores"),
        Comparison(f"{held}: wrk CPU (cores busy)", cpu["wrk_cores"], "cores"),
        Comparison(f"{held}: other processes' CPU (cores busy)", cpu["other_cores"], "cores"),
        Comparison(f"{held}: CPU stolen by the hypervisor (cores)", cpu["steal_cores"], "cores"),
        Comparison(f"{held}: service CPU per request", 1000 * cpu["server_cores"] / max(run.achieved_rps, 1e-9), "ms"),
    ]  # fmt: skip


def main() -> int:
    state = Path(os.environ.get("SHIPWAY_LOAD_STATE") or ROOT / ".shipway" / "bench-load")
    settings, spec, champion = prepare(state.resolve())
    budget = float(spec.acceptance.latency_p99_ms)
    token = secrets.token_urlsafe(32)
    load0 = procs.load_average()
    with tempfile.TemporaryDirectory(prefix="shipway-load-") as tmp:
        bodies, actuals = write_bodies(settings, spec, Path(tmp))
        handle = start_shipway(settings, spec, WORKERS, "load-predictions.db", token)
        pid = handle.proc.pid
        print(f"service {handle.url} (champion v{champion['version']}, {WORKERS} workers), "
              f"{RATE:g} req/s for {SECONDS:g} s over {CONNECTIONS} connections, "
              f"budget p99 {budget:g} ms", flush=True)  # fmt: skip
        try:
            warm(handle.url, token, bodies)
            cpu0, wrk0, machine0, t0 = (
                procs.tree_cpu_seconds(pid),
                procs.children_cpu_seconds(),
                procs.machine_cpu_seconds(),
                time.perf_counter(),
            )
            run = run_paced(handle.url, bodies, actuals, RATE, CONNECTIONS, SECONDS, WARMUP,
                            secrets.token_hex(4), token)  # fmt: skip
            wall = time.perf_counter() - t0
            machine1 = procs.machine_cpu_seconds()
            cpu = {
                "server_cores": (procs.tree_cpu_seconds(pid) - cpu0) / wall,
                "wrk_cores": (procs.children_cpu_seconds() - wrk0) / wall,
            }
            cpu.update(machine_share(machine0, machine1, wall, cpu))
        finally:
            handle.stop()
    load1 = procs.load_average()
    v = verdict(run, budget)
    comps = comparisons(run, budget, cpu)
    print(table("load", comps))
    print(
        f"{'SUSTAINED' if v.sustained else 'NOT sustained'}: {v}; load average {load1['proc_loadavg']}"
    )
    if SMOKE:
        print("smoke mode: harness checked, nothing recorded")
        return 0 if run.answered > 0 else 1
    extra = {
        "sustained": v.sustained,
        "verdict": {"errors_ok": v.errors_ok, "p99_ok": v.p99_ok, "rate_ok": v.rate_ok},
        "rate_rps": RATE,
        "seconds": SECONDS,
        "warmup_seconds": WARMUP,
        "connections": CONNECTIONS,
        "workers": WORKERS,
        "budget_p99_ms": budget,
        "budget_field": "acceptance.latency_p99_ms",
        "criteria": f"0 errors, /predict p99 <= budget, >= {MIN_ANSWERED:.0%} of offered answered",
        "mix": "85% /predict, 5% /predict_batch (2-20 rows), 10% /feedback; bearer auth on",
        "load_generator": "wrk, benchmarks/lua/paced.lua (constant rate, latency from due time)",
        "answered_by_endpoint": run.by_kind,
        "socket_errors": run.socket_errors,
        "non_200": int((run.status != 200).sum()),
        "predict_ms": run.percentiles_ms(1, (50, 90, 95, 99, 99.9)),
        "cpu": cpu,
        "load_average": {"before": load0, "after": load1},
        "champion": champion,
    }
    path = save("load", comps, extra)
    md = markdown("load", comps, LOAD_NOTES.format(rate=RATE, s=SECONDS, w=WARMUP, c=CONNECTIONS,
                                                    workers=WORKERS, load0=load0["proc_loadavg"],
                                                    load1=load1["proc_loadavg"]))  # fmt: skip
    print(f"results: {path.relative_to(ROOT)}, {md.relative_to(ROOT)}")
    return 0 if v.sustained else 1


LOAD_NOTES = """Method: wrk, `benchmarks/lua/paced.lua`: {rate:g} req/s offered for {s:g} s
({w:g} s warm-up not measured) over {c} connections (one wrk thread each), open loop,
latency from each request's due time; `bentoml serve` with {workers} workers, bearer auth
on, durable SQLite prediction log. Load average before: {load0}; after: {load1}."""


if __name__ == "__main__":
    raise SystemExit(main())
