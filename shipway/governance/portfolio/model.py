"""What the portfolio shows: the gates in order, and per use case its status, gate
states, KPI, serving cost and last drift (plain data; collected by ``sources``, shown by
``text`` and ``report``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

GATES = (
    "use_case_approval",
    "data_readiness",
    "model_validation",
    "production_readiness",
    "post_deployment_review",
)
"""The five governance gates, in the order a model meets them."""


@dataclass(frozen=True)
class GateState:
    """One gate of one use case: passed, failed, pending (waiting on a person) or missing."""

    gate: str
    state: str
    detail: str = ""
    source: str = ""


@dataclass(frozen=True)
class Kpi:
    """The business KPI: baseline, target and the champion's value on held-out data."""

    name: str
    unit: str
    baseline: float
    target: float
    direction: str
    metric: str
    value: float | None
    source: str

    def _better(self, a: float, b: float) -> bool:
        return a <= b if self.direction == "lower_is_better" else a >= b

    @property
    def met(self) -> bool | None:
        """Whether the measured value reaches the committed target (None: not measured)."""
        return None if self.value is None else self._better(self.value, self.target)

    @property
    def beats_baseline(self) -> bool | None:
        return None if self.value is None else self._better(self.value, self.baseline)


@dataclass(frozen=True)
class Cost:
    """What serving the champion costs, from its production-readiness record (the smoke's
    measurement on the served Bento), and whether it kept the budget it was held to."""

    cpu_seconds_per_1k: float | None
    memory_mb: float | None
    within_budget: bool | None
    source: str


@dataclass(frozen=True)
class Drift:
    """The monitor's last window of a use case (``results.json``)."""

    outcome: str
    share: float | None
    threshold: float | None
    window_end: str
    path: str


@dataclass
class UseCaseStatus:
    """Everything the portfolio shows about one use case."""

    name: str
    title: str = ""
    task: str = ""
    owner: str = ""
    risk_level: str = ""
    approved: bool = False
    impact: int = 0
    feasibility: int = 0
    champion: str | None = None
    challenger: str | None = None
    latest: str | None = None
    gates: list[GateState] = field(default_factory=list)
    drift: Drift | None = None
    kpi: Kpi | None = None
    cost: Cost | None = None
    spec_committed_at: datetime | None = None
    first_champion_version: str | None = None
    first_champion_at: datetime | None = None
    error: str = ""

    @property
    def lead_time_days(self) -> float | None:
        """Days from the spec's first commit to its first production champion."""
        if self.spec_committed_at is None or self.first_champion_at is None:
            return None
        return (self.first_champion_at - self.spec_committed_at).total_seconds() / 86400

    @property
    def stage(self) -> str:
        """production (a champion), candidate (versions, none promoted), idea (no model)."""
        if self.error:
            return "error"
        if self.champion:
            return "production"
        return "candidate" if self.latest else "idea"

    def gate(self, name: str) -> GateState:
        return next((g for g in self.gates if g.gate == name), GateState(name, "missing"))
