"""The Prometheus metric contract between the exporters and the rules and dashboards.

The prediction service, the monitor and the retraining trigger export exactly these
metrics; ``monitoring/prometheus/rules.yml`` and ``monitoring/grafana/*.json`` use only
these (a unit test checks both directions). Exporters create their metrics through
:func:`counter`, :func:`gauge` and :func:`histogram`, so names, types, help texts and
label names cannot drift from this list.

Every metric carries the ``usecase`` label, so one Prometheus serves many use cases and
rules need no per-use-case constants (thresholds and budgets are exported as gauges).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class MetricType(StrEnum):
    counter = "counter"
    gauge = "gauge"
    histogram = "histogram"


class Exporter(StrEnum):
    """Which process exports a metric, and on which default port."""

    service = "service"  # BentoML prediction service, <host>:3000/metrics
    monitor = "monitor"  # drift and performance monitor, <host>:9108/metrics
    trigger = "trigger"  # retraining trigger (Alertmanager webhook), <host>:9109/metrics


DEFAULT_PORTS: dict[Exporter, int] = {
    Exporter.service: 3000,
    Exporter.monitor: 9108,
    Exporter.trigger: 9109,
}

# Request and feature-retrieval durations, in seconds (prometheus_client's defaults).
DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)


@dataclass(frozen=True)
class MetricSpec:
    """One metric of the contract."""

    name: str
    """Exposed name; counters include their ``_total`` suffix."""
    type: MetricType
    labels: tuple[str, ...]
    """Label names, always starting with ``usecase``."""
    help: str
    exporter: Exporter
    buckets: tuple[float, ...] | None = None
    """Histogram buckets; ``None`` lets the exporter choose (e.g. from the target range)."""

    @property
    def series_names(self) -> tuple[str, ...]:
        """Names of the series Prometheus stores for this metric."""
        if self.type is MetricType.histogram:
            return tuple(f"{self.name}{s}" for s in ("_bucket", "_sum", "_count"))
        return (self.name,)


def _m(
    name: str,
    type_: MetricType,
    labels: Sequence[str],
    help_: str,
    exporter: Exporter,
    buckets: tuple[float, ...] | None = None,
) -> MetricSpec:
    return MetricSpec(name, type_, ("usecase", *labels), help_, exporter, buckets)


_C, _G, _H = MetricType.counter, MetricType.gauge, MetricType.histogram
_S, _M, _T = Exporter.service, Exporter.monitor, Exporter.trigger

CONTRACT: tuple[MetricSpec, ...] = (
    # ---- prediction service ----
    _m(
        "shipway_requests_total",
        _C,
        ("endpoint", "status"),
        "HTTP requests by endpoint and status code (status is the code as a string).",
        _S,
    ),
    _m(
        "shipway_request_duration_seconds",
        _H,
        ("endpoint",),
        "Request duration in seconds, by endpoint.",
        _S,
        DURATION_BUCKETS,
    ),
    _m(
        "shipway_predictions_total",
        _C,
        ("model_version", "variant"),
        "Predictions made, by model version and variant (champion|challenger; "
        "shadow predictions count as challenger).",
        _S,
    ),
    _m("shipway_prediction_value", _H, ("variant",), "Distribution of predicted values.", _S),
    _m(
        "shipway_missing_features_total",
        _C,
        ("entity",),
        "Online feature lookups that found no row for the entity (defaults were used).",
        _S,
    ),
    _m(
        "shipway_feature_retrieval_duration_seconds",
        _H,
        (),
        "Online feature retrieval duration in seconds.",
        _S,
        DURATION_BUCKETS,
    ),
    _m(
        "shipway_model_info",
        _G,
        ("model_name", "model_version", "variant"),
        "The model being served (always 1).",
        _S,
    ),
    _m(
        "shipway_model_trained_timestamp_seconds",
        _G,
        ("variant",),
        "Unix time at which the serving model was trained.",
        _S,
    ),
    _m(
        "shipway_latency_budget_seconds",
        _G,
        (),
        "The spec's single-row p99 latency budget, in seconds.",
        _S,
    ),
    _m(
        "shipway_challenger_missing",
        _G,
        ("mode",),
        "1 while the challenger mode (split|shadow) has no challenger to serve, so the "
        "champion answers and is logged for every request; 0 when it has one or mode is off.",
        _S,
    ),
    # ---- monitor ----
    _m("shipway_drift_share", _G, (), "Share of drifted features in the last window (0..1).", _M),
    _m(
        "shipway_drift_share_threshold",
        _G,
        (),
        "Share of drifted features from which the spec calls it drift.",
        _M,
    ),
    _m("shipway_dataset_drift", _G, (), "1 if the last window drifted, else 0.", _M),
    _m("shipway_feature_drift_score", _G, ("feature",), "Drift score of each feature.", _M),
    _m("shipway_prediction_drift_score", _G, (), "Drift score of the predictions.", _M),
    _m(
        "shipway_live_performance",
        _G,
        ("metric",),
        "Model performance on the last window with ground truth.",
        _M,
    ),
    _m(
        "shipway_validation_performance",
        _G,
        ("metric",),
        "Model performance on the validation set at training time.",
        _M,
    ),
    _m(
        "shipway_performance_drop_ratio",
        _G,
        ("metric",),
        "Relative degradation of live performance vs validation (>0 is worse).",
        _M,
    ),
    _m(
        "shipway_performance_drop_threshold",
        _G,
        (),
        "Relative performance drop from which the spec calls the model degraded.",
        _M,
    ),
    _m("shipway_monitor_rows_evaluated", _G, (), "Rows evaluated in the last window.", _M),
    _m(
        "shipway_monitor_last_run_timestamp_seconds",
        _G,
        (),
        "Unix time of the monitor's last completed run.",
        _M,
    ),
    _m("shipway_monitor_runs_total", _C, ("outcome",), "Monitor runs by outcome.", _M),
    # ---- retraining trigger ----
    _m(
        "shipway_retrain_triggers_total",
        _C,
        ("outcome",),
        "Retraining requests by outcome (started|cooldown|ignored|failed).",
        _T,
    ),
)

BY_NAME: dict[str, MetricSpec] = {m.name: m for m in CONTRACT}

# Every series name a rule or dashboard may read (histograms expand to _bucket/_sum/_count).
SERIES_NAMES: frozenset[str] = frozenset(s for m in CONTRACT for s in m.series_names)


def spec(name: str) -> MetricSpec:
    """The contract entry for ``name``; ``KeyError`` names the unknown metric."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the Shipway metric contract") from None


