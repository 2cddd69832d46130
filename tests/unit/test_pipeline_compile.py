"""The compiled pipeline YAML is committed and must match a fresh compile (golden test);
on a cluster every step gets the chart's env ConfigMap and store Secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.runner import pipeline_arguments
from pipelines.training import (
    CLUSTER_PARAMETERS,
    COMPILED,
    DEFAULT_IMAGE,
    ENV_KEYS,
    compile_pipeline,
)
from shipway.core.settings import Settings


def load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline spec, platform spec): the two YAML documents of a compiled package."""
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform


def test_committed_yaml_matches_a_fresh_compile(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "p.yaml", DEFAULT_IMAGE)
    assert COMPILED.read_text() == fresh.read_text(), (
        "pipelines/compiled/training_pipeline.yaml is stale: run `make compile`"
    )


def test_compiled_pipeline_is_uploadable_shape() -> None:
    spec, _ = load(COMPILED)
    assert spec["pipelineInfo"]["name"] == "shipway-training"
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {
        "fetch-data",
        "build-training-set",
        "train-model",
        "evaluate-model",
        "validation-gate",
        "register-model",
        "production-readiness",
        "promote-model",
    }
    # champion is decided after the production-readiness gate, which follows registration
    dag = {name: set(t.get("dependentTasks", [])) for name, t in tasks.items()}
    assert dag["production-readiness"] == {"fetch-data", "register-model"}
    assert dag["promote-model"] == {"fetch-data", "register-model", "production-readiness"}
    assert spec["root"]["outputDefinitions"]["artifacts"]
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["data_rev"]["defaultValue"] == "HEAD"
    assert params["usecase"]["defaultValue"] == "hotel_rates"
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {DEFAULT_IMAGE}
    # components run the project's own code, not pip installs at run time
    for e in spec["deploymentSpec"]["executors"].values():
        assert "pip install" not in " ".join(e["container"].get("command", []))


def test_image_is_configurable(tmp_path: Path) -> None:
    other = compile_pipeline(tmp_path / "o.yaml", "registry.example.com/shipway:9")
    spec, _ = load(other)
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"registry.example.com/shipway:9"}


# ---------------------------------------------------------------- cluster configuration
POSTGRESQL = {
    "SHIPWAY_FEAST_REGISTRY_PATH": "feast-registry-uri",
    "SHIPWAY_PREDICTION_LOG_URI": "prediction-log-uri",
}


def _by_env(entries: list[dict[str, Any]], key: str) -> dict[str, tuple[str, str, bool]]:
    """env var -> (name parameter, ConfigMap/Secret key, optional) of configMapAsEnv or
    secretAsEnv entries."""
    out: dict[str, tuple[str, str, bool]] = {}
    for entry in entries:
        param = entry[f"{key}NameParameter"]["componentInputParameter"]
        assert f"{key}Name" not in entry, "names are pipeline parameters, never constants"
        for m in entry["keyToEnv"]:
            assert m["envVar"] not in out, f"{m['envVar']} set twice"
            out[m["envVar"]] = (param, m[f"{key}Key"], entry["optional"])
    return out


def test_every_step_gets_the_env_configmap_and_the_store_secrets() -> None:
    spec, platform = load(COMPILED)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(spec["deploymentSpec"]["executors"]), "a step without env"
    for name, cfg in executors.items():
        config = _by_env(cfg["configMapAsEnv"], "configMap")
        assert config == {
            **{k: ("env_config_map", k, False) for k in ENV_KEYS},
            "MLFLOW_TRACKING_USERNAME": ("env_config_map", "MLFLOW_TRACKING_USERNAME", True),
            "SHIPWAY_OPENLINEAGE_URL": ("env_config_map", "SHIPWAY_OPENLINEAGE_URL", True),
        }, name
        assert {"SHIPWAY_MLFLOW_TRACKING_URI", "SHIPWAY_ENVIRONMENT"} <= set(config)
        secrets = _by_env(cfg["secretAsEnv"], "secret")
        assert secrets == {
            **{env: ("postgresql_secret", key, False) for env, key in POSTGRESQL.items()},
            "SHIPWAY_FEAST_REDIS_CONNECTION": ("redis_secret", "connection", False),
            # optional: the chart renders it only with MLflow basic auth
            "MLFLOW_TRACKING_PASSWORD": ("mlflow_auth_secret", "admin-password", True),
        }, name
        # the prediction API token stays with the prediction service
        assert "SHIPWAY_API_TOKEN" not in config | secrets, name
        assert set(cfg) == {"configMapAsEnv", "secretAsEnv"}, name


def test_configmap_and_secret_names_default_to_the_settings() -> None:
    spec, _ = load(COMPILED)
    params = spec["root"]["inputDefinitions"]["parameters"]
    defaults = Settings.model_construct()  # field defaults, whatever this env holds
    for param, field in CLUSTER_PARAMETERS.items():
        assert params[param]["defaultValue"] == getattr(defaults, field), param
    assert params["env_config_map"]["defaultValue"] == "shipway-env"
    # a run started from the Kubeflow UI reaches the chart's MLflow, never a pod-local store
    assert params["tracking_uri"]["defaultValue"].startswith("http://")


