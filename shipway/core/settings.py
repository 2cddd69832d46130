"""Platform settings: where stores live, which runner to use, which image to ship.

Local and cluster differ only here (environment variables ``SHIPWAY_*``), never in code
paths. Settings are read when ``get_settings()`` is first called, not at import time.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _find_root() -> Path:
    """The repository root: the nearest parent holding ``usecases/`` (else the cwd)."""
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "usecases").is_dir() and (p / "feature_repo").is_dir():
            return p
    pkg_root = Path(__file__).resolve().parent.parent
    if (pkg_root / "usecases").is_dir():
        return pkg_root
    return here


class Settings(BaseSettings):
    """Every knob of the platform; ``SHIPWAY_<FIELD>`` overrides each."""

    model_config = SettingsConfigDict(env_prefix="SHIPWAY_", extra="ignore")

    root: Path = Field(default_factory=_find_root, description="Repository root.")
    state_dir: Path | None = Field(
        default=None, description="Runtime state (stores, logs, reports); default <root>/.shipway."
    )
    data_dir: Path | None = Field(
        default=None, description="DVC-tracked data directory; default <root>/data."
    )
    usecases_dir: Path | None = Field(
        default=None, description="Directory of use-case specs; default <root>/usecases."
    )
    usecase: str = Field(default="hotel_rates", description="Default use case for the CLI.")
    environment: Literal["local", "cluster"] = Field(
        default="local", description="Selects feature_store.yaml or feature_store.cluster.yaml."
    )
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking/registry URI; default SQLite in state_dir."
    )
    mlflow_artifact_root: str | None = Field(
        default=None, description="Artifact location for new experiments; default state_dir."
    )
    kfp_host: str | None = Field(default=None, description="Kubeflow Pipelines API endpoint.")
    image: str = Field(
        default="ghcr.io/shipway/shipway:0.1.0",
        description="Container image the KFP components run in on a cluster.",
    )
    git_repo_url: str | None = Field(
        default=None,
        description="Git URL of this project's repository. A cluster run's fetch step reads "
        "the data version's dvc.lock, spec and params from it at the run's revision (the "
        "image holds the code but no git history); unset: the local checkout.",
    )
    dvc_remote_url: str | None = Field(
        default=None,
        description="DVC remote the fetch step pulls a data version from, in place of the "
        "repository's default remote (e.g. s3://bucket/shipway); pods authenticate the "
        "cloud's usual way (workload identity or its environment variables).",
    )
    # ---- what a Kubeflow Pipelines run's pods read (names in their namespace) ----
    pipeline_env_config_map: str = Field(
        default="shipway-env",
        description="ConfigMap whose settings every pipeline step gets on a cluster (the "
        "chart's <fullname>-env, also rendered in the pipelines namespace).",
    )
    pipeline_postgresql_secret: str = Field(
        default="shipway-postgresql",
        description="Secret with the keys feast-registry-uri and prediction-log-uri for the "
        "pipeline steps (the chart's <fullname>-postgresql or the external one).",
    )
    pipeline_redis_secret: str = Field(
        default="shipway-redis",
        description="Secret with the Feast Redis connection string (key connection) for the "
        "pipeline steps.",
    )
    pipeline_mlflow_auth_secret: str = Field(
        default="shipway-mlflow-auth",
        description="Secret with the MLflow password (key admin-password) for the pipeline "
        "steps; optional (absent: MLflow without basic auth).",
    )
    prediction_log_uri: str | None = Field(
        default=None, description="Prediction log: a SQLite path (local) or a PostgreSQL URL."
    )
    service_port: int = Field(default=3000, description="Port of the prediction service.")
    # ---- prediction service (services/) ----
    challenger_mode: Literal["off", "split", "shadow"] = Field(
        default="off",
        description="Challenger traffic: off; split (a share of entities is answered by the "
        "challenger); shadow (challenger scored and logged, the champion answers).",
    )
    challenger_percent: float = Field(
        default=10.0,
        ge=0.0,
        le=100.0,
        description="split mode: share of entity keys (hash buckets) routed to the challenger.",
    )
    reload_interval_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often the service polls the registry aliases for a new champion or "
        "challenger (hot reload without downtime).",
    )
    startup_retry_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Retry interval while the registry or the online store is unavailable at "
        "start (/readyz answers 503 meanwhile instead of the process crashing).",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token required on /predict, /predict_batch and /feedback when set; "
        "unset means no authentication (local default; the chart sets it from a Secret).",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="Largest request body accepted (larger ones get 413 before being parsed).",
    )
    adaptive_batching: bool = Field(
        default=True,
        description="Coalesce concurrent requests into one feature read, one model call and "
        "one log commit (off: every request is scored on its own).",
    )
    max_batch_size: int = Field(
        default=64, gt=1, description="Most rows scored in one coalesced batch."
    )
    batch_max_latency_ms: int = Field(
        default=10_000,
        gt=0,
        description="BentoML adaptive batching of /predict_batch: the longest a request may "
        "wait in the batch queue before it is refused as overloaded.",
    )
    service_workers: int = Field(
        default=1, ge=1, description="BentoML worker processes of the prediction service."
    )
    rebalance_inflight: int = Field(
        default=16,
        ge=0,
        description="With several workers: while a worker has more requests in flight than "
        "this, one response per 100 ms closes its keep-alive connection so the client "
        "reconnects to a less busy worker (services/rebalance.py); 0 turns it off.",
    )
    access_log: bool = Field(
        default=False,
        description="BentoML's access log line per request (off by default: it costs every "
        "request a formatted log line, and /metrics already counts requests by route and "
        "status; turn on to debug).",
    )
    tracing: bool = Field(
        default=False,
        description="OpenTelemetry spans per request, exported as BentoML's tracing "
        "configuration says; off (default): the tracing middleware skips every route.",
    )
    direct_feature_reads: bool = Field(
        default=True,
        description="Read online features straight from the SQLite or Redis online store "
        "with Feast's key encoding and value decoding (feature_repo/online.py); false: "
        "Feast's get_online_features on every call (same values, slower).",
    )
    openlineage_url: str | None = Field(
        default=None,
        description="Lineage server (e.g. Marquez) receiving OpenLineage events over HTTP; "
        "unset: events go to <state>/openlineage/events.jsonl.",
    )
    openlineage_api_key: SecretStr | None = Field(
        default=None, description="Bearer API key for the lineage server, if it needs one."
    )
    openlineage_namespace: str = Field(
        default="shipway",
        min_length=1,
        description="OpenLineage namespace of Shipway's jobs and datasets (one per deployment).",
    )

    # ---- retraining trigger (monitoring/webhook.py, `shipway trigger serve`) ----
    trigger_host: str = Field(
        default="127.0.0.1",
        description="Address the retraining webhook binds; loopback unless set (a cluster "
        "pod sets 0.0.0.0 so Alertmanager can reach it).",
    )
    trigger_token: SecretStr | None = Field(
        default=None,
        description="Bearer token Alertmanager/Prometheus must send to the webhook "
        "(http_config authorization); prefer trigger_token_file.",
    )
    trigger_token_file: Path | None = Field(
        default=None,
        description="File holding the webhook's bearer token (e.g. a mounted Secret, the "
        "same file as Alertmanager's credentials_file); surrounding whitespace is ignored.",
    )

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        self.root = self.root.resolve()
        if self.state_dir is None:
            self.state_dir = self.root / ".shipway"
        if self.data_dir is None:
            self.data_dir = self.root / "data"
        if self.usecases_dir is None:
            self.usecases_dir = self.root / "usecases"
        self.state_dir = self.state_dir.resolve()
        self.data_dir = self.data_dir.resolve()
        return self

    # ---- derived locations ----
    @property
    def state(self) -> Path:
        assert self.state_dir is not None
        return self.state_dir

    @property
    def data(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir

    @property
    def specs(self) -> Path:
        assert self.usecases_dir is not None
        return self.usecases_dir

    @property
    def feature_repo(self) -> Path:
        return self.root / "feature_repo"

    @property
    def feature_store_yaml(self) -> Path:
        name = "feature_store.yaml" if self.environment == "local" else "feature_store.cluster.yaml"
        return self.feature_repo / name

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.state / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        return self.mlflow_artifact_root or (self.state / "mlartifacts").as_uri()

    @property
    def prediction_log(self) -> str:
        """The prediction log: the configured URI, else SQLite in the state dir."""
        return self.prediction_log_uri or str(self.state / "predictions.db")

    def usecase_data(self, usecase: str) -> Path:
        return self.data / usecase

    def export_env(self) -> None:
        """Publish these settings to child processes (Feast CLI, DVC, kfp.local components)
        and to code that reads ``Settings()`` afresh, so every part of one run agrees on
        the stores: each location field becomes ``SHIPWAY_<FIELD>`` (unset ones removed)."""
        for name in STORE_FIELDS:
            key, value = f"SHIPWAY_{name.upper()}", getattr(self, name)
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = str(value)


STORE_FIELDS = (
    "root",
    "state_dir",
    "data_dir",
    "usecases_dir",
    "environment",
    "mlflow_tracking_uri",
    "mlflow_artifact_root",
    "prediction_log_uri",
    "kfp_host",
    "image",
    "openlineage_url",
    "openlineage_namespace",
)
"""Where a run reads and writes: what ``export_env`` hands to child processes."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings, loaded once per process."""
    return Settings()
