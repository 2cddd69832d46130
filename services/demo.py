"""The serving part of ``make demo``: start the service, score bookings it has never seen.

The bookings come from the months after the training window (``spec.split.end``), so the
printed predictions are what the model would have said about the future at booking time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil

from shipway.data.readiness import EVENT_TS
from shipway.settings import Settings
from shipway.spec import UseCaseSpec


@dataclass
class ServiceHandle:
    """A running ``bentoml serve`` and its workers; ``stop()`` or ``kill()`` ends them all.

    BentoML's process manager (circus) starts every worker in a session of its own
    (``os.setsid``), so signalling the server's process group does not reach the workers:
    after a SIGKILL of the group they would live on, holding the port and the prediction
    log. Both methods therefore also signal every descendant process, found before the
    server dies (afterwards the orphans no longer point back to it).
    """

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    responses: list[dict[str, Any]] = field(default_factory=list)

    def workers(self) -> list[psutil.Process]:
        """Every process below the server (its workers), while the server lives.

        The server itself is left to ``proc`` (``Popen.wait`` must reap it, or its exit
        status is lost)."""
        try:
            return list(psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            return []

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    @staticmethod
    def _reap(procs: list[psutil.Process], grace: float) -> None:
        """Give ``procs`` ``grace`` seconds to exit, then SIGKILL the rest and wait."""
        _, alive = psutil.wait_procs(procs, timeout=grace)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(alive, timeout=30)

    def kill(self) -> list[psutil.Process]:
        """SIGKILL the server and all its workers at once, as a node or pod crash would;
        returns the workers killed (gone on return; ``proc.wait()`` gives the server's)."""
        procs = self.workers()
        self._signal(signal.SIGKILL)
        self._reap(procs, grace=0)
        return procs

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Ask the server to stop (it stops its workers); SIGKILL whatever is left."""
        procs = self.workers()
        if self.proc.poll() is None:
            self._signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(10)
        self._reap(procs, grace=10)


def start_service(
    settings: Settings,
    spec: UseCaseSpec,
    port: int,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    base_env: dict[str, str] | None = None,
) -> ServiceHandle:
    """Start ``bentoml serve`` in its own process group (``ServiceHandle`` ends its workers)."""
    from shipway.cli.serve import serve_command, service_env

    log_path = log_path or settings.state / "logs" / f"service-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            serve_command(port),
            cwd=settings.root,
            env=service_env(settings, spec.name, base_env, **(env or {})),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ServiceHandle(proc, f"http://127.0.0.1:{port}", log_path)


def wait_ready(handle: ServiceHandle, timeout: float = 180.0) -> None:
    """Poll /readyz until 200; fail with the service log's tail if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.proc.poll() is not None:
            raise RuntimeError(f"service exited ({handle.proc.returncode}):\n{_tail(handle)}")
        try:
            if httpx.get(f"{handle.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"service not ready after {timeout:.0f}s:\n{_tail(handle)}")


def _tail(handle: ServiceHandle, n: int = 40) -> str:
    try:
        return "\n".join(handle.log_path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def events_after(
    settings: Settings, spec: UseCaseSpec, after: pd.Timestamp | None = None
) -> pd.DataFrame:
    """The use case's labelled events from after the spec's training period
    (``split.end``) and, when given, from ``after`` on (e.g. the end of a champion's own
    training window), in file order."""
    events = pd.read_parquet(settings.usecase_data(spec.name) / "features" / "events.parquet")
    starts = [after] if after is not None else []
    if spec.split.end is not None:
        starts.append(pd.Timestamp(spec.split.end, tz="UTC") + pd.Timedelta(days=1))
    return events[events[EVENT_TS] >= max(starts)] if starts else events


def future_bookings(settings: Settings, spec: UseCaseSpec, n: int) -> pd.DataFrame:
    """``n`` real bookings from after the training window (spread over those months)."""
    events = events_after(settings, spec)
    if events.empty:
        raise ValueError(f"no bookings of {spec.name} after the training window")
    step = max(len(events) // n, 1)
    return events.iloc[::step].head(n).reset_index(drop=True)


def request_body(spec: UseCaseSpec, row: pd.Series) -> dict[str, Any]:
    """The JSON body of /predict for an event row: entity keys and booking-time fields."""
    body: dict[str, Any] = {k: str(row[k]) for k in spec.entity_columns}
    for name in spec.request_field_names:
        v = row[name]
        # a missing value (NaN/NA) of a nullable field is JSON null, never NaN (invalid JSON)
        body[name] = None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)
    return body


def serve_and_predict(
    settings: Settings,
    spec: UseCaseSpec,
    n: int = 10,
    *,
    port: int | None = None,
    keep_running: bool = False,
) -> list[dict[str, Any]] | ServiceHandle:
    """Start the service, predict ``n`` future bookings and print them with the model version.

    Returns the responses, or (``keep_running=True``) the running service's handle with
    the responses in ``handle.responses``; call ``handle.stop()`` when done.
    """
    from rich.console import Console
    from rich.table import Table

    console = Console()
    port = port or settings.service_port
    handle = start_service(settings, spec, port)
    try:
        wait_ready(handle)
        rows = future_bookings(settings, spec, n)
        table = Table(
            "arrival",
            *spec.entity_columns,
            "actual",
            "predicted",
            "version",
            "variant",
            title=f"{spec.name}: bookings after the training window ({spec.split.end})",
        )
        with httpx.Client(base_url=handle.url, timeout=30) as client:
            for _, row in rows.iterrows():
                resp = client.post("/predict", json=request_body(spec, row))
                resp.raise_for_status()
                ans = resp.json()
                handle.responses.append(ans)
                table.add_row(
                    f"{row[EVENT_TS]:%Y-%m-%d}",
                    *[str(row[k]) for k in spec.entity_columns],
                    f"{row[spec.target.column]}",
                    f"{ans['prediction']:.2f}" + (f" ({ans['label']})" if ans.get("label") else ""),
                    f"v{ans['model_version']}",
                    ans["variant"],
                )
        console.print(table)
        console.print(
            f"service at {handle.url} (OpenAPI: {handle.url}/, metrics: {handle.url}/metrics)"
        )
    except BaseException:
        handle.stop()
        raise
    if keep_running:
        return handle
    handle.stop()
    return handle.responses


if __name__ == "__main__":  # python -m services.demo [n]
    from shipway.settings import get_settings
    from shipway.usecases import load_usecase

    s = get_settings()
    serve_and_predict(s, load_usecase(s.usecase, s), int(sys.argv[1]) if len(sys.argv) > 1 else 10)
