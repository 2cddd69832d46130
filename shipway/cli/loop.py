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
from rich.table import Table

from shipway.core.net import free_port
from shipway.core.settings import Settings
from shipway.core.spec import Task, UseCaseSpec
from shipway.data.readiness import EVENT_TS

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
    from shipway.data.replay import events_after

    trained_before = champion_trained_before(champion) if champion is not None else None
    events = events_after(settings, spec, trained_before).sort_values(EVENT_TS, kind="stable")
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
    from shipway.cli.output import progress
    from shipway.data.replay import request_body

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
        answers = pool.map(one, rows.iterrows())
        return list(progress(answers, "replay /predict + /feedback", total=len(rows)))


def wait_for_version(
    url: str, spec: UseCaseSpec, row: pd.Series, version: str, timeout: float = 90
) -> dict[str, Any]:
    """Poll /predict until the service answers with ``version`` (hot reload, no restart)."""
    from shipway.data.replay import request_body

    deadline = time.monotonic() + timeout
    ans: dict[str, Any] = {}
    while time.monotonic() < deadline:
        ans = httpx.post(f"{url}/predict", json=request_body(spec, row), timeout=30).json()
        if str(ans.get("model_version")) == str(version):
            return ans
        time.sleep(2)
    return ans


def summarise(answers: list[dict[str, Any]], spec: UseCaseSpec) -> None:
    """The replay's error per event month, as served (a table on the terminal)."""
    from shipway.cli.output import console

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


