"""Live performance and its drop: the pipeline's metrics, oriented so > 0 is worse."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error

from shipway.core.performance import MIN_LABELLED_ROWS, drop_ratio, live_performance
from shipway.core.settings import Settings
from shipway.core.spec import Acceptance, UseCaseSpec
from shipway.core.usecases import load_usecase


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    return load_usecase("hotel_rates", Settings())  # mae, drop threshold 0.2


def with_metric(spec: UseCaseSpec, metric: str) -> UseCaseSpec:
    acc = Acceptance.model_validate({**spec.acceptance.model_dump(), "metric": metric})
    return spec.model_copy(update={"acceptance": acc})


def test_drop_is_positive_when_worse_for_errors_and_scores(spec: UseCaseSpec) -> None:
    assert drop_ratio(spec, 12.0, 10.0) == pytest.approx(0.2)  # MAE up 20%: worse
    assert drop_ratio(spec, 8.0, 10.0) == pytest.approx(-0.2)
    r2 = with_metric(spec, "r2")
    assert drop_ratio(r2, 0.6, 0.8) == pytest.approx(0.25)  # R² down: worse
    assert drop_ratio(r2, 0.9, 0.8) == pytest.approx(-0.125)
    assert drop_ratio(spec, 1.0, 0.0) is None  # no meaningful ratio


def test_live_metric_equals_sklearn_on_the_labelled_rows(spec: UseCaseSpec) -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(100, 30, 500).clip(0, None)  # rates: within the target's range
    p = y + rng.normal(0, 10, 500)
    y_logged = y.copy()
    y_logged[::3] = np.nan  # feedback for two rows in three
    perf = live_performance(spec, y_logged, p, validation=7.0)
    keep = ~np.isnan(y_logged)
    assert perf.rows == keep.sum()
    assert perf.live == pytest.approx(mean_absolute_error(y[keep], p[keep]), rel=1e-12)
    assert perf.drop_ratio == pytest.approx((perf.live - 7.0) / 7.0)
    assert perf.degraded == (perf.drop_ratio > spec.monitoring.performance_drop_threshold)
    assert set(perf.all_metrics) == {"mae", "rmse", "r2"}


def test_threshold_is_strict_and_too_few_rows_give_no_verdict(spec: UseCaseSpec) -> None:
    y = np.full(100, 100.0)
    at = live_performance(spec, y, y + 12.0, validation=10.0)  # exactly +20%
    assert at.drop_ratio == pytest.approx(0.2) and not at.degraded
    assert live_performance(spec, y, y + 12.5, validation=10.0).degraded
    few = live_performance(spec, y[: MIN_LABELLED_ROWS - 1], y[: MIN_LABELLED_ROWS - 1], 10.0)
    assert few.live is None and few.drop_ratio is None and not few.degraded
