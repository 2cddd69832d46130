"""The API types of a use case, generated from its spec.

Validation (400 with field-level detail) and the OpenAPI page both come from these
pydantic models, and both come from ``usecases/<name>/usecase.yaml``: a new request field
or a new allowed category is one line in the spec, never a code change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from shipway.spec import Column, DType, Task, UseCaseSpec

_PY_TYPES: dict[DType, type] = {DType.int: int, DType.float: float, DType.bool: bool}
ENTITY_KEY_MAX = 256
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,56}$"
"""Client request ids: short and log-safe; 56 leaves room for the ``:shadow`` suffix."""


class _Row(BaseModel):
    """Unknown fields are refused, so a misspelt field is a 400, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Variant(BaseModel):
    """Which model answered."""

    model_name: str = Field(description="Registered model name (MLflow).")
    model_version: str = Field(description="Registered model version that made the prediction.")
    variant: Literal["champion", "challenger"] = Field(
        description="champion, or challenger for rows routed to it by the traffic split."
    )


class FeedbackRequest(BaseModel):
    """Ground truth for one earlier prediction."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(
        min_length=1,
        max_length=64,
        description="The request_id of the prediction this outcome belongs to.",
        examples=["4b0f7c1e-2a43-4bd6-9a43-1f6b1c0e8f7d"],
    )
    actual: float = Field(
        description="Observed outcome: the value (regression) or 1/0 for the positive class.",
        examples=[112.5],
        allow_inf_nan=False,
    )


class FeedbackResponse(BaseModel):
    request_id: str = Field(description="The prediction the outcome was recorded for.")
    recorded: bool = Field(description="True once the outcome is durably stored.")


def _field(col: Column) -> tuple[Any, Any]:
    """(annotation, FieldInfo) of one request field: type, bounds, categories, docs."""
    if col.dtype is DType.str:
        typ: Any = Literal[tuple(col.allowed)] if col.allowed else str
    else:
        typ = _PY_TYPES[col.dtype]
    kwargs: dict[str, Any] = {"description": col.description or col.name}
    if col.example is not None:
        kwargs["examples"] = [col.example]
    num = int if col.dtype is DType.int else float
    if col.min is not None:
        kwargs["ge"] = num(col.min)
    if col.max is not None:
        kwargs["le"] = num(col.max)
    if col.dtype is DType.float:
        kwargs["allow_inf_nan"] = False
    if col.dtype is DType.str and not col.allowed:
        kwargs["max_length"] = 256
    if col.nullable:
        return typ | None, Field(default=None, **kwargs)
    return typ, Field(**kwargs)


def _class_name(spec: UseCaseSpec, suffix: str) -> str:
    return "".join(p.capitalize() for p in spec.name.split("_")) + suffix


@dataclass(frozen=True)
class ApiTypes:
    """The generated models of one use case."""

    row: type[BaseModel]
    prediction: type[BaseModel]


def api_types(spec: UseCaseSpec) -> ApiTypes:
    """Request row (entity keys + booking-time fields) and response models of ``spec``."""
    fields: dict[str, Any] = {}
    for ent in spec.entities:
        fields[ent.name] = (
            str,
            Field(
                min_length=1,
                max_length=ENTITY_KEY_MAX,
                description=ent.description or f"{ent.name} key",
                examples=[ent.missing_key],
            ),
        )
    for col in spec.request_fields:
        fields[col.name] = _field(col)
    row = create_model(
        _class_name(spec, "Request"),
        __base__=_Row,
        __doc__=f"One {spec.title} request: entity keys plus booking-time fields.",
        **fields,
    )
    clf = spec.target.task is Task.binary_classification
    pred_doc = (
        f"Probability of {spec.target.positive_class!r}."
        if clf
        else f"Predicted {spec.target.column}."
    )
    prediction = create_model(
        _class_name(spec, "Prediction"),
        __base__=Variant,
        __doc__=f"The answer for one {spec.title} request.",
        request_id=(str, Field(description="Id of this prediction (X-Request-ID or a uuid4).")),
        prediction=(float, Field(description=pred_doc)),
        predicted_class=(
            int | None,
            Field(
                default=None,
                description="Classification only: 1 when the probability reaches the spec's "
                "decision_threshold, else 0.",
            ),
        ),
        label=(
            str | None,
            Field(default=None, description="Classification only: the predicted label."),
        ),
        missing_features=(
            list[str],
            Field(
                default_factory=list,
                description="Stored features with no value for these entities; the spec's "
                "declared default was used instead.",
            ),
        ),
    )
    return ApiTypes(row=row, prediction=prediction)
