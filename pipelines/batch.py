"""The batch-scoring pipeline: plan -> score the shards in a ParallelFor -> commit.

One definition, run by kfp.local (``shipway batch run``) or by Kubeflow Pipelines
unchanged (compiled to ``compiled/batch_pipeline.yaml``, committed and golden-tested).
The plan lists the input (Parquet or CSV, local path or object-store URI), pins the
champion once and cuts the rows into ``shards``; the shards run ``parallelism`` at a
time, each retried on failure (KFP's own retry); the commit writes the manifest and moves
the staged dataset into place. The components are thin: the work is in
:mod:`pipelines.steps.batch`.
"""

from pathlib import Path
from typing import Any

from kfp import compiler, dsl
from kfp.dsl import Artifact, Input, Output

from pipelines.training import DEFAULT_IMAGE, DEFAULT_TRACKING_URI, _default, use_cluster_env
from shipway.core.settings import Settings

PIPELINE_NAME = "shipway-batch-scoring"
COMPILED = Path(__file__).resolve().parent / "compiled" / "batch_pipeline.yaml"
DEFAULT_PARALLELISM = 4
"""Shards scored at the same time (KFP fixes it when the pipeline is compiled)."""
SHARD_RETRIES = 2
SHARD_BACKOFF = "5s"
DEFAULT_SHARDS = 4
DEFAULT_CHUNK_ROWS = 50_000
DEFAULT_USECASE = str(Settings.model_fields["usecase"].default)
"""The use case of a run started with no arguments: the settings' default."""


def plan_batch(
    usecase: str,
    input_uri: str,
    output_uri: str,
    key_columns: str,
    shards: int,
    tracking_uri: str,
    run_id: str,
    plan: Output[Artifact],
) -> list:
    """List and cut the input into shards, pin the champion; the shard indices."""
    from pathlib import Path

    from pipelines.steps.batch import plan_task

    indices = plan_task(
        usecase, input_uri, output_uri, key_columns, shards, tracking_uri, run_id, Path(plan.path)
    )
    plan.metadata.update({"shards": len(indices), "input": input_uri, "output": output_uri})
    return indices


def score_shard(plan: Input[Artifact], shard: int, chunk_rows: int) -> dict:
    """Score one shard with the pinned version into the run's staging folder."""
    from pathlib import Path

    from pipelines.steps.batch import shard_task

    return shard_task(Path(plan.path), int(shard), chunk_rows)


def commit_batch(plan: Input[Artifact], shards: list, manifest: Output[Artifact]) -> int:
    """Check the shards, write the manifest, move the scored dataset into place; rows."""
    import json
    from pathlib import Path

    from pipelines.steps.batch import commit_task

    result = commit_task(Path(plan.path), list(shards))
    Path(manifest.path).write_text(json.dumps(result, indent=2))
    manifest.metadata.update({k: result[k] for k in ("rows", "model_name", "model_version")})
    return int(result["rows"])


def build_batch_pipeline(image: str = DEFAULT_IMAGE, parallelism: int = DEFAULT_PARALLELISM) -> Any:
    """The pipeline function, its components in ``image``, ``parallelism`` shards at once."""
    if parallelism < 1:
        raise ValueError(f"parallelism must be at least 1, got {parallelism}")

    def make(fn: Any) -> Any:
        return dsl.component(fn, base_image=image, install_kfp_package=False)

    plan_c, shard_c, commit_c = make(plan_batch), make(score_shard), make(commit_batch)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Shipway batch scoring: list and shard the input -> score the shards in "
        "parallel with the champion pinned at start -> commit a partitioned Parquet dataset "
        "and its manifest atomically.",
    )
    def batch_pipeline(
        usecase: str = DEFAULT_USECASE,
        input_uri: str = "",
        output_uri: str = "",
        key_columns: str = "",
        shards: int = DEFAULT_SHARDS,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        tracking_uri: str = DEFAULT_TRACKING_URI,
        env_config_map: str = _default("env_config_map"),
        postgresql_secret: str = _default("postgresql_secret"),
        redis_secret: str = _default("redis_secret"),
        mlflow_auth_secret: str = _default("mlflow_auth_secret"),
    ) -> Artifact:
        plan = plan_c(
            usecase=usecase,
            input_uri=input_uri,
            output_uri=output_uri,
            key_columns=key_columns,
            shards=shards,
            tracking_uri=tracking_uri,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        )
        plan.set_display_name("plan (list, shard, pin the champion)")
        tasks = [plan]
        with dsl.ParallelFor(plan.outputs["Output"], parallelism=parallelism) as shard:
            score = shard_c(plan=plan.outputs["plan"], shard=shard, chunk_rows=chunk_rows)
            score.set_display_name("score shard")
            score.set_retry(num_retries=SHARD_RETRIES, backoff_duration=SHARD_BACKOFF)
            tasks.append(score)
        commit = commit_c(plan=plan.outputs["plan"], shards=dsl.Collected(score.output))
        commit.set_display_name("commit (manifest, atomic move)")
        tasks.append(commit)
        secrets = {"postgresql_secret": postgresql_secret, "redis_secret": redis_secret,
                   "mlflow_auth_secret": mlflow_auth_secret}  # fmt: skip
        for task in tasks:
            task.set_caching_options(False)  # every run reads the registry and the input
            use_cluster_env(task, env_config_map, **secrets)
        return commit.outputs["manifest"]

    return batch_pipeline


def compile_batch_pipeline(
    path: Path = COMPILED, image: str = DEFAULT_IMAGE, parallelism: int = DEFAULT_PARALLELISM
) -> Path:
    """Write the batch pipeline YAML that the Kubeflow UI uploads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pipeline = build_batch_pipeline(image, parallelism)
    compiler.Compiler().compile(pipeline, package_path=str(path))
    return path
