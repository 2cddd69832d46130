"""The monitor's Prometheus metrics, created through the metric contract.

One ``MonitorMetrics`` owns its own ``CollectorRegistry`` (tests and several monitors in
one process never collide) and is served with prometheus_client's HTTP server. Series
that a window could not measure (live performance without feedback) are *removed*, not
left at their last value: a stale gauge would keep ShipwayPerformanceDegraded firing.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server

from shipway.core.metrics_contract import counter, gauge

if TYPE_CHECKING:
    from monitoring.window import WindowResult

OUTCOMES = ("ok", "drift", "degraded", "no_data", "error")
"""Monitor run outcomes (shipway_monitor_runs_total): degraded wins over drift."""


class MonitorMetrics:
    """The monitor's gauges and counters, for one or more use cases."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.drift_share = gauge("shipway_drift_share", r)
        self.drift_threshold = gauge("shipway_drift_share_threshold", r)
        self.dataset_drift = gauge("shipway_dataset_drift", r)
        self.feature_drift = gauge("shipway_feature_drift_score", r)
        self.prediction_drift = gauge("shipway_prediction_drift_score", r)
        self.live = gauge("shipway_live_performance", r)
        self.validation = gauge("shipway_validation_performance", r)
        self.drop = gauge("shipway_performance_drop_ratio", r)
        self.drop_threshold = gauge("shipway_performance_drop_threshold", r)
        self.rows = gauge("shipway_monitor_rows_evaluated", r)
        self.last_run = gauge("shipway_monitor_last_run_timestamp_seconds", r)
        self.runs = counter("shipway_monitor_runs_total", r)

    def init_usecase(self, usecase: str) -> None:
        """Create every outcome at 0, so ``increase()`` sees the first run."""
        for outcome in OUTCOMES:
            self.runs.labels(usecase=usecase, outcome=outcome)

    def publish(self, result: WindowResult) -> None:
        """Export one window's result (a completed run, whatever its outcome)."""
        u = result.usecase
        self.init_usecase(u)
        self.drift_threshold.labels(usecase=u).set(result.spec_thresholds["drift_share"])
        self.drop_threshold.labels(usecase=u).set(result.spec_thresholds["performance_drop"])
        self.rows.labels(usecase=u).set(result.rows_evaluated)
        d = result.drift
        if d is not None:
            self.drift_share.labels(usecase=u).set(d.share)
            self.dataset_drift.labels(usecase=u).set(1.0 if d.dataset_drift else 0.0)
            for f in d.features:
                self.feature_drift.labels(usecase=u, feature=f.name).set(f.score)
            if d.prediction is not None:
                self.prediction_drift.labels(usecase=u).set(d.prediction.score)
        p = result.performance
        if p is not None:
            if p.validation is not None:
                self.validation.labels(usecase=u, metric=p.metric).set(p.validation)
            _set_or_remove(self.live, p.live, u, p.metric)
            _set_or_remove(self.drop, p.drop_ratio, u, p.metric)
        self.runs.labels(usecase=u, outcome=result.outcome).inc()
        self.last_run.labels(usecase=u).set(time.time())

    def failed(self, usecase: str) -> None:
        """Count a run that raised; the last-run time stays, so staleness still shows."""
        self.init_usecase(usecase)
        self.runs.labels(usecase=usecase, outcome="error").inc()

    def serve(self, port: int, addr: str = "0.0.0.0") -> Any:
        """Serve /metrics on ``addr:port`` from a daemon thread; returns the server."""
        server, _ = start_http_server(port, addr=addr, registry=self.registry)
        return server


def _set_or_remove(g: Any, value: float | None, usecase: str, metric: str) -> None:
    if value is None:
        with contextlib.suppress(KeyError):  # never set: nothing to remove
            g.remove(usecase, metric)
    else:
        g.labels(usecase=usecase, metric=metric).set(value)
