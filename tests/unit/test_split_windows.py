"""The training windows: the first training's split, a retraining's shorter held-out
windows that let the model learn the newest period, and the champion comparison that
scores both models only on rows neither trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor

from pipelines.steps import dataset, gate
from shipway.core.modelframe import model_frame
from shipway.core.spec import UseCaseSpec, load_spec
from shipway.data.readiness import EVENT_TS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hotel() -> UseCaseSpec:
    return load_spec(ROOT / "usecases" / "hotel_rates" / "usecase.yaml")


def daily(start: str, end: str) -> pd.DataFrame:
    """One row per day, event time at noon UTC."""
    days = pd.date_range(start, end, freq="D", tz="UTC") + pd.Timedelta(hours=12)
    return pd.DataFrame({EVENT_TS: days, "i": np.arange(len(days))})


def test_first_training_uses_the_spec_dates(hotel: UseCaseSpec) -> None:
    parts = dataset.split(hotel, daily("2016-07-01", "2017-08-31"))
    assert parts["train"][EVENT_TS].max() < pd.Timestamp("2017-01-01", tz="UTC")
    assert parts["validation"][EVENT_TS].min() >= pd.Timestamp("2017-01-01", tz="UTC")
    assert parts["test"][EVENT_TS].min() >= pd.Timestamp("2017-03-01", tz="UTC")
    assert parts["test"][EVENT_TS].max() < pd.Timestamp("2017-05-01", tz="UTC")


def test_retraining_learns_the_newest_period_and_is_judged_on_unseen_rows(
    hotel: UseCaseSpec,
) -> None:
    frame = daily("2016-07-01", "2017-08-31")
    parts = dataset.split(hotel, frame, as_of="2017-08-31")
    val_days, test_days = hotel.split.retrain_days()
    train, val, test = parts["train"], parts["validation"], parts["test"]
    # judged on the last test_days days up to as_of, validated on the days before them
    assert len(test) == test_days and test[EVENT_TS].max().date().isoformat() == "2017-08-31"
    assert len(val) == val_days and val[EVENT_TS].max() < test[EVENT_TS].min()
    # trained on everything before, the months after the first training's end included
    assert train[EVENT_TS].max() < val[EVENT_TS].min()
    assert (train[EVENT_TS] >= pd.Timestamp("2017-05-01", tz="UTC")).sum() >= 31
    assert len(train) + len(val) + len(test) == len(frame)


def test_retrain_window_lengths_default_to_half_the_spec_and_can_be_declared(
    hotel: UseCaseSpec,
) -> None:
    # the spec's windows: validation Jan-Feb (59 days), test Mar-Apr (61 days)
    assert hotel.split.retrain_days() == (29, 30)
    raw = hotel.model_dump(mode="json")
    raw["split"]["retrain"] = {"validation_days": 10, "test_days": 20}
    declared = UseCaseSpec.model_validate(raw)
    assert declared.split.retrain_days() == (10, 20)
    raw["split"]["retrain"] = {"test_days": 0}
    with pytest.raises(ValueError, match="test_days"):
        UseCaseSpec.model_validate(raw)


def test_an_empty_window_is_an_error_naming_it(hotel: UseCaseSpec) -> None:
    with pytest.raises(ValueError, match=r"split 'test' is empty \(\[2017-03-01"):
        dataset.split(hotel, daily("2016-07-01", "2017-02-20"))


def test_the_evidence_says_which_rows_each_split_holds(hotel: UseCaseSpec) -> None:
    frame = daily("2016-07-01", "2017-08-31")
    parts = dataset.split(hotel, frame, as_of="2017-08-31")
    d = dataset.describe(parts, dataset.bounds(hotel, frame[EVENT_TS], "2017-08-31"), "2017-08-31")
    assert d["as_of"] == "2017-08-31"
    train, test = d["train"], d["test"]
    assert isinstance(train, dict) and isinstance(test, dict)
    assert train["from"] is None and train["rows"] == len(parts["train"])
    assert train["first_event"].startswith("2016-07-01")
    assert test["before"].startswith("2017-09-01") and test["rows"] == len(parts["test"])


def comparison_frame(hotel: UseCaseSpec) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """A test window of June-August: the target is 105 until July 31 (the rows the
    champion trained on, below) and 100 in August."""
    test = daily("2017-06-01", "2017-08-31")
    for name in hotel.model_feature_names:
        test[name] = "a" if name in hotel.categorical_features else 1.0
    y = np.where(test[EVENT_TS] < pd.Timestamp("2017-08-01", tz="UTC"), 105.0, 100.0)
    return test, model_frame(hotel, test), y


def constant(value: float, x: pd.DataFrame, y: np.ndarray) -> DummyRegressor:
    return DummyRegressor(strategy="constant", constant=value).fit(x, y)


def test_the_champion_is_scored_only_on_rows_neither_model_trained_on(
    hotel: UseCaseSpec,
) -> None:
    test, x, y = comparison_frame(hotel)
    # on all 92 rows the champion would look better (MAE 1.7 vs 3.0): it fits the 61 rows
    # it trained on; on the 31 August rows neither saw, the candidate is better (1 vs 5)
    cand, champ = constant(101.0, x, y), constant(105.0, x, y)
    before = pd.Timestamp("2017-08-01", tz="UTC")
    facts: dict[str, object] = {}
    c = gate.beats_champion(hotel, cand, champ, test, x, y, before, facts)
    assert c.passed and c.value == pytest.approx(1.0)
    assert facts["comparison_rows"] == 31  # August only: the champion trained on July
    assert facts["champion_metric"] == pytest.approx(5.0)
    worse = gate.beats_champion(hotel, champ, cand, test, x, y, before, {})
    assert not worse.passed


def test_no_unseen_rows_means_no_comparison_and_no_promotion(hotel: UseCaseSpec) -> None:
    test, x, y = comparison_frame(hotel)
    cand, champ = constant(100.0, x, y), constant(150.0, x, y)
    after_window = pd.Timestamp("2017-09-01", tz="UTC")
    c = gate.beats_champion(hotel, cand, champ, test, x, y, after_window, {})
    assert not c.passed and c.value == "not comparable"
    assert "only 0 test rows" in c.detail and "2017-09-01" in c.detail
    unknown = gate.beats_champion(hotel, cand, champ, test, x, y, None, {})
    assert not unknown.passed and "no training window" in unknown.detail
