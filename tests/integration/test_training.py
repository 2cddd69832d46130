"""The training pipeline for real: kfp.local, MLflow registry, the gate, ONNX parity."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import joblib
import numpy as np
import onnx
import pandas as pd
import pytest

from pipelines.packaging import defaults, package
from pipelines.runner import pipeline_arguments, run_package_local
from pipelines.steps import onnx_export, tasks
from pipelines.steps.fetch import load_fetched
from pipelines.training import COMPILED
from shipway.core import registry
from shipway.core.evidence import verify
from shipway.core.settings import Settings

pytestmark = pytest.mark.integration
LINEAGE = (
    "git_commit",
    "data_version",
    "data_rev",
    "feature_service",
    "kfp_run_id",
    "spec_hash",
    "usecase",
)


@pytest.fixture(scope="module")
def weak_champion(repo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A fresh registry whose champion is an under-fitted model (few trees on 2 months),
    and a materialized Feast store (the pipeline's production-readiness smoke serves)."""
    from tests.governancesteps import own_stores

    s = own_stores(repo_data, tmp_path_factory.mktemp("reg"))
    w = s.state / "weak"
    tasks.fetch_task(str(s.root), "HEAD", "hotel_rates", w / "data")
    tasks.training_set_task(w / "data", w / "sets")
    train = pd.read_parquet(w / "sets" / "train.parquet")
    train.head(1500).to_parquet(w / "sets" / "train.parquet", index=False)
    params = w / "data" / "params.yaml"
    params.write_text(params.read_text().replace("n_estimators: 400", "n_estimators: 15"))
    tasks.train_task(w / "data", w / "sets", w / "model")
    tasks.evaluate_task(w / "data", w / "sets", w / "model", w / "eval")
    tasks.gate_task(w / "data", w / "sets", w / "model", w / "eval", s.tracking_uri, w / "gate")
    res = tasks.register_task(
        w / "data",
        w / "sets",
        w / "model",
        w / "eval",
        w / "gate",
        s.tracking_uri,
        s.artifact_root,
        "weak",
        "",
        w / "reg",
    )
    client = registry.connect(s.tracking_uri)
    registry.set_alias(client, "hotel_rates", registry.CHAMPION, res["version"])
    return s


def test_kfp_local_run_registers_version_with_lineage_and_moves_champion(
    weak_champion: Settings, tmp_path: Path
) -> None:
    """The package the chart uploads for the Kubeflow UI, with this environment's stores
    baked into its defaults, run on kfp.local with no arguments (as "Create run" with
    nothing typed): it trains hotel_rates against those stores."""
    client = registry.connect(weak_champion.tracking_uri)
    before = registry.alias_version(client, "hotel_rates", registry.CHAMPION)
    assert before is not None
    baked = pipeline_arguments(weak_champion, "hotel_rates", "HEAD", cluster=False)
    # the committed default points at the chart's MLflow: only the baked one reaches a store
    assert defaults(COMPILED.read_text())["tracking_uri"] != baked["tracking_uri"]
    pkg = package("training", "hotel_rates", baked, tmp_path / "hotel_rates-training.yaml")
    res = run_package_local(weak_champion, pkg)
    assert res["gate_passed"], res["failures"]
    mv = client.get_model_version("hotel_rates", str(res["version"]))
    for tag in LINEAGE:
        assert mv.tags.get(tag) not in (None, "", "unknown"), tag
    assert mv.tags["data_version"].endswith(".dir")  # the DVC md5 from dvc.lock
    assert mv.tags["feature_service"] == "hotel_rates_v1"
    assert mv.tags["kfp_run_id"] not in ("in-process", "weak")
    champ = registry.alias_version(client, "hotel_rates", registry.CHAMPION)
    chall = registry.alias_version(client, "hotel_rates", registry.CHALLENGER)
    assert champ is not None and chall is not None
    assert champ.version == chall.version == mv.version != before.version
    # the run logged metrics per split, plots, the dataset input and the evidence
    run = client.get_run(mv.run_id)
    for split in ("train", "validation", "test"):
        assert f"{split}_mae" in run.data.metrics
    arts = {a.path for a in client.list_artifacts(mv.run_id, "plots")}
    assert "plots/residuals.png" in arts
    assert run.inputs.dataset_inputs, "training data logged as an MLflow dataset input"
    ev = json.loads(
        Path(
            client.download_artifacts(
                mv.run_id, "evidence/model_validation.json", tempfile.mkdtemp()
            )
        ).read_text()
    )
    assert verify(ev) and ev["passed"] is True
    assert any(c["name"] == "beats_champion" and c["passed"] for c in ev["criteria"])


