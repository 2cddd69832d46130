"""The Open Inference Protocol (KServe V2 REST) on the prediction service's own port.

KServe, Triton and the clients written for them speak this protocol; serving it next to
``/predict`` lets those clients call Shipway unchanged. It is a second *spelling* of the
same request, never a second scoring path: each input tensor is one request field (named
as in the spec; the model metadata lists them), the N values of the tensors are turned
into N rows that the same pydantic ``Row`` type validates (so a bad value gets the same
field-named message as on ``/predict``), and the rows go through the same engine call
(features from Feast, champion/challenger, the durable prediction log before the answer,
the ``shipway_`` metrics).

Routes: ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2`` (server metadata),
``/v2/models/{name}[/versions/{v}]`` (model metadata), ``.../ready``, and
``POST /v2/models/{name}[/versions/{v}]/infer``. The model name is the use case's name;
its versions are the registry versions being served (champion, and challenger when one
is loaded). Infer on a version forces that model for every row; without a version rows
are routed as on ``/predict``. Errors are the protocol's body ``{"error": "..."}``: 400 for
a bad request or tensor, 404 for an unknown model or version, 409 for a reused id, 503
while loading. Only JSON tensor data is taken (the binary-data extension is refused with
a 400 saying so).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
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

import shipway
from services.engine import DuplicateRequestId, Engine, Job, NotReady
from services.models import CHALLENGER, CHAMPION, ModelSet
from services.schema import REQUEST_ID_PATTERN
from shipway.core.spec import DType, Task, UseCaseSpec

log = logging.getLogger("shipway.service")

TAG = "Open Inference Protocol (KServe V2)"
INFER_ROUTES = (
    "/v2/models/{model_name}/infer",
    "/v2/models/{model_name}/versions/{model_version}/infer",
)
"""The infer routes as the OpenAPI page spells them (the guard protects and labels them)."""
_TEMPLATES = (
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/{model_name}",
    "/v2/models/{model_name}/ready",
    "/v2/models/{model_name}/versions/{model_version}",
    "/v2/models/{model_name}/versions/{model_version}/ready",
    *INFER_ROUTES,
)
_MATCHERS = [(re.compile("^" + re.sub(r"\{[a-z_]+\}", "[^/]+", t) + "$"), t) for t in _TEMPLATES]

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


def route_template(path: str) -> str | None:
    """The OIP route template ``path`` belongs to (the metrics label), or None."""
    if not path.startswith("/v2"):
        return None
    for pattern, template in _MATCHERS:
        if pattern.match(path):
            return template
    return None


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


# ---- HTTP ----
class Backend(Protocol):
    """What the routes need of the running service (``PredictionService``)."""

    engine: Engine

    def score_jobs(self, jobs: Sequence[Job]) -> Awaitable[list[Any]]:
        """Each job's answer (a dict) or its exception, durable in the log on return."""
        ...


@dataclass(frozen=True)
class _Routes:
    spec: UseCaseSpec
    row_type: type[BaseModel]
    backend: Callable[[], Backend]

    def models(self, name: str, version: str | None) -> ModelSet:
        """The served set, after checking the path names a served model (and version)."""
        if name != self.spec.name:
            raise TensorError(
                f"unknown model {name!r}; this service serves {self.spec.name!r}", "model", 404
            )
        models = self.backend().engine.models
        if models is None:
            raise TensorError("model not loaded yet; retry shortly", "loading", 503)
        if version is not None and version not in model_metadata(self.spec, models).versions:
            raise TensorError(
                f"model {name!r} has no served version {version!r}; served: "
                + ", ".join(model_metadata(self.spec, models).versions),
                "version",
                404,
            )
        return models

    async def infer(self, request: Request, name: str, version: str | None) -> JSONResponse:
        received = time.perf_counter()
        models = self.models(name, version)
        if request.headers.get("inference-header-content-length") is not None:
            raise TensorError("binary tensor data is not supported; send JSON data", "binary")
        try:
            req = InferenceRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            err = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"]) or "body"
            raise TensorError(f"{where}: {err['msg']}", str(err.get("type", "json"))) from None
        for field, given, path in (("model_name", req.model_name, name),
                                   ("model_version", req.model_version, version)):  # fmt: skip
            if given and path is not None and given != path:
                raise TensorError(f"{field} {given!r} differs from the path's {path!r}", field)
        rows = tensor_rows(self.spec, self.row_type, req.inputs)
        base = req.id or request.headers.get("x-request-id") or ""
        ids = row_ids(base, len(rows))
        variant = None
        if version is not None:
            variant = CHAMPION if version == models.champion.version else CHALLENGER
        jobs = [Job(r, rid, received, variant) for r, rid in zip(rows, ids, strict=True)]
        try:
            results = await self.backend().score_jobs(jobs)
        except NotReady as exc:
            raise TensorError("model or feature store not loaded yet; retry shortly",
                              "loading", 503) from exc  # fmt: skip
        answers: list[dict[str, Any]] = []
        for rid, result in zip(ids, results, strict=True):
            if isinstance(result, NotReady):
                raise TensorError("model or feature store not loaded yet; retry shortly",
                                  "loading", 503)  # fmt: skip
            if isinstance(result, DuplicateRequestId):
                raise TensorError(f"id {rid!r} already used by an earlier prediction",
                                  "duplicate", 409)  # fmt: skip
            if isinstance(result, BaseException):  # logged by the engine; a plain 500
                raise result
            answers.append(result)
        served = sorted({a["model_version"] for a in answers}, key=_version_key)
        body = InferenceResponse(
            model_name=self.spec.name,
            model_version=version or models.champion.version,
            id=req.id or base,
            parameters={"request_id": base, "model_versions": ",".join(served)},
            outputs=response_outputs(self.spec, answers, req.outputs),
        )
        return JSONResponse(body.model_dump())


