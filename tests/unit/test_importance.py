"""The model card's explanation facts, on a real MLflow registry (SQLite in a temp dir):
global importance of a version on its logged reference sample, and its stability across
versions (Spearman rank correlation with the previous version; n/a for the first),
each version explained with the algorithm it was trained with (issue 17, point 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pytest

from shipway.core.modelframe import predict
from shipway.core.spec import Task
from shipway.governance import cards, importance
from shipway.governance.facts import VersionFacts
from tests.algorithmcases import case, fitted

NAME = "explained_model"


def _register(client: Any, algorithm: str, tmp: Path) -> Any:
    """One version of ``algorithm`` with its reference sample, as log_run records it."""
    c = case(algorithm, Task.regression)
    model = fitted(algorithm, Task.regression)
    ref = c.x_test.copy()
    ref["prediction"] = predict(c.spec, model, c.x_test)
    folder = tmp / f"ref-{algorithm}"
    folder.mkdir()
    ref.to_parquet(folder / "reference.parquet", index=False)
    with mlflow.start_run() as run:
        mlflow.log_param("algorithm", algorithm)
        mlflow.log_artifacts(str(folder), artifact_path="reference")
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
    return mlflow.register_model(info.model_uri, NAME, tags={"run_id": run.info.run_id})


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("importance")
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    # artifacts in the temp dir too (the default, ./mlruns, is the working directory)
    mlflow.create_experiment("importance", artifact_location=(tmp / "artifacts").as_uri())
    mlflow.set_experiment("importance")
    client = mlflow.MlflowClient()
    versions = [_register(client, a, tmp) for a in ("lightgbm", "random_forest", "linear")]
    yield client, versions
    mlflow.set_tracking_uri(None)


def test_first_version_has_importance_and_no_stability(registry: Any) -> None:
    client, (v1, _, _) = registry
    spec = case("linear", Task.regression).spec  # today's spec says linear; v1 was LightGBM
    facts = importance.explanation_facts(client, spec, client.get_model_version(NAME, v1.version))
    assert facts["method"] == "lightgbm_tree_shap" and facts["rows"] > 0
    ranked = list(facts["importance"].values())
    assert set(facts["importance"]) == set(spec.model_feature_names)
    assert ranked == sorted(ranked, reverse=True) and ranked[0] > 0
    assert facts["stability"]["spearman"] is None
    assert facts["stability"]["reason"].startswith("n/a: the first")


def test_later_versions_are_compared_with_the_previous_one(registry: Any) -> None:
    client, (_, v2, v3) = registry
    spec = case("lightgbm", Task.regression).spec
    second = importance.explanation_facts(client, spec, client.get_model_version(NAME, v2.version))
    assert second["method"] == "tree_shap"
    stab = second["stability"]
    assert stab["previous_version"] == "1"
    rho = stab["spearman"]
    assert rho is not None and -1.0 <= rho <= 1.0
    # the statistic is the one scipy defines, on the two importances it names
    want = importance.spearman(second["importance"], stab["previous_importance"])
    assert rho == want
    third = importance.explanation_facts(client, spec, client.get_model_version(NAME, v3.version))
    assert third["method"] == "linear_exact" and third["stability"]["previous_version"] == "2"


def test_spearman_is_one_for_the_same_ranking_and_minus_one_reversed() -> None:
    a = {"x": 3.0, "y": 2.0, "z": 1.0}
    assert importance.spearman(a, {"x": 30.0, "y": 20.0, "z": 10.0}) == pytest.approx(1.0)
    assert importance.spearman(a, {"x": 1.0, "y": 2.0, "z": 3.0}) == pytest.approx(-1.0)
    assert importance.spearman(a, {"x": 1.0}) is None  # one common feature: undefined


def test_the_card_states_importance_and_stability(registry: Any) -> None:
    client, (_, v2, _) = registry
    spec = case("lightgbm", Task.regression).spec
    mv = client.get_model_version(NAME, v2.version)
    facts = VersionFacts(NAME, "2", mv.run_id, "2026-12-05", [], {}, {}, {})
    md = cards.model_card(spec, importance.attach(client, spec, facts, mv))
    section = md[md.index("## Explanations") :].split("\n## ")[0]
    top = next(iter(facts.explanations["importance"]))
    assert f"| 1 | {top} |" in section
    assert "Spearman rank correlation of global importance with v1:" in section
    bare = VersionFacts(NAME, "2", mv.run_id, "2026-12-05", [], {}, {}, {})
    assert "Not computed" in cards.model_card(spec, bare)


def test_a_version_without_a_reference_says_why(registry: Any, tmp_path: Path) -> None:
    client, _ = registry
    model = fitted("linear", Task.regression)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
    mv = mlflow.register_model(info.model_uri, NAME + "_bare")
    spec = case("linear", Task.regression).spec
    facts = importance.explanation_facts(client, spec, mv)
    assert "no reference/reference.parquet" in facts["error"]
