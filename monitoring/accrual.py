"""New labelled data since the champion trained: the monitor's third reason to retrain.

Drift and degradation say the world moved; accrued ground truth says there is more to
learn from even when it did not. The spec's ``monitoring.retrain_on_new_labels`` sets how
many labelled rows are enough (a count, a fraction of the champion's training rows, or
both). They are counted in the prediction log since the champion's training window
ended (its ``train_before`` tag), by business time, so rows the champion trained on
never count; a promoted retraining moves that tag and the count restarts. The trigger
records the decision with the same cooldown and log as drift (``maybe_retrain``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from monitoring.reference import Reference
from shipway.core.predictionlog import PredictionLog
from shipway.core.spec import UseCaseSpec


@dataclass(frozen=True)
class NewLabels:
    """Labelled rows since the champion's training window ended, against the rule."""

    rows: int
    since: str | None
    """The champion's ``train_before`` (ISO time); None when it records none."""
    training_rows: int | None
    required: int | None
    """Rows that make retraining due; None when the rule cannot be evaluated."""
    note: str = ""

    @property
    def due(self) -> bool:
        return self.required is not None and self.rows >= self.required

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "due": self.due}

    def summary(self) -> str:
        if self.required is None:
            return f"new labels: {self.rows} since the champion trained ({self.note})"
        return (
            f"new labels: {self.rows} since {self.since} (retrain at {self.required})"
            f"{' -> DUE' if self.due else ''}"
        )


def new_labels(spec: UseCaseSpec, ref: Reference, plog: PredictionLog) -> NewLabels | None:
    """The count and its verdict for the champion ``ref``; None when the spec has no rule."""
    rule = spec.monitoring.retrain_on_new_labels
    if rule is None:
        return None
    if ref.trained_before is None:
        return NewLabels(
            0, None, ref.training_rows, None, "the champion records no training window"
        )
    rows = plog.count_labelled(spec.name, since=ref.trained_before)
    required = rule.required(ref.training_rows)
    note = "" if required is not None else "the champion records no training rows"
    return NewLabels(rows, ref.trained_before.isoformat(), ref.training_rows, required, note)
