"""MLflow: tracking (params, metrics per split, plots, dataset input, evidence) and the
registry (a version per trained model, lineage tags, aliases challenger/champion)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.data.pandas_dataset import from_pandas
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from shipway.core.evidence import GateRecord
from shipway.core.registryref import CHALLENGER as CHALLENGER
from shipway.core.registryref import CHAMPION as CHAMPION
from shipway.core.registryref import SERVING_ARTIFACT as SERVING_ARTIFACT
from shipway.core.registryref import SERVING_TAG as SERVING_TAG
from shipway.core.registryref import address as address
from shipway.core.registryref import address_free as address_free
from shipway.core.spec import UseCaseSpec

log = logging.getLogger(__name__)
SKOPS_TRUSTED = [
    # lightgbm: the estimators and the booster they wrap (its params in an OrderedDict)
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    # random_forest: each fitted tree's array structure
    "sklearn.tree._tree.Tree",
    # linear: the median imputer records the dtype it was fitted on
    "numpy.dtype",
]
"""The types skops (MLflow's safe format) may load beyond its own defaults: exactly what the
learners of every ``model.algorithm`` the spec accepts bring, for regression and binary
classification. Derived with ``skops.io.get_untrusted_types`` on fitted pipelines and held
to that by tests/unit/test_algorithms.py, which fails when a learner needs a type missing
here and when a type here is needed by none (trusting more than the learners need would
let a tampered artifact load more than a model)."""
LINEAGE_TAGS = (
    "git_commit",
    "data_version",
    "data_rev",
    "feature_service",
    "kfp_run_id",
    "spec_hash",
    "usecase",
)


RUNTIME_PACKAGES = ("scikit-learn", "scipy", "numpy", "pandas", "skops")
"""What a registered model needs to load and predict, besides mlflow (added by MLflow)."""


def model_requirements(spec: UseCaseSpec) -> list[str]:
    """The model's pip requirements, pinned to the versions it was trained with.

    Stated rather than inferred: MLflow's inference reloads the model in a fresh Python
    process to see what it imports (10-15 s per registration here) and then lists
    whatever that process happened to import (pytest, rich, dask...). The learner is an
    sklearn Pipeline persisted with skops, plus LightGBM when the spec chooses it.
    """
    from importlib.metadata import version

    names = list(RUNTIME_PACKAGES)
    if spec.model.algorithm == "lightgbm":
        names.append("lightgbm")
    return [f"{n}=={version(n)}" for n in names]


HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
}
"""How long an MLflow client waits before it says the registry is not there.

MLflow's own defaults (a 120 s timeout, 7 retries with a backoff factor of 2) keep a
client on a closed port retrying for about four minutes, logging only urllib3 warnings,
before any Shipway code learns of it. These bound a refused connection to a few seconds
(retries after 0 s and ~2 s) and a silent server to 20 s per attempt. Set in the process
environment before the first client is made, and only where unset: an operator's
``MLFLOW_HTTP_REQUEST_*`` wins (a slow link or a rate-limited hosted registry)."""

_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST",)


def bound_http_requests(env: MutableMapping[str, str] | None = None) -> None:
    """Apply :data:`HTTP_DEFAULTS` where the environment does not set them already."""
    env = os.environ if env is None else env
    for key, value in HTTP_DEFAULTS.items():
        env.setdefault(key, value)


class RegistryUnavailable(RuntimeError):
    """The registry did not answer as a registry (unreachable, refused, 5xx, no access).

    Distinct from an empty registry (a missing model or alias is ``None``), so a caller
    never reports "no champion yet" for a registry it could not reach. The message names
    the registry's address, never its credentials."""

    def __init__(self, uri: str, what: str, cause: BaseException) -> None:
        self.address = address(uri)
        code = getattr(cause, "error_code", "") or type(cause).__name__
        super().__init__(
            f"MLflow registry at {self.address} could not {what} ({code}: {_reason(cause)})"
        )


_CAUSES = (
    ("Connection refused", "connection refused: nothing listens there"),
    ("timed out", "timed out"),
    ("Name or service not known", "host name not resolved"),
    ("Temporary failure in name resolution", "host name not resolved"),
    ("Max retries exceeded", "unreachable after the retries"),
)


def _reason(cause: BaseException) -> str:
    """The cause in a few words, without the request URL MLflow embeds (it may carry
    credentials) or urllib3's retry chain."""
    text = str(cause)
    for marker, reason in _CAUSES:
        if marker in text:
            return reason
    first = text.splitlines()[0] if text else type(cause).__name__
    return address_free(first)[:300]


def registry_uri(client: MlflowClient) -> str:
    """The registry URI a client talks to (for error messages)."""
    return str(getattr(client, "_registry_uri", None) or mlflow.get_registry_uri())


def connect(tracking_uri: str) -> MlflowClient:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no phoning home
    bound_http_requests()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def experiment(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    """The experiment id, created with an explicit artifact location when new."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    loc = f"{artifact_root.rstrip('/')}/{name}" if artifact_root else None
    try:
        return str(client.create_experiment(name, artifact_location=loc))
    except MlflowException:  # created concurrently
        exp = client.get_experiment_by_name(name)
        assert exp is not None
        return str(exp.experiment_id)


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version ``name@alias`` points at; None when the model or the alias does not exist.

    Only "does not exist" means empty: MLflow answers RESOURCE_DOES_NOT_EXIST for a missing
    model and INVALID_PARAMETER_VALUE "Registered model alias ... not found" for a missing
    alias. Anything else (a closed port, a timeout, a 5xx, 401/403) raises
    :class:`RegistryUnavailable` naming the registry's address.
    """
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if not_found(exc, alias):
            return None
        raise RegistryUnavailable(
            registry_uri(client), f"read the alias {name}@{alias}", exc
        ) from exc


def not_found(exc: MlflowException, alias: str | None = None) -> bool:
    """Did MLflow answer "no such model, version (or ``alias``)"? Every other error (401,
    403, 5xx, a closed port) is the registry failing, not the registry being empty."""
    return exc.error_code in _NOT_FOUND or (alias is not None and _alias_not_found(exc, alias))


def _alias_not_found(exc: MlflowException, alias: str) -> bool:
    return exc.error_code == "INVALID_PARAMETER_VALUE" and (f"alias {alias} not found" in str(exc))


def load(uri: str) -> Any:
    return mlflow.sklearn.load_model(uri)


def champion_model(client: MlflowClient, name: str) -> tuple[Any | None, ModelVersion | None]:
    mv = alias_version(client, name, CHAMPION)
    if mv is None:
        return None, None
    return load(f"models:/{name}@{CHAMPION}"), mv


def log_run(
    client: MlflowClient,
    spec: UseCaseSpec,
    *,
    artifact_root: str | None,
    model: Any,
    onnx_bytes: bytes | None,
    serving_files: dict[str, bytes] | None = None,
    x_example: pd.DataFrame,
    train_frame: pd.DataFrame,
    hyperparameters: dict[str, Any],
    summary: dict[str, Any],
    record: GateRecord,
    plots: list[Path],
    lineage: dict[str, str],
    workdir: Path,
    dataset_source: str,
) -> tuple[str, ModelVersion]:
    """Log one training run and register its model; return (run id, version)."""
    from mlflow.models import infer_signature

    exp_id = experiment(client, spec.name, artifact_root)
    with mlflow.start_run(
        experiment_id=exp_id, run_name=f"{spec.name}-{lineage['kfp_run_id']}"
    ) as run:
        mlflow.set_tags({**lineage, "gate_passed": str(record.passed).lower()})
        mlflow.log_params({f"hp.{k}": v for k, v in hyperparameters.items()})
        mlflow.log_params(
            {
                "algorithm": spec.model.algorithm,
                "task": spec.target.task.value,
                "features": ",".join(spec.model_feature_names)[:6000],
            }
        )
        for split, vals in summary.items():
            if split in ("train", "validation", "test"):
                mlflow.log_metrics({f"{split}_{k}": float(v) for k, v in vals.items()})
        ds = from_pandas(
            train_frame,
            source=dataset_source,
            name=f"{spec.name}-train@{lineage['data_version']}",
            targets=spec.target.column,
        )
        mlflow.log_input(ds, context="training")
        for p in plots:
            mlflow.log_artifact(str(p), artifact_path="plots")
        ev = workdir / "evidence"
        ev.mkdir(parents=True, exist_ok=True)
        (ev / "model_validation.json").write_text(
            json.dumps(record.to_dict(), indent=2, default=str)
        )
        (ev / "model_validation.md").write_text(record.to_markdown())
        (ev / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
        mlflow.log_artifacts(str(ev), artifact_path="evidence")
        if (workdir / "reference").is_dir():
            mlflow.log_artifacts(str(workdir / "reference"), artifact_path="reference")
        pred = model.predict(x_example)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=x_example,
            signature=infer_signature(x_example, pred),
            skops_trusted_types=SKOPS_TRUSTED,
            pip_requirements=model_requirements(spec),
        )
        if onnx_bytes is not None:
            onnx_path = workdir / "model.onnx"
            onnx_path.write_bytes(onnx_bytes)
            mlflow.log_artifact(str(onnx_path), artifact_path="onnx")
        if serving_files:  # the worker's lean form (shipway.scoring.servingform)
            serving = workdir / SERVING_ARTIFACT
            serving.mkdir(parents=True, exist_ok=True)
            for name, data in serving_files.items():
                (serving / name).write_bytes(data)
            mlflow.log_artifacts(str(serving), artifact_path=SERVING_ARTIFACT)
        run_id = run.info.run_id
    serving_tag = {SERVING_TAG: f"runs:/{run_id}/{SERVING_ARTIFACT}"} if serving_files else {}
    mv = mlflow.register_model(
        info.model_uri,
        spec.registered_model_name,
        tags={
            **lineage,
            "run_id": run_id,
            "gate_passed": str(record.passed).lower(),
            "evidence": f"runs:/{run_id}/evidence/model_validation.json",
            "onnx": f"runs:/{run_id}/onnx/model.onnx",
            "reference": f"runs:/{run_id}/reference/reference.parquet",
            "trained_at": datetime.fromtimestamp(run.info.start_time / 1000, UTC).isoformat(),
            **serving_tag,
        },
    )
    return run_id, mv


FIRST_CHAMPION_TAG = "first_champion_version"
"""Registered-model tag: the first version that ever got the champion alias (aliases move,
so without it the portfolio could not tell when a use case first reached production)."""
FIRST_CHAMPION_AT_TAG = "first_champion_at"


def set_alias(client: MlflowClient, name: str, alias: str, version: str) -> None:
    """Point ``alias`` at ``version``; the first champion is also recorded on the model."""
    client.set_registered_model_alias(name, alias, version)
    if alias == CHAMPION:
        tags = client.get_registered_model(name).tags or {}
        if FIRST_CHAMPION_TAG not in tags:
            from datetime import UTC, datetime

            client.set_registered_model_tag(name, FIRST_CHAMPION_TAG, str(version))
            client.set_registered_model_tag(
                name, FIRST_CHAMPION_AT_TAG, datetime.now(UTC).isoformat()
            )
    log.info("%s@%s -> version %s", name, alias, version)


class RegistrationFailed(RuntimeError):
    """The register step failed; the message names the step, what was undone and the cause."""


REGISTRATION_ERROR_TAG = "shipway.registration_error"
"""Run tag: why the register step failed after this run was logged (the run is FAILED)."""


def alias_targets(client: MlflowClient, name: str) -> dict[str, str | None]:
    """The versions champion and challenger point at now (None: unset), to restore later.

    Only a model that does not exist yet means "no aliases": any other registry error
    propagates, since restoring from a wrong snapshot would unset a real champion.
    """
    try:
        aliases = client.get_registered_model(name).aliases or {}
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        aliases = {}
    return {a: str(aliases[a]) if a in aliases else None for a in (CHAMPION, CHALLENGER)}


def withdraw(
    client: MlflowClient, mv: ModelVersion, before: dict[str, str | None], cause: BaseException
) -> RegistrationFailed:
    """Undo a registration that failed after its version was created; return the error.

    A version whose governance evidence, links or aliases were only partly written must
    not stay in the registry: a human could promote it, and rollback or the portfolio
    would count it. So every alias that already points at it goes back to where it
    pointed before (or is removed), the version is deleted (MLflow deletes softly and never
    reuses its number), and its run is marked FAILED with the cause as a tag, which keeps
    the attempt auditable. Each undo step is tried on its own: a registry that is
    unreachable now cannot undo anything, and the error then names the version to clean up.
    """
    name, version = mv.name, str(mv.version)
    reason = f"{type(cause).__name__}: {cause}"
    done: list[str] = []
    for alias, target in before.items():
        try:
            now = alias_version(client, name, alias)
            if now is None or str(now.version) != version:
                continue
            if target is None:
                client.delete_registered_model_alias(name, alias)
            else:
                client.set_registered_model_alias(name, alias, target)
            done.append(f"{alias} restored to {f'v{target}' if target else 'unset'}")
        except Exception as exc:  # keep undoing the rest; say what is left
            done.append(f"{alias} NOT restored ({type(exc).__name__}: {exc})")
    if mv.run_id:
        try:
            client.set_tag(mv.run_id, REGISTRATION_ERROR_TAG, reason[:5000])
            client.set_terminated(mv.run_id, status="FAILED")
            done.append(f"run {mv.run_id} marked FAILED")
        except Exception as exc:
            done.append(f"run {mv.run_id} NOT marked FAILED ({type(exc).__name__})")
    try:
        client.delete_model_version(name, version)
        done.append(f"v{version} deleted")
    except Exception as exc:
        done.append(f"v{version} NOT deleted, delete it by hand ({type(exc).__name__}: {exc})")
    log.error("register step of %s v%s failed (%s): %s", name, version, "; ".join(done), reason)
    return RegistrationFailed(
        f"register step failed after creating {name} v{version} ({'; '.join(done)}): {reason}"
    )
