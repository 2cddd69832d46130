"""The champion's monitoring reference: what the model was validated on, from MLflow.

Every registered version logs ``reference/reference.parquet`` (validation rows as model
frame, plus ``prediction``, ``actual``, ``event_timestamp`` and entity keys) and the
run metrics ``validation_<metric>``. Drift and performance are measured against exactly
these, so "drift" means "different from what the gate accepted", not from some other
sample. Downloads are cached per version under the state dir: a looping monitor must not
fetch the same artifact every few minutes; so is the reference's drift profile
(``reference_profile``), which every window would otherwise recompute.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.profile import ReferenceProfile, cached_profile, file_digest
from shipway.core import metrics, registry
from shipway.core.redaction import redact
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec

REFERENCE_FILE = "reference.parquet"
TRAIN_BEFORE_TAG, WINDOWS_TAG = "train_before", "windows"
"""Version tags the training pipeline's register step sets (pipelines/steps/tasks.py, a
sibling monitoring may not import): the end of the training window, and every split's
window with its rows."""


@dataclass(frozen=True)
class Reference:
    """A model version and the data it was validated on."""

    model_name: str
    version: str
    run_id: str
    uri: str
    """Where the reference artifact came from (``runs:/<run>/reference/reference.parquet``)."""
    frame: pd.DataFrame
    validation: dict[str, float]
    """Validation metrics of the run (``validation_<metric>`` without the prefix)."""
    trained_at: datetime | None
    trained_before: datetime | None = None
    """End (exclusive) of the version's training window; None when not recorded."""
    training_rows: int | None = None
    """Rows the version trained on; None when not recorded."""
    digest: str = ""
    """SHA-256 of the reference file: the key of its cached drift profile ("": none)."""


def monitoring_dir(settings: Settings, spec: UseCaseSpec) -> Path:
    """Root of everything the monitor writes for a use case."""
    return settings.state / "monitoring" / spec.name


def _reference_uri(tags: dict[str, str], run_id: str) -> str:
    """The ``reference`` tag when the registry step sets it, else the run's artifact path."""
    return tags.get("reference") or f"runs:/{run_id}/reference/{REFERENCE_FILE}"


def _trained_at(tags: dict[str, str], run_start_ms: int | None) -> datetime | None:
    if tags.get("trained_at"):
        return datetime.fromisoformat(tags["trained_at"])
    if run_start_ms:
        return datetime.fromtimestamp(run_start_ms / 1000, UTC)
    return None


def _training_window(tags: dict[str, str]) -> tuple[datetime | None, int | None]:
    """The ``train_before`` tag as a UTC time and the train split's rows (``windows``)."""
    before = pd.Timestamp(tags[TRAIN_BEFORE_TAG]) if tags.get(TRAIN_BEFORE_TAG) else None
    if before is not None:
        before = before.tz_localize(UTC) if before.tzinfo is None else before.tz_convert(UTC)
    try:
        rows = int(json.loads(tags[WINDOWS_TAG])["train"]["rows"])
    except (KeyError, TypeError, ValueError):
        rows = None
    return (before.to_pydatetime() if before is not None else None), rows


def load_reference(settings: Settings, spec: UseCaseSpec, version: str | None = None) -> Reference:
    """The reference of ``version`` (default: the current champion), cached on disk.

    Raises ``LookupError`` when there is no champion (nothing is served, so there is
    nothing to monitor) or the version has no reference artifact (trained before the
    reference was logged).
    """
    import mlflow.artifacts

    client = registry.connect(settings.tracking_uri)
    name = spec.registered_model_name
    if version is None:
        mv = registry.alias_version(client, name, registry.CHAMPION)
        if mv is None:
            raise LookupError(f"{name} has no champion in {redact(settings.tracking_uri)}")
    else:
        mv = client.get_model_version(name, str(version))
    run_id = str(mv.run_id or mv.tags.get("run_id"))
    uri = _reference_uri(dict(mv.tags), run_id)
    cache = monitoring_dir(settings, spec) / "references" / f"v{mv.version}" / REFERENCE_FILE
    if not cache.is_file():
        tmp = cache.parent / "download"
        try:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(tmp), tracking_uri=settings.tracking_uri
            )
        except Exception as exc:  # MLflow raises several types for a missing artifact
            raise LookupError(f"{name} v{mv.version} has no reference at {uri}: {exc}") from exc
        shutil.move(path, cache)
        shutil.rmtree(tmp, ignore_errors=True)
    frame = pd.read_parquet(cache)
    run = client.get_run(run_id)
    validation = {
        k.removeprefix("validation_"): float(v)
        for k, v in run.data.metrics.items()
        if k.startswith("validation_")
    }
    if spec.acceptance.metric not in validation:  # older runs: recompute from the reference
        validation.update(
            metrics.quality(
                spec, frame["actual"].to_numpy(np.float64), frame["prediction"].to_numpy()
            )
        )
    trained_before, training_rows = _training_window(dict(mv.tags))
    return Reference(
        model_name=name,
        version=str(mv.version),
        run_id=run_id,
        uri=uri,
        frame=frame,
        validation=validation,
        trained_at=_trained_at(dict(mv.tags), run.info.start_time),
        trained_before=trained_before,
        training_rows=training_rows,
        digest=file_digest(cache),
    )


def reference_profile(
    settings: Settings, spec: UseCaseSpec, ref: Reference, names: list[str] | None = None
) -> ReferenceProfile:
    """The drift profile of ``ref`` (sorted values, counts, std per column), built once
    per model version and reference file, then read from
    ``references/v<version>/profile.*``; built in memory when the reference has no digest."""
    names = list(names or spec.model_feature_names)
    if not ref.digest:
        return ReferenceProfile.build(spec, ref.frame, names)
    directory = monitoring_dir(settings, spec) / "references" / f"v{ref.version}"
    return cached_profile(directory, ref.digest, spec, ref.frame, names)
