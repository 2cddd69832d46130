"""The batch-scoring pipeline (issue 18): the committed YAML equals a fresh compile
(golden), the shards run in a ParallelFor with a parallelism limit and KFP's retry, and on
a cluster every step gets the chart's env ConfigMap and store Secrets like training's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.batch import (
    COMPILED,
    DEFAULT_PARALLELISM,
    SHARD_RETRIES,
    build_batch_pipeline,
    compile_batch_pipeline,
)
from pipelines.training import COMPILED as TRAINING_COMPILED
from pipelines.training import DEFAULT_IMAGE


def load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform


def test_committed_yaml_matches_a_fresh_compile(tmp_path: Path) -> None:
    fresh = compile_batch_pipeline(tmp_path / "b.yaml", DEFAULT_IMAGE)
    assert COMPILED.read_text() == fresh.read_text(), (
        "pipelines/compiled/batch_pipeline.yaml is stale: run `make compile`"
    )


def test_shards_fan_out_in_a_parallel_for_with_retry_then_one_commit() -> None:
    spec, _ = load(COMPILED)
    assert spec["pipelineInfo"]["name"] == "shipway-batch-scoring"
    root = spec["root"]["dag"]["tasks"]
    loop = next(t for t in root.values() if "parameterIterator" in t)
    assert loop["iteratorPolicy"]["parallelismLimit"] == DEFAULT_PARALLELISM
    # the loop iterates over the plan's output: the number of shards is decided at run time
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("plan-batch-Output")
    body = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    (shard,) = body.values()
    assert shard["retryPolicy"]["maxRetryCount"] == SHARD_RETRIES
    assert set(root["commit-batch"]["dependentTasks"]) >= {"plan-batch", loop["taskInfo"]["name"]}
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {"usecase", "input_uri", "output_uri", "key_columns", "shards"} <= set(params)
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {DEFAULT_IMAGE}


def test_parallelism_is_configurable(tmp_path: Path) -> None:
    spec, _ = load(compile_batch_pipeline(tmp_path / "p.yaml", DEFAULT_IMAGE, 7))
    (loop,) = [t for t in spec["root"]["dag"]["tasks"].values() if "parameterIterator" in t]
    assert loop["iteratorPolicy"]["parallelismLimit"] == 7
    with pytest.raises(ValueError, match="parallelism"):
        build_batch_pipeline(DEFAULT_IMAGE, 0)


def test_every_step_gets_the_same_cluster_env_as_training() -> None:
    """One source of truth (pipelines.training.use_cluster_env): the batch steps' pods read
    exactly the ConfigMap keys and Secret keys the training steps' pods read."""
    spec, platform = load(COMPILED)
    _, training = load(TRAINING_COMPILED)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(spec["deploymentSpec"]["executors"]), "a step without env"
    want = next(iter(training["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()))
    for name, cfg in executors.items():
        # inside the ParallelFor a pipeline parameter is passed as pipelinechannel--<name>
        same = json.loads(json.dumps(cfg).replace('"pipelinechannel--', '"'))
        assert same == want, name
