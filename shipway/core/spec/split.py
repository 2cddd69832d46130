"""The time-based train/validation/test windows, and their lengths on a retraining."""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import Field, model_validator

from shipway.core.spec.base import Strict


class Retraining(Strict):
    """Windows of a retraining on newer data (``shipway train --as-of``, the monitor's
    trigger): the test window ends on ``as_of``, the validation window comes right before
    it, and the model trains on every labelled row before that.

    Retraining after drift must learn from the new period while still being judged on rows
    it never saw. Keeping the first training's window lengths would hold the whole new
    period out as validation and test data (months of drifted rows the model never learns
    from), so the held-out windows of a retraining are shorter: by default half of the
    spec's own windows, never under a week.
    """

    validation_days: int | None = Field(
        default=None,
        ge=1,
        description="Length of the validation window of a retraining, in days; null: half "
        "the spec's validation window (at least 7 days).",
    )
    test_days: int | None = Field(
        default=None,
        ge=1,
        description="Length of the test window of a retraining, in days (the rows the "
        "retrained model is judged and compared with the champion on); null: half the "
        "spec's test window (at least 7 days).",
    )


class Split(Strict):
    """Time-based split: train < validation_start <= validation < test_start <= test."""

    validation_start: date = Field(description="First day of the validation window.")
    test_start: date = Field(description="First day of the test (held-out) window.")
    end: date | None = Field(default=None, description="Last day used for training at all.")
    retrain: Retraining = Field(
        default_factory=Retraining,
        description="Window lengths of a retraining on newer data (``as_of``).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Split:
        if self.validation_start >= self.test_start:
            raise ValueError("validation_start must be before test_start")
        if self.end is not None and self.end <= self.test_start:
            raise ValueError("end must be after test_start")
        return self

    def retrain_days(self) -> tuple[int, int]:
        """(validation, test) window lengths of a retraining, in days."""
        end = self.end + timedelta(days=1) if self.end is not None else None
        val = (self.test_start - self.validation_start).days
        test = (end - self.test_start).days if end is not None else val
        r = self.retrain
        return (
            r.validation_days or max(7, val // 2),
            r.test_days or max(7, test // 2),
        )
