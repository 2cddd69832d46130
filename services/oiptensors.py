"""The Open Inference Protocol's messages and the tensors <-> rows conversion (no HTTP).

An OIP request carries columns (one tensor per input, N values each); Shipway scores
rows. :func:`tensor_rows` turns the tensors into the rows ``/predict`` takes, validated by
the same pydantic ``Row`` type, after the checks only tensors need (each input once, a
datatype the field takes, shapes ``[N]`` or ``[N, 1]`` that agree); :func:`response_outputs`
turns the answers back into output tensors. Every error names the input (and row) and
never carries a value the client sent. The routes are in ``services/oip.py``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from services.models import ModelSet
from services.schema import REQUEST_ID_PATTERN
from shipway.core.spec import DType, Task, UseCaseSpec

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES", "BF16",
]  # fmt: skip
ACCEPTED: dict[DType, frozenset[str]] = {
    DType.str: frozenset({"BYTES"}),
    DType.bool: frozenset({"BOOL"}),
    DType.int: frozenset(
        {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
    ),
    DType.float: frozenset({"FP32", "FP64"}),
}
"""Tensor datatypes a field of each spec dtype takes (its metadata names the widest)."""
DECLARED: dict[DType, str] = {
    DType.str: "BYTES",
    DType.bool: "BOOL",
    DType.int: "INT64",
    DType.float: "FP64",
}
Param = StrictStr | StrictInt | StrictFloat | StrictBool
ID_PATTERN = r"^[A-Za-z0-9._:-]{0,56}$"
"""A request's ``id``: empty, or a client request id (``schema.REQUEST_ID_PATTERN``)."""


# ---- the protocol's messages (validation and the OpenAPI page) ----
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestInput(_Strict):
    """One input tensor: a request field's values, one per row."""

    name: str = Field(min_length=1, max_length=256, description="A field of the model's inputs.")
    shape: list[Annotated[int, Field(ge=0)]] = Field(
        min_length=1, max_length=2, description="[N] or [N, 1]: N rows."
    )
    datatype: Datatype = Field(description="As the model metadata lists it for this input.")
    parameters: dict[str, Param] = Field(default_factory=dict)
    data: list[Any] = Field(description="N values, flat or as N one-value lists.")


class RequestOutput(_Strict):
    name: str = Field(min_length=1, max_length=256, description="An output of the model.")
    parameters: dict[str, Param] = Field(default_factory=dict)


class InferenceRequest(_Strict):
    """An inference request: one tensor per model input, all with the same N rows."""

    id: str = Field(
        default="",
        pattern=ID_PATTERN,
        description="Request id; rows are logged under it (N > 1: '<id>.<row>'). "
        "Without one, X-Request-ID or a new uuid4.",
    )
    model_name: str = Field(default="", max_length=256, description="If set, the path's.")
    model_version: str = Field(default="", max_length=64, description="If set, the path's.")
    parameters: dict[str, Param] = Field(default_factory=dict)
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] = Field(
        default_factory=list, description="Outputs to return (default: all)."
    )


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str = Field(description="The champion's version, or the path's.")
    id: str
    parameters: dict[str, Param] = Field(
        description="request_id: the id rows are logged under; model_versions: versions "
        "that answered, comma-separated."
    )
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class ErrorBody(BaseModel):
    """The protocol's error body."""

    error: str


class TensorError(ValueError):
    """A request the protocol cannot turn into rows; ``kind`` is logged, never values."""

    def __init__(self, message: str, kind: str, status: int = 400) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


# ---- tensors <-> rows ----
def input_types(spec: UseCaseSpec) -> dict[str, DType]:
    """Each input's spec dtype, in request order: entity keys (strings), then fields."""
    types = {e.name: DType.str for e in spec.entities}
    types.update({c.name: c.dtype for c in spec.request_fields})
    return types


def outputs(spec: UseCaseSpec) -> dict[str, str]:
    """Output tensors and their datatypes (the /predict answer's fields)."""
    out = {"prediction": "FP64"}
    if spec.target.task is Task.binary_classification:
        out.update(predicted_class="INT64", label="BYTES")
    out.update(request_id="BYTES", model_version="BYTES", variant="BYTES")
    out["missing_features"] = "BYTES"
    return out


def _values(tensor: RequestInput) -> tuple[int, list[Any]]:
    """(N, the N values) of a tensor shaped [N] or [N, 1]."""
    shape, data, name = tensor.shape, tensor.data, tensor.name
    if len(shape) == 2 and shape[1] != 1:
        raise TensorError(f"input {name!r}: shape {shape} is not [N] or [N, 1]", "shape")
    n = shape[0]
    if n < 1:
        raise TensorError(f"input {name!r}: shape {shape} has no rows", "shape")
    if len(shape) == 2 and all(isinstance(v, list) for v in data):
        if any(len(v) != 1 for v in data):
            raise TensorError(f"input {name!r}: data rows must hold one value each", "shape")
        data = [v[0] for v in data]
    if len(data) != n:
        raise TensorError(
            f"input {name!r}: data has {len(data)} values, shape {shape} needs {n}", "shape"
        )
    if any(isinstance(v, list | dict) for v in data):
        raise TensorError(f"input {name!r}: data must be scalars", "shape")
    return n, data


