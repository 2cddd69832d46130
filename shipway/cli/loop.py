"""The serving-monitoring-retraining half of ``shipway demo``.

Serve the champion, replay the months after its training window through the live
endpoint with ground-truth feedback, let the monitor compare that traffic with the
training reference, retrain on the newest labelled data when drift or degradation is
found, and show the service picking up a new champion only if the gate promoted one.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from shipway.data.readiness import EVENT_TS
from shipway.net import free_port
from shipway.settings import Settings
from shipway.spec import Task, UseCaseSpec

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion


def later_events(
    settings: Settings, spec: UseCaseSpec, n: int, champion: ModelVersion | None
) -> pd.DataFrame:
    """Up to ``n`` real labelled events the champion never trained on, spread evenly.

    They come after the spec's training period (``split.end``) and after the champion's
    own training window (its ``train_before`` tag): a retrained champion learned part of
    the later period, and replaying those rows as "live" traffic would flatter it.
    """
    from pipelines.steps.tasks import champion_trained_before

    events = pd.read_parquet(settings.usecase_data(spec.name) / "features" / "events.parquet")
    starts = [champion_trained_before(champion)] if champion is not None else []
    if spec.split.end is not None:
        starts.append(pd.Timestamp(spec.split.end, tz="UTC") + pd.Timedelta(days=1))
    starts = [t for t in starts if t is not None]
    if starts:
        events = events[events[EVENT_TS] >= max(starts)]
    events = events.sort_values(EVENT_TS, kind="stable")
    # evenly spread from the first to the last labelled row, so the monitored window (and a
    # retraining's as_of) reaches the newest data
    idx = np.unique(np.linspace(0, len(events) - 1, num=min(n, len(events))).round())
    return events.iloc[idx.astype(int)].reset_index(drop=True)


def _actual(spec: UseCaseSpec, value: Any) -> float:
    if spec.target.task is Task.binary_classification:
        return 1.0 if str(value) == str(spec.target.positive_class) else 0.0
    return float(value)


def replay(
    url: str, spec: UseCaseSpec, rows: pd.DataFrame, token: str | None = None, workers: int = 4
) -> list[dict[str, Any]]:
    """POST every row to /predict, then its outcome to /feedback; return the answers."""
    from services.demo import request_body

    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def one(item: tuple[int, pd.Series]) -> dict[str, Any]:
        _, row = item
        with httpx.Client(base_url=url, timeout=60, headers=headers) as c:
            r = c.post("/predict", json=request_body(spec, row))
            r.raise_for_status()
            ans = dict(r.json())
            fb = c.post(
                "/feedback",
                json={
                    "request_id": ans["request_id"],
                    "actual": _actual(spec, row[spec.target.column]),
                },
            )
            fb.raise_for_status()
            ans["actual"] = _actual(spec, row[spec.target.column])
            ans["event_time"] = row[EVENT_TS]
            return ans

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, rows.iterrows()))


def wait_for_version(
    url: str, spec: UseCaseSpec, row: pd.Series, version: str, timeout: float = 90
) -> dict[str, Any]:
    """Poll /predict until the service answers with ``version`` (hot reload, no restart)."""
    from services.demo import request_body

    deadline = time.monotonic() + timeout
    ans: dict[str, Any] = {}
    while time.monotonic() < deadline:
        ans = httpx.post(f"{url}/predict", json=request_body(spec, row), timeout=30).json()
        if str(ans.get("model_version")) == str(version):
            return ans
        time.sleep(2)
    return ans


def summarise(console: Console, answers: list[dict[str, Any]], spec: UseCaseSpec) -> None:
    df = pd.DataFrame(answers)
    df["month"] = pd.to_datetime(df["event_time"]).dt.strftime("%Y-%m")
    df["err"] = (df["prediction"] - df["actual"]).abs()
    table = Table(
        "event month",
        "requests",
        "model version(s)",
        f"mean |error| ({spec.target.column})",
        title="replayed through the live endpoint",
    )
    for month, g in df.groupby("month"):
        table.add_row(
            str(month),
            str(len(g)),
            ", ".join(sorted({str(v) for v in g["model_version"]})),
            f"{g['err'].mean():.2f}",
        )
    console.print(table)


def run_loop(
    settings: Settings, spec: UseCaseSpec, console: Console, n: int = 400, step: int = 5
) -> dict[str, Any]:
    """Serve -> replay with feedback -> monitor -> retrain (gated) -> hot reload."""
    from rich.rule import Rule

    from monitoring.exporter import MonitorMetrics
    from monitoring.monitor import run_window
    from monitoring.trigger import maybe_retrain
    from pipelines.steps import registry
    from services.demo import start_service, wait_ready

    def stepline(title: str) -> None:
        nonlocal step
        console.print(Rule(f"[bold]step {step}: {title}"))
        step += 1

    out: dict[str, Any] = {}
    stepline("serve the champion with BentoML (Feast online features, durable log)")
    handle = start_service(settings, spec, settings.service_port)
    prom = None
    metrics = MonitorMetrics()
    try:
        wait_ready(handle)
        console.print(
            f"service ready at {handle.url}  (OpenAPI {handle.url}/docs, "
            f"metrics {handle.url}/metrics)"
        )
        from prometheus_client import start_http_server

        monitor_port = free_port()
        start_http_server(monitor_port, registry=metrics.registry)
        prom = _start_prometheus(settings, settings.service_port, monitor_port, console)

        client = registry.connect(settings.tracking_uri)
        before = registry.alias_version(client, spec.registered_model_name, registry.CHAMPION)
        rows = later_events(settings, spec, n, before)
        if rows.empty:
            raise RuntimeError(
                f"no labelled {spec.name} rows after the champion's training window to "
                "replay: the data ends where the champion's training ended"
            )
        stepline(
            f"replay {len(rows)} later events ({rows[EVENT_TS].min():%Y-%m-%d} to "
            f"{rows[EVENT_TS].max():%Y-%m-%d}) through /predict, outcomes via /feedback"
        )
        began = datetime.now(UTC)
        answers = replay(handle.url, spec, rows)
        ended = datetime.now(UTC)
        summarise(console, answers, spec)
        out["replayed"] = len(answers)

        stepline("monitor: Evidently drift + live performance vs the training reference")
        result = run_window(settings, spec, start=began, end=ended, by="ts", metrics=metrics)
        console.print(result.summary())
        out["drift_detected"], out["degraded"] = result.drift_detected, result.degraded
        out["report"] = str(result.summary_path)

        stepline("retrain on the newest labelled data when drift/degradation holds (gated)")
        as_of = pd.Timestamp(rows[EVENT_TS].max()).date().isoformat()
        decision = maybe_retrain(settings, spec, result, as_of=as_of)
        out["retrain"] = decision.get("outcome")
        out["retrain_error"] = decision.get("error") or (decision.get("result") or {}).get("error")
        if out["retrain_error"]:
            out["retrain"] = "failed"
        console.print(
            f"trigger decision: [bold]{decision.get('outcome')}[/] — {decision.get('reason')}"
        )
        res = decision.get("result") or {}
        after = registry.alias_version(client, spec.registered_model_name, registry.CHAMPION)
        out["champion_before"] = before.version if before else None
        out["champion_after"] = after.version if after else None
        if res:
            from shipway.cli.train import print_result

            print_result(res)
            out["retrained_version"] = res.get("version")
            out["comparison"] = cmp = res.get("champion_comparison") or {}
            if "champion_metric" in cmp:
                metric = spec.acceptance.metric
                console.print(
                    f"on {cmp['comparison_rows']} rows neither model trained on: retrained "
                    f"v{res.get('version')} {metric} "
                    f"{cmp['candidate_metric_on_comparison_rows']:.4g}, champion "
                    f"v{before.version if before else '?'} {cmp['champion_metric']:.4g}"
                )
        if after and before and str(after.version) != str(before.version):
            ans = wait_for_version(handle.url, spec, rows.iloc[-1], str(after.version))
            console.print(
                f"the running service now answers with {ans.get('model_name')} "
                f"v{ans.get('model_version')} (hot reload, no restart)"
            )
            out["served_after"] = ans.get("model_version")
        else:
            console.print(
                "champion unchanged: the service keeps answering with "
                f"v{before.version if before else '?'}"
            )
        if prom is not None:
            from monitoring.prometheus_config import wait_for

            up = wait_for(prom.url, "up == 1", lambda s: len(s) >= 2, timeout=60)
            out["prometheus_targets_up"] = len(up)
            console.print(
                f"Prometheus at {prom.url} scrapes {len(up)} targets: "
                + ", ".join(sorted(str(x.labels.get("job")) for x in up))
            )
    finally:
        handle.stop()
        if prom is not None:
            prom.stop()
    console.print(
        f"reports: {settings.state / 'monitoring' / spec.name / 'index.html'}; "
        f"retraining log: {settings.state / 'retraining' / (spec.name + '.jsonl')}"
    )
    return out


def _start_prometheus(
    settings: Settings, service_port: int, monitor_port: int, console: Console
) -> Any:
    from monitoring.prometheus_config import PrometheusConfig, find_prometheus, start_prometheus

    if find_prometheus() is None:
        console.print(
            "[yellow]Prometheus not found[/]: install it with "
            "`sudo apt-get install prometheus` to have the demo scraped"
        )
        return None
    cfg = PrometheusConfig(
        service_targets=[f"127.0.0.1:{service_port}"],
        monitor_targets=[f"127.0.0.1:{monitor_port}"],
        scrape_interval="5s",
    )
    workdir = settings.state / "prometheus"
    workdir.mkdir(parents=True, exist_ok=True)
    server = start_prometheus(cfg, free_port(), workdir=workdir)
    console.print(f"Prometheus started at {server.url} (config {server.config_file})")
    return server
