"""Why the use case exists and who answers for it: owner, risk level, the business
objective and its approval, and the portfolio scores (impact, feasibility)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from shipway.core.spec.base import Strict


class RiskLevel(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class Owner(Strict):
    name: str = Field(min_length=1, description="Accountable owner of the use case.")
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="Contact address.")
    team: str = Field(default="", description="Owning team.")


class Approval(Strict):
    approved: bool = Field(description="Whether the business objective has been approved.")
    approver: str = Field(default="", description="Name of the person who approved.")
    approved_on: date | None = Field(default=None, description="Date of the approval.")
    comment: str = Field(default="", description="Approver's comment.")

    @model_validator(mode="after")
    def _approved_needs_name_and_date(self) -> Approval:
        if self.approved and (not self.approver or self.approved_on is None):
            raise ValueError("an approved use case needs both 'approver' and 'approved_on'")
        return self


class Objective(Strict):
    kpi: str = Field(min_length=1, description="Business KPI the model moves.")
    description: str = Field(default="", description="How the KPI is computed.")
    unit: str = Field(default="", description="Unit of the KPI.")
    baseline: float = Field(description="KPI value today, without the model.")
    target: float = Field(description="KPI value the use case commits to.")
    direction: Literal["lower_is_better", "higher_is_better"] = Field(
        description="Whether a lower or a higher KPI value is better."
    )
    approval: Approval = Field(description="Approval of the objective.")
    kpi_metric: str | None = Field(
        default=None,
        description="Model metric that measures the KPI (same unit as baseline and target): "
        "one of the task's metrics (REGRESSION_METRICS / CLASSIFICATION_METRICS). The "
        "portfolio reads it on the champion's held-out test window, the post-deployment "
        "review on live traffic; null: the acceptance metric.",
    )


class Portfolio(Strict):
    impact: int = Field(default=3, ge=1, le=5, description="Business impact score, 1-5.")
    feasibility: int = Field(default=3, ge=1, le=5, description="Feasibility score, 1-5.")
