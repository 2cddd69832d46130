"""Retention and erasure delete exactly what they should and nothing else, and say so in
the audit trail (an erasure record never holds the raw entity key)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shipway.core.predictionlog import PredictionLog, PredictionRecord, feedback
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase
from shipway.governance.retention import enforce, entity_hash, erase
from shipway.governance.trail import trail_for
from shipway.governance.versions import GovernanceError

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC)
SECRET = "agent-SECRET-7"


class NoRuns:
    """An MLflow client of a use case that has no experiment yet (runs are tested in
    tests/integration/test_governance_registry.py against a real registry)."""

    def get_experiment_by_name(self, name: str) -> Any:
        return None


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Settings, UseCaseSpec, PredictionLog, dict[str, list[str]]]:
    settings = Settings(root=ROOT, state_dir=tmp_path, prediction_log_uri=str(tmp_path / "p.db"))
    base = load_usecase("hotel_rates")
    spec = UseCaseSpec.model_validate(
        {**base.model_dump(), "retention": {"prediction_log_days": 365, "feedback_days": 30}}
    )
    plog = PredictionLog(settings.prediction_log)
    groups: dict[str, list[str]] = {"old": [], "mid": [], "new": []}
    # (group, age of prediction, age of feedback or None, agent)
    plan = [("old", 400, 399 if i < 3 else None, SECRET if i < 2 else "a2") for i in range(5)]
    plan += [("mid", 100, 90, SECRET if i == 0 else "a2") for i in range(4)]
    plan += [("new", 5, 1 if i < 2 else None, SECRET if i == 0 else "a3") for i in range(3)]
    for i, (group, age, fb_age, agent) in enumerate(plan):
        rid = f"{group}-{i}"
        groups[group].append(rid)
        plog.append(
            [
                PredictionRecord(
                    request_id=rid,
                    usecase=spec.name,
                    model_name=spec.name,
                    model_version="1",
                    variant="champion",
                    entity_keys={"agent": agent, "country": "prt"},
                    features={"lead_time": 10},
                    prediction=100.0,
                    latency_ms=5.0,
                    ts=NOW - timedelta(days=age),
                )
            ]
        )
        if fb_age is not None:
            with plog.engine.begin() as conn:
                conn.execute(
                    feedback.insert(),
                    {
                        "request_id": rid,
                        "ts": NOW - timedelta(days=fb_age),
                        "usecase": spec.name,
                        "actual": 90.0,
                    },
                )
    return settings, spec, plog, groups


def _ids(plog: PredictionLog) -> set[str]:
    return set(plog.window("hotel_rates", with_feedback=False)["request_id"])


def _feedback_ids(plog: PredictionLog) -> set[str]:
    with plog.engine.connect() as conn:
        return {r.request_id for r in conn.execute(sa.select(feedback.c.request_id))}


def test_dry_run_counts_exactly_and_deletes_nothing(setup: Any) -> None:
    settings, spec, plog, _groups = setup
    res, uri = enforce(settings, NoRuns(), spec)  # dry run is the default
    assert uri is None and not res.applied
    assert res.predictions == 5  # older than 365 days
    assert res.feedback_of_expired_predictions == 3
    assert res.feedback == 4  # older than 30 days, prediction kept
    assert len(_ids(plog)) == 12 and len(_feedback_ids(plog)) == 9
    assert trail_for(settings, spec.name).entries() == []


def test_apply_deletes_exactly_the_expired_rows_and_records_it(setup: Any) -> None:
    settings, spec, plog, groups = setup
    _res, uri = enforce(settings, NoRuns(), spec, apply=True)
    assert _ids(plog) == set(groups["mid"] + groups["new"])
    assert _feedback_ids(plog) == {"new-9", "new-10"}
    rec = trail_for(settings, spec.name).latest("retention")
    assert rec is not None and uri is not None
    values = {c["name"]: c["value"] for c in rec["criteria"]}
    assert values == {"prediction_log": 5, "feedback": 7, "training_artifacts": 0}
    assert rec["facts"]["policy"]["feedback_days"] == 30


def test_erasure_removes_one_entity_only_and_records_a_hash_of_the_key(setup: Any) -> None:
    settings, spec, plog, _groups = setup
    before_ids, before_fb = _ids(plog), _feedback_ids(plog)
    mine = {"old-0", "old-1", "mid-5", "new-9"}
    dry, none = erase(settings, NoRuns(), spec, "agent", SECRET, dry_run=True)
    assert none is None and dry.facts["matched"] == {"predictions": 4, "feedback": 4}
    assert _ids(plog) == before_ids
    record, uri = erase(settings, NoRuns(), spec, "agent", SECRET)
    assert record.passed and uri is not None
    assert _ids(plog) == before_ids - mine
    assert _feedback_ids(plog) == before_fb - mine
    records = settings.state / "audit" / spec.name / "records"
    stored = json.loads(next(records.glob("erasure-*.json")).read_text())
    assert stored["subject"]["entity_hash"] == entity_hash(spec.name, "agent", SECRET)
    assert SECRET not in json.dumps(stored) and SECRET not in Path(uri[7:]).read_text()
    assert (
        stored["facts"]["log_before"]["predictions"] - 4
        == stored["facts"]["log_after"]["predictions"]
    )
    # a second request for the same entity finds nothing and deletes nothing
    again, _ = erase(settings, NoRuns(), spec, "agent", SECRET)
    assert again.facts["matched"] == {"predictions": 0, "feedback": 0}
    assert _ids(plog) == before_ids - mine


def test_erasure_needs_a_declared_entity_key(setup: Any) -> None:
    settings, spec, _, _ = setup
    with pytest.raises(GovernanceError, match="not an entity key"):
        erase(settings, NoRuns(), spec, "email", "x@example.com")
