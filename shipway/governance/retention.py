"""Retention periods and erasure requests, enforced and recorded.

Retention (the spec's ``retention`` block; dry run unless applied):

* predictions older than ``prediction_log_days`` are deleted with their feedback (ground
  truth is meaningless without the prediction it labels);
* feedback older than ``feedback_days`` is deleted;
* MLflow runs older than ``training_artifacts_days`` lose their data-bearing artifacts
  (model files, monitoring reference with validation rows, plots, ONNX) unless one of
  their versions is champion or challenger, carries a human approval, or is the current
  rollback target. The run, its metrics and tags, the registered version and the
  governance evidence (``evidence/``, ``audit/``, ``cards/``) stay: an auditor can still
  see what existed and what was decided, while the data is gone. Purged runs and
  versions are tagged ``retention_purged_at``.

Erasure removes one entity's predictions and their feedback. The record keeps the counts
and a SHA-256 of ``<usecase>:<key>=<value>`` — never the raw key — so an auditor holding
the request can find its record without the trail holding the personal key.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from shipway.core.evidence import Criterion, GateRecord
from shipway.core.predictionlog import PredictionLog, feedback, predictions
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.governance import ERASURE, RETENTION
from shipway.governance.trail import AUDIT_RUN_TAG, trail_for
from shipway.governance.versions import APPROVED_BY, GovernanceError, previous_champion

KEEP_ARTIFACTS = ("evidence", "audit", "cards")
PURGED = "retention_purged_at"


@dataclass
class RetentionResult:
    """What retention deleted (or, in a dry run, would delete) and what it kept and why."""

    usecase: str
    applied: bool
    cutoffs: dict[str, str]
    predictions: int = 0
    feedback_of_expired_predictions: int = 0
    feedback: int = 0
    runs_purged: list[dict[str, Any]] = field(default_factory=list)
    runs_kept: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _old_feedback(plog: PredictionLog, usecase: str, fb_cut: datetime, pred_cut: datetime) -> int:
    """Feedback older than its cutoff whose prediction is not expiring anyway (exact count)."""
    expiring = sa.select(predictions.c.request_id).where(
        predictions.c.usecase == usecase, predictions.c.ts < pred_cut
    )
    q = (
        sa.select(sa.func.count())
        .select_from(feedback)
        .where(
            feedback.c.usecase == usecase,
            feedback.c.ts < fb_cut,
            feedback.c.request_id.not_in(expiring),
        )
    )
    with plog.engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


def feedback_count(plog: PredictionLog, usecase: str) -> int:
    q = sa.select(sa.func.count()).select_from(feedback).where(feedback.c.usecase == usecase)
    with plog.engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


def _protected(client: Any, spec: UseCaseSpec, mvs: list[Any]) -> str:
    """Why a run's versions must keep their artifacts ('' if they need not)."""
    from shipway.core import registry

    name = spec.registered_model_name
    aliased = {
        alias: str(mv.version)
        for alias in (registry.CHAMPION, registry.CHALLENGER)
        if (mv := registry.alias_version(client, name, alias)) is not None
    }
    champ = registry.alias_version(client, name, registry.CHAMPION)
    target = previous_champion(client, spec, champ)
    for mv in mvs:
        # searched versions carry no aliases: ask the registry which versions hold them
        held = [a for a, v in aliased.items() if v == str(mv.version)]
        if held:
            return f"v{mv.version} is {'/'.join(held)}"
        if APPROVED_BY in (mv.tags or {}):
            return f"v{mv.version} carries a human approval"
        if target is not None and str(target.version) == str(mv.version):
            return f"v{mv.version} is the rollback target"
    return ""


