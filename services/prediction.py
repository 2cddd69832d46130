"""The real-time prediction service: ``bentoml serve services.prediction:PredictionService``.

One BentoML service class, typed by the use case's spec (``SHIPWAY_USECASE``): request
and response models are generated from ``usecases/<name>/usecase.yaml``, so the 400s and
the OpenAPI page come from the same types. The class is a thin facade; the engine
(``services/engine.py``) holds the stores, the models and the durable log.

Endpoints: ``POST /predict`` (one row), ``POST /predict_batch`` (a list, BentoML adaptive
batching), ``POST /explain`` (one row, answered and explained: the top feature
contributions in the spec's terms, stored with the logged prediction), ``POST /feedback`` (ground truth by request id, validated against the target;
a second, different label only as an explicit correction), plus BentoML's ``/livez``,
``/readyz`` (503 until model, feature store and log are loaded), ``/metrics`` (with the
``shipway_`` contract metrics) and the OpenAPI page at ``/``; the Open Inference Protocol
(KServe V2 REST: ``/v2/...``, ``services/oip.py``) on the same port and scoring path.
"""

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import bentoml
from pydantic import ValidationError
from starlette.responses import JSONResponse

from services import apicache, clienterrors, modelfeed, oip, requesttimer
from services.batcher import Coalescer
from services.engine import DuplicateRequestId, Engine, Job, NotReady, ScoringFailed
from services.explanation import explain_types, why
from services.metrics import ServiceMetrics, gauges_text
from services.middleware import GuardMiddleware
from services.rebalance import Rebalancer
from services.schema import FeedbackRequest, FeedbackResponse, api_types
from shipway.core.predictionlog import ColumnMissing, FeedbackStatus
from shipway.core.settings import get_settings
from shipway.core.usecases import load_usecase

log = logging.getLogger("shipway.service")

SETTINGS = get_settings()
SPEC = load_usecase(os.environ.get("SHIPWAY_USECASE") or SETTINGS.usecase, SETTINGS)
TYPES = api_types(SPEC)
Row = TYPES.row
Prediction = TYPES.prediction
Feedback = TYPES.feedback
EXPLAIN = explain_types(SPEC, Row, Prediction)
ExplainRow = EXPLAIN.request
Explained = EXPLAIN.response
METRICS = ServiceMetrics(SPEC, registry=None)  # multiprocess values, aggregated by /metrics
INFLIGHT = Rebalancer(SETTINGS.rebalance_inflight if SETTINGS.service_workers > 1 else 0)
"""This worker's requests in flight (counted by the guard middleware): a lone /predict is
scored on the event loop, without a thread hand-off (``services/batcher.py``)."""


def _error(ctx: bentoml.Context, status: int, message: str) -> JSONResponse:
    """A JSON error; BentoML copies ctx's status onto returned responses, so set both."""
    ctx.response.status_code = status
    return JSONResponse({"error": message}, status_code=status)


def _request_id(ctx: bentoml.Context) -> str:
    """The client's X-Request-ID (validated by the guard middleware), else a new uuid4."""
    return ctx.request.headers.get("x-request-id") or str(uuid.uuid4())


def _checked(result: Any) -> Any:
    """Re-raise a row's failure; keep pydantic errors from being reported as a client 400."""
    if isinstance(result, Exception):
        raise result
    try:
        return Prediction(**result)
    except ValidationError as exc:
        raise ScoringFailed("internal: invalid answer") from exc


TRACING_OFF = {"excluded_urls": "."}
"""BentoML always installs OpenTelemetry's ASGI middleware; a pattern matching every URL
makes it pass requests straight through (no span, no context per request)."""