def run_loop(settings: Settings, spec: UseCaseSpec, n: int = 400, first: int = 5) -> dict[str, Any]:
    """Serve -> replay with feedback -> monitor -> retrain (gated) -> hot reload; one step
    line each, numbered from ``first``."""
    from monitoring.exporter import MonitorMetrics
    from monitoring.monitor import run_window
    from monitoring.trigger import RetrainTrigger, maybe_retrain
    from pipelines.runner import retraining_runner
    from shipway.cli.output import detail, pipeline_steps, say, step
    from shipway.core import registry
    from shipway.core.launch import start_service, wait_ready

    out: dict[str, Any] = {}
    handle, prom = None, None
    metrics = MonitorMetrics()
    trigger = RetrainTrigger(settings, runner=retraining_runner(settings))
    try:
        with step(f"step {first}: serve the champion with BentoML") as s:
            handle = start_service(settings, spec, settings.service_port)
            wait_ready(handle)
            from prometheus_client import start_http_server

            monitor_port = free_port()
            start_http_server(monitor_port, registry=metrics.registry)
            prom = _start_prometheus(settings, settings.service_port, monitor_port)
            s.ok(
                f"{handle.url} (Swagger UI {handle.url}/, OpenAPI {handle.url}/docs.json, "
                f"metrics {handle.url}/metrics)"
                + (f"; Prometheus {prom.url}" if prom is not None else "")
            )
        if prom is None:
            say(
                "[yellow]Prometheus not found[/]: install it with "
                "`sudo apt-get install prometheus` to have the demo scraped"
            )

        client = registry.connect(settings.tracking_uri)
        before = registry.alias_version(client, spec.registered_model_name, registry.CHAMPION)
        rows = later_events(settings, spec, n, before)
        if rows.empty:
            raise RuntimeError(
                f"no labelled {spec.name} rows after the champion's training window to "
                "replay: the data ends where the champion's training ended"
            )
        with step(
            f"step {first + 1}: replay {len(rows)} later events "
            f"({rows[EVENT_TS].min():%Y-%m-%d} to {rows[EVENT_TS].max():%Y-%m-%d}) through "
            "/predict, outcomes via /feedback"
        ) as s:
            began = datetime.now(UTC)
            answers = replay(handle.url, spec, rows)
            ended = datetime.now(UTC)
            s.ok(f"{len(answers)} predictions answered, {len(answers)} labels recorded")
        summarise(answers, spec)
        out["replayed"] = len(answers)

        with step(
            f"step {first + 2}: monitor: Evidently drift + live performance vs the reference"
        ) as s:
            result = run_window(settings, spec, start=began, end=ended, by="ts", metrics=metrics)
            s.ok(
                ("DRIFT" if result.drift_detected else "no drift")
                + (", performance DEGRADED" if result.degraded else "")
            )
        out["drift_detected"], out["degraded"] = result.drift_detected, result.degraded
        out["report"] = str(result.summary_path)

        as_of = pd.Timestamp(rows[EVENT_TS].max()).date().isoformat()
        with (
            pipeline_steps(),
            step(f"step {first + 3}: retrain on data up to {as_of} if drift or degradation") as s,
        ):
            decision = maybe_retrain(settings, spec, result, trigger=trigger, as_of=as_of)
            out["retrain"] = decision.get("outcome")
            res = decision.get("result") or {}
            out["retrain_error"] = decision.get("error") or res.get("error")
            if out["retrain_error"]:
                out["retrain"] = "failed"
                s.fail(f"retraining failed: {out['retrain_error']}")
            else:
                s.ok(f"{decision.get('outcome')}: {decision.get('reason')}")
        after = registry.alias_version(client, spec.registered_model_name, registry.CHAMPION)
        out["champion_before"] = before.version if before else None
        out["champion_after"] = after.version if after else None
        if res and "version" in res:
            from shipway.cli.train import print_result

            print_result(res)
            out["retrained_version"] = res.get("version")
            out["comparison"] = cmp = res.get("champion_comparison") or {}
            if "champion_metric" in cmp:
                say(
                    f"  on {cmp['comparison_rows']} rows neither model trained on: retrained "
                    f"v{res.get('version')} {spec.acceptance.metric} "
                    f"{cmp['candidate_metric_on_comparison_rows']:.4g}, champion "
                    f"v{before.version if before else '?'} {cmp['champion_metric']:.4g}"
                )
        if after and before and str(after.version) != str(before.version):
            with step("the running service picks up the new champion (hot reload)") as s:
                ans = wait_for_version(handle.url, spec, rows.iloc[-1], str(after.version))
                out["served_after"] = ans.get("model_version")
                if str(ans.get("model_version")) == str(after.version):
                    s.ok(f"answers with {ans.get('model_name')} v{ans.get('model_version')}")
                else:
                    s.fail(f"still answers with v{ans.get('model_version')}")
        else:
            say(
                "champion unchanged: the service keeps answering with "
                f"v{before.version if before else '?'}"
            )
        if prom is not None:
            from monitoring.prometheus_config import wait_for

            up = wait_for(prom.url, "up == 1", lambda s: len(s) >= 2, timeout=60)
            out["prometheus_targets_up"] = len(up)
            say(
                f"Prometheus at {prom.url} scrapes {len(up)} targets: "
                + ", ".join(sorted(str(x.labels.get("job")) for x in up))
            )
    finally:
        if handle is not None:
            detail(f"service log: {handle.log_path}")
            handle.stop()
        if prom is not None:
            prom.stop()
    say(
        f"reports: {settings.state / 'monitoring' / spec.name / 'index.html'}; "
        f"retraining log: {settings.state / 'retraining' / (spec.name + '.jsonl')}"
    )
    return out


def _start_prometheus(settings: Settings, service_port: int, monitor_port: int) -> Any:
    """A real Prometheus scraping the service and the monitor (None when not installed)."""
    from monitoring.prometheus_config import PrometheusConfig, find_prometheus, start_prometheus

    if find_prometheus() is None:
        return None
    cfg = PrometheusConfig(
        service_targets=[f"127.0.0.1:{service_port}"],
        monitor_targets=[f"127.0.0.1:{monitor_port}"],
        scrape_interval="5s",
    )
    workdir = settings.state / "prometheus"
    workdir.mkdir(parents=True, exist_ok=True)
    return start_prometheus(cfg, free_port(), workdir=workdir)
