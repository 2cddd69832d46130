"""The API types of a use case, generated from its spec.

Validation (400 with field-level detail) and the OpenAPI page both come from these
pydantic models, and both come from ``usecases/<name>/usecase.yaml``: a new request field
or a new allowed category is one line in the spec, never a code change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError

from shipway.core.labels import label_codes
from shipway.core.spec import Column, DType, Target, Task, UseCaseSpec

_PY_TYPES: dict[DType, type] = {DType.int: int, DType.float: float, DType.bool: bool}
ENTITY_KEY_MAX = 256
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,56}$"
"""Client request ids: short and log-safe; 56 leaves room for the ``:shadow`` suffix."""
NULLABLE: dict[str, Any] = {"nullable": True}
"""OpenAPI 3.0 spelling of "may be null". BentoML flattens pydantic's
``anyOf: [X, {type: null}]`` to ``X`` on the API's schema, so without this a documented
``null`` (an optional request field, ``label`` of a regression) would contradict the
OpenAPI page, and schema-driven clients and fuzzers would treat it as invalid."""


def _numbers_only(kind: Literal["int", "float"]) -> BeforeValidator:
    """Numbers only. Pydantic's lax mode reads ``true`` as 1 and ``"5"`` as 5, so a body
    the OpenAPI page calls invalid (a boolean or a numeric string where it says number)
    would be scored instead of refused. Those get the error strict mode gives
    (``int_type``/``float_type``); other strings keep pydantic's own ``*_parsing`` error,
    and exact floats such as ``2.0`` stay valid integers, as in JSON Schema."""
    what = "integer" if kind == "int" else "number"

    def check(value: Any) -> Any:
        numeric_text = False
        if isinstance(value, str):
            try:
                float(value)
                numeric_text = True
            except ValueError:
                pass
        if isinstance(value, bool) or numeric_text:
            raise PydanticCustomError(
                f"{kind}_type", "Input should be a valid {what}", {"what": what}
            )
        return value

    return BeforeValidator(check)


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
    """Ground truth for one earlier prediction (``actual`` is typed per use case by
    ``feedback_actual``: the target's range or classes)."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(
        min_length=1,
        max_length=64,
        description="The request_id of the prediction this outcome belongs to.",
        examples=["4b0f7c1e-2a43-4bd6-9a43-1f6b1c0e8f7d"],
    )
    actual: float = Field(description="Observed outcome, as stored: the value or 1/0.")
    correction: bool = Field(
        default=False,
        strict=True,
        description="True to replace an earlier, different label of this prediction (the "
        "earlier one stays in the feedback history). Without it a different second label "
        "is refused with 409; the same label again is accepted and changes nothing.",
    )


class FeedbackResponse(BaseModel):
    request_id: str = Field(description="The prediction the outcome was recorded for.")
    recorded: bool = Field(description="True once the outcome is durably stored.")
    status: Literal["recorded", "corrected", "unchanged"] = Field(
        description="recorded: the first label; corrected: replaced an earlier label; "
        "unchanged: the prediction already had this label (a retry)."
    )
    revision: int = Field(ge=1, description="Revision of the label in force (1 = the first).")
    actual: float = Field(
        description="The label in force as monitoring reads it: the value, or 1 for the "
        "positive class and 0 for the other."
    )


def _no_booleans(expected: str) -> BeforeValidator:
    """``true``/``false`` are not labels: pydantic would read them as 1/0."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise PydanticCustomError(
                "literal_error", "Input should be {expected}", {"expected": expected}
            )
        return value

    return BeforeValidator(check)


def feedback_actual(target: Target) -> tuple[Any, Any]:
    """(annotation, FieldInfo) of ``actual``, validated against the declared target.

    Regression: a finite number within ``target.min``/``max``. Classification: a label of
    ``label_codes`` (the positive class, ``not_<positive>`` as /predict answers, and the
    declared ``negative_class``) or 0/1, stored as 1/0. A wrong value is a 400 naming
    ``actual`` and the rule, and the OpenAPI page shows the same range or enum.
    """
    if target.task is Task.binary_classification:
        codes = label_codes(target)
        allowed: tuple[Any, ...] = (*codes, 0, 1)
        expected = ", ".join(repr(v) for v in allowed[:-1]) + f" or {allowed[-1]!r}"

        def code(value: str | int) -> float:
            return float(codes[value]) if isinstance(value, str) else float(value)

        positive = target.positive_class
        typ: Any = Annotated[Literal[allowed], _no_booleans(expected), AfterValidator(code)]
        return typ, Field(
            description=f"Observed class: {positive!r} or 1 for the positive class; "
            + " or ".join(repr(k) for k, v in codes.items() if v == 0)
            + " or 0 for the other.",
            examples=[positive],
        )
    lo, hi = target.min, target.max
    bounds = [b for b in (lo, hi) if b is not None]
    span = (
        f" between {lo:g} and {hi:g}"
        if lo is not None and hi is not None
        else f" of at least {lo:g}"
        if lo is not None
        else f" of at most {hi:g}"
        if hi is not None
        else ""
    )
    return Annotated[float, _numbers_only("float")], Field(
        description=f"Observed {target.column}: a finite number{span}.",
        examples=[sum(bounds) / len(bounds) if bounds else 0.0],
        ge=lo,
        le=hi,
        allow_inf_nan=False,
    )


def _field(col: Column) -> tuple[Any, Any]:
    """(annotation, FieldInfo) of one request field: type, bounds, categories, docs."""
    if col.dtype is DType.str:
        typ: Any = Literal[tuple(col.allowed)] if col.allowed else str
    elif col.dtype is DType.bool:
        typ = bool
    else:
        typ = Annotated[
            _PY_TYPES[col.dtype], _numbers_only("int" if col.dtype is DType.int else "float")
        ]
    kwargs: dict[str, Any] = {"description": col.description or col.name}
    if col.dtype is DType.bool:
        kwargs["strict"] = True  # true/false only, not 1 or "yes"
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
        return typ | None, Field(default=None, json_schema_extra=NULLABLE, **kwargs)
    return typ, Field(**kwargs)


def class_name(spec: UseCaseSpec, suffix: str) -> str:
    """The generated model's name: the use case in CamelCase, then ``suffix``."""
    return "".join(p.capitalize() for p in spec.name.split("_")) + suffix