def _purge_run(client: Any, run: Any, mvs: list[Any], now: str) -> list[str]:
    """Delete a run's data-bearing artifacts and its logged models' files; tag it."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    deleted = []
    repo = get_artifact_repository(run.info.artifact_uri)
    for art in client.list_artifacts(run.info.run_id):
        if art.path.split("/")[0] not in KEEP_ARTIFACTS:
            repo.delete_artifacts(art.path)
            deleted.append(art.path)
    for mv in mvs:
        source = str(mv.source or "")
        if source.startswith("models:/m-"):
            model = client.get_logged_model(source.removeprefix("models:/"))
            get_artifact_repository(model.artifact_location).delete_artifacts()
            deleted.append(source)
        client.set_model_version_tag(mv.name, str(mv.version), PURGED, now)
    client.set_tag(run.info.run_id, PURGED, now)
    return deleted


def _runs(
    settings: Settings, client: Any, spec: UseCaseSpec, cut: datetime, result: RetentionResult
) -> None:
    exp = client.get_experiment_by_name(spec.name)
    if exp is None:
        return
    now = datetime.now(UTC).isoformat()
    for run in client.search_runs([exp.experiment_id], max_results=5000):
        started = datetime.fromtimestamp(run.info.start_time / 1000, UTC)
        if started >= cut or run.data.tags.get(AUDIT_RUN_TAG) or PURGED in run.data.tags:
            continue
        mvs = client.search_model_versions(f"run_id = '{run.info.run_id}'")
        entry = {
            "run_id": run.info.run_id,
            "started": started.isoformat(),
            "versions": [str(mv.version) for mv in mvs],
        }
        why = _protected(client, spec, mvs)
        if why:
            result.runs_kept.append({**entry, "reason": why})
            continue
        if result.applied:
            entry["deleted"] = _purge_run(client, run, mvs, now)
        result.runs_purged.append(entry)


def enforce(
    settings: Settings,
    client: Any,
    spec: UseCaseSpec,
    apply: bool = False,
    now: datetime | None = None,
) -> tuple[RetentionResult, str | None]:
    """Apply (or plan) the spec's retention; a record is appended only when applied."""
    now = now or datetime.now(UTC)
    r = spec.retention
    cut = {
        "predictions": now - timedelta(days=r.prediction_log_days),
        "feedback": now - timedelta(days=r.feedback_days),
        "training_artifacts": now - timedelta(days=r.training_artifacts_days),
    }
    result = RetentionResult(spec.name, apply, {k: v.isoformat() for k, v in cut.items()})
    plog = PredictionLog(settings.prediction_log)
    result.feedback = _old_feedback(plog, spec.name, cut["feedback"], cut["predictions"])
    pred = plog.delete(spec.name, before=cut["predictions"], dry_run=not apply)
    result.predictions = pred["predictions"]
    result.feedback_of_expired_predictions = pred["feedback"]
    if apply:
        plog.delete_feedback_before(spec.name, cut["feedback"])
    _runs(settings, client, spec, cut["training_artifacts"], result)
    if not apply:
        return result, None
    record = GateRecord(
        RETENTION,
        {"usecase": spec.name},
        [
            Criterion("prediction_log", True, result.predictions, detail="predictions deleted"),
            Criterion(
                "feedback",
                True,
                result.feedback + result.feedback_of_expired_predictions,
                detail="feedback rows deleted",
            ),
            Criterion("training_artifacts", True, len(result.runs_purged), detail="runs purged"),
        ],
        {**result.to_dict(), "policy": r.model_dump(), "kept_artifacts": list(KEEP_ARTIFACTS)},
    )
    return result, trail_for(settings, spec.name, client=client).append(record)


def entity_hash(usecase: str, key: str, value: str) -> str:
    """What an erasure record keeps instead of the raw entity key."""
    return "sha256:" + hashlib.sha256(f"{usecase}:{key}={value}".encode()).hexdigest()


def erase(
    settings: Settings,
    client: Any,
    spec: UseCaseSpec,
    key: str,
    value: str,
    dry_run: bool = False,
) -> tuple[GateRecord, str | None]:
    """Delete one entity's predictions and feedback; record counts and the key's hash."""
    if key not in spec.entity_columns:
        raise GovernanceError(
            f"{key!r} is not an entity key of {spec.name} (entity keys: {spec.entity_columns})"
        )
    plog = PredictionLog(settings.prediction_log)
    before = {"predictions": plog.count(spec.name), "feedback": feedback_count(plog, spec.name)}
    res = plog.delete(spec.name, entity=(key, value), dry_run=dry_run)
    left = plog.delete(spec.name, entity=(key, value), dry_run=True)
    after = {"predictions": plog.count(spec.name), "feedback": feedback_count(plog, spec.name)}
    removed = {k: before[k] - after[k] for k in before}
    expect = {k: 0 if dry_run else res[k] for k in res}
    record = GateRecord(
        ERASURE,
        {
            "usecase": spec.name,
            "entity_key": key,
            "entity_hash": entity_hash(spec.name, key, value),
        },
        [
            Criterion(
                "no_records_remain",
                dry_run or left["predictions"] == 0,
                left["predictions"],
                0,
                "<=",
                "predictions of the entity still in the log",
            ),
            Criterion(
                "only_entity_records_removed",
                removed == expect,
                str(removed),
                str(expect),
                "==",
                "rows that left the log vs rows of the entity",
            ),
        ],
        {
            "dry_run": dry_run,
            "matched": res,
            "log_before": before,
            "log_after": after,
            "not_erased": [
                "DVC-versioned training data and the monitoring reference of registered "
                "versions (they age out with retention.training_artifacts_days)"
            ],
        },
    )
    if dry_run:
        return record, None
    return record, trail_for(settings, spec.name, client=client).append(record)
