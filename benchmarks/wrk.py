"""wrk, the C load generator both HTTP benchmarks drive, and the parsing of what it wrote.

A Python load client on the same 2 cores takes about a third of the server's speed
(docs/DESIGN.md), so the serving and load benchmarks use wrk (Debian package ``wrk``,
LuaJIT inside) with Lua scripts in ``benchmarks/lua``:

* ``cycle.lua``: closed loop, each connection sends its next request when the answer
  arrives, cycling real request bodies; ``done()`` writes wrk's own summary (HdrHistogram
  latency percentiles, counts, error kinds) as JSON;
* ``paced.lua``: open loop at a constant rate, one connection per wrk thread, latencies
  measured from when each request was due; ``done()`` writes one line per answered
  request (kind, latency in µs, status, due time).

The parsing lives here, separate from the running, so a unit test checks it on text.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LUA = Path(__file__).resolve().parent / "lua"
START_S = 1.0
"""``paced.lua`` starts its schedule this long after wrk starts (threads connecting)."""
TAIL_S = 1.0
"""Requests due in the last second of a run are not counted: they may not be answered
before wrk stops, which would read as a shortfall of the rate."""
KINDS = {1: "/predict", 2: "/predict_batch", 3: "/feedback"}
"""The request kinds ``paced.lua`` numbers its samples with."""


def wrk_binary() -> str:
    """The wrk executable; ``make bench-serving`` / ``bench-load`` install it when missing."""
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk not found: apt-get install -y wrk (the make targets do this)")
    return found


@dataclass(frozen=True)
class Closed:
    """One closed-loop wrk run, as ``cycle.lua``'s ``done()`` reported it."""

    seconds: float
    requests: int
    """Every response read, whatever its status."""
    errors: dict[str, int]
    """wrk's error kinds: connect, read, write, timeout, and status (HTTP >= 400)."""
    latency_ms: dict[str, float]
    """p50, p90, p99, p99.9, max, mean of every response (HdrHistogram, µs resolution)."""

    @property
    def answered(self) -> int:
        """Requests answered with a success status."""
        return self.requests - self.errors["status"]

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rps(self) -> float:
        return self.answered / self.seconds if self.seconds else float("nan")


def parse_closed(text: str) -> Closed:
    """Read ``cycle.lua``'s summary; a summary without answers is an error, not zeros."""
    raw: dict[str, Any] = json.loads(text)
    lat = {k: float(v) / 1000.0 for k, v in raw["latency_us"].items()}
    out = Closed(
        seconds=float(raw["duration_us"]) / 1e6,
        requests=int(raw["requests"]),
        errors={k: int(v) for k, v in raw["errors"].items()},
        latency_ms=lat,
    )
    if out.requests <= 0:
        raise ValueError(f"wrk answered no requests: {raw}")
    return out


def run_closed(
    url: str, bodies: Path, connections: int, seconds: float, path: str = "/predict"
) -> Closed:
    """``connections`` closed-loop connections on one wrk thread for ``seconds``.

    One thread: it keeps wrk's own CPU to a fraction of one core, and a single event loop
    easily drives 16 connections at the rates a Python server answers."""
    with tempfile.TemporaryDirectory(prefix="shipway-wrk-") as tmp:
        out = Path(tmp) / "summary.json"
        env = {**os.environ, "WRK_BODIES": str(bodies), "WRK_OUT": str(out), "WRK_PATH": path}
        cmd = [wrk_binary(), "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s",
               "-s", str(LUA / "cycle.lua"), url]  # fmt: skip
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
        return parse_closed(out.read_text())


@dataclass
class Paced:
    """One constant-rate run of ``paced.lua``: what was due, sent and answered."""

    rate: float
    """Offered requests per second."""
    seconds: float
    """Measured span: the run minus its warm-up."""
    socket_errors: dict[str, int]
    """wrk's connect/read/write/timeout errors (requests that never got an answer)."""
    kinds: np.ndarray
    latency_us: np.ndarray
    """From when the request was due when it went out late, else from when it was sent."""
    status: np.ndarray
    sent: int
    """Requests wrk sent over the whole run (warm-up included)."""
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def answered(self) -> int:
        return int(np.count_nonzero(self.status == 200))

    @property
    def errors(self) -> int:
        """Answers other than 200, plus requests lost to socket errors or timeouts."""
        return int(np.count_nonzero(self.status != 200)) + sum(self.socket_errors.values())

    @property
    def achieved_rps(self) -> float:
        return self.answered / self.seconds if self.seconds else float("nan")

    def percentiles_ms(self, kind: int, qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float]:
        """Latency percentiles (ms) of the successful requests of one kind."""
        lat = self.latency_us[(self.kinds == kind) & (self.status == 200)] / 1000.0
        return {f"p{q:g}": float(np.percentile(lat, q)) if len(lat) else float("nan") for q in qs}


def parse_paced(text: str, rate: float, seconds: float, warmup: float) -> Paced:
    """Read ``paced.lua``'s sample file: ``#`` header lines, then ``kind µs status due``."""
    header: dict[str, int] = {}
    sent = 0
    rows: list[list[int]] = []
    for line in text.splitlines():
        if line.startswith("#"):
            pairs = dict(p.split("=", 1) for p in line[1:].split())
            if "thread" in pairs:
                sent += int(pairs["sent"])
            else:
                header = {k: int(v) for k, v in pairs.items()}
        elif line.strip():
            rows.append([int(v) for v in line.split()])
    if not header:
        raise ValueError("no wrk summary line in the samples")
    data = np.array(rows, dtype=np.int64).reshape(-1, 4)
    end = seconds - START_S - TAIL_S
    span = end - warmup
    in_window = data[:, 3] < end * 1e6  # due within the measured span (after the warm-up)
    data = data[in_window]
    kinds = data[:, 0]
    return Paced(
        rate=rate,
        seconds=span,
        socket_errors={k: header[k] for k in ("connect", "read", "write", "timeout")},
        kinds=kinds,
        latency_us=data[:, 1].astype(np.float64),
        status=data[:, 2],
        sent=sent,
        by_kind={name: int(np.count_nonzero(kinds == k)) for k, name in KINDS.items()},
    )


def run_paced(
    url: str,
    bodies: Path,
    actuals: Path,
    rate: float,
    connections: int,
    seconds: float,
    warmup: float,
    run_id: str,
    token: str | None = None,
) -> Paced:
    """``rate`` req/s of the mix over ``connections`` connections (one wrk thread each)."""
    with tempfile.TemporaryDirectory(prefix="shipway-wrk-") as tmp:
        out = Path(tmp) / "samples.txt"
        env = {
            **os.environ,
            "WRK_BODIES": str(bodies),
            "WRK_ACTUALS": str(actuals),
            "WRK_RATE": f"{rate:g}",
            "WRK_CONNECTIONS": str(connections),
            "WRK_WARMUP_S": f"{warmup:g}",
            "WRK_RUN": run_id,
            "WRK_TOKEN": token or "",
            "WRK_OUT": str(out),
        }
        cmd = [wrk_binary(), f"-t{connections}", f"-c{connections}", f"-d{seconds:g}s",
               "--timeout", "10s", "-s", str(LUA / "paced.lua"), url]  # fmt: skip
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
        return parse_paced(out.read_text(), rate, seconds, warmup)
