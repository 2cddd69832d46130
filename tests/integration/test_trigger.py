"""The retraining trigger for real: over HTTP, fed by a real Prometheus, and running the
real training pipeline whose gate must keep a failing candidate away from champion."""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from monitoring.drift import ColumnDrift, DriftResult
from monitoring.exporter import MonitorMetrics
from monitoring.prometheus_config import (
    RULES_FILE,
    PrometheusConfig,
    find_prometheus,
    start_prometheus,
    wait_for,
)
from monitoring.trigger import RetrainTrigger, history
from monitoring.webhook import TriggerServer
from monitoring.window import WindowResult
from pipelines.runner import retraining_runner
from shipway.core import registry
from shipway.core.performance import Performance
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from tests.conftest import ROOT, free_port, registry_copy, require, session_champion

pytestmark = pytest.mark.integration


class Recorder:
    """Stands in for the pipeline where the test is about decisions, not training."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.kwargs: list[dict[str, Any]] = []

    def __call__(self, settings: Settings, usecase: str, rev: str, **kw: Any) -> dict[str, Any]:
        self.calls.append((usecase, rev))
        self.kwargs.append(kw)
        return {"model": usecase, "version": "2", "promoted": True, "gate_passed": True}


TOKEN = secrets.token_urlsafe(32)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[str, RetrainTrigger, Recorder]]:
    s = Settings(root=ROOT, state_dir=tmp_path / "state")
    runner = Recorder()
    trigger = RetrainTrigger(s, runner=runner)
    server = TriggerServer(trigger, "127.0.0.1", free_port(), token=TOKEN)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", trigger, runner
    server.shutdown()
    trigger.join(30)


def alertmanager_body(status: str, *alerts: tuple[str, str, str]) -> dict[str, Any]:
    """An Alertmanager (v0.2x) webhook body, as sent to a webhook_config receiver."""
    return {
        "receiver": "shipway-trigger", "status": status, "version": "4",
        "groupKey": '{}/{shipway_action="retrain"}:{usecase="hotel_rates"}',
        "truncatedAlerts": 0, "externalURL": "http://alertmanager:9093",
        "groupLabels": {"usecase": "hotel_rates"},
        "commonLabels": {"usecase": "hotel_rates"}, "commonAnnotations": {},
        "alerts": [
            {"status": st, "labels": {"alertname": name, "usecase": "hotel_rates",
                                      "severity": sev, **({"shipway_action": "retrain"}
                                                          if name.startswith("ShipwayData") else {})},
             "annotations": {"summary": f"{name} on hotel_rates",
                             "runbook_url": f"monitoring/prometheus/RUNBOOK.md#{name.lower()}"},
             "startsAt": "2026-01-01T10:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z" if st == "firing" else "2026-01-01T11:00:00Z",
             "generatorURL": "http://prometheus:9090/graph?g0.expr=...", "fingerprint": "c0ffee"}
            for name, st, sev in alerts
        ],
    }  # fmt: skip


def test_alertmanager_webhook_over_http(served: tuple[str, RetrainTrigger, Recorder]) -> None:
    url, trigger, runner = served
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    body = alertmanager_body(
        "firing",
        ("ShipwayDataDrift", "firing", "warning"),
        ("ShipwayHighErrorRatio", "firing", "critical"),
    )
    assert httpx.post(f"{url}/alertmanager", json=body).status_code == 401  # no token
    first = httpx.post(f"{url}/alertmanager", json=body, headers=AUTH)
    assert first.status_code == 200
    got = {d["outcome"] for d in first.json()["decisions"]}
    assert got == {"started", "ignored"}
    trigger.join(10)
    again = httpx.post(f"{url}/alertmanager", json=body, headers=AUTH).json()["decisions"]
    assert [d["outcome"] for d in again if d["reason"].startswith("alert")] == ["cooldown"]
    resolved = alertmanager_body("resolved", ("ShipwayDataDrift", "resolved", "warning"))
    answer = httpx.post(f"{url}/alertmanager", json=resolved, headers=AUTH)
    assert answer.json()["decisions"][0]["outcome"] == "ignored"
    assert runner.calls and len(runner.calls) == 1
    malformed = {**AUTH, "Content-Type": "application/json"}
    assert (
        httpx.post(f"{url}/alertmanager", content=b"{not json", headers=malformed).status_code
        == 400
    )
    assert httpx.post(f"{url}/nope", json={}, headers=AUTH).status_code == 404
    metrics = httpx.get(f"{url}/metrics").text
    for outcome, n in (("started", 1), ("cooldown", 1), ("ignored", 3), ("failed", 0)):
        line = f'shipway_retrain_triggers_total{{outcome="{outcome}",usecase="hotel_rates"}} {n}.0'
        assert line in metrics, line
    events = [(e["event"], e.get("outcome")) for e in history(trigger.settings, "hotel_rates")]
    assert ("promotion", None) in events


def drifted_window() -> WindowResult:
    feats = [ColumnDrift(f"f{i}", "numerical", "wasserstein", 0.1, 0.5, i < 5) for i in range(10)]
    return WindowResult(
        usecase="hotel_rates",
        window={"start": "2017-07-01", "end": "2017-08-01", "by": "event_time"},
        model={"name": "hotel_rates", "version": "1"},
        rows={"logged": 500, "served": 500, "shadow": 0, "labelled": 0},
        drift=DriftResult(feats, None, 0.3, 2000, 500, False),
        performance=Performance("mae", 0, None, 8.0, None, 0.2, {}),
        challenger=None,
        spec_thresholds={"drift_share": 0.3, "performance_drop": 0.2},
    )


def test_prometheus_pushes_the_drift_alert_and_one_retraining_starts(
    tmp_path: Path, served: tuple[str, RetrainTrigger, Recorder]
) -> None:
    """Monitor gauges -> Prometheus (the real ShipwayDataDrift rule) -> trigger."""
    prometheus = find_prometheus()
    require(prometheus is not None, "the `prometheus` binary is missing (Debian package)")
    url, trigger, runner = served
    metrics = MonitorMetrics()
    metrics.publish(drifted_window())
    port = free_port()
    server = metrics.serve(port, addr="127.0.0.1")
    rules = yaml.safe_load(RULES_FILE.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "ShipwayDataDrift":
                rule["for"] = "0s"  # the test cannot wait 10 minutes; the expression is real
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    token_file = tmp_path / "trigger-token"  # the webhook refuses pushes without it
    token_file.write_text(TOKEN + "\n")
    cfg = PrometheusConfig(
        service_targets=[], trigger_targets=[], monitor_targets=[f"127.0.0.1:{port}"],
        scrape_interval="1s", rule_files=[tmp_path / "rules.yml"],
        alertmanager_targets=[url.removeprefix("http://")],
        alertmanager_credentials_file=token_file,
    )  # fmt: skip
    try:
        with start_prometheus(cfg, free_port(), binary=prometheus) as prom:
            wait_for(prom.url, 'ALERTS{alertname="ShipwayDataDrift",alertstate="firing"}')
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not runner.calls:
                time.sleep(0.5)
    finally:
        server.shutdown()
    trigger.join(10)
    decisions = [e for e in history(trigger.settings, "hotel_rates") if e["event"] == "decision"]
    assert decisions and decisions[0]["outcome"] == "started"
    assert decisions[0]["source"] == "prometheus"
    assert decisions[0]["details"]["alerts"][0]["alertname"] == "ShipwayDataDrift"
    assert [d["outcome"] for d in decisions].count("started") == 1
    assert len(runner.calls) == 1


@pytest.fixture()
def strong_champion(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """A copy of the session registry: its champion was trained on exactly the data a
    retraining would use now, so the candidate cannot beat it by the spec's margin."""
    for key in ("SHIPWAY_ROOT", "SHIPWAY_STATE_DIR", "SHIPWAY_DATA_DIR"):
        monkeypatch.setenv(key, os.environ.get(key, ""))  # run_local exports; restored after
    return registry_copy(settings, tmp_path, session_champion(request))