def test_cluster_arguments_name_the_configmap_secrets_and_tracking_server(
    tmp_path: Path,
) -> None:
    s = Settings(
        root=tmp_path,
        mlflow_tracking_uri="http://prod-shipway-mlflow.ml.svc:5000",
        mlflow_artifact_root=None,
        pipeline_env_config_map="prod-shipway-env",
        pipeline_postgresql_secret="pg-uris",
        pipeline_redis_secret="prod-shipway-redis",
        pipeline_mlflow_auth_secret="mlflow-admin",
        git_repo_url="https://git.example.com/ml/shipway.git",
    )
    args = pipeline_arguments(s, "hotel_rates", "HEAD", cluster=True)
    assert args["tracking_uri"] == "http://prod-shipway-mlflow.ml.svc:5000"
    assert args["artifact_root"] == ""  # the MLflow server's proxied artifact store
    assert args["repo"] == "https://git.example.com/ml/shipway.git"  # the image has no history
    assert {k: args[k] for k in CLUSTER_PARAMETERS} == {
        "env_config_map": "prod-shipway-env",
        "postgresql_secret": "pg-uris",
        "redis_secret": "prod-shipway-redis",
        "mlflow_auth_secret": "mlflow-admin",
    }
    spec, _ = load(COMPILED)
    assert set(args) <= set(spec["root"]["inputDefinitions"]["parameters"])


@pytest.mark.parametrize("uri", [None, "sqlite:///tmp/mlflow.db", "file:///tmp/mlruns", "mlruns"])
def test_cluster_arguments_refuse_a_pod_local_tracking_store(tmp_path: Path, uri: str) -> None:
    s = Settings(root=tmp_path, mlflow_tracking_uri=uri, git_repo_url="https://g.example/r.git")
    with pytest.raises(ValueError, match="SHIPWAY_MLFLOW_TRACKING_URI"):
        pipeline_arguments(s, "hotel_rates", "HEAD", cluster=True)


@pytest.mark.parametrize(
    ("field", "uri", "setting"),
    [
        ("mlflow_tracking_uri", "http://shipway-pipeline:Canary-Pw-41@mlflow:5000", "TRACKING"),
        ("mlflow_tracking_uri", "https://Canary-Pw-41@mlflow.example.com", "TRACKING"),
        ("git_repo_url", "https://ci:Canary-Pw-41@git.example.com/r.git", "GIT_REPO_URL"),
        ("git_repo_url", "https://Canary-Pw-41@github.com/o/r.git", "GIT_REPO_URL"),
    ],
)
def test_cluster_arguments_refuse_credentials_in_run_parameters(
    tmp_path: Path, field: str, uri: str, setting: str
) -> None:
    """Run parameters are visible in the Kubeflow UI and run records: credentials reach the
    pods from Secrets through the environment, never through a parameter."""
    values = {
        "mlflow_tracking_uri": "http://mlflow:5000",
        "git_repo_url": "https://g.example/r.git",
    }
    s = Settings(root=tmp_path, **{**values, field: uri})
    with pytest.raises(ValueError, match=f"SHIPWAY_MLFLOW_{setting}|SHIPWAY_{setting}") as err:
        pipeline_arguments(s, "hotel_rates", "HEAD", cluster=True)
    assert "Canary-Pw-41" not in str(err.value)
    assert "carries credentials" in str(err.value)


def test_cluster_arguments_accept_ssh_repositories(tmp_path: Path) -> None:
    s = Settings(
        root=tmp_path,
        mlflow_tracking_uri="http://mlflow:5000",
        git_repo_url="ssh://git@git.example.com/ml/shipway.git",
    )
    args = pipeline_arguments(s, "hotel_rates", "HEAD", cluster=True)
    assert args["repo"] == "ssh://git@git.example.com/ml/shipway.git"


def test_cluster_arguments_need_the_git_repository(tmp_path: Path) -> None:
    s = Settings(root=tmp_path, mlflow_tracking_uri="http://mlflow:5000", git_repo_url=None)
    with pytest.raises(ValueError, match="SHIPWAY_GIT_REPO_URL"):
        pipeline_arguments(s, "hotel_rates", "HEAD", cluster=True)


def test_local_arguments_are_unchanged(tmp_path: Path) -> None:
    s = Settings(
        root=tmp_path,
        state_dir=tmp_path / "state",
        mlflow_tracking_uri=None,
        mlflow_artifact_root=None,
    )
    args = pipeline_arguments(s, "hotel_rates", "HEAD", cluster=False, as_of="2017-01-01")
    assert set(args) == {
        "usecase",
        "data_rev",
        "repo",
        "dvc_remote",
        "tracking_uri",
        "artifact_root",
        "git_commit",
        "as_of",
    }
    assert args["repo"] == str(tmp_path.resolve())
    assert args["tracking_uri"] == s.tracking_uri and args["tracking_uri"].startswith("sqlite:")
    assert args["artifact_root"] == s.artifact_root
