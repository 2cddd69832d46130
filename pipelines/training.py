"""The training pipeline: fetch a data version -> training set -> train -> evaluate ->
gate -> register -> production readiness -> promotion. One definition, run by kfp.local
or by Kubeflow Pipelines unchanged."""

from pathlib import Path
from typing import Any

from kfp import compiler, dsl

from pipelines.components import components

DEFAULT_IMAGE = "ghcr.io/shipway/shipway:0.1.0"
PIPELINE_NAME = "shipway-training"
COMPILED = Path(__file__).resolve().parent / "compiled" / "training_pipeline.yaml"


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
        tracking_uri: str = "",
        artifact_root: str = "",
        git_commit: str = "",
        as_of: str = "",
    ) -> dsl.Artifact:
        fetch = c.fetch_data(usecase=usecase, data_rev=data_rev, repo=repo)
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
        return promo.outputs["result"]

    return training_pipeline


def compile_pipeline(path: Path = COMPILED, image: str = DEFAULT_IMAGE) -> Path:
    """Write the pipeline YAML that the Kubeflow UI uploads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(image), package_path=str(path))
    return path
