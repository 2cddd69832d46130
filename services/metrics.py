"""The service's Prometheus metrics, exactly as ``shipway/core/metrics_contract.py`` defines them.

Counters and histograms are created through the contract's helpers without a registry:
``bentoml serve`` runs prometheus_client in multiprocess mode, so their values land in
the shared multiprocess directory that BentoML's ``/metrics`` already aggregates across
workers. The "what is served" gauges are different: multiprocess gauges would grow a
``pid`` label and keep stale series after a hot swap, so they are rendered at scrape time
from the live model set (``gauges_text``), with names, help and labels taken from the
contract all the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.models import ModelSet
from shipway.core import metrics_contract as contract
from shipway.core.spec import Task, UseCaseSpec


def value_buckets(spec: UseCaseSpec) -> list[float]:
    """Buckets of the predicted-value histogram: 0..1 for probabilities, else the target range."""
    if spec.target.task is Task.binary_classification:
        return [round(x, 2) for x in np.linspace(0.05, 1.0, 20)]
    lo = spec.target.min if spec.target.min is not None else 0.0
    hi = spec.target.max if spec.target.max is not None else 1000.0
    return [float(x) for x in np.linspace(lo, hi, 21)[1:]]


class ServiceMetrics:
    """The contract's service metrics, bound to one use case."""

    def __init__(self, spec: UseCaseSpec, registry: CollectorRegistry | None = None) -> None:
        self.usecase = spec.name
        self.budget_seconds = spec.acceptance.latency_p99_ms / 1000.0
        self.requests = contract.counter("shipway_requests_total", registry)
        self.duration = contract.histogram("shipway_request_duration_seconds", registry)
        self.predictions = contract.counter("shipway_predictions_total", registry)
        self.values = contract.histogram(
            "shipway_prediction_value", registry, buckets=value_buckets(spec)
        )
        self.missing = contract.counter("shipway_missing_features_total", registry)
        self.retrieval = contract.histogram("shipway_feature_retrieval_duration_seconds", registry)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.challenger_mode = "off"
        """The challenger mode being served (off|split|shadow); the engine sets it from its
        settings, and ``shipway_challenger_missing`` reports a mode left without a challenger."""

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, kept: the labelled child is the same object every
        time, and looking it up takes a lock and a key build on every request."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            if len(self._children) > 10_000:  # label sets are few; never grow unbounded
                self._children.clear()
            child = self._children[key] = metric.labels(*labels)
        return child

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        self._child(self.requests, self.usecase, endpoint, str(status)).inc()
        self._child(self.duration, self.usecase, endpoint).observe(seconds)

    def scored(self, version: str, variant: str, values: Iterable[float]) -> None:
        """Count predictions of one model; shadow predictions count as challenger."""
        hist = self._child(self.values, self.usecase, variant)
        n = 0
        for v in values:
            hist.observe(float(v))
            n += 1
        self._child(self.predictions, self.usecase, version, variant).inc(n)

    def features(self, seconds: float, missing_entities: dict[str, int]) -> None:
        self._child(self.retrieval, self.usecase).observe(seconds)
        for entity, n in missing_entities.items():
            self._child(self.missing, self.usecase, entity).inc(n)


def challenger_missing(mode: str, models: ModelSet | None) -> bool:
    """Whether a mode that needs a challenger (split, shadow) serves without one: every
    request then goes to the champion, and only this (and one log line) says so."""
    return mode != "off" and models is not None and models.challenger is None


class _ServedGauges(Collector):
    """model_info, model_trained_timestamp_seconds, latency_budget_seconds and
    challenger_missing, from state."""

    def __init__(
        self, usecase: str, budget: float, models: ModelSet | None, mode: str = "off"
    ) -> None:
        self.usecase, self.budget, self.models, self.mode = usecase, budget, models, mode

    @staticmethod
    def _family(name: str) -> GaugeMetricFamily:
        m = contract.spec(name)
        return GaugeMetricFamily(m.name, m.help, labels=list(m.labels))

    def collect(self) -> Iterator[Metric]:
        info = self._family("shipway_model_info")
        trained = self._family("shipway_model_trained_timestamp_seconds")
        budget = self._family("shipway_latency_budget_seconds")
        budget.add_metric([self.usecase], self.budget)
        missing = self._family("shipway_challenger_missing")
        if self.models is not None:  # unknown until loaded (and /readyz says so)
            missing.add_metric(
                [self.usecase, self.mode], float(challenger_missing(self.mode, self.models))
            )
        served = [self.models.champion, self.models.challenger] if self.models else []
        for m in served:
            if m is None:
                continue
            info.add_metric([self.usecase, m.name, m.version, m.variant], 1.0)
            trained.add_metric([self.usecase, m.variant], m.trained_at)
        yield from (info, trained, budget, missing)


def gauges_text(metrics: ServiceMetrics, models: ModelSet | None) -> str:
    """Exposition text of the served-model gauges (appended to BentoML's /metrics)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(
        _ServedGauges(metrics.usecase, metrics.budget_seconds, models, metrics.challenger_mode)
    )
    return generate_latest(reg).decode()
