"""After deployment: the monitor's drift and performance thresholds, its window, the
retraining trigger's cooldown and its rule for newly labelled data."""

from __future__ import annotations

import math

from pydantic import Field, model_validator

from shipway.core.spec.base import Strict


class NewLabelsRule(Strict):
    """Retrain once enough labelled rows have arrived since the champion's training window
    ended (its ``train_before`` tag): new ground truth is a reason to retrain even when
    nothing drifted or degraded. With both bounds set, both must be reached."""

    min_rows: int | None = Field(
        default=None, gt=0, description="At least this many new labelled rows."
    )
    min_fraction: float | None = Field(
        default=None,
        gt=0,
        description="At least this fraction of the champion's training rows, as new "
        "labelled rows (0.25 = a quarter as many as it trained on).",
    )

    @model_validator(mode="after")
    def _a_bound(self) -> NewLabelsRule:
        if self.min_rows is None and self.min_fraction is None:
            raise ValueError("retrain_on_new_labels needs min_rows, min_fraction or both")
        return self

    def required(self, training_rows: int | None) -> int | None:
        """New labelled rows needed, given the champion's training rows (None: unknown,
        when ``min_fraction`` is set and the champion records no training rows)."""
        need = [self.min_rows] if self.min_rows is not None else []
        if self.min_fraction is not None:
            if training_rows is None:
                return None
            need.append(max(1, math.ceil(self.min_fraction * training_rows)))
        return max(need)


class Monitoring(Strict):
    drift_share_threshold: float = Field(
        default=0.3, gt=0, le=1, description="Share of drifted features that is 'drift'."
    )
    performance_drop_threshold: float = Field(
        default=0.2, gt=0, description="Relative metric drop vs validation that is 'degraded'."
    )
    window: str = Field(default="7D", description="Monitoring window (pandas offset).")
    retrain_cooldown_hours: float = Field(default=24.0, ge=0, description="Retrain cooldown.")
    retrain_on_new_labels: NewLabelsRule | None = Field(
        default=None,
        description="Also retrain when this many labelled rows arrived since the champion's "
        "training window ended (checked by the monitor; same cooldown and log).",
    )
