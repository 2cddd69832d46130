"""The training pipeline: fetch a data version -> training set -> train -> evaluate ->
gate -> register -> production readiness -> promotion. One definition, run by kfp.local
or by Kubeflow Pipelines unchanged."""

from pathlib import Path
from typing import Any

from kfp import compiler, dsl, kubernetes

from pipelines.components import components
from shipway.core.settings import Settings

DEFAULT_IMAGE = "ghcr.io/shipway/shipway:0.1.0"
PIPELINE_NAME = "shipway-training"
COMPILED = Path(__file__).resolve().parent / "compiled" / "training_pipeline.yaml"

# On a cluster every step gets the settings of the chart's other pods: the keys of its
# <fullname>-env ConfigMap (charts/shipway/templates/configmap-env.yaml) and the store
# credentials from its Secrets by key (templates/secrets.yaml). kfp.local ignores this
# platform config: local runs take their settings from the process environment.
# Every key of the ConfigMap except KF_PIPELINES_SA_TOKEN_PATH (no KFP token is mounted in
# the steps) and SHIPWAY_PIPELINE_* (the names below, for whoever submits a run).
ENV_KEYS = (
    "SHIPWAY_ENVIRONMENT",
    "SHIPWAY_STATE_DIR",
    "SHIPWAY_MLFLOW_TRACKING_URI",
    "SHIPWAY_KFP_HOST",
    "SHIPWAY_IMAGE",
    "SHIPWAY_SERVICE_PORT",
    "SHIPWAY_GIT_REPO_URL",  # where the fetch step reads a data version (runs from the UI)
    "SHIPWAY_DVC_REMOTE_URL",  # and the DVC remote it pulls from
    "SHIPWAY_OPENLINEAGE_NAMESPACE",  # the namespace of the steps' lineage events
    "HOME",
    "BENTOML_HOME",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "FEAST_FS_YAML_FILE_PATH",
)
OPTIONAL_ENV_KEYS = (
    "MLFLOW_TRACKING_USERNAME",  # rendered only with MLflow basic auth
    "SHIPWAY_OPENLINEAGE_URL",  # rendered only with a lineage server (openlineage.url)
)
# pipeline parameter naming the Secret -> (Secret key -> env var, optional)
SECRET_ENV: dict[str, tuple[dict[str, str], bool]] = {
    "postgresql_secret": (
        {
            "feast-registry-uri": "SHIPWAY_FEAST_REGISTRY_PATH",
            "prediction-log-uri": "SHIPWAY_PREDICTION_LOG_URI",  # also the promotion lock
        },
        False,
    ),
    "redis_secret": ({"connection": "SHIPWAY_FEAST_REDIS_CONNECTION"}, False),
    # absent when MLflow runs without basic auth (or outside the chart)
    "mlflow_auth_secret": ({"admin-password": "MLFLOW_TRACKING_PASSWORD"}, True),
}
# The chart's MLflow for `helm install shipway charts/shipway -n shipway`: the default of a
# run started from the Kubeflow UI (a local or submitted run always passes its own).
DEFAULT_TRACKING_URI = "http://shipway-mlflow.shipway.svc:5000"
# pipeline parameter -> its Settings field, whose default is the chart's name for a release
# called "shipway"; `shipway pipeline submit` passes the configured names.
CLUSTER_PARAMETERS = {
    "env_config_map": "pipeline_env_config_map",
    "postgresql_secret": "pipeline_postgresql_secret",
    "redis_secret": "pipeline_redis_secret",
    "mlflow_auth_secret": "pipeline_mlflow_auth_secret",
}


def _default(parameter: str) -> str:
    return str(Settings.model_fields[CLUSTER_PARAMETERS[parameter]].default)


def use_cluster_env(task: Any, env_config_map: Any, **secrets: Any) -> None:
    """Give ``task``'s pod the chart's env ConfigMap keys and Secret keys as env vars
    (names are pipeline parameters, so one compiled pipeline serves any release)."""
    kubernetes.use_config_map_as_env(task, env_config_map, {k: k for k in ENV_KEYS})
    kubernetes.use_config_map_as_env(
        task, env_config_map, {k: k for k in OPTIONAL_ENV_KEYS}, optional=True
    )
    for parameter, (key_to_env, optional) in SECRET_ENV.items():
        kubernetes.use_secret_as_env(task, secrets[parameter], key_to_env, optional=optional)


def build_pipeline(image: str = DEFAULT_IMAGE) -> Any:
    """The pipeline function, with its components bound to ``image``."""
    c = components(image)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Shipway training: DVC data version -> Feast training set -> train -> "
        "evaluate -> model-validation gate -> MLflow registry (challenger) -> production "
        "readiness (Bento build + smoke) -> champion if the spec's promotion rule holds.",
    )
    def training_pipeline(
        usecase: str = "hotel_rates",
        data_rev: str = "HEAD",
        repo: str = "",
        dvc_remote: str = "",
        tracking_uri: str = DEFAULT_TRACKING_URI,
        artifact_root: str = "",
        git_commit: str = "",
        as_of: str = "",
        env_config_map: str = _default("env_config_map"),
        postgresql_secret: str = _default("postgresql_secret"),
        redis_secret: str = _default("redis_secret"),
        mlflow_auth_secret: str = _default("mlflow_auth_secret"),
    ) -> dsl.Artifact:
        fetch = c.fetch_data(usecase=usecase, data_rev=data_rev, repo=repo, dvc_remote=dvc_remote)
        fetch.set_display_name("fetch data version (DVC)")
        data = fetch.outputs["data"]
        sets = c.build_training_set(data=data, as_of=as_of)
        sets.set_display_name("training set (Feast, time split)")
        train = c.train_model(data=data, sets=sets.outputs["sets"])
        train.set_display_name("train")
        ev = c.evaluate_model(data=data, sets=sets.outputs["sets"], model=train.outputs["model"])
        ev.set_display_name("evaluate (+ONNX parity)")
        gate = c.validation_gate(
            data=data,
            sets=sets.outputs["sets"],
            model=train.outputs["model"],
            evaluation=ev.outputs["evaluation"],
            tracking_uri=tracking_uri,
        )
        gate.set_display_name("model-validation gate")
        reg = c.register_model(
            data=data,
            sets=sets.outputs["sets"],
            model=train.outputs["model"],
            evaluation=ev.outputs["evaluation"],
            gate=gate.outputs["gate"],
            tracking_uri=tracking_uri,
            artifact_root=artifact_root,
            git_commit=git_commit,
            kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        )
        reg.set_display_name("register (MLflow)")
        ready = c.production_readiness(
            data=data, registered=reg.outputs["result"], tracking_uri=tracking_uri
        )
        ready.set_display_name("production-readiness gate (Bento build + smoke)")
        promo = c.promote_model(
            data=data,
            registered=reg.outputs["result"],
            readiness=ready.outputs["readiness"],
            tracking_uri=tracking_uri,
            kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        )
        promo.set_display_name("promotion (champion if the rule holds)")
        for task in (fetch, sets, train, ev, gate, reg, ready, promo):
            task.set_caching_options(False)  # every run re-reads data and the registry
            use_cluster_env(
                task,
                env_config_map,
                postgresql_secret=postgresql_secret,
                redis_secret=redis_secret,
                mlflow_auth_secret=mlflow_auth_secret,
            )
        return promo.outputs["result"]

    return training_pipeline


def compile_pipeline(path: Path = COMPILED, image: str = DEFAULT_IMAGE) -> Path:
    """Write the pipeline YAML that the Kubeflow UI uploads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(image), package_path=str(path))
    return path
