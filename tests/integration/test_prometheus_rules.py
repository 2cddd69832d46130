"""Prometheus rules and a real Prometheus server.

- The structure of rules.yml (labels, annotations, runbook sections) and the coverage of
  its promtool tests (every alert fires somewhere and stays silent somewhere; every
  recording rule is asserted).
- ``promtool check rules``, ``promtool test rules`` and ``promtool check config`` pass, and
  the promtool tests fail when a rule is broken.
- A real ``prometheus`` started by monitoring/prometheus_config.py scrapes two live
  targets (service and monitor), evaluates the rules on them, and answers every dashboard
  query.

Needs the Debian package ``prometheus`` (``prometheus`` and ``promtool``): skipped when it
is missing, except on CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import free_port, globbed, require
from prometheus_client import CollectorRegistry, start_http_server

from monitoring.prometheus_config import (
    PrometheusConfig,
    PrometheusServer,
    query,
    start_prometheus,
    wait_for,
)
from shipway.core.metrics_contract import counter, gauge, histogram

PROM_DIR = Path(__file__).resolve().parents[2] / "monitoring" / "prometheus"
RULES = PROM_DIR / "rules.yml"
RUNBOOK = PROM_DIR / "RUNBOOK.md"
TEST_FILES = globbed(PROM_DIR / "tests", "*.yml")
GRAFANA = PROM_DIR.parent / "grafana"
# The retraining trigger reacts to these by name; the chart routes them on this label.
RETRAIN_ALERTS = {"ShipwayDataDrift", "ShipwayPerformanceDegraded"}
RETRAIN_LABEL = ("shipway_action", "retrain")
EXPECTED_ALERTS = {
    "ShipwayDataDrift",
    "ShipwayPerformanceDegraded",
    "ShipwayHighErrorRatio",
    "ShipwayLatencySLOBreach",
    "ShipwayNoTraffic",
    "ShipwayStaleModel",
    "ShipwayMonitorNotRunning",
}


def _require(binary: str) -> str:
    """Path of ``binary``; skip without it (fail under CI=true, see conftest.require)."""
    path = shutil.which(binary)
    require(
        path is not None,
        f"`{binary}` is not on PATH; install the Debian package `prometheus` "
        "(sudo apt-get install prometheus)",
    )
    assert path is not None
    return path


def _rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def _alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in _rules() if "alert" in r}


def _tests() -> list[dict[str, Any]]:
    return [t for f in TEST_FILES for t in yaml.safe_load(f.read_text())["tests"]]


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=300, check=False
    )


# ---------------------------------------------------------------- structure and coverage


def test_the_alerts_are_exactly_the_expected_ones() -> None:
    assert set(_alerts()) == EXPECTED_ALERTS


def test_only_the_retraining_alerts_are_routed_to_the_trigger() -> None:
    routed = {
        name
        for name, rule in _alerts().items()
        if rule["labels"].get(RETRAIN_LABEL[0]) == RETRAIN_LABEL[1]
    }
    assert routed == RETRAIN_ALERTS


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_alert_has_severity_annotations_and_a_runbook_section(name: str) -> None:
    rule = _alerts()[name]
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule.get("for"), "every alert waits before firing"
    ann = rule["annotations"]
    assert ann["summary"].strip() and ann["description"].strip()
    assert "$labels.usecase" in ann["summary"], "the summary names the use case"
    path, _, anchor = ann["runbook_url"].partition("#")
    assert path == "monitoring/prometheus/RUNBOOK.md"
    # GitHub's anchor for a heading "## Name" is the lower-cased name
    headings = re.findall(r"^## (\S+)\s*$", RUNBOOK.read_text(), re.MULTILINE)
    assert name in headings and anchor == name.lower()


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_alert_fires_in_a_test_with_usecase_and_stays_silent_in_another(name: str) -> None:
    cases = [c for t in _tests() for c in t.get("alert_rule_test", []) if c["alertname"] == name]
    firing = [a for c in cases for a in c["exp_alerts"]]
    assert firing, f"{name} never fires in the promtool tests"
    for a in firing:
        assert {"usecase", "severity"} <= set(a["exp_labels"])
        assert {"summary", "description", "runbook_url"} <= set(a["exp_annotations"])
    assert any(c["exp_alerts"] == [] for c in cases), f"{name} has no healthy scenario"


def test_every_recording_rule_is_asserted_by_a_promql_test() -> None:
    exprs = " ".join(e["expr"] for t in _tests() for e in t.get("promql_expr_test", []))
    recorded = [r["record"] for r in _rules() if "record" in r]
    missing = [r for r in recorded if not re.search(rf"(?<![\w:]){re.escape(r)}(?![\w:])", exprs)]
    assert not missing


# ---------------------------------------------------------------- promtool


def test_a_missing_binary_skips_locally_but_fails_on_ci(monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install prometheus"):
        _require("promtool")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must provide this"):
        _require("promtool")


@pytest.mark.integration
def test_promtool_check_rules_passes() -> None:
    result = _run(_require("promtool"), "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


@pytest.mark.integration
def test_promtool_rule_tests_pass() -> None:
    assert len(TEST_FILES) >= 3
    result = _run(_require("promtool"), "test", "rules", *TEST_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES)


@pytest.mark.integration
def test_promtool_rule_tests_catch_a_broken_threshold(tmp_path: Path) -> None:
    promtool = _require("promtool")
    text = RULES.read_text()
    broken = "usecase_endpoint:shipway_requests_errors:ratio_rate5m > 0.5"
    (tmp_path / "rules.yml").write_text(text.replace(broken.replace("0.5", "0.05"), broken))
    assert (tmp_path / "rules.yml").read_text() != text
    (tmp_path / "tests").mkdir()
    for f in TEST_FILES:
        shutil.copy(f, tmp_path / "tests" / f.name)
    result = _run(promtool, "test", "rules", *sorted((tmp_path / "tests").glob("*.yml")))
    assert result.returncode != 0
    assert "alertname: ShipwayHighErrorRatio" in result.stdout + result.stderr


@pytest.mark.integration
def test_generated_config_passes_promtool_check_config(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(PrometheusConfig(alertmanager_targets=["localhost:9093"]).to_yaml())
    result = _run(_require("promtool"), "check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# ---------------------------------------------------------------- a real Prometheus


class _Targets:
    """A service-like and a monitor-like /metrics endpoint, served in-process."""

    def __init__(self) -> None:
        self.service_registry = CollectorRegistry()
        self.monitor_registry = CollectorRegistry()
        reg = self.service_registry
        gauge("shipway_model_info", reg).labels("hotel_rates", "hotel_rates", "3", "champion").set(
            1
        )
        gauge("shipway_latency_budget_seconds", reg).labels("hotel_rates").set(0.05)
        gauge("shipway_model_trained_timestamp_seconds", reg).labels("hotel_rates", "champion").set(
            time.time() - 3600
        )
        counter("shipway_requests_total", reg).labels("hotel_rates", "predict", "200").inc(10)
        histogram("shipway_request_duration_seconds", reg).labels("hotel_rates", "predict").observe(
            0.01
        )
        mon = self.monitor_registry
        self.drift_share = gauge("shipway_drift_share", mon).labels("hotel_rates")
        self.drift_share.set(0.42)
        gauge("shipway_drift_share_threshold", mon).labels("hotel_rates").set(0.3)
        gauge("shipway_monitor_last_run_timestamp_seconds", mon).labels("hotel_rates").set(
            time.time()
        )
        self.service_port, self.monitor_port = free_port(), free_port()
        self._servers = [
            start_http_server(self.service_port, "127.0.0.1", registry=self.service_registry),
            start_http_server(self.monitor_port, "127.0.0.1", registry=self.monitor_registry),
        ]

    def close(self) -> None:
        for server, thread in self._servers:
            server.shutdown()
            server.server_close()
            thread.join(5)


@pytest.fixture(scope="module")
def targets() -> Iterator[_Targets]:
    t = _Targets()
    yield t
    t.close()


@pytest.fixture(scope="module")
def prometheus(targets: _Targets) -> Iterator[PrometheusServer]:
    _require("prometheus")
    config = PrometheusConfig(
        service_targets=[f"127.0.0.1:{targets.service_port}"],
        monitor_targets=[f"127.0.0.1:{targets.monitor_port}"],
        trigger_targets=[],
        scrape_interval="1s",
    )
    with start_prometheus(config, free_port()) as server:
        yield server


@pytest.mark.integration
def test_prometheus_scrapes_the_service_and_the_monitor(
    prometheus: PrometheusServer, targets: _Targets
) -> None:
    up = wait_for(prometheus.url, "up == 1", lambda r: len(r) == 2, timeout=60)
    assert {s.labels["job"] for s in up} == {"shipway-service", "shipway-monitor"}
    (drift,) = wait_for(prometheus.url, 'shipway_drift_share{usecase="hotel_rates"}')
    assert drift.value == pytest.approx(0.42)
    assert drift.labels["job"] == "shipway-monitor"
    assert drift.labels["instance"] == f"127.0.0.1:{targets.monitor_port}"
    (requests,) = query(prometheus.url, 'shipway_requests_total{endpoint="predict"}')
    assert requests.value == 10 and requests.labels["job"] == "shipway-service"
    # live scraping: a new value in the exporter reaches Prometheus
    targets.drift_share.set(0.05)
    wait_for(
        prometheus.url,
        'shipway_drift_share{usecase="hotel_rates"}',
        lambda r: bool(r) and r[0].value == pytest.approx(0.05),
        timeout=30,
    )
    targets.drift_share.set(0.42)


@pytest.mark.integration
def test_prometheus_evaluates_the_rules_on_scraped_series(
    prometheus: PrometheusServer, targets: _Targets
) -> None:
    targets.drift_share.set(0.42)
    # 42% drifted >= 30%: ShipwayDataDrift goes pending (it fires only after `for: 10m`),
    # labelled with the use case, across the two scrape jobs' labels.
    (alert,) = wait_for(
        prometheus.url, 'ALERTS{alertname="ShipwayDataDrift"}', lambda r: len(r) == 1, timeout=60
    )
    assert alert.labels["usecase"] == "hotel_rates"
    assert alert.labels["severity"] == "warning"
    assert alert.labels["alertstate"] == "pending"
    assert alert.labels[RETRAIN_LABEL[0]] == RETRAIN_LABEL[1]
    (age,) = wait_for(prometheus.url, "usecase:shipway_monitor_age_seconds")
    assert 0 <= age.value < 120
    (model_age,) = wait_for(prometheus.url, "usecase_variant:shipway_model_age_seconds")
    assert model_age.labels["variant"] == "champion"
    assert model_age.value == pytest.approx(3600, abs=120)
    # a healthy value clears it
    targets.drift_share.set(0.1)
    wait_for(prometheus.url, 'ALERTS{alertname="ShipwayDataDrift"}', lambda r: not r, timeout=60)


@pytest.mark.integration
def test_every_dashboard_query_is_valid_promql(prometheus: PrometheusServer) -> None:
    substitutions = {"$usecase": ".+", "$__rate_interval": "1m", "$__range": "1h"}
    exprs: list[str] = []
    for path in globbed(GRAFANA, "*.json"):
        board = json.loads(path.read_text())
        panels = [p for p in board["panels"] if p["type"] != "row"]
        exprs += [t["expr"] for p in panels for t in p["targets"]]
        exprs += [a["expr"] for a in board["annotations"]["list"] if "expr" in a]
    assert len(exprs) > 20
    for expr in exprs:
        for var, value in substitutions.items():
            expr = expr.replace(var, value)
        query(prometheus.url, expr)  # raises PrometheusError on a parse error
