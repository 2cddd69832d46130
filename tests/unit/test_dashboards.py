"""Grafana dashboards are provisionable, and dashboards, rules and runbook use only the
metric contract (shipway/core/metrics_contract.py) and recorded series that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import globbed

from shipway.core.metrics_contract import (
    CONTRACT,
    SERIES_NAMES,
    MetricType,
    counter,
    gauge,
    histogram,
)

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
GRAFANA = MONITORING / "grafana"
RULES = MONITORING / "prometheus" / "rules.yml"
RUNBOOK = MONITORING / "prometheus" / "RUNBOOK.md"
DASHBOARDS = globbed(GRAFANA, "*.json")
# Stable uids: links, bookmarks and the Helm chart refer to them; never change one.
EXPECTED_UIDS = {"shipway-overview", "shipway-model-quality"}
DS_REF = {"type": "prometheus", "uid": "${datasource}"}

_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows keep their panels inside
    return out


def _exprs(board: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in _panels(board) for t in p.get("targets", [])]
    exprs += [a["expr"] for a in board["annotations"]["list"] if "expr" in a]
    return exprs


def _rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def _recorded() -> set[str]:
    return {r["record"] for r in _rules() if "record" in r}


def _series_used(text: str) -> set[str]:
    """Raw contract series (shipway_*) and recorded series (containing ':' and 'shipway');
    the static label names of alerts (e.g. shipway_action) are not series."""
    alert_labels = {k for r in _rules() for k in r.get("labels", {})}
    return {
        n
        for n in (t.rstrip(":") for t in _NAME.findall(text))  # "name:" is a YAML key
        if (n.startswith("shipway_") or (":" in n and "shipway" in n)) and n not in alert_labels
    }


def test_the_expected_dashboards_exist_with_stable_unique_uids() -> None:
    uids = [_load(p)["uid"] for p in DASHBOARDS]
    assert sorted(uids) == sorted(EXPECTED_UIDS)
    for path in DASHBOARDS:
        board = _load(path)
        assert path.stem == board["uid"], "file name and uid match, so the chart can find it"
        assert len(board["uid"]) <= 40 and re.fullmatch(r"[a-z0-9-]+", board["uid"])


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_a_plain_provisionable_model(path: Path) -> None:
    board = _load(path)
    # The sidecar provisions the file as is: no import wrapper, no __inputs, no fixed id.
    assert "dashboard" not in board and "__inputs" not in board
    assert board["id"] is None
    assert board["schemaVersion"] >= 39
    assert board["title"].startswith("Shipway / ")
    assert "shipway" in board["tags"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_has_datasource_and_usecase_variables(path: Path) -> None:
    variables = {v["name"]: v for v in _load(path)["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    uc = variables["usecase"]
    assert uc["type"] == "query" and uc["datasource"] == DS_REF
    assert uc["multi"] and uc["includeAll"]
    assert "label_values(" in uc["definition"] and uc["definition"].endswith(", usecase)")


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_query_uses_the_datasource_variable_and_the_usecase_filter(path: Path) -> None:
    board = _load(path)
    for panel in _panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DS_REF, panel["title"]
        assert panel["targets"], panel["title"]
        for t in panel["targets"]:
            assert t["datasource"] == DS_REF, panel["title"]
            # platform-wide thresholds (shipway:...) have no usecase label
            if not re.fullmatch(r"shipway:[a-z_]+", t["expr"]):
                assert 'usecase=~"$usecase"' in t["expr"], (panel["title"], t["expr"])
    for a in board["annotations"]["list"]:
        if "expr" in a:
            assert a["datasource"] == DS_REF and 'usecase=~"$usecase"' in a["expr"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panels_have_unique_ids_and_do_not_overlap(path: Path) -> None:
    panels = _panels(_load(path))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


def test_overview_and_model_quality_show_what_the_issue_asks_for() -> None:
    exprs = {p.stem: " ".join(_exprs(_load(p))) for p in DASHBOARDS}
    overview, quality = exprs["shipway-overview"], exprs["shipway-model-quality"]
    for needed in (
        "usecase_endpoint:shipway_requests:rate5m",  # prediction volume
        "p50_5m",
        "p95_5m",
        "p99_5m",  # latency percentiles
        "shipway_requests_errors:ratio_rate5m",  # error ratio
        "usecase_model_version_variant:shipway_predictions:rate5m",  # by version and variant
        "shipway_missing_features",
    ):
        assert needed in overview, needed
    for needed in (
        "shipway_drift_share",
        "shipway_feature_drift_score",
        "shipway_prediction_drift_score",
        "shipway_live_performance",
        "shipway_validation_performance",
        "usecase:shipway_monitor_age_seconds",  # monitor freshness
        "shipway_retrain_triggers_total",
    ):
        assert needed in quality, needed


@pytest.mark.parametrize(
    "path", [*DASHBOARDS, RULES, RUNBOOK], ids=lambda p: p.relative_to(MONITORING).as_posix()
)
def test_only_contract_metrics_and_defined_recordings_are_used(path: Path) -> None:
    used = _series_used(path.read_text())
    assert used, "the file reads no series at all?"
    unknown = sorted(n for n in used if ":" not in n and n not in SERIES_NAMES)
    assert not unknown, f"not in shipway/core/metrics_contract.py: {unknown}"
    undefined = sorted(n for n in used if ":" in n and n not in _recorded())
    assert not undefined, f"not recorded in rules.yml: {undefined}"


def test_every_contract_metric_is_watched_by_a_rule_or_a_dashboard() -> None:
    used: set[str] = set()
    for path in [*DASHBOARDS, RULES]:
        used |= _series_used(path.read_text())
    unwatched = [m.name for m in CONTRACT if not set(m.series_names) & used]
    assert not unwatched


def test_contract_follows_the_naming_conventions() -> None:
    names = [m.name for m in CONTRACT]
    assert len(names) == len(set(names))
    for m in CONTRACT:
        assert m.name.startswith("shipway_") and m.labels[0] == "usecase", m.name
        assert len(set(m.labels)) == len(m.labels), m.name
        assert m.name.endswith("_total") == (m.type is MetricType.counter), m.name
        if "duration" in m.name or "timestamp" in m.name:
            assert m.name.endswith("_seconds"), m.name


def test_contract_helpers_create_exactly_the_contract_metrics() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    counter("shipway_requests_total", registry).labels("hotel_rates", "predict", "200").inc()
    gauge("shipway_drift_share", registry).labels("hotel_rates").set(0.4)
    h = histogram("shipway_request_duration_seconds", registry)
    h.labels("hotel_rates", "predict").observe(0.02)
    text = generate_latest(registry).decode()
    assert 'shipway_requests_total{endpoint="predict",status="200",usecase="hotel_rates"} 1.0' in (
        text
    )
    assert 'shipway_drift_share{usecase="hotel_rates"} 0.4' in text
    assert (
        'shipway_request_duration_seconds_bucket{endpoint="predict",le="0.025",'
        'usecase="hotel_rates"} 1.0'
    ) in text
    with pytest.raises(TypeError, match="is a gauge"):
        counter("shipway_drift_share", registry)
    with pytest.raises(KeyError, match="not in the Shipway metric contract"):
        gauge("shipway_unknown", registry)
    with pytest.raises(ValueError, match="fixed buckets"):
        histogram("shipway_request_duration_seconds", CollectorRegistry(), buckets=[1.0])
