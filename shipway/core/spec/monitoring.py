"""After deployment: the monitor's drift and performance thresholds, its window and the
retraining trigger's cooldown."""

from __future__ import annotations

from pydantic import Field

from shipway.core.spec.base import Strict


class Monitoring(Strict):
    drift_share_threshold: float = Field(
        default=0.3, gt=0, le=1, description="Share of drifted features that is 'drift'."
    )
    performance_drop_threshold: float = Field(
        default=0.2, gt=0, description="Relative metric drop vs validation that is 'degraded'."
    )
    window: str = Field(default="7D", description="Monitoring window (pandas offset).")
    retrain_cooldown_hours: float = Field(default=24.0, ge=0, description="Retrain cooldown.")
