"""Explanations in the prediction log (real SQLite files): stored in the prediction's own
row (one commit), read back after the log is reopened, kept out of monitoring windows,
listed per model version for the audit bundle, and a log written before the column
existed is migrated in place without losing or changing a row (issue 17, point 1)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa

from shipway.core.predictionlog import PredictionLog, PredictionRecord, migrate, predictions

EXPLANATION = {
    "method": "lightgbm_tree_shap",
    "scale": "value",
    "base_value": 100.0,
    "output": 112.5,
    "prediction": 112.5,
    "contributions": {"lead_time": 10.0, "agent": 2.5, "adults": 0.0},
}


def _record(rid: str, explanation: dict | None = None, version: str = "3") -> PredictionRecord:
    return PredictionRecord(
        request_id=rid,
        usecase="hotel_rates",
        model_name="hotel_rates",
        model_version=version,
        variant="champion",
        entity_keys={"agent": "9"},
        features={"lead_time": 12.0, "agent": "9", "adults": 2.0},
        prediction=112.5,
        latency_ms=0.5,
        explanation=explanation,
    )


def test_an_explanation_is_read_back_after_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "p.db")
    plog = PredictionLog(path)
    plog.append([_record("e1", EXPLANATION), _record("p1"), _record("e2", EXPLANATION, "4")])
    plog.close()
    again = PredictionLog(path)  # a new engine and connection: what is on disk
    row = again.get("e1")
    assert row is not None and row["explanation"] == EXPLANATION
    plain = again.get("p1")
    assert plain is not None and plain["explanation"] is None
    listed = again.explained("hotel_rates", "hotel_rates", "3")
    assert [r["request_id"] for r in listed] == ["e1"]
    assert listed[0]["explanation"]["contributions"]["lead_time"] == 10.0
    window = again.window("hotel_rates")
    assert len(window) == 3 and "explanation" not in window.columns  # monitoring unchanged


OLD_SCHEMA = """
CREATE TABLE predictions (
    request_id VARCHAR(64) PRIMARY KEY, ts DATETIME NOT NULL, usecase VARCHAR(64) NOT NULL,
    model_name VARCHAR(128) NOT NULL, model_version VARCHAR(32) NOT NULL,
    variant VARCHAR(16) NOT NULL, mode VARCHAR(16) NOT NULL, entity_keys TEXT NOT NULL,
    features TEXT NOT NULL, missing TEXT NOT NULL, prediction FLOAT NOT NULL,
    label VARCHAR(64), event_time DATETIME, latency_ms FLOAT NOT NULL
);
INSERT INTO predictions VALUES ('old-1', '2026-01-02 03:04:05.000000', 'hotel_rates',
    'hotel_rates', '2', 'champion', 'served', '{"agent": "9"}', '{"lead_time": 3.0}', '[]',
    99.5, NULL, NULL, 1.5);
"""


def test_a_log_from_before_explanations_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(OLD_SCHEMA)
    con.commit()
    con.close()
    plog = PredictionLog(str(path))  # opening migrates
    cols = {c["name"] for c in sa.inspect(plog.engine).get_columns("predictions")}
    assert "explanation" in cols
    old = plog.get("old-1")
    assert old is not None
    assert old["prediction"] == 99.5 and old["features"] == {"lead_time": 3.0}
    assert old["explanation"] is None
    plog.append([_record("new-1", EXPLANATION)])
    new = plog.get("new-1")
    assert new is not None and new["explanation"] == EXPLANATION
    assert migrate(plog.engine) == []  # idempotent: a second opener adds nothing
    assert plog.count() == 2 and plog.integrity_ok()


def test_migration_adds_only_what_is_missing(tmp_path: Path) -> None:
    """The negative control: on a current log nothing is altered."""
    plog = PredictionLog(str(tmp_path / "new.db"))
    assert migrate(plog.engine) == []
    assert "explanation" in predictions.c
