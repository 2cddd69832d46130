"""One builder of prediction-log records for the tests that write logs directly.

The prediction log's tests (group commit, writer lock, PostgreSQL roles) each need
plausible hotel_rates records that differ only in id, value and time; one builder keeps
them from drifting apart when the record gains a field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shipway.core.predictionlog import PredictionRecord


def prediction_record(
    request_id: str, prediction: float = 1.0, ts: datetime | None = None, **fields: Any
) -> PredictionRecord:
    """A champion hotel_rates record logged at ``ts`` (now when not given); ``fields``
    override the defaults (``event_time``, ``missing``, ``entity_keys`` ...)."""
    values: dict[str, Any] = {
        "request_id": request_id,
        "usecase": "hotel_rates",
        "model_name": "hotel_rates",
        "model_version": "3",
        "variant": "champion",
        "entity_keys": {"agent": "9"},
        "features": {"lead_time": 12.0},
        "prediction": prediction,
        "latency_ms": 0.5,
        **fields,
    }
    if ts is not None:
        values["ts"] = ts
    return PredictionRecord(**values)
