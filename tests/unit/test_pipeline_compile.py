"""The compiled pipeline YAML is committed and must match a fresh compile (golden test)."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipelines.training import COMPILED, DEFAULT_IMAGE, compile_pipeline


def test_committed_yaml_matches_a_fresh_compile(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "p.yaml", DEFAULT_IMAGE)
    assert COMPILED.read_text() == fresh.read_text(), (
        "pipelines/compiled/training_pipeline.yaml is stale: run `make compile`"
    )


def test_compiled_pipeline_is_uploadable_shape() -> None:
    spec = yaml.safe_load(COMPILED.read_text())
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
    spec = yaml.safe_load(other.read_text())
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"registry.example.com/shipway:9"}
