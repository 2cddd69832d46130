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
a 400 saying so). The messages and the tensors <-> rows conversion are
``services/oiptensors.py``; this module is the routes.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

import shipway
from services.engine import DuplicateRequestId, Engine, Job, NotReady
from services.models import CHALLENGER, CHAMPION, ModelSet
from services.oiptensors import (
    ErrorBody,
    InferenceRequest,
    InferenceResponse,
    Live,
    ModelMetadata,
    ModelReady,
    Ready,
    ServerMetadata,
    TensorError,
    model_metadata,
    response_outputs,
    row_ids,
    tensor_rows,
)
from shipway.core.spec import UseCaseSpec

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
_MATCHERS = [
    (re.compile(re.sub(r"\{[a-z_]+\}", r"[^/\\x00-\\x1f\\x7f]+", t)), t) for t in _TEMPLATES
]
"""Path parameters hold no control characters: Starlette's mount cannot route a path
with a newline (its ``.*`` stops there), so such a path is no OIP route (the guard gives
it the protocol's 404)."""


def route_template(path: str) -> str | None:
    """The OIP route template ``path`` belongs to (the metrics label), or None."""
    if not path.startswith("/v2"):
        return None
    for pattern, template in _MATCHERS:
        if pattern.fullmatch(path):
            return template
    return None


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
            id=base,
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


async def _answer(request: Request, call: Awaitable[JSONResponse]) -> JSONResponse:
    """The route's answer, or the protocol's error body for a :class:`TensorError`."""
    try:
        return await call
    except TensorError as exc:
        if exc.status < 500:  # one line, the kind of problem only: never the request's values
            route = route_template(request.url.path) or "other"
            log.warning("client error %d on %s %s: %s", exc.status, request.method, route, exc.kind)
        return JSONResponse({"error": str(exc)}, status_code=exc.status)


def create_app(
    spec: UseCaseSpec, row_type: type[BaseModel], backend: Callable[[], Backend]
) -> FastAPI:
    """The OIP routes as a FastAPI app, mounted at ``/`` (BentoML merges its OpenAPI)."""
    routes = _Routes(spec, row_type, backend)
    app = FastAPI(title=TAG, openapi_url=None, docs_url=None, redoc_url=None)

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
        return await _answer(request, metadata(model_name, None))

    @app.get("/v2/models/{model_name}/versions/{model_version}", **meta_doc)
    async def version_meta(request: Request, model_name: str, model_version: str) -> JSONResponse:
        """Metadata of one served version."""
        return await _answer(request, metadata(model_name, model_version))

    @app.get("/v2/models/{model_name}/ready", **ready_doc)
    async def model_ready(request: Request, model_name: str) -> JSONResponse:
        """The model is loaded and can score."""
        return await _answer(request, ready(model_name, None))

    @app.get("/v2/models/{model_name}/versions/{model_version}/ready", **ready_doc)
    async def version_ready(request: Request, model_name: str, model_version: str) -> JSONResponse:
        """The version is served and can score."""
        return await _answer(request, ready(model_name, model_version))

    body_doc = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": inline_schema(InferenceRequest)}}}}  # fmt: skip
    infer_doc: dict[str, Any] = {"tags": [TAG], "response_model": InferenceResponse,
                                 "responses": ERRORS, "openapi_extra": body_doc}  # fmt: skip

    @app.post(INFER_ROUTES[0], **infer_doc)
    async def infer(request: Request, model_name: str) -> JSONResponse:
        """Score N rows: one tensor per input, shape [N] or [N, 1]; routed as /predict."""
        return await _answer(request, routes.infer(request, model_name, None))

    @app.post(INFER_ROUTES[1], **infer_doc)
    async def infer_version(request: Request, model_name: str, model_version: str) -> JSONResponse:
        """Score N rows with one served version (champion or challenger) for every row."""
        return await _answer(request, routes.infer(request, model_name, model_version))

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