@dataclass(frozen=True)
class ApiTypes:
    """The generated models of one use case."""

    row: type[BaseModel]
    prediction: type[BaseModel]
    feedback: type[FeedbackRequest]


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
        class_name(spec, "Request"),
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
        class_name(spec, "Prediction"),
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
                json_schema_extra=NULLABLE,
            ),
        ),
        label=(
            str | None,
            Field(
                default=None,
                description="Classification only: the predicted label.",
                json_schema_extra=NULLABLE,
            ),
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
    feedback = create_model(
        class_name(spec, "Feedback"),
        __base__=FeedbackRequest,
        __doc__=f"Ground truth for one earlier {spec.title} prediction.",
        actual=feedback_actual(spec.target),
    )
    return ApiTypes(row=row, prediction=prediction, feedback=feedback)


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Error",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "What went wrong."}},
}
FIELD_ERRORS: dict[str, Any] = {
    "type": "array",
    "description": "One entry per invalid field: where (loc), what (msg), which rule (type).",
    "items": {
        "type": "object",
        "properties": {
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "msg": {"type": "string"},
            "type": {"type": "string"},
        },
    },
}
GUARD_RESPONSES: dict[str, dict[str, str]] = {
    "401": {"*": "Missing or invalid bearer token (when the service has one)."},
    "409": {
        "/predict": "X-Request-ID already used by an earlier prediction.",
        "/explain": "X-Request-ID already used by an earlier prediction.",
        "/feedback": "The prediction already has a different label; send "
        '"correction": true to replace it.',
    },
    "413": {"*": "Request body larger than the service's limit."},
    "415": {"*": "Content-Type other than application/json (the only body the API takes)."},
    "503": {"*": "Model, feature store or prediction log not loaded yet; retry shortly."},
}
"""Answers the service gives besides BentoML's 200/400/404/500: code -> meaning by route
(``*``: every route)."""


def document_answers(doc: dict[str, Any], routes: frozenset[str], bearer: bool) -> dict[str, Any]:
    """Make the OpenAPI page state every answer the API really gives.

    BentoML documents a 400's ``detail`` as a string, while it (and the guard middleware)
    answer a list of field errors; it leaves the request body optional, though an empty
    one is refused; and it does not know the guard's 401/413, the 409 of a reused request
    id or of a second label, or the 503 while loading. A client generated from the page, or a
    schema-driven fuzzer, would otherwise see undocumented answers. With ``bearer`` the
    routes also declare the bearer security scheme.
    """
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    invalid = schemas.get("InvalidArgument")
    if isinstance(invalid, dict):
        invalid.setdefault("properties", {})["detail"] = FIELD_ERRORS
    schemas["Error"] = ERROR_SCHEMA
    if bearer:
        doc["components"].setdefault("securitySchemes", {})["bearer"] = {
            "type": "http",
            "scheme": "bearer",
        }
    ref = {"$ref": "#/components/schemas/Error"}
    for item in doc.get("paths", {}).values():  # FastAPI's 422 (mounted OIP routes): the
        for op in item.values() if isinstance(item, dict) else ():  # service answers 400
            if isinstance(op, dict) and isinstance(op.get("responses"), dict):
                op["responses"].pop("422", None)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for route in routes:
        post = doc.get("paths", {}).get(route, {}).get("post")
        if not isinstance(post, dict):
            continue
        body = post.get("requestBody")
        if isinstance(body, dict):
            body["required"] = True  # an empty body is a 400, not a valid call
            content = body.get("content")
            if isinstance(content, dict) and "application/json" in content:  # JSON only: 415
                body["content"] = {"application/json": content["application/json"]}
        responses = post.setdefault("responses", {})
        for code, meanings in GUARD_RESPONSES.items():
            meaning = meanings.get(route, meanings.get("*"))
            if meaning is not None and (code != "401" or bearer):
                responses[code] = {
                    "description": meaning,
                    "content": {"application/json": {"schema": ref}},
                }
        if bearer:
            post["security"] = [{"bearer": []}]
    return doc
