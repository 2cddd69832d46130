"""Data-readiness rules the validate stage (and the data-readiness gate) checks."""

from __future__ import annotations

from pydantic import Field

from shipway.core.spec.base import Strict


class TimeWindowRule(Strict):
    freq: str = Field(default="MS", description="pandas offset alias of the window, e.g. MS.")
    min_rows: int = Field(ge=0, description="Minimum rows in every window.")


class Readiness(Strict):
    """Data-readiness rules of the validate stage."""

    min_rows: int = Field(default=100, ge=1, description="Minimum rows in the dataset.")
    max_duplicate_rows: int = Field(default=0, ge=0, description="Allowed duplicate rows.")
    per_time_window: TimeWindowRule | None = Field(
        default=None, description="Minimum rows per time window."
    )
    min_rows_per_group: int = Field(
        default=30, ge=0, description="Minimum rows in every sensitive-attribute group."
    )
