"""The model's inputs: request fields with their dtypes and value rules, the entities
they are keyed on, and the stored point-in-time-safe entity aggregates (Feast)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from shipway.core.spec.base import NAME_RE, Strict


class DType(StrEnum):
    int = "int"
    float = "float"
    str = "str"
    bool = "bool"


class Column(Strict):
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


class Entity(Strict):
    name: str = Field(pattern=NAME_RE, description="Entity name (also the join key).")
    column: str = Field(description="Source column holding the entity key.")
    description: str = Field(default="", description="What the entity is.")
    missing_key: str = Field(
        default="unknown", description="Key used when the source value is null."
    )


class Aggregate(Strict):
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


class EntityFeatures(Strict):
    entity: str = Field(description="Entity these aggregates are keyed on.")
    aggregates: list[Aggregate] = Field(min_length=1, description="Aggregates to compute.")
    ttl_days: int = Field(default=3650, gt=0, description="Feast TTL of the feature view.")
