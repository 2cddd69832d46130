"""The root of the spec: one use case, its cross-field rules and the names it derives."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, field_validator, model_validator

from shipway.core.spec.acceptance import Acceptance
from shipway.core.spec.base import NAME_RE, Strict
from shipway.core.spec.business import Objective, Owner, Portfolio, RiskLevel
from shipway.core.spec.columns import Column, DType, Entity, EntityFeatures
from shipway.core.spec.governance import Governance, Retention
from shipway.core.spec.model import ModelConfig
from shipway.core.spec.monitoring import Monitoring
from shipway.core.spec.readiness import Readiness
from shipway.core.spec.source import Derivations, EventTimestamp, Source
from shipway.core.spec.split import Split
from shipway.core.spec.task import CLASSIFICATION_METRICS, REGRESSION_METRICS, Target, Task


class UseCaseSpec(Strict):
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
        """Stable hash of the validated spec, recorded as lineage on every model.

        An unset ``acceptance.cost_budget`` (added after versions were registered) is left
        out, so a spec that sets none hashes as it did before the field existed and
        ``shipway lineage`` still finds the spec of those versions by their ``spec_hash``."""
        unset = {"acceptance": {"cost_budget"}} if self.acceptance.cost_budget is None else None
        payload = json.dumps(self.model_dump(mode="json", exclude=unset), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]
