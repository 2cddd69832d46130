"""Retraining when enough labelled data has arrived since the champion trained.

A real SQLite prediction log with real feedback, the real trigger (cooldown, lock, log)
and a recording runner in place of the training pipeline (which runs for real in
tests/integration/test_trigger.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from monitoring.accrual import new_labels
from monitoring.reference import Reference, _training_window
from monitoring.trigger import RetrainTrigger, history, maybe_retrain
from monitoring.window import WindowResult
from shipway.core.predictionlog import PredictionLog, PredictionRecord
from shipway.core.settings import Settings
from shipway.core.spec import Monitoring, UseCaseSpec
from shipway.core.usecases import load_usecase

ROOT = Path(__file__).resolve().parents[2]
TRAINED_BEFORE = datetime(2017, 6, 1, tzinfo=UTC)


class Recorder:
    """Stands in for the training pipeline: records each start."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, settings: Settings, usecase: str, rev: str, **kw: Any) -> dict[str, Any]:
        self.calls.append(usecase)
        return {"model": usecase, "version": "2", "promoted": False, "gate_passed": False}


def with_rule(spec: UseCaseSpec, rule: dict[str, Any]) -> UseCaseSpec:
    mon = Monitoring.model_validate({**spec.monitoring.model_dump(), "retrain_on_new_labels": rule})
    return spec.model_copy(update={"monitoring": mon})


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    # 10 rows: the larger of min_rows 5 and a quarter of the champion's 40 training rows
    return with_rule(
        load_usecase("hotel_rates", Settings(root=ROOT)), {"min_rows": 5, "min_fraction": 0.25}
    )


def champion() -> Reference:
    return Reference(
        "hotel_rates", "1", "run", "runs:/run/ref", pd.DataFrame(), {}, None, TRAINED_BEFORE, 40
    )


def record(i: int, event_time: datetime, mode: str = "served") -> PredictionRecord:
    return PredictionRecord(
        request_id=f"r{i}" if mode == "served" else f"r{i}:shadow",
        usecase="hotel_rates",
        model_name="hotel_rates",
        model_version="1",
        variant="champion" if mode == "served" else "challenger",
        mode=mode,
        entity_keys={},
        features={"lead_time": i},
        prediction=100.0,
        latency_ms=1.0,
        event_time=event_time,
    )


def window(accrued: Any) -> WindowResult:
    """A healthy window (nothing drifted or degraded) carrying the label count."""
    return WindowResult(
        "hotel_rates",
        {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-02T00:00:00+00:00", "by": "ts"},
        {"name": "hotel_rates", "version": "1"},
        {"logged": 0, "served": 0, "shadow": 0, "labelled": 0},
        None,
        None,
        None,
        {"drift_share": 0.3, "performance_drop": 0.2},
        new_labels=accrued,
    )


def test_retraining_starts_once_at_the_threshold_then_waits_for_the_cooldown(
    spec: UseCaseSpec, tmp_path: Path
) -> None:
    settings = Settings(root=ROOT, state_dir=tmp_path / "state")
    plog = PredictionLog(str(tmp_path / "predictions.db"))
    trained_on = [record(i, TRAINED_BEFORE - timedelta(days=1 + i)) for i in range(6)]
    later = [record(100 + i, TRAINED_BEFORE + timedelta(hours=i)) for i in range(13)]
    plog.append([*trained_on, *later, record(100, TRAINED_BEFORE, "shadow")])
    for r in trained_on:  # labels of rows the champion trained on never count
        assert plog.add_feedback("hotel_rates", r.request_id, 90.0)
    assert plog.add_feedback("hotel_rates", "r100:shadow", 90.0)  # nor do shadow records
    run, outcomes = Recorder(), []
    trigger = RetrainTrigger(settings, runner=run)
    for n, r in enumerate(later[:12], start=1):
        assert plog.add_feedback("hotel_rates", r.request_id, 95.0)
        accrued = new_labels(spec, champion(), plog)
        assert accrued is not None and accrued.rows == n and accrued.required == 10
        decision = maybe_retrain(settings, spec, window(accrued), trigger=trigger)
        outcomes.append(decision["outcome"])
    assert outcomes == ["ignored"] * 9 + ["started", "cooldown", "cooldown"]
    assert run.calls == ["hotel_rates"]  # once, at the 10th new label
    started = [e for e in history(settings, "hotel_rates") if e.get("outcome") == "started"]
    assert len(started) == 1 and "new_labels" in started[0]["reason"]
    assert started[0]["details"]["new_labels"]["rows"] == 10
    assert started[0]["details"]["new_labels"]["since"] == TRAINED_BEFORE.isoformat()


def test_the_rule_needs_a_recorded_training_window(spec: UseCaseSpec, tmp_path: Path) -> None:
    plog = PredictionLog(str(tmp_path / "predictions.db"))
    unknown = Reference("hotel_rates", "1", "run", "uri", pd.DataFrame(), {}, None)
    accrued = new_labels(spec, unknown, plog)
    assert accrued is not None and not accrued.due and "no training window" in accrued.note
    rows_unknown = Reference(
        "hotel_rates", "1", "run", "uri", pd.DataFrame(), {}, None, TRAINED_BEFORE, None
    )
    accrued = new_labels(spec, rows_unknown, plog)  # min_fraction without training rows
    assert accrued is not None and accrued.required is None and "training rows" in accrued.note
    assert new_labels(load_usecase("hotel_rates", Settings(root=ROOT)), unknown, plog) is None
    assert _training_window(
        {"train_before": "2017-06-01", "windows": '{"train": {"rows": 40}}'}
    ) == (
        TRAINED_BEFORE,
        40,
    )
    assert _training_window({}) == (None, None)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"min_rows": 0}, "retrain_on_new_labels.min_rows"),
        ({"min_fraction": -0.5}, "retrain_on_new_labels.min_fraction"),
        ({}, "needs min_rows, min_fraction or both"),
        ({"min_row": 5}, "min_row"),
    ],
)
def test_a_bad_rule_fails_at_load_naming_the_field(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as err:
        Monitoring.model_validate({"retrain_on_new_labels": rule})
    assert "retrain_on_new_labels" in str(err.value)
