"""The second use case, credit_risk, by configuration alone, next to hotel_rates.

Real credit data (modeldata credit_data) through every stage the first use case uses:
DVC data stages (derived applicant_id and application date), Feast (its own feature
service beside hotel_rates' in one registry, lagged default rates point-in-time correct),
the training pipeline in-process and through kfp.local (classification: ROC AUC, F1,
calibration, fairness in the gate, ONNX parity), the governed promotion a high-risk use
case needs, one prediction service process per use case side by side (probability and
class from the spec's decision threshold), the monitor, and the portfolio of both.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest

from pipelines.steps import gate, onnx_export
from pipelines.steps.fetch import load_fetched
from shipway.core import modelframe, registry
from shipway.core.evidence import verify
from shipway.core.launch import ServiceHandle, start_service, wait_ready
from shipway.core.modelframe import model_frame, target_vector
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase
from shipway.data.replay import future_bookings, request_body
from tests.conftest import ROOT, free_port, require, tool_env

pytestmark = pytest.mark.integration
NAME = "credit_risk"
APPROVER = "Priya Raman (Chief Risk Officer)"


@pytest.fixture(scope="module")
def credit(settings: Settings) -> UseCaseSpec:
    return load_usecase(NAME, settings)


@pytest.fixture(scope="module")
def credit_events(settings: Settings) -> pd.DataFrame:
    return pd.read_parquet(settings.usecase_data(NAME) / "features" / "events.parquet")


@pytest.fixture(scope="module")
def store(settings: Settings, feast_store: Any, hotel: UseCaseSpec, credit: UseCaseSpec) -> Any:
    """The session's Feast store (hotel_rates applied and materialized) plus credit_risk."""
    from feature_repo.store import apply, materialize

    apply(feast_store, [hotel, credit], settings.data)
    materialize(feast_store, credit, settings.data)
    return feast_store


@pytest.fixture(scope="module")
def credit_trained(settings: Settings, store: Any, trained: dict) -> dict[str, Any]:
    """credit_risk trained on data revision HEAD in the session registry (where hotel_rates
    already has its champion), then promoted the governed way a high-risk use case must:
    production-readiness gate, a named human approval, ``promote``."""
    from pipelines.runner import run_in_process
    from shipway.governance import checks
    from shipway.governance.approval import approve
    from shipway.governance.promotion import promote

    client = registry.connect(settings.tracking_uri)
    hotel_before = registry.alias_version(client, "hotel_rates", registry.CHAMPION)
    res = run_in_process(settings, NAME, "HEAD", settings.state / "credit-0")
    assert res["gate_passed"], res["failures"]
    assert not res["promoted"], "risk level high: the pipeline must not promote by itself"
    spec = load_usecase(NAME, settings)
    mv = client.get_model_version(NAME, str(res["version"]))
    pr, _ = checks.production_readiness(settings, client, spec, mv, free_port())
    assert pr.passed, pr.explain()
    approve(settings, client, spec, mv, APPROVER, "Reviewed ROC AUC, fairness and calibration.")
    promote(settings, client, spec, mv, "integration test")
    return {**res, "hotel_champion_before": hotel_before.version if hotel_before else None}


def _expected_rate(events: pd.DataFrame, job: str, t: pd.Timestamp) -> tuple[float | None, int]:
    """Bad rate of the job's applications in [day - 180 - 365, day - 180), directly."""
    day = t.floor("D")
    lo, hi = day - pd.Timedelta(days=545), day - pd.Timedelta(days=180)
    m = (
        (events["job"] == job)
        & (events["event_timestamp"] >= lo)
        & (events["event_timestamp"] < hi)
    )
    rows = events.loc[m, "status"]
    return (float((rows == "bad").mean()) if len(rows) else None), len(rows)


def test_data_stages_derive_key_time_and_groups(
    settings: Settings, credit: UseCaseSpec, credit_events: pd.DataFrame
) -> None:
    ev = credit_events
    assert len(ev) == 4454 and ev["applicant_id"].is_unique
    assert ev["event_timestamp"].min() == pd.Timestamp("2023-01-01", tz="UTC")
    assert ev["event_timestamp"].max() == pd.Timestamp("2024-12-31", tz="UTC")
    assert set(ev["status"]) == {"good", "bad"} and (ev["status"] == "bad").sum() == 1254
    report = json.loads((settings.usecase_data(NAME) / "reports" / "readiness.json").read_text())
    assert report["passed"]
    assert report["group_counts"]["age_group"]["under_25"] == 560
    assert set(report["group_counts"]["marital_group"]) == {
        "married",
        "previously_married",
        "single",
    }
    # excluded from the model's inputs, still validated and sliced on
    assert {"marital", "marital_group", "age_group"}.isdisjoint(credit.model_feature_names)


