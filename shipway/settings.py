"""Platform settings: where stores live, which runner to use, which image to ship.

Local and cluster differ only here (environment variables ``SHIPWAY_*``), never in code
paths. Settings are read when ``get_settings()`` is first called, not at import time.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
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
    prediction_log_uri: str | None = Field(
        default=None, description="Prediction log: a SQLite path (local) or a PostgreSQL URL."
    )
    service_port: int = Field(default=3000, description="Port of the prediction service.")

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

    def usecase_data(self, usecase: str) -> Path:
        return self.data / usecase

    def export_env(self) -> None:
        """Publish the resolved locations to child processes (Feast CLI, DVC, KFP)."""
        os.environ["SHIPWAY_ROOT"] = str(self.root)
        os.environ["SHIPWAY_STATE_DIR"] = str(self.state)
        os.environ["SHIPWAY_DATA_DIR"] = str(self.data)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings, loaded once per process."""
    return Settings()
