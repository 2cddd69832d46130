"""Governance thresholds: who must approve a promotion, when a champion is reviewed, and
how long predictions, feedback and training runs are kept."""

from __future__ import annotations

from pydantic import Field

from shipway.core.spec.base import Strict
from shipway.core.spec.business import RiskLevel


class Retention(Strict):
    prediction_log_days: int = Field(default=365, gt=0, description="Keep predictions this long.")
    feedback_days: int = Field(default=365, gt=0, description="Keep feedback this long.")
    training_artifacts_days: int = Field(default=1095, gt=0, description="Keep runs this long.")


class Governance(Strict):
    """Who must sign off, and when a deployed model is reviewed (the governance gates)."""

    approval_required_for: list[RiskLevel] = Field(
        default_factory=lambda: [RiskLevel.high],
        description="Risk levels whose promotion to champion needs a recorded human approval "
        "(`shipway approve`); the training pipeline never promotes these by itself.",
    )
    auto_promote: bool = Field(
        default=True,
        description="Let the training pipeline promote a version that passed model "
        "validation, use-case approval, data readiness and the production-readiness gate "
        "(which the pipeline then runs itself) when its risk level needs no human "
        "approval; false: only `shipway promote` does.",
    )
    review_after_days: float = Field(
        default=7.0,
        gt=0,
        description="Post-deployment review: days a champion serves before it is reviewed; "
        "the monitor runs the review once per champion tenure when they have passed.",
    )
    review_min_predictions: int = Field(
        default=100,
        ge=0,
        description="Post-deployment review: fewest predictions the champion must have "
        "answered in the review window (volume SLO).",
    )

    def approval_required(self, risk: RiskLevel) -> bool:
        """Whether a use case of this risk level needs a named human to approve promotion."""
        return risk in self.approval_required_for

    def pipeline_promotes(self, risk: RiskLevel) -> bool:
        """Whether the training pipeline may promote by itself (after production readiness):
        auto_promote is on and this risk level needs no human approval."""
        return self.auto_promote and not self.approval_required(risk)