def test_a_candidate_failing_the_gate_never_becomes_champion(
    strong_champion: Settings, hotel: UseCaseSpec
) -> None:
    s = strong_champion
    client = registry.connect(s.tracking_uri)
    before = registry.alias_version(client, "hotel_rates", registry.CHAMPION)
    assert before is not None
    n_versions = len(client.search_model_versions("name='hotel_rates'"))
    trigger = RetrainTrigger(
        s, runner=retraining_runner(s)
    )  # the real runner: the KFP pipeline through kfp.local
    d = trigger.request(hotel, reason="alert ShipwayDataDrift", source="test")
    assert d["outcome"] == "started", d
    res = d["result"]
    assert res["gate_passed"] is False and res["promoted"] is False, res
    assert any("beats_champion" in f for f in res["failures"]), res["failures"]
    after = registry.alias_version(client, "hotel_rates", registry.CHAMPION)
    assert after is not None and after.version == before.version
    cand = registry.alias_version(client, "hotel_rates", registry.CHALLENGER)
    assert cand is not None and str(cand.version) == str(res["version"])
    assert client.get_model_version("hotel_rates", cand.version).tags["gate_passed"] == "false"
    log = history(s, "hotel_rates")
    assert [e["event"] for e in log] == ["decision", "rejected"]
    assert log[1]["failures"] == res["failures"] and log[1]["version"] == res["version"]
    # within the cooldown a second alert changes nothing
    again = trigger.request(hotel, reason="alert ShipwayDataDrift", source="test")
    assert again["outcome"] == "cooldown" and "result" not in again
    assert len(client.search_model_versions("name='hotel_rates'")) == n_versions + 1
    assert (
        json.loads((s.state / "retraining" / "hotel_rates.state.json").read_text())["running"]
        is None
    )
