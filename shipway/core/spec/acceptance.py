"""Acceptance criteria of the model-validation gate: the primary metric and threshold,
champion margin, fairness, latency, robustness, ONNX parity and secondary metric bounds;
and the serving budgets the production-readiness gate holds a served candidate to
(latency, and the optional compute cost per 1,000 predictions)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from shipway.core.spec.base import Strict


class MetricBound(Strict):
    """An extra gate criterion on one evaluation metric of the test window."""

    metric: str = Field(description="A metric of the task (REGRESSION_/CLASSIFICATION_METRICS).")
    min: float | None = Field(default=None, description="Smallest allowed value.")
    max: float | None = Field(default=None, description="Largest allowed value.")
    why: str = Field(default="", description="Why the bound exists (shown in the evidence).")

    @model_validator(mode="after")
    def _one_side_at_least(self) -> MetricBound:
        if self.min is None and self.max is None:
            raise ValueError(f"bound on {self.metric!r} needs 'min' or 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"bound on {self.metric!r}: min {self.min} > max {self.max}")
        return self


class CostBudget(Strict):
    """What serving may cost, measured by the production-readiness smoke on the running
    Bento: the CPU-seconds (user + system) of the whole serving process tree per 1,000
    answered predictions, and its peak resident memory. Each limit is optional, but a
    budget names at least one; numbers must be real YAML numbers (a quoted ``"2"`` is a
    typo, not a limit), finite and above zero."""

    cpu_seconds_per_1k: float | None = Field(
        default=None,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="Most CPU-seconds the service may spend per 1,000 /predict answers.",
    )
    memory_mb: float | None = Field(
        default=None,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="Most resident memory (MB, summed over the serving processes) at the "
        "peak of the smoke.",
    )

    @model_validator(mode="after")
    def _one_limit_at_least(self) -> CostBudget:
        if self.cpu_seconds_per_1k is None and self.memory_mb is None:
            raise ValueError("a cost budget needs 'cpu_seconds_per_1k' or 'memory_mb'")
        return self


class Acceptance(Strict):
    """Acceptance criteria read by the model-validation gate."""

    metric: Literal["mae", "rmse", "r2", "roc_auc", "f1"] = Field(
        description="Primary quality metric."
    )
    threshold: float = Field(description="Minimum (or, for errors, maximum) allowed value.")
    champion_margin: float = Field(
        default=0.0, description="Relative improvement over the champion required to promote."
    )
    max_slice_ratio: float = Field(
        default=2.0, gt=1.0, description="Max ratio of the metric between the worst/best group."
    )
    max_demographic_parity_diff: float | None = Field(
        default=None, description="Classification only: demographic parity difference bound."
    )
    max_equalized_odds_diff: float | None = Field(
        default=None, description="Classification only: equalized odds difference bound."
    )
    latency_p99_ms: float = Field(default=50.0, gt=0, description="Single-row p99 budget (ms).")
    perturbation_rel: float = Field(
        default=0.01, ge=0, description="Relative size of the perturbation for robustness."
    )
    perturbation_bound: float = Field(
        default=0.1, ge=0, description="Max relative change of predictions under perturbation."
    )
    onnx_tolerance: float = Field(
        default=1e-3,
        ge=0,
        description="ONNX parity on the test split, both models fed the same float32 "
        "inputs: max |onnx - native| / max(1, |native|) allowed (the absolute difference for "
        "probabilities, relative for values above 1, as float32 keeps ~7 significant "
        "digits); classifiers must also decide the same class at decision_threshold except "
        "within this distance of it.",
    )
    decision_threshold: float = Field(
        default=0.5, gt=0, lt=1, description="Classification: probability cut-off for class 1."
    )
    cost_budget: CostBudget | None = Field(
        default=None,
        description="Compute cost the production-readiness gate enforces on the served "
        "candidate; null (the default): the cost is measured and reported, not enforced.",
    )
    bounds: list[MetricBound] = Field(
        default_factory=list,
        description="Further gate criteria on secondary metrics (e.g. f1 >= 0.55 or a "
        "calibration bound ece <= 0.05), each checked on the test window.",
    )

    @property
    def higher_is_better(self) -> bool:
        """r2, roc_auc and f1 grow with quality; mae and rmse shrink."""
        return self.metric in ("r2", "roc_auc", "f1")
