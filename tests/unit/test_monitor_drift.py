"""Drift tests per column type, on constructed data where the truth is known.

(Drift on the real hotel data — summer 2017 vs the champion's reference — is asserted in
tests/integration/test_monitor.py.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import (
    ALL_MISSING,
    CATEGORICAL_METHOD,
    NUMERICAL_METHOD,
    WindowDrift,
    compute_drift,
    sample,
)
from monitoring.profile import column_kinds
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase

FEATURES = ["lead_time", "historical_adr", "meal", "near_christmas"]


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    return load_usecase("hotel_rates", Settings())


def frame(n: int, seed: int, *, lead: float = 100.0, meal_p: float = 0.8, flag_p: float = 0.1):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "lead_time": rng.gamma(2.0, lead / 2, n).astype(np.float32),
            "historical_adr": rng.normal(100, 20, n).astype(np.float32),
            "meal": np.where(rng.random(n) < meal_p, "bed_and_breakfast", "no_meal_package"),
            "near_christmas": (rng.random(n) < flag_p).astype(np.float32),
            "prediction": rng.normal(100, 25, n),
        }
    )


def test_each_column_type_gets_its_own_test(spec: UseCaseSpec) -> None:
    kinds = column_kinds(spec, frame(500, 0), [*FEATURES, "prediction"])
    assert kinds == {
        "lead_time": "numerical",
        "historical_adr": "numerical",
        "meal": "categorical",  # declared str in the spec
        "near_christmas": "categorical",  # a 0/1 flag: frequencies, not a normed distance
        "prediction": "numerical",
    }
    result, _ = compute_drift(spec, frame(1000, 0), frame(1000, 1), features=FEATURES)
    methods = {f.name: f.method for f in result.features}
    assert methods["lead_time"] == NUMERICAL_METHOD
    assert methods["meal"] == methods["near_christmas"] == CATEGORICAL_METHOD


def test_same_distribution_is_not_drift(spec: UseCaseSpec) -> None:
    result, _ = compute_drift(spec, frame(2000, 0), frame(1500, 1), features=FEATURES)
    assert result.drifted == []
    assert result.share == 0.0 and not result.dataset_drift
    assert result.prediction is not None and not result.prediction.drifted


def test_shifted_columns_are_flagged_and_the_share_decides(spec: UseCaseSpec) -> None:
    current = frame(1500, 1, lead=200.0, meal_p=0.3)  # two of four features move
    result, _ = compute_drift(spec, frame(2000, 0), current, features=FEATURES, drift_share=0.5)
    assert set(result.drifted) == {"lead_time", "meal"}
    assert result.share == 0.5
    assert result.dataset_drift  # at the threshold counts, like the alert's >=
    strict, _ = compute_drift(spec, frame(2000, 0), current, features=FEATURES, drift_share=0.6)
    assert not strict.dataset_drift


def test_a_feature_that_vanished_is_drift_and_one_never_seen_is_skipped(
    spec: UseCaseSpec,
) -> None:
    ref, cur = frame(1000, 0), frame(1000, 1)
    cur["historical_adr"] = np.nan  # a broken feed
    ref["near_christmas"] = np.nan  # nothing to compare with
    result, _ = compute_drift(spec, ref, cur, features=FEATURES)
    by_name = {f.name: f for f in result.features}
    assert by_name["historical_adr"].method == ALL_MISSING and by_name["historical_adr"].drifted
    assert result.skipped == ["near_christmas"] and "near_christmas" not in by_name
    assert result.share == pytest.approx(1 / 3)


def test_the_report_samples_and_the_verdicts_use_every_row(spec: UseCaseSpec) -> None:
    ref, shifted = frame(60_000, 0), frame(60_000, 2, lead=200.0)
    assert len(sample(ref, 5000)) == 5000 and len(sample(ref, None)) == len(ref)
    a, snapshot = compute_drift(spec, ref, shifted, features=FEATURES, max_rows=5000)
    assert a.sampled and a.reference_rows == a.current_rows == 60_000
    assert a.drifted == ["lead_time"] and snapshot is not None
    whole = WindowDrift(spec, ref, features=FEATURES, max_rows=None)
    whole.add(shifted)
    b, _ = whole.result(report=False)
    assert not b.sampled and a.to_dict() == {**b.to_dict(), "sampled": True}
