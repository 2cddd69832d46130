"""Cost per prediction: what serving the candidate costs in CPU and memory.

The production-readiness smoke serves the candidate with a real ``bentoml serve``, so the
cost is measured on the processes that actually answer: the server and every worker
below it (HTTP, validation, Feast online reads, the model, the prediction log). A
``CostMeter`` reads that process tree with psutil before, during and after a run of
``/predict`` requests; the client sending them is another process and is not counted.

* CPU: user + system seconds each process spent in the window, summed, then scaled to
  1,000 answered predictions. A process that starts during the window counts from zero;
  one that exits counts up to its last reading.
* Memory: the resident set size (RSS) summed over the tree, at its peak in the window
  (shared library pages count once per process, so this is an upper bound of what a
  container would be charged). Memory is a level, not a per-prediction quantity: it is
  reported as the peak while those predictions were served.

The figures go into the smoke's facts (``smoke.cost``) of the production-readiness
record; ``criteria`` turns them into that gate's two cost criteria, enforced only when the
spec sets ``acceptance.cost_budget``. The model card and ``shipway status`` read them back
from the record.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from shipway.core.evidence import Criterion
from shipway.core.spec import CostBudget

PER = 1000
"""Predictions the CPU figure is scaled to."""

MB = 1024 * 1024

CPU_CRITERION = "cost_cpu_seconds_per_1k"
MEMORY_CRITERION = "cost_memory_mb"

ProcessKey = tuple[int, float]
"""A process: its pid and start time (a pid alone may be reused)."""


@dataclass(frozen=True)
class Reading:
    """One look at a process tree: CPU-seconds so far per process, and the summed RSS."""

    cpu: dict[ProcessKey, float]
    rss_bytes: int


def read_tree(pid: int) -> Reading:
    """The process ``pid`` and all its descendants, as they are now.

    A process that vanishes while it is read is skipped (it is counted up to its last
    earlier reading); a ``pid`` that no longer exists reads as an empty tree."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return Reading({}, 0)
    cpu: dict[ProcessKey, float] = {}
    rss = 0
    for p in procs:
        try:
            with p.oneshot():
                t = p.cpu_times()
                cpu[(p.pid, p.create_time())] = float(t.user + t.system)
                rss += int(p.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return Reading(cpu, rss)


def cpu_used(first: Mapping[ProcessKey, float], last: Mapping[ProcessKey, float]) -> float:
    """CPU-seconds spent between two readings: per process, its last reading minus its
    first (zero for a process born after the first reading), summed."""
    return sum(max(0.0, v - first.get(k, 0.0)) for k, v in last.items())


def per_thousand(cpu_seconds: float, predictions: int) -> float | None:
    """CPU-seconds per 1,000 predictions (None when nothing was answered)."""
    return None if predictions <= 0 else cpu_seconds / predictions * PER


@dataclass(frozen=True)
class ServingCost:
    """What serving ``predictions`` answers cost, as recorded in the smoke's facts."""

    predictions: int
    cpu_seconds: float
    wall_seconds: float
    processes: int
    rss_start_mb: float
    rss_peak_mb: float

    @property
    def cpu_seconds_per_1k(self) -> float | None:
        return per_thousand(self.cpu_seconds, self.predictions)

    def to_dict(self) -> dict[str, Any]:
        per_1k = self.cpu_seconds_per_1k
        return {
            **asdict(self),
            "cpu_seconds": round(self.cpu_seconds, 4),
            "wall_seconds": round(self.wall_seconds, 3),
            "rss_start_mb": round(self.rss_start_mb, 1),
            "rss_peak_mb": round(self.rss_peak_mb, 1),
            "cpu_seconds_per_1k": None if per_1k is None else round(per_1k, 4),
            "measured_on": "the serving process tree (bentoml server and its workers), "
            "user + system CPU; RSS summed over the tree",
        }


class CostMeter:
    """Reads a process tree at ``start``, at each ``sample`` and at ``stop``.

    Sampling during the run keeps the memory peak and the CPU of a process that exits
    before ``stop``; sample every few requests (a reading costs the *client* about a
    millisecond, never the processes measured)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._first: dict[ProcessKey, float] = {}
        self._last: dict[ProcessKey, float] = {}
        self._rss_start = 0
        self._rss_peak = 0
        self._t0 = 0.0

    def start(self) -> None:
        r = read_tree(self.pid)
        self._first, self._last = dict(r.cpu), dict(r.cpu)
        self._rss_start = self._rss_peak = r.rss_bytes
        self._t0 = time.monotonic()

    def sample(self) -> None:
        r = read_tree(self.pid)
        self._last.update(r.cpu)
        self._rss_peak = max(self._rss_peak, r.rss_bytes)

    def stop(self, predictions: int) -> ServingCost:
        """The cost of the window since ``start``, for ``predictions`` answers."""
        self.sample()
        return ServingCost(
            predictions=predictions,
            cpu_seconds=cpu_used(self._first, self._last),
            wall_seconds=time.monotonic() - self._t0,
            processes=len(self._last),
            rss_start_mb=self._rss_start / MB,
            rss_peak_mb=self._rss_peak / MB,
        )


def _criterion(name: str, value: float | None, limit: float | None, what: str) -> Criterion:
    if value is None:
        return Criterion(
            name,
            limit is None,
            "not measured",
            limit,
            "<=" if limit is not None else "",
            f"{what}: the smoke did not measure it"
            + ("" if limit is None else " (a budget is set, so this fails)"),
        )
    if limit is None:
        return Criterion(
            name, True, value, detail=f"{what}; reported, no budget (acceptance.cost_budget)"
        )
    return Criterion(name, value <= limit, value, limit, "<=", what)


def criteria(budget: CostBudget | None, measured: Mapping[str, Any] | None) -> list[Criterion]:
    """The production-readiness gate's cost criteria from the smoke's ``cost`` facts.

    Always both, so every record reports the cost; each fails only when the spec sets
    that limit and the measurement exceeds it (or is missing)."""
    m = measured or {}
    n = m.get("predictions", 0)
    return [
        _criterion(
            CPU_CRITERION,
            m.get("cpu_seconds_per_1k"),
            budget.cpu_seconds_per_1k if budget else None,
            f"serving CPU-seconds per {PER:,} predictions, over {n} /predict answers",
        ),
        _criterion(
            MEMORY_CRITERION,
            m.get("rss_peak_mb"),
            budget.memory_mb if budget else None,
            "peak resident memory (MB) of the serving processes during the smoke",
        ),
    ]


def recorded(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The cost a production-readiness record holds: the measurement and, per criterion,
    the budget it was held to and whether it passed (None: no record or no measurement)."""
    if not record:
        return None
    cost = ((record.get("facts") or {}).get("smoke") or {}).get("cost")
    if not cost:
        return None
    crit = {c["name"]: c for c in record.get("criteria", [])}
    out = dict(cost)
    for key, name in (("cpu", CPU_CRITERION), ("memory", MEMORY_CRITERION)):
        c = crit.get(name) or {}
        out[f"{key}_budget"] = c.get("threshold") if c.get("comparator") else None
        out[f"{key}_passed"] = c.get("passed")
    return out


def card_section(record: Mapping[str, Any] | None) -> list[str]:
    """The model card's "Cost per prediction" section (Markdown lines), from the
    version's production-readiness record."""
    lines = ["## Cost per prediction", ""]
    cost = recorded(record)
    if cost is None:
        return [
            *lines,
            "Not measured: no production-readiness record with a cost measurement for this "
            "version (`shipway gate production-readiness`).",
        ]

    def budget(key: str, unit: str) -> str:
        limit = cost.get(f"{key}_budget")
        if limit is None:
            return "no budget set"
        return f"budget {limit:g} {unit}: " + ("within" if cost.get(f"{key}_passed") else "OVER")

    per_1k = cost.get("cpu_seconds_per_1k")
    cpu = "not measured" if per_1k is None else f"{per_1k:.3g} CPU-seconds"
    return [
        *lines,
        f"Measured by the production-readiness smoke on the served Bento: "
        f"{cost.get('predictions', 0)} `/predict` answers by {cost.get('processes', '?')} "
        f"serving processes in {cost.get('wall_seconds', 0):.3g} s.",
        "",
        "| measure | value | budget |",
        "| --- | --- | --- |",
        f"| CPU (user + system) per {PER:,} predictions | {cpu} | {budget('cpu', 'CPU-s')} |",
        f"| peak resident memory | {cost.get('rss_peak_mb', 0):.4g} MB (at start "
        f"{cost.get('rss_start_mb', 0):.4g} MB) | {budget('memory', 'MB')} |",
    ]


def mct_metrics(record: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The cost as Model Card Toolkit performance metrics (values are strings there), so
    the standard-schema card carries it too; none without a measurement."""
    c = recorded(record)
    if c is None:
        return []
    where = "serving: production-readiness smoke"
    pairs = (
        (f"cpu_seconds_per_{PER}_predictions", c.get("cpu_seconds_per_1k")),
        ("peak_resident_memory_mb", c.get("rss_peak_mb")),
    )
    return [{"type": t, "value": f"{v:.6g}", "slice": where} for t, v in pairs if v is not None]
