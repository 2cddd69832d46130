"""The prediction task and its target column, and the metrics each task is judged on."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from shipway.core.spec.base import Strict


class Task(StrEnum):
    regression = "regression"
    binary_classification = "binary_classification"


REGRESSION_METRICS = ("mae", "rmse", "r2")
"""Metrics the evaluation computes for regression (``shipway.core.metrics.quality``)."""
CLASSIFICATION_METRICS = (
    "roc_auc",
    "f1",
    "accuracy",
    "brier",
    "log_loss",
    "positive_rate",
    "false_omission_rate",
    "ece",
)
"""Metrics the evaluation computes for binary classification; ``positive_rate`` is the share
predicted positive, ``false_omission_rate`` the share of actual positives among the rows
predicted negative (e.g. the bad rate of the loans a credit model approves), ``ece`` the
expected calibration error (mean |predicted - observed| over ten equal-count bins)."""


class Target(Strict):
    column: str = Field(description="Target column.")
    task: Task = Field(description="regression or binary_classification.")
    positive_class: str | None = Field(
        default=None, description="Label treated as 1 for binary classification."
    )
    negative_class: str | None = Field(
        default=None,
        description="The other label of a binary target, as in the data (treated as 0); "
        "/feedback accepts it besides positive_class, not_<positive_class> and 0/1.",
    )
    min: float | None = Field(default=None, description="Smallest plausible target value.")
    max: float | None = Field(default=None, description="Largest plausible target value.")

    @model_validator(mode="after")
    def _other_class(self) -> Target:
        if self.negative_class is not None and (
            self.task is not Task.binary_classification
            or self.negative_class == self.positive_class
        ):
            raise ValueError(
                "negative_class is the other label of a binary_classification target "
                "(different from positive_class)"
            )
        return self