def test_lagged_default_rates_are_point_in_time_correct(
    store: Any, credit: UseCaseSpec, credit_events: pd.DataFrame
) -> None:
    from feature_repo.store import historical

    sample = credit_events.sample(80, random_state=3)
    out = historical(store, credit, sample.drop(columns=["status"]))
    agg = next(a for a in credit.entity_features[0].aggregates if a.name.endswith("rate_365d"))
    seen = 0
    for (_, row), (_, src) in zip(out.iterrows(), sample.iterrows(), strict=True):
        rate, n = _expected_rate(credit_events, src["job"], src["event_timestamp"])
        got = row["job_default_rate_365d"]
        assert got == pytest.approx(agg.default if rate is None else rate), src["applicant_id"]
        seen += n > 0
        day = src["event_timestamp"].floor("D")
        recent = credit_events[
            (credit_events["job"] == src["job"])
            & (credit_events["event_timestamp"] < day)
            & (credit_events["event_timestamp"] >= day - pd.Timedelta(days=90))
        ]
        assert row["job_applications_90d"] == len(recent)
    assert seen > 40, "most sampled applications have a default history to check"


def test_classification_trains_through_the_gate_with_its_evidence(
    settings: Settings, credit: UseCaseSpec, credit_trained: dict
) -> None:
    rec = json.loads((settings.state / "credit-0" / "gate" / "record.json").read_text())
    assert verify(rec) and rec["passed"]
    by = {c["name"]: c for c in rec["criteria"]}
    assert by["quality_roc_auc"]["value"] >= 0.80
    for name in (
        "bound_f1",
        "bound_ece",
        "bound_positive_rate",
        "demographic_parity_age_group",
        "equalized_odds_age_group",
        "demographic_parity_marital_group",
        "equalized_odds_marital_group",
        "slice_ratio_age_group",
        "onnx_parity_max_abs_diff",
        "robust_unseen_category",
    ):
        assert by[name]["passed"], by.get(name)
    assert by["demographic_parity_age_group"]["threshold"] == 0.30
    assert set(rec["facts"]["fairness"]) == {"age_group", "marital_group"}
    client = registry.connect(settings.tracking_uri)
    mv = client.get_model_version(NAME, str(credit_trained["version"]))
    assert mv.tags["feature_service"] == "credit_risk_v1" and mv.tags["usecase"] == NAME
    run = client.get_run(mv.run_id)
    for m in ("test_roc_auc", "test_f1", "test_ece", "test_false_omission_rate"):
        assert m in run.data.metrics, m
    plots = {a.path for a in client.list_artifacts(mv.run_id, "plots")}
    assert {"plots/calibration.png", "plots/roc.png"} <= plots


def test_onnx_classifier_matches_native_probabilities(
    settings: Settings, credit_trained: dict
) -> None:
    w = settings.state / "credit-0"
    spec, _, _ = load_fetched(w / "data")
    model = joblib.load(w / "model" / "model.joblib")
    x = model_frame(spec, pd.read_parquet(w / "sets" / "test.parquet"))
    native = modelframe.predict(spec, model, x)
    onx = (w / "eval" / "model.onnx").read_bytes()
    assert native.min() > 0 and native.max() < 1  # probabilities, not classes
    parity = onnx_export.compare(spec, model, onx, x)
    assert parity.passed and parity.class_disagreements == 0, parity
    assert parity.decision_threshold == spec.acceptance.decision_threshold == 0.4


