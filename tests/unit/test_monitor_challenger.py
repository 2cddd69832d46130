"""Challenger vs champion: bootstrap verdicts on constructed cases, and log pairing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.challenger import (
    BETTER,
    UNDECIDED,
    WORSE,
    compare,
    compare_window,
    shadow_request_id,
    verdict,
)
from shipway.core.settings import Settings
from shipway.core.spec import Acceptance, UseCaseSpec
from shipway.core.usecases import load_usecase


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    return load_usecase("hotel_rates", Settings())  # MAE: lower is better


def rows(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.normal(100, 30, n)
    return y, y + rng.normal(0, 20, n), y + rng.normal(0, 8, n)  # actual, champion, better


def test_clearly_better_challenger_is_better_and_the_reverse_is_worse(spec: UseCaseSpec) -> None:
    y, champ, good = rows()
    res = compare(spec, (y, champ), (y, good), paired=True, n_boot=300)
    assert res.verdict == BETTER
    assert res.difference is not None and res.difference < 0  # MAE went down
    assert res.ci_low is not None and res.ci_high is not None
    assert res.ci_low <= res.difference <= res.ci_high < 0
    assert compare(spec, (y, good), (y, champ), paired=True, n_boot=300).verdict == WORSE


def test_identical_models_are_not_distinguishable(spec: UseCaseSpec) -> None:
    y, champ, _ = rows()
    res = compare(spec, (y, champ), (y, champ.copy()), paired=True, n_boot=300)
    assert res.verdict == UNDECIDED and res.difference == 0.0


def test_unpaired_split_traffic_and_too_few_rows(spec: UseCaseSpec) -> None:
    y1, champ, _ = rows(600, 1)
    y2, _, good = rows(600, 2)
    split = compare(spec, (y1, champ), (y2, good), paired=False, n_boot=300)
    assert split.design == "unpaired" and split.verdict == BETTER
    few = compare(spec, (y1[:10], champ[:10]), (y1[:10], champ[:10] - 5), paired=True)
    assert few.verdict == UNDECIDED and few.ci_low is None


def test_verdict_follows_the_metric_direction(spec: UseCaseSpec) -> None:
    auc = spec.model_copy(
        update={
            "acceptance": Acceptance.model_validate(
                {**spec.acceptance.model_dump(), "metric": "roc_auc"}
            )
        }
    )
    assert verdict(spec, -2.0, -1.0) == BETTER  # MAE down
    assert verdict(auc, 0.01, 0.03) == BETTER  # AUC up
    assert verdict(auc, -0.03, -0.01) == WORSE
    assert verdict(auc, -0.01, 0.01) == UNDECIDED


def log_window(y: np.ndarray, champ: np.ndarray, chall: np.ndarray) -> pd.DataFrame:
    """What PredictionLog.window returns for shadow traffic: feedback on served ids only."""
    ids = [f"req-{i}" for i in range(len(y))]
    served = pd.DataFrame(
        {
            "request_id": ids,
            "mode": "served",
            "variant": "champion",
            "model_version": "3",
            "prediction": champ,
            "actual": y,
        }
    )
    shadow = pd.DataFrame(
        {
            "request_id": [shadow_request_id(i) for i in ids],
            "mode": "shadow",
            "variant": "challenger",
            "model_version": "4",
            "prediction": chall,
            "actual": np.nan,
        }
    )
    return pd.concat([shadow.iloc[::-1], served], ignore_index=True)  # order must not matter


def test_shadow_records_pair_with_their_served_request(spec: UseCaseSpec) -> None:
    y, champ, good = rows()
    window = log_window(y, champ, good)
    window.loc[window["request_id"] == "req-0", "actual"] = None  # no feedback yet
    res = compare_window(spec, window, n_boot=300)
    assert res is not None and res.design == "paired"
    assert res.rows_champion == res.rows_challenger == len(y) - 1
    assert (res.champion_version, res.challenger_version) == ("3", "4")
    assert res.verdict == BETTER
    expected = np.mean(np.abs(y[1:] - good[1:])) - np.mean(np.abs(y[1:] - champ[1:]))
    assert res.difference == pytest.approx(expected)


def test_no_challenger_means_no_comparison(spec: UseCaseSpec) -> None:
    y, champ, _ = rows(50)
    served = log_window(y, champ, champ).query("mode == 'served'")
    assert compare_window(spec, served) is None
    assert compare_window(spec, pd.DataFrame()) is None
