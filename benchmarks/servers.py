"""Starting the Shipway service for a benchmark: as shipped, on a fresh prediction log.

Both HTTP benchmarks run the real ``bentoml serve`` through ``shipway.core.launch`` (the
same command and environment as ``shipway serve`` and the chart), never an in-process
app, so what they measure is what a user runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from shipway.core.launch import ServiceHandle, start_service, wait_ready
from shipway.core.net import free_port
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec


def tool_env() -> dict[str, str]:
    """Our environment without ``SHIPWAY_*`` knobs (each server gets its own), with this
    venv's scripts first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPWAY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def fresh(path: Path) -> str:
    """A SQLite path with no earlier database (or WAL) at it."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return str(path)


def start_shipway(
    settings: Settings, spec: UseCaseSpec, workers: int, log: str, token: str | None = None
) -> ServiceHandle:
    """``bentoml serve`` of the champion with ``workers`` workers, a fresh prediction log
    ``<state>/<log>`` (every answered prediction is committed to it) and, when given, a
    bearer token as the chart sets one; returns once /readyz answers."""
    env = {
        "SHIPWAY_PREDICTION_LOG_URI": fresh(settings.state / log),
        "SHIPWAY_SERVICE_WORKERS": str(workers),
    }
    if token:
        env["SHIPWAY_API_TOKEN"] = token
    handle = start_service(settings, spec, free_port(), env=env, base_env=tool_env())
    try:
        wait_ready(handle)
    except BaseException:
        handle.stop()
        raise
    return handle