def _version_key(v: str) -> tuple[float, str]:
    try:
        return float(v), v
    except ValueError:
        return math.inf, v


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A bad request or tensor; the error names it."},
    404: {"model": ErrorBody, "description": "Unknown model or version."},
    409: {"model": ErrorBody, "description": "The id (or X-Request-ID) was already used."},
    503: {"model": ErrorBody, "description": "Model or feature store not loaded yet."},
}


def _error(exc: TensorError, method: str, path: str) -> JSONResponse:
    if exc.status < 500:  # one line, the kind of problem only: never the request's values
        log.warning("client error %d on %s %s: %s", exc.status, method, path, exc.kind)
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


def create_app(
    spec: UseCaseSpec, row_type: type[BaseModel], backend: Callable[[], Backend]
) -> FastAPI:
    """The OIP routes as a FastAPI app, mounted at ``/`` (BentoML merges its OpenAPI)."""
    routes = _Routes(spec, row_type, backend)
    app = FastAPI(title=TAG, openapi_url=None, docs_url=None, redoc_url=None)

    def guarded(fn: Callable[..., Awaitable[JSONResponse]]) -> Callable[..., Any]:
        async def run(request: Request, *args: Any) -> JSONResponse:
            try:
                return await fn(*args)
            except TensorError as exc:
                template = route_template(request.url.path) or request.url.path
                return _error(exc, request.method, template)

        return run

    @app.get("/v2/health/live", tags=[TAG], response_model=Live)
    async def server_live() -> JSONResponse:
        """The server is up (the protocol's liveness)."""
        return JSONResponse({"live": True})

    @app.get("/v2/health/ready", tags=[TAG], response_model=Ready,
             responses={503: {"model": Ready, "description": "Not ready yet."}})  # fmt: skip
    async def server_ready() -> JSONResponse:
        """Ready to score: model, feature store and log loaded (as /readyz)."""
        ready = backend().engine.ready
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/v2", tags=[TAG], response_model=ServerMetadata)
    async def server_metadata() -> JSONResponse:
        """Server name, version and protocol extensions (none)."""
        return JSONResponse({"name": "shipway", "version": shipway.__version__, "extensions": []})

    async def metadata(name: str, version: str | None) -> JSONResponse:
        meta = model_metadata(spec, routes.models(name, version))
        if version is not None:
            meta.versions = [version]
        return JSONResponse(meta.model_dump())

    async def ready(name: str, version: str | None) -> JSONResponse:
        routes.models(name, version)
        ok = backend().engine.ready
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    meta_doc: dict[str, Any] = {"tags": [TAG], "response_model": ModelMetadata,
                                "responses": {404: ERRORS[404], 503: ERRORS[503]}}  # fmt: skip
    ready_doc: dict[str, Any] = {"tags": [TAG], "response_model": ModelReady,
                                 "responses": {404: ERRORS[404], 503: ERRORS[503]}}  # fmt: skip

    @app.get("/v2/models/{model_name}", **meta_doc)
    async def model_meta(request: Request, model_name: str) -> JSONResponse:
        """The model's inputs (one per request field), outputs and served versions."""
        return await guarded(metadata)(request, model_name, None)

    @app.get("/v2/models/{model_name}/versions/{model_version}", **meta_doc)
    async def version_meta(request: Request, model_name: str, model_version: str) -> JSONResponse:
        """Metadata of one served version."""
        return await guarded(metadata)(request, model_name, model_version)

    @app.get("/v2/models/{model_name}/ready", **ready_doc)
    async def model_ready(request: Request, model_name: str) -> JSONResponse:
        """The model is loaded and can score."""
        return await guarded(ready)(request, model_name, None)

    @app.get("/v2/models/{model_name}/versions/{model_version}/ready", **ready_doc)
    async def version_ready(request: Request, model_name: str, model_version: str) -> JSONResponse:
        """The version is served and can score."""
        return await guarded(ready)(request, model_name, model_version)

    body_doc = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": inline_schema(InferenceRequest)}}}}  # fmt: skip
    infer_doc: dict[str, Any] = {"tags": [TAG], "response_model": InferenceResponse,
                                 "responses": ERRORS, "openapi_extra": body_doc}  # fmt: skip

    @app.post(INFER_ROUTES[0], **infer_doc)
    async def infer(request: Request, model_name: str) -> JSONResponse:
        """Score N rows: one tensor per input, shape [N] or [N, 1]; routed as /predict."""
        return await guarded(routes.infer)(request, request, model_name, None)

    @app.post(INFER_ROUTES[1], **infer_doc)
    async def infer_version(request: Request, model_name: str, model_version: str) -> JSONResponse:
        """Score N rows with one served version (champion or challenger) for every row."""
        return await guarded(routes.infer)(request, request, model_name, model_version)

    return app


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` inlined: an OpenAPI request body given
    as a plain schema cannot point into ``components`` that FastAPI does not know."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return dict(resolve(schema))
