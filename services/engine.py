"""The prediction engine behind the HTTP API: stores, models, routing and the durable log.

It owns everything with state, so the BentoML class stays a thin typed facade:

* a background thread opens the prediction log and the Feast store and loads the models,
  retrying with one clear log line per distinct problem when the registry or the store
  is unavailable (the process never crashes for it; ``ready`` stays False, so /readyz
  answers 503), then keeps following the aliases to hot-swap a new champion (through the
  service's model feed, ``services/modelfeed.py``);
* :meth:`Engine.score` scores a batch of rows with one feature read, one model call per
  variant and one log transaction, and returns only after the log commit: an answer the
  client sees is already durable;
* :meth:`Engine.explain` is the same path, plus each answer's feature contributions
  (``shipway.core.explain``), stored in the answer's own log row. Only ``/explain``
  pays for them: ``/predict`` never computes one.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services import modelfeed, rowscorer, scoring
from services.metrics import ServiceMetrics, challenger_missing
from services.models import CHALLENGER, CHAMPION, ModelLoader, ModelSet, ServedModel, route
from shipway.core.explain import Explanation, explain
from shipway.core.predictionlog import DuplicateRecord, PredictionLog, PredictionRecord
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.data.replay import probe_row

log = logging.getLogger("shipway.service")

FEED_CHECK_SECONDS = 1.0
"""How often a worker looks at its service's model feed (one ``stat``): a new champion is
served within a second of its publication, whatever ``reload_interval_seconds`` is."""
SHADOW_SUFFIX = ":shadow"


class NotReady(RuntimeError):
    """The model, the feature store or the log is not loaded (yet)."""


class Unavailable(RuntimeError):
    """A store did not answer; ``what`` names it and where it is, for the one log line."""

    def __init__(self, what: str, cause: Exception) -> None:
        super().__init__(f"{what}: {type(cause).__name__}: {cause}")
        self.what = what
        self.cause = cause


def online_store_address(config: Any) -> str:
    """The online store's kind and address for log lines, never its credentials.

    Feast connection strings carry options such as ``password=...`` after the hosts
    (``host:port,db=0,password=...``); only the ``host:port`` parts are kept.
    """
    osc = config.online_store
    kind = str(getattr(osc, "type", type(osc).__name__))
    conn = getattr(osc, "connection_string", None)
    if conn:
        hosts = [h.rsplit("@", 1)[-1] for h in str(conn).split(",") if h and "=" not in h]
        return f"online store {kind} at {','.join(hosts)}"
    path = getattr(osc, "path", None)
    return f"online store {kind} at {path}" if path else f"online store {kind}"


class DuplicateRequestId(RuntimeError):
    """A client reused an X-Request-ID that is already in the prediction log."""


class ScoringFailed(RuntimeError):
    """Scoring failed; the cause is in the server log, never in the response."""


@dataclass(frozen=True)
class Job:
    """One row to score, with its id and arrival time (for the logged latency)."""

    row: dict[str, Any]
    request_id: str
    received: float
    variant: str | None = None
    """Force the champion or challenger for this row (the OIP's version routes); None:
    routed by the traffic split as usual."""


def settle_heap() -> int:
    """Exempt what is loaded now from the garbage collector's full passes; returns the
    number of objects exempted.

    A loaded worker holds about half a million long-lived objects (pandas, scikit-learn,
    MLflow, Feast, the models), and every full (generation 2) collection walks all of
    them: about 300 ms with the GIL held, stalling every request in flight, which was
    the tail of the load benchmark's slowest answers. ``gc.freeze`` moves them to the
    permanent generation, so later collections only walk what requests allocate. It runs
    in the loader thread when the engine becomes ready and after each model swap; the
    swap first unfreezes and collects once, so a replaced model's reference cycles are
    still freed (one ~300 ms pass per swap, off the request path's allocations).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class Engine:
    """Stores, models and the scoring of batches; see the module docstring."""

    def __init__(self, settings: Settings, spec: UseCaseSpec, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.spec = spec
        self.metrics = metrics
        self.mode = settings.challenger_mode
        self.percent = settings.challenger_percent
        metrics.challenger_mode = self.mode  # for the shipway_challenger_missing gauge
        self._challenger_missing = False
        """Whether the served set lacks the challenger its mode needs (said once per spell)."""
        feed = os.environ.get(modelfeed.FEED_ENV)
        self.publisher: modelfeed.Publisher | None = None
        """Reads the registry for this engine alone when no service feed was set up."""
        if feed is None:
            self.publisher = modelfeed.Publisher(settings, spec, modelfeed.private_root())
            feed = str(self.publisher.root)
        self.loader = ModelLoader(Path(feed), spec)
        self.models: ModelSet | None = None
        self.store: Any = None
        self.log: PredictionLog | None = None
        self._lock = threading.Lock()  # Feast's SQLite connection is shared across threads
        self._stop = threading.Event()
        self._problems: dict[str, str] = {}
        self._settled_for: tuple[int, ...] | None = None
        """Identity of the models, store and log the heap was last settled with."""
        self._thread = threading.Thread(target=self._run, name="shipway-loader", daemon=True)

    # ---- lifecycle ----
    @property
    def loaded(self) -> bool:
        """Model, feature store and prediction log are open (requests can be scored)."""
        return self.models is not None and self.store is not None and self.log is not None

    @property
    def ready(self) -> bool:
        """Loaded, and the heap settled once (``/readyz``): the one-off ~300 ms collection
        of ``settle_heap`` happens before traffic is sent, not under the first requests."""
        return self.loaded and self._settled_for is not None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            loaded = (id(self.models), id(self.store), id(self.log))
            if self.loaded and loaded != self._settled_for:  # first load, or a swapped model
                settle_heap()
                self._settled_for = loaded
            s = self.settings
            wait = s.reload_interval_seconds if self.ready else s.startup_retry_seconds
            if self.publisher is None:  # the service's feed: a stat per second
                wait = min(wait, FEED_CHECK_SECONDS)
            self._stop.wait(wait)

    def refresh(self) -> None:
        """One pass: open what is missing, reload the models if an alias moved."""
        self._attempt("prediction log", self._open_log)
        self._attempt("feature store", self._open_store)
        self._attempt("model registry", self._load_models)

    def _attempt(self, what: str, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:
            label, cause = what, exc
            if isinstance(exc, Unavailable):  # names the part and where it is
                label, cause = exc.what, exc.cause
            kind = getattr(cause, "kind", None) or type(cause).__name__  # RegistryProblem's
            problem = f"{kind}: {cause}"
            if self._problems.get(what) != f"{label}: {problem}":
                state = "still serving the loaded models" if self.loaded else "/readyz is 503"
                log.error(
                    "shipway: %s unavailable (%s); %s, retrying every %.0fs",
                    label,
                    problem,
                    state,
                    self.settings.startup_retry_seconds,
                )
            self._problems[what] = f"{label}: {problem}"
        else:
            if self._problems.pop(what, None) is not None:
                log.warning("shipway: %s available again", what)

    def _open_log(self) -> None:
        if self.log is None:
            self.log = PredictionLog(self.settings.prediction_log)

    def _open_store(self) -> None:
        if self.store is not None:
            return
        from feature_repo.store import feature_store

        store = feature_store(
            self.settings, online_only=True
        )  # fresh each attempt: no stale connection kept
        store.get_feature_service(self.spec.feature_service_name)  # applied?
        where = online_store_address(store.config)
        path = getattr(store.config.online_store, "path", None)
        if store.config.online_store.type == "sqlite" and path and not Path(path).is_file():
            # probing would create an empty database file and fail on its missing tables
            raise Unavailable(
                where,
                FileNotFoundError(f"{path} does not exist; run feast apply and materialize"),
            )
        try:
            with self._lock:
                direct = self.settings.direct_feature_reads
                scoring.fetch(store, self.spec, [probe_row(self.spec)], direct=direct)  # answers?
        except Exception as exc:
            raise Unavailable(where, exc) from exc
        self.store = store
        log.info("shipway: feature service %s online", self.spec.feature_service_name)

    def _load_models(self) -> None:
        if self.publisher is not None:
            self.publisher.publish()
        new, problem = self.loader.build(self.models, with_challenger=self.mode != "off")
        if new is not self.models and new is not None:
            chall = f", challenger v{new.challenger.version}" if new.challenger else ""
            log.info(
                "shipway: serving %s champion v%s%s (challenger mode %s)",
                new.champion.name,
                new.champion.version,
                chall,
                self.mode,
            )
            self.models = new  # one reference assignment: the atomic swap
            self._warn_if_challenger_missing(new)
        if problem is not None:  # the loaded models keep answering
            raise problem

    def _warn_if_challenger_missing(self, models: ModelSet) -> None:
        """Say once, when it starts, that split or shadow mode has no challenger: routing
        then silently sends every request to the champion (the gauge keeps saying it)."""
        missing = challenger_missing(self.mode, models)
        if missing and not self._challenger_missing:
            log.warning(
                "shipway: challenger mode %s, but %s has no challenger (no %r alias, or it "
                "points at the champion): champion v%s answers every request until one is set",
                self.mode,
                models.champion.name,
                CHALLENGER,
                models.champion.version,
            )
        self._challenger_missing = missing

    # ---- scoring ----
    def explain(self, jobs: Sequence[Job]) -> list[dict[str, Any] | Exception]:
        """:meth:`score`, each answer with its explanation (an :class:`Explanation` under
        ``"explanation"``), which is committed in the same log row as the prediction."""
        return self.score(jobs, explain=True)

    def score(
        self, jobs: Sequence[Job], *, explain: bool = False
    ) -> list[dict[str, Any] | Exception]:
        """Answers (or the exception of each failed row), durable in the log on return."""
        if not jobs:
            return []
        models, store, plog = self.models, self.store, self.log
        if models is None or store is None or plog is None:
            raise NotReady("model, feature store or prediction log not loaded yet")
        spec = self.spec
        with self._lock:
            feats = scoring.fetch(
                store, spec, [j.row for j in jobs], direct=self.settings.direct_feature_reads
            )
        self.metrics.features(feats.seconds, feats.missing_entities)
        keys = [[str(j.row[k]) for k in spec.entity_columns] for j in jobs]
        variants = [
            j.variant or route(self.mode, self.percent, models, k)
            for j, k in zip(jobs, keys, strict=True)
        ]
        inputs = feats.records()
        now = datetime.now(UTC)
        results: list[dict[str, Any] | Exception] = [ScoringFailed("not scored")] * len(jobs)
        records: list[list[PredictionRecord]] = [[] for _ in jobs]
        for variant in (CHAMPION, CHALLENGER):
            idx = [i for i, v in enumerate(variants) if v == variant]
            if not idx:
                continue
            served = models.get(variant)
            values = self._predict(served, feats, idx, jobs)
            why = None
            if explain and values is not None:  # /predict never pays for an explanation
                why = self._explain(served, feats, idx, jobs, values)
            if values is None or (explain and why is None):
                continue
            for n, (i, value) in enumerate(zip(idx, values, strict=True)):
                answer, rec = self._answer(i, jobs[i], served, float(value), feats, inputs[i])
                rec.event_time = now
                if why is not None:
                    rec.explanation = why[n].to_dict()
                    answer["explanation"] = why[n]
                results[i] = answer
                records[i].append(rec)
            self.metrics.scored(served.version, variant, values)
        if self.mode == "shadow" and models.challenger is not None:
            self._shadow(models.challenger, feats, jobs, inputs, now, records)
        return self._commit(plog, jobs, results, records)

    def _predict(
        self, served: ServedModel, feats: scoring.Features, idx: list[int], jobs: Sequence[Job]
    ) -> Any:
        try:
            scorer = served.scorer or rowscorer.native(self.spec, served.model)
            return scorer(feats.take(idx))
        except Exception:
            _log_failure("score", served, idx, jobs)
            return None

    def _explain(
        self,
        served: ServedModel,
        feats: scoring.Features,
        idx: list[int],
        jobs: Sequence[Job],
        values: Any,
    ) -> list[Explanation] | None:
        """The explanations of rows ``idx``, whose answers are ``values`` (None, logged
        with the ids, when it fails: those rows then fail like unscored ones, and nothing
        of them is logged)."""
        try:
            return explain(self.spec, served.model, feats.x.iloc[idx], values)
        except Exception:
            _log_failure("explain", served, idx, jobs)
            return None

    def _answer(
        self,
        i: int,
        job: Job,
        served: ServedModel,
        value: float,
        feats: scoring.Features,
        inputs: dict[str, Any],
        mode: str = "served",
    ) -> tuple[dict[str, Any], PredictionRecord]:
        klass, label = scoring.decide(self.spec, value)
        missing = feats.missing[i]
        rid = job.request_id + (SHADOW_SUFFIX if mode == "shadow" else "")
        answer = {
            "request_id": rid,
            "model_name": served.name,
            "model_version": served.version,
            "variant": served.variant,
            "prediction": value,
            "predicted_class": klass,
            "label": label,
            "missing_features": missing,
        }
        record = PredictionRecord(
            request_id=rid,
            usecase=self.spec.name,
            model_name=served.name,
            model_version=served.version,
            variant=served.variant,
            mode=mode,
            entity_keys={k: str(job.row[k]) for k in self.spec.entity_columns},
            features=inputs,
            prediction=value,
            label=label,
            missing=missing,
            latency_ms=(time.perf_counter() - job.received) * 1000.0,
        )
        return answer, record

    def _shadow(
        self,
        challenger: ServedModel,
        feats: scoring.Features,
        jobs: Sequence[Job],
        inputs: list[dict[str, Any]],
        now: datetime,
        records: list[list[PredictionRecord]],
    ) -> None:
        """Score every row with the challenger too and log it; never affects the answers."""
        values = self._predict(challenger, feats, list(range(len(jobs))), jobs)
        if values is None:
            return
        for i, value in enumerate(values):
            if records[i] and jobs[i].variant != CHALLENGER:  # answered, not by it already
                _, rec = self._answer(
                    i, jobs[i], challenger, float(value), feats, inputs[i], "shadow"
                )
                rec.event_time = now
                records[i].append(rec)
        self.metrics.scored(challenger.version, CHALLENGER, values)

    def _commit(
        self,
        plog: PredictionLog,
        jobs: Sequence[Job],
        results: list[dict[str, Any] | Exception],
        records: list[list[PredictionRecord]],
    ) -> list[dict[str, Any] | Exception]:
        """One transaction for the batch; on a duplicate id, row by row so only it fails."""
        try:
            plog.append([r for rs in records for r in rs])
            return results
        except DuplicateRecord:
            pass
        for i, rs in enumerate(records):
            if not rs:
                continue
            try:
                plog.append(rs)
            except DuplicateRecord:
                results[i] = DuplicateRequestId(jobs[i].request_id)
        return results


def _log_failure(what: str, served: ServedModel, idx: list[int], jobs: Sequence[Job]) -> None:
    """One line, with the traceback, naming the model and the first request ids (never
    the request's values) of rows that failed to ``what`` (score, explain)."""
    log.exception(
        "shipway: %s v%s (%s) failed to %s %d row(s); request ids %s",
        served.name,
        served.version,
        served.variant,
        what,
        len(idx),
        ", ".join(jobs[i].request_id for i in idx[:5]),
    )