def test_shuffled_labels_fail_the_gate_and_champion_stays(
    settings: Settings, trained: dict
) -> None:
    client = registry.connect(settings.tracking_uri)
    champ_before = registry.alias_version(client, "hotel_rates", registry.CHAMPION)
    assert champ_before is not None
    w = Path(tempfile.mkdtemp(prefix="bad-"))
    tasks.fetch_task(str(settings.root), "HEAD", "hotel_rates", w / "data")
    tasks.training_set_task(w / "data", w / "sets")
    train = pd.read_parquet(w / "sets" / "train.parquet")
    rng = np.random.default_rng(0)
    train["avg_price_per_room"] = rng.permutation(train["avg_price_per_room"].to_numpy())
    train.to_parquet(w / "sets" / "train.parquet", index=False)
    tasks.train_task(w / "data", w / "sets", w / "model")
    tasks.evaluate_task(w / "data", w / "sets", w / "model", w / "eval")
    record = tasks.gate_task(
        w / "data", w / "sets", w / "model", w / "eval", settings.tracking_uri, w / "gate"
    )
    assert not record.passed
    failed = {c.name for c in record.failures}
    assert "quality_mae" in failed and "beats_champion" in failed
    # the reason says which criterion failed and by how much
    text = record.explain()
    assert "FAIL quality_mae" in text and "missed by" in text
    res = tasks.register_task(
        w / "data",
        w / "sets",
        w / "model",
        w / "eval",
        w / "gate",
        settings.tracking_uri,
        settings.artifact_root,
        "bad",
        "",
        w / "reg",
    )
    assert res["gate_passed"] is False and res["promoted"] is False
    champ_after = registry.alias_version(client, "hotel_rates", registry.CHAMPION)
    assert champ_after is not None and champ_after.version == champ_before.version
    chall = registry.alias_version(client, "hotel_rates", registry.CHALLENGER)
    assert chall is not None and str(chall.version) == str(res["version"])
    assert (
        client.get_model_version("hotel_rates", str(res["version"])).tags["gate_passed"] == "false"
    )


def test_onnx_parity_catches_a_corrupted_model(settings: Settings, trained: dict) -> None:
    w = settings.state / "train-0"
    spec, _, _ = load_fetched(w / "data")
    model = joblib.load(w / "model" / "model.joblib")
    test = pd.read_parquet(w / "sets" / "test.parquet")
    from shipway.core.modelframe import model_frame

    x = model_frame(spec, test)
    good = onnx_export.to_onnx(spec, model)
    assert onnx_export.compare(spec, model, good, x).passed
    # what the pipeline compared is in the evidence, next to the figure
    rec = json.loads((w / "gate" / "record.json").read_text())
    crit = next(c for c in rec["criteria"] if c["name"] == "onnx_parity_max_abs_diff")
    assert crit["passed"] and "float32 inputs" in crit["detail"]
    # corrupt: scale every leaf value of the tree ensemble by 1%
    proto = onnx.load_from_string(good)
    node = next(n for n in proto.graph.node if n.op_type.startswith("TreeEnsemble"))
    for attr in node.attribute:
        if attr.name in ("target_weights", "nodes_values"):
            attr.floats[:] = [v * 1.01 for v in attr.floats]
    bad = onnx_export.compare(spec, model, proto.SerializeToString(), x)
    assert not bad.passed and bad.max_error > spec.acceptance.onnx_tolerance


def test_evidence_record_is_well_formed_and_tamper_evident(
    settings: Settings, trained: dict
) -> None:
    d = json.loads((settings.state / "train-0" / "gate" / "record.json").read_text())
    assert d["gate"] == "model_validation" and d["schema_version"] == 1
    assert d["subject"]["usecase"] == "hotel_rates"
    names = {c["name"] for c in d["criteria"]}
    assert {
        "quality_mae",
        "beats_champion",
        "latency_p99_ms",
        "robust_missing_feature",
        "robust_out_of_range",
        "robust_unseen_category",
        "robust_perturbation",
        "onnx_parity_max_abs_diff",
        "slice_ratio_customer_type",
    } <= names
    for c in d["criteria"]:
        assert set(c) == {"name", "passed", "value", "threshold", "comparator", "detail"}
    assert verify(d)
    d["criteria"][0]["value"] = 1.0
    assert not verify(d)