def test_a_model_that_declines_the_young_fails_the_fairness_criteria(
    settings: Settings, credit_trained: dict
) -> None:
    w = settings.state / "credit-0"
    spec, _, _ = load_fetched(w / "data")
    model = joblib.load(w / "model" / "model.joblib")
    test = pd.read_parquet(w / "sets" / "test.parquet")
    x, y = model_frame(spec, test), target_vector(spec, test)

    class DeclinesYoung:
        """The trained model, except that every applicant under 25 is declined."""

        def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
            p = model.predict_proba(frame)[:, 1]
            p = np.where(frame["age"].to_numpy() < 25, 0.99, p)
            return np.column_stack([1 - p, p])

    record = gate.evaluate_gate(spec, DeclinesYoung(), test, x, y, None, 0.0, {"usecase": NAME})
    failed = {c.name: c for c in record.failures}
    assert "demographic_parity_age_group" in failed
    assert "missed by" in failed["demographic_parity_age_group"].summary()
    # (most under-25 applicants are single, so the decline rates by marital_group move too:
    # a proxy effect the other attribute's criteria may or may not catch)


def test_high_risk_credit_is_promoted_only_through_governance(
    settings: Settings, credit_trained: dict
) -> None:
    assert "shipway promote" in credit_trained["promotion_blocked"]
    client = registry.connect(settings.tracking_uri)
    champ = registry.alias_version(client, NAME, registry.CHAMPION)
    assert champ is not None and str(champ.version) == str(credit_trained["version"])
    tags = client.get_registered_model(NAME).tags
    assert tags[registry.FIRST_CHAMPION_TAG] == str(champ.version)
    for g in ("use_case_approval", "data_readiness", "model_validation", "production_readiness"):
        assert f"evidence.{g}" in champ.tags, g


def test_kfp_local_trains_credit_risk_unchanged(repo_data: Path, tmp_path: Path) -> None:
    """The same pipeline definition through kfp.local, in a fresh registry."""
    from pipelines.runner import run_local

    s = Settings(root=ROOT, state_dir=tmp_path / "state", data_dir=repo_data)
    res = run_local(s, NAME, "HEAD")
    assert res["gate_passed"], res["failures"]
    assert res["feature_service"] == "credit_risk_v1" and res["kfp_run_id"] != "in-process"
    client = registry.connect(s.tracking_uri)
    mv = client.get_model_version(NAME, str(res["version"]))
    assert mv.tags["data_version"].endswith(".dir") and mv.tags["gate_passed"] == "true"


def test_hotel_and_credit_coexist_in_one_feast_and_one_mlflow_registry(
    settings: Settings, store: Any, hotel: UseCaseSpec, credit: UseCaseSpec, credit_trained: dict
) -> None:
    from feature_repo.store import online_entity

    services = {fs.name for fs in store.list_feature_services()}
    assert {"hotel_rates_v1", "credit_risk_v1"} <= services
    views = {fv.name for fv in store.list_feature_views()}
    assert {
        "hotel_rates__agent_stats",
        "credit_risk__job_stats",
        "credit_risk__home_stats",
    } <= views
    credit_fs = store.get_feature_service("credit_risk_v1")
    names = {f.name for p in credit_fs.feature_view_projections for f in p.features}
    assert "job_default_rate_365d" in names and not any(n.startswith("agent_") for n in names)
    assert online_entity(store, credit, "job", "partime")["job_default_rate_365d"] > 0.3
    busiest = pd.read_parquet(settings.usecase_data("hotel_rates") / "features" / "events.parquet")
    agent = str(busiest["agent"].value_counts().index[0])
    assert online_entity(store, hotel, "agent", agent)["agent_bookings_90d"] is not None
    client = registry.connect(settings.tracking_uri)
    models = {m.name for m in client.search_registered_models()}
    assert {"hotel_rates", NAME} <= models
    hotel_champ = registry.alias_version(client, "hotel_rates", registry.CHAMPION)
    assert hotel_champ is not None
    assert hotel_champ.version == credit_trained["hotel_champion_before"]  # untouched
    assert hotel_champ.tags["usecase"] == "hotel_rates"
    for mv in client.search_model_versions(f"name = '{NAME}'"):
        assert mv.tags["usecase"] == NAME and mv.tags["feature_service"] == "credit_risk_v1"


@pytest.fixture(scope="module")
def services(
    settings: Settings, hotel: UseCaseSpec, credit: UseCaseSpec, credit_trained: dict, trained: dict
) -> Iterator[dict[str, ServiceHandle]]:
    """One prediction service process per use case, side by side."""
    require(shutil.which("bentoml", path=tool_env()["PATH"]) is not None, "bentoml CLI missing")
    handles = {
        spec.name: start_service(settings, spec, free_port(), base_env=tool_env())
        for spec in (credit, hotel)
    }
    try:
        for h in handles.values():
            wait_ready(h)
        yield handles
    finally:
        for h in handles.values():
            h.stop()