def tensor_rows(
    spec: UseCaseSpec, row_type: type[BaseModel], inputs: Sequence[RequestInput]
) -> list[dict[str, Any]]:
    """The validated rows (``Row.model_dump()``, as /predict scores them) of the tensors.

    Raises :class:`TensorError` naming the input (and row) for an unknown, repeated or
    missing input, a datatype the field does not take, inconsistent shapes, binary data,
    or a value the field's validation refuses (pydantic's message, never the value).
    """
    types = input_types(spec)
    columns: dict[str, list[Any]] = {}
    rows = 0
    for tensor in inputs:
        name = tensor.name
        if name not in types:
            raise TensorError(
                f"unknown input {name!r}; the model's inputs are {', '.join(types)}", "unknown"
            )
        if name in columns:
            raise TensorError(f"input {name!r} is given more than once", "repeated")
        if "binary_data_size" in tensor.parameters:
            raise TensorError(
                f"input {name!r}: binary tensor data is not supported; send JSON data", "binary"
            )
        dtype = types[name]
        if tensor.datatype not in ACCEPTED[dtype]:
            raise TensorError(
                f"input {name!r} has datatype {tensor.datatype}; it takes {DECLARED[dtype]}"
                + (
                    f" (or {', '.join(sorted(ACCEPTED[dtype] - {DECLARED[dtype]}))})"
                    if len(ACCEPTED[dtype]) > 1
                    else ""
                ),
                "datatype",
            )
        n, data = _values(tensor)
        if rows and n != rows:
            raise TensorError(
                f"input {name!r} has {n} rows; the inputs before it have {rows}", "shape"
            )
        rows = n
        columns[name] = data
    required = [f for f, info in row_type.model_fields.items() if info.is_required()]
    missing = [f for f in required if f not in columns]
    if missing:
        raise TensorError(f"missing input(s) {', '.join(map(repr, missing))}", "missing")
    out: list[dict[str, Any]] = []
    for i in range(rows):
        try:
            row = row_type.model_validate({k: v[i] for k, v in columns.items()})
        except ValidationError as exc:
            err = exc.errors(include_input=False, include_url=False)[0]
            field = ".".join(str(p) for p in err["loc"]) or "row"
            raise TensorError(
                f"input {field!r}, row {i}: {err['msg']}", str(err.get("type", "value"))
            ) from None
        out.append(row.model_dump())
    return out


def row_ids(base: str, n: int) -> list[str]:
    """The logged request id of each row: ``base`` for one row, ``base.<i>`` for several."""
    ids = [base] if n == 1 else [f"{base}.{i}" for i in range(n)]
    if not re.match(REQUEST_ID_PATTERN, ids[-1]):
        raise TensorError(
            f"id: with {n} rows the row ids '<id>.<row>' must match {REQUEST_ID_PATTERN}; "
            "send a shorter id",
            "id",
        )
    return ids


def response_outputs(
    spec: UseCaseSpec, answers: Sequence[dict[str, Any]], wanted: Sequence[RequestOutput]
) -> list[ResponseOutput]:
    """The output tensors of the answers (all, or the requested ones in their order)."""
    kinds = outputs(spec)
    names = [o.name for o in wanted] or list(kinds)
    unknown = [n for n in names if n not in kinds]
    if unknown:
        raise TensorError(
            f"unknown output {unknown[0]!r}; the model's outputs are {', '.join(kinds)}",
            "output",
        )
    result = []
    for name in names:
        if name == "missing_features":
            data: list[Any] = [",".join(a["missing_features"]) for a in answers]
        elif name == "label":
            data = [a["label"] or "" for a in answers]
        else:
            data = [a[name] for a in answers]
        result.append(ResponseOutput(name=name, shape=[len(data)], datatype=kinds[name], data=data))
    return result


def model_metadata(spec: UseCaseSpec, models: ModelSet) -> ModelMetadata:
    served = [m for m in (models.champion, models.challenger) if m is not None]
    return ModelMetadata(
        name=spec.name,
        versions=[m.version for m in served],
        platform="shipway",
        inputs=[
            TensorMetadata(name=n, datatype=DECLARED[t], shape=[-1])
            for n, t in input_types(spec).items()
        ],
        outputs=[TensorMetadata(name=n, datatype=t, shape=[-1]) for n, t in outputs(spec).items()],
    )
