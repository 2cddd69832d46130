"""Label scenarios run on every prediction-log backend: SQLite in
``tests/unit/test_feedback.py``, PostgreSQL in ``tests/integration/test_feedback.py``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from shipway.core.predictionlog import (
    FeedbackStatus,
    PredictionLog,
    PredictionRecord,
    feedback,
    feedback_history,
)


def predicted(plog: PredictionLog, usecase: str, ids: list[str]) -> None:
    """Log one prediction per id (entity ``agent`` = the id's last character)."""
    plog.append(
        [
            PredictionRecord(
                request_id=rid,
                usecase=usecase,
                model_name=usecase,
                model_version="1",
                variant="champion",
                entity_keys={"agent": rid[-1]},
                features={"lead_time": 1},
                prediction=100.0,
                latency_ms=1.0,
            )
            for rid in ids
        ]
    )


def in_force(plog: PredictionLog, usecase: str) -> dict[str, float]:
    """The label monitoring reads for each labelled request id."""
    w = plog.window(usecase)
    return {r: float(a) for r, a in zip(w["request_id"], w["actual"], strict=True) if a == a}


def label_rules(plog: PredictionLog) -> None:
    """The no-silent-overwrite rules on one prediction log (any backend)."""
    uc = "hotel_rates"
    predicted(plog, uc, ["r-a", "r-b"])
    first = plog.add_feedback(uc, "r-a", 120.0)
    assert first and first.status is FeedbackStatus.recorded and first.revision == 1
    # a different second label: refused, nothing changes
    clash = plog.add_feedback(uc, "r-a", 130.0)
    assert not clash and clash.status is FeedbackStatus.conflict
    assert (clash.revision, clash.actual) == (1, 120.0)
    assert in_force(plog, uc) == {"r-a": 120.0}
    # the same label again (a client's retry): accepted, no new revision
    again = plog.add_feedback(uc, "r-a", 120.0)
    assert again and again.status is FeedbackStatus.unchanged and again.revision == 1
    assert [h["actual"] for h in plog.feedback_history("r-a")] == [120.0]
    # an explicit correction: in force for monitoring, the earlier label on record
    fixed = plog.add_feedback(uc, "r-a", 130.0, correction=True)
    assert fixed.status is FeedbackStatus.corrected and (fixed.revision, fixed.actual) == (2, 130.0)
    assert in_force(plog, uc) == {"r-a": 130.0}
    history = plog.feedback_history("r-a")
    assert [(h["revision"], h["actual"]) for h in history] == [(1, 120.0), (2, 130.0)]
    assert history[0]["ts"] <= history[1]["ts"]
    # a correction of an unlabelled prediction is simply its first label
    assert plog.add_feedback(uc, "r-b", 90.0, correction=True).status is FeedbackStatus.recorded
    # unknown ids, another use case's id and non-finite values store nothing
    assert plog.add_feedback(uc, "nope", 1.0).status is FeedbackStatus.unknown
    assert plog.add_feedback("credit_risk", "r-a", 1.0, correction=True).status is (
        FeedbackStatus.unknown
    )
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            plog.add_feedback(uc, "r-a", bad, correction=True)
    assert in_force(plog, uc) == {"r-a": 130.0, "r-b": 90.0}
    assert len(plog.feedback_history("r-a")) == 2


def concurrent_labels(plog: PredictionLog, threads: int = 8) -> None:
    """Racing writers for one id: exactly one first label wins; corrections all land, each
    as its own revision, and the last revision is the label in force."""
    uc = "hotel_rates"
    predicted(plog, uc, ["race-1", "race-2"])
    barrier = threading.Barrier(threads)
    outcomes: list[Any] = []
    errors: list[BaseException] = []

    def run(fn: Callable[[int], Any]) -> None:
        def one(i: int) -> None:
            try:
                barrier.wait()
                outcomes.append(fn(i))
            except BaseException as exc:
                errors.append(exc)

        pool = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()

    run(lambda i: plog.add_feedback(uc, "race-1", float(100 + i)))
    assert not errors, errors
    statuses = sorted(o.status.value for o in outcomes)
    assert statuses == ["conflict"] * (threads - 1) + ["recorded"]
    winner = next(o.actual for o in outcomes if o.status is FeedbackStatus.recorded)
    assert all(o.actual == winner for o in outcomes)  # every loser was told what is kept
    assert [h["actual"] for h in plog.feedback_history("race-1")] == [winner]

    outcomes.clear()
    plog.add_feedback(uc, "race-2", 1.0)
    run(lambda i: plog.add_feedback(uc, "race-2", float(200 + i), correction=True))
    assert not errors, errors
    history = plog.feedback_history("race-2")
    assert [h["revision"] for h in history] == list(range(1, threads + 2))
    assert sorted(h["actual"] for h in history[1:]) == [float(200 + i) for i in range(threads)]
    assert in_force(plog, uc)["race-2"] == history[-1]["actual"]


def legacy_label_kept(plog: PredictionLog) -> None:
    """A log written by an earlier Shipway (no feedback_history table) opens, and
    correcting one of its labels first puts the old label on record, its time unchanged."""
    predicted(plog, "hotel_rates", ["old-1"])
    then = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    with plog.engine.begin() as conn:
        feedback_history.drop(conn)
        conn.execute(
            feedback.insert(),
            {"request_id": "old-1", "ts": then, "usecase": "hotel_rates", "actual": 7},
        )
    url = plog.engine.url.render_as_string(hide_password=False)
    plog = PredictionLog(url)  # as a new release opens it: the history table appears
    assert sa.inspect(plog.engine).has_table("feedback_history")
    assert plog.add_feedback("hotel_rates", "old-1", 8.0).status is FeedbackStatus.conflict
    fixed = plog.add_feedback("hotel_rates", "old-1", 8.0, correction=True)
    assert fixed.revision == 2
    history = plog.feedback_history("old-1")
    assert [h["actual"] for h in history] == [7.0, 8.0]
    kept = history[0]["ts"]  # read and rewritten through the driver; SQLite's is naive UTC
    assert (kept if kept.tzinfo else kept.replace(tzinfo=UTC)) == then