def test_credit_serves_probability_and_class_beside_hotel(
    services: dict[str, ServiceHandle],
    settings: Settings,
    credit: UseCaseSpec,
    hotel: UseCaseSpec,
    store: Any,
    credit_trained: dict,
) -> None:
    from feature_repo.store import online_entity

    apps = future_bookings(settings, credit, 8)  # December 2024: after the training window
    model = registry.load(f"models:/{NAME}/{credit_trained['version']}")
    with httpx.Client(base_url=services[NAME].url, timeout=60) as c:
        for _, row in apps.iterrows():
            body = request_body(credit, row)
            resp = c.post("/predict", json=body)
            assert resp.status_code == 200, resp.text
            ans = resp.json()
            p = ans["prediction"]
            assert ans["model_name"] == NAME and ans["model_version"] == str(
                credit_trained["version"]
            )
            assert 0.0 < p < 1.0
            assert ans["predicted_class"] == int(p >= credit.acceptance.decision_threshold)
            assert ans["label"] == ("bad" if ans["predicted_class"] else "not_bad")
            # the served probability is the registered model on the online features
            frame = pd.DataFrame([body])
            for ent in ("job", "home"):
                for k, v in online_entity(store, credit, ent, body[ent]).items():
                    frame[k] = v
            assert p == pytest.approx(
                modelframe.predict(credit, model, model_frame(credit, frame))[0]
            )
        bad = c.post("/predict", json={**body, "age_group": "teenager"})
        assert bad.status_code == 400 and bad.json()["detail"][0]["loc"] == ["age_group"]
    hotel_body = request_body(hotel, future_bookings(settings, hotel, 1).iloc[0])
    with httpx.Client(base_url=services["hotel_rates"].url, timeout=60) as h:
        ans = h.post("/predict", json=hotel_body).json()
        assert ans["model_name"] == "hotel_rates" and ans["label"] is None and ans["prediction"] > 1
        assert h.post("/predict", json=body).status_code == 400  # credit fields: not hotel's API


def test_monitor_and_portfolio_show_both_use_cases(
    services: dict[str, ServiceHandle],
    settings: Settings,
    credit: UseCaseSpec,
    trained: dict,
    credit_trained: dict,
) -> None:
    from monitoring.monitor import run_window
    from shipway.governance import portfolio

    rows = [request_body(credit, r) for _, r in future_bookings(settings, credit, 60).iterrows()]
    with httpx.Client(base_url=services[NAME].url, timeout=60) as c:
        assert c.post("/predict_batch", json=rows).status_code == 200
    now = datetime.now(UTC)
    window = run_window(settings, credit, now - timedelta(hours=2), now + timedelta(minutes=1))
    assert window.rows["served"] >= 30 and window.drift is not None

    statuses = {s.name: s for s in portfolio.collect(settings)}
    c_st, h_st = statuses[NAME], statuses["hotel_rates"]
    assert c_st.champion == str(credit_trained["version"]) and c_st.stage == "production"
    assert h_st.champion is not None
    for g in ("use_case_approval", "data_readiness", "model_validation", "production_readiness"):
        assert c_st.gate(g).state == "passed", (g, c_st.gate(g))
    assert c_st.drift is not None and c_st.drift.outcome == window.outcome
    assert c_st.kpi is not None and c_st.kpi.metric == "false_omission_rate"
    assert c_st.kpi.value is not None and c_st.kpi.beats_baseline  # approves fewer bad loans
    assert h_st.kpi is not None and h_st.kpi.metric == "mae" and h_st.kpi.value is not None
    assert c_st.lead_time_days is not None and c_st.lead_time_days > 0
    page = portfolio.write_report(settings, list(statuses.values()))
    html = page.read_text()
    assert NAME in html and "hotel_rates" in html and "data:image/png;base64," in html
    env = {
        **tool_env(),
        "SHIPWAY_STATE_DIR": str(settings.state),
        "SHIPWAY_DATA_DIR": str(settings.data),
        "COLUMNS": "200",
    }
    proc = subprocess.run(
        ["shipway", "status"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert NAME in proc.stdout and "hotel_rates" in proc.stdout and "A✓ D✓ M✓ P✓" in proc.stdout