@bentoml.service(
    name=f"shipway_{SPEC.name}",
    description=SPEC.description or SPEC.title,
    workers=SETTINGS.service_workers,
    traffic={"timeout": 30},
    labels={"usecase": SPEC.name, "owner": SPEC.owner.email},
    logging={"access": {"enabled": SETTINGS.access_log}},
    tracing={} if SETTINGS.tracing else TRACING_OFF,
)
class PredictionService:
    """Predictions of the use case's champion (and challenger), features from Feast."""

    def __init__(self) -> None:
        clienterrors.install()  # a refused request: one WARNING line, no values
        apicache.bind_api_methods(self)  # not one inspect.signature per request
        requesttimer.install()  # no 30 s timer left alive per answered request
        self.engine = Engine(SETTINGS, SPEC, METRICS)
        self.engine.start()
        self.coalescer: Coalescer[Job, dict[str, Any]] | None = (
            Coalescer(self.engine.score, SETTINGS.max_batch_size, alone=INFLIGHT.alone)
            if SETTINGS.adaptive_batching
            else None
        )

    @bentoml.on_deployment
    def publish_models() -> None:
        """In ``bentoml serve``'s own process, before the workers start: read the registry
        for all of them (``services/modelfeed.py``), so no worker imports MLflow."""
        modelfeed.serve(SETTINGS, SPEC)

    def __is_ready__(self) -> bool:
        return self.engine.ready

    def __metrics__(self, content: str) -> str:
        return content + gauges_text(METRICS, self.engine.models)

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self.engine.stop()

    async def score_jobs(self, jobs: list[Job]) -> list[Any]:
        """Each job's answer or exception: the one way /predict and the OIP's infer score
        (coalesced with concurrent requests when adaptive batching is on)."""
        if self.coalescer is not None:
            return await self.coalescer.submit_all(jobs)
        return await asyncio.to_thread(self.engine.score, jobs)

    @bentoml.api(route="/predict")
    async def predict(self, row: Row, /, ctx: bentoml.Context) -> Prediction:  # type: ignore[valid-type]
        """Predict one row: entity keys plus booking-time fields; stored features from Feast.

        Send ``X-Request-ID`` to choose the id (else a uuid4 is made); the answer is in the
        prediction log before it is returned.
        """
        job = Job(row.model_dump(), _request_id(ctx), time.perf_counter())  # type: ignore[attr-defined]
        return await self._answer(ctx, job, _checked, explain=False)

    @bentoml.api(route="/explain")
    async def explain(self, body: ExplainRow, /, ctx: bentoml.Context) -> Explained:  # type: ignore[valid-type]
        """Predict one row (as /predict) and say why: the base value and the ``top`` largest
        feature contributions, named as the spec names its fields.

        Contributions are TreeSHAP for tree models (LightGBM's own, or the shap library's
        for random forests) and exact (coefficient times standardised input) for linear
        ones. A categorical field one-hot encoded into several model columns is one
        contribution, its columns summed; ``remainder`` is what the unlisted features add,
        so ``base_value + contributions + remainder == output`` (on ``scale``: the value,
        or the positive class's log-odds or probability). The prediction is logged with
        its full explanation before the answer leaves, retrievable by request id
        (``shipway lineage <request-id>``). Costlier than /predict, which never explains.
        """
        data = body.model_dump()  # type: ignore[attr-defined]
        top = int(data.pop("top"))
        job = Job(data, _request_id(ctx), time.perf_counter())

        def explained(result: Any) -> Any:
            answer = _checked(result).model_dump()
            return Explained(**answer, explanation=why(result["explanation"], top))

        return await self._answer(ctx, job, explained, explain=True)

    async def _answer(
        self, ctx: bentoml.Context, job: Job, build: Callable[[Any], Any], *, explain: bool
    ) -> Any:
        """Score one job (explained or not), answer with ``build`` of its result, and turn
        the engine's refusals into 503/409; anything else is logged with the id."""
        result: Any
        try:
            if explain:
                result = (await asyncio.to_thread(self.engine.explain, [job]))[0]
            else:
                result = (await self.score_jobs([job]))[0]
            return build(result)
        except NotReady:
            return _error(ctx, 503, "model or feature store not loaded yet; retry shortly")
        except DuplicateRequestId:
            return _error(ctx, 409, "X-Request-ID already used by an earlier prediction")
        except ColumnMissing as exc:  # an older cluster log its owner has not upgraded yet
            log.error("shipway: request %s not explained: %s", job.request_id, exc)
            return _error(ctx, 503, "explanations cannot be stored by this prediction log yet")
        except ScoringFailed:
            raise
        except Exception as exc:  # logged with the id; the client gets BentoML's plain 500
            log.exception("shipway: request %s failed", job.request_id)
            raise ScoringFailed("internal error") from exc

    @bentoml.api(
        route="/predict_batch",
        batchable=SETTINGS.adaptive_batching,
        max_batch_size=SETTINGS.max_batch_size,
        max_latency_ms=SETTINGS.batch_max_latency_ms,
    )
    def predict_batch(self, rows: list[Row], /) -> list[Prediction]:  # type: ignore[valid-type]
        """Predict a list of rows (same code path as /predict; each row gets its own id).

        Concurrent calls are merged by BentoML's adaptive batching into one feature read,
        one model call and one log commit.
        """
        now = time.perf_counter()
        jobs = [Job(r.model_dump(), str(uuid.uuid4()), now) for r in rows]  # type: ignore[attr-defined]
        try:
            results = self.engine.score(jobs)
        except NotReady as exc:
            raise bentoml.exceptions.ServiceUnavailable(str(exc)) from exc
        return [_checked(r) for r in results]

    @bentoml.api(route="/feedback")
    async def feedback(self, body: Feedback, /, ctx: bentoml.Context) -> FeedbackResponse:  # type: ignore[valid-type]
        """Record the observed outcome of an earlier prediction.

        ``actual`` must fit the target: a value within its declared range, or a class label
        (as the data or /predict spell it) or 1/0 (400 otherwise). An unknown id is a 404.
        A prediction keeps its first label: a different one is a 409 unless the body says
        ``"correction": true``, which replaces it for monitoring and keeps the earlier one
        in the feedback history; the same label again changes nothing.
        """
        req = cast(FeedbackRequest, body)
        plog = self.engine.log
        if plog is None:
            return _error(ctx, 503, "prediction log not available yet; retry shortly")  # type: ignore[return-value]
        res = await asyncio.to_thread(
            plog.add_feedback, SPEC.name, req.request_id, req.actual, correction=req.correction
        )
        if res.status is FeedbackStatus.unknown:
            return _error(ctx, 404, f"unknown request_id {req.request_id!r}")  # type: ignore[return-value]
        if res.status is FeedbackStatus.conflict:
            return _error(  # type: ignore[return-value]
                ctx,
                409,
                f"request_id {req.request_id!r} already has the label {res.actual:g} "
                f'(revision {res.revision}); send "correction": true to replace it',
            )
        return FeedbackResponse.model_validate(
            {
                "request_id": req.request_id,
                "recorded": True,
                "status": res.status.value,
                "revision": res.revision,
                "actual": res.actual,
            }
        )


cast(Any, PredictionService).add_asgi_middleware(
    GuardMiddleware,
    metrics=METRICS,
    token=SETTINGS.api_token.get_secret_value() if SETTINGS.api_token else None,
    max_body_bytes=SETTINGS.max_body_bytes,
    rebalancer=INFLIGHT,
)
cast(Any, PredictionService).mount_asgi_app(  # the Open Inference Protocol, same port
    oip.create_app(SPEC, Row, bentoml.get_current_service)
)
apicache.cache_root_schemas(PredictionService)  # /predict_batch's list schema, built once