def _checked(name: str, expected: MetricType) -> MetricSpec:
    m = spec(name)
    if m.type is not expected:
        raise TypeError(f"{name} is a {m.type}, not a {expected}")
    return m


def counter(name: str, registry: CollectorRegistry | None = REGISTRY) -> Counter:
    """Create the contract's counter ``name`` in ``registry``."""
    m = _checked(name, MetricType.counter)
    return Counter(m.name, m.help, m.labels, registry=registry)


def gauge(name: str, registry: CollectorRegistry | None = REGISTRY) -> Gauge:
    """Create the contract's gauge ``name`` in ``registry``."""
    m = _checked(name, MetricType.gauge)
    return Gauge(m.name, m.help, m.labels, registry=registry)


def histogram(
    name: str,
    registry: CollectorRegistry | None = REGISTRY,
    buckets: Sequence[float] | None = None,
) -> Histogram:
    """Create the contract's histogram ``name``; ``buckets`` only where the contract has none."""
    m = _checked(name, MetricType.histogram)
    if m.buckets is not None and buckets is not None and tuple(buckets) != m.buckets:
        raise ValueError(f"{name} has fixed buckets in the contract: {m.buckets}")
    chosen = m.buckets or (tuple(buckets) if buckets is not None else Histogram.DEFAULT_BUCKETS)
    return Histogram(m.name, m.help, m.labels, registry=registry, buckets=chosen)
