"""Cluster-mode configuration for real: Feast (PostgreSQL SQL registry + Redis online store),
MLflow tracking/registry on PostgreSQL, the prediction log on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from feature_repo.store import apply, feature_store, historical, materialize, online
from shipway.core.predictionlog import PredictionLog, PredictionRecord
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from tests.pgdb import create_database, sa_url

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster_settings(
    repo_data: Path, redis_url: str, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    create_database(postgres_url, "feast")
    env = {
        "SHIPWAY_FEAST_REGISTRY_PATH": sa_url(postgres_url, "feast"),
        "SHIPWAY_FEAST_REDIS_CONNECTION": redis_url,
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield Settings(
        root=repo_data.parent,
        data_dir=repo_data,
        environment="cluster",
        state_dir=tmp_path_factory.mktemp("cluster"),
    )
    for k, v in old.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def test_feast_on_postgres_registry_and_redis_online_store(
    cluster_settings: Settings, hotel: UseCaseSpec, events: pd.DataFrame
) -> None:
    store = feature_store(cluster_settings)
    assert store.config.online_store.type == "redis"
    assert store.config.registry.registry_type == "sql"
    apply(store, [hotel], cluster_settings.data)
    end = materialize(store, hotel, cluster_settings.data)
    # a second client sees the objects: the registry lives in PostgreSQL, not in memory
    again = feature_store(cluster_settings)
    assert again.get_feature_service(hotel.feature_service_name).name == "hotel_rates_v1"
    base = events.iloc[-1]
    agents = events["agent"].value_counts().index[:4].tolist()
    rows = [
        {**{c: base[c] for c in hotel.request_field_names}, "agent": a, "country": base["country"]}
        for a in agents
    ]
    rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in rows]
    onl = online(again, hotel, rows)
    entity_df = pd.DataFrame(rows).assign(event_timestamp=pd.Timestamp(end))
    off = historical(again, hotel, entity_df)
    for name in hotel.stored_feature_names:
        assert onl[name].tolist() == pytest.approx(off[name].tolist()), name
    assert onl["agent_bookings_365d"].notna().all()


def test_mlflow_registry_on_postgres(
    postgres_url: str, repo_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from pipelines.runner import run_in_process
    from shipway.core import registry
    from shipway.core.usecases import load_usecase
    from shipway.governance.trail import trail_for

    create_database(postgres_url, "mlflow")
    state = tmp_path_factory.mktemp("mlflow-pg")
    s = Settings(
        root=repo_data.parent,
        data_dir=repo_data,
        state_dir=state,
        mlflow_tracking_uri=sa_url(postgres_url, "mlflow"),
    )
    spec = load_usecase("hotel_rates", s)
    store = feature_store(s)  # promotion needs production readiness, whose smoke serves
    apply(store, [spec], s.data)
    materialize(store, spec, s.data)
    res = run_in_process(s, "hotel_rates", "HEAD", state / "w")
    assert res["gate_passed"], res["failures"]
    client = registry.connect(s.tracking_uri)
    champ = registry.alias_version(client, "hotel_rates", registry.CHAMPION)
    assert champ is not None and str(champ.version) == str(res["version"]), res
    promo = trail_for(s, "hotel_rates").latest("promotion", version=str(res["version"]))
    assert promo is not None and promo["facts"]["lock"] == "postgresql-advisory"
    assert champ.tags["data_version"] == res["data_version"]
    model = registry.load(f"models:/hotel_rates@{registry.CHAMPION}")
    assert hasattr(model, "predict")


def test_prediction_log_on_postgres(postgres_url: str) -> None:
    create_database(postgres_url, "predlog")
    log = PredictionLog(sa_url(postgres_url, "predlog"))
    recs = [
        PredictionRecord(
            request_id=f"r{i}",
            usecase="hotel_rates",
            model_name="hotel_rates",
            model_version="1",
            variant="champion",
            entity_keys={"agent": f"a{i % 3}"},
            features={"lead_time": i},
            prediction=float(i),
            latency_ms=1.0,
        )
        for i in range(30)
    ]
    log.append(recs)
    assert log.count("hotel_rates") == 30
    assert log.add_feedback("hotel_rates", "r3", 10.0)
    assert not log.add_feedback("hotel_rates", "missing", 1.0)
    w = log.window("hotel_rates")
    assert len(w) == 30 and w.set_index("request_id").loc["r3", "actual"] == 10.0
    gone = log.delete("hotel_rates", entity=("agent", "a0"))
    assert gone == {"predictions": 10, "feedback": 1}
    assert log.count("hotel_rates") == 20


def test_explanations_migrate_into_an_older_log_on_postgres(postgres_url: str) -> None:
    """A PostgreSQL log created before explanations existed gains the nullable column when
    opened; its rows read back unchanged, and an explained prediction is stored whole."""
    import sqlalchemy as sa

    create_database(postgres_url, "predlog_old")
    url = sa_url(postgres_url, "predlog_old")
    old = sa.create_engine(url)
    with old.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE predictions (request_id VARCHAR(64) PRIMARY KEY, ts TIMESTAMPTZ "
            "NOT NULL, usecase VARCHAR(64) NOT NULL, model_name VARCHAR(128) NOT NULL, "
            "model_version VARCHAR(32) NOT NULL, variant VARCHAR(16) NOT NULL, mode "
            "VARCHAR(16) NOT NULL, entity_keys TEXT NOT NULL, features TEXT NOT NULL, missing "
            "TEXT NOT NULL, prediction FLOAT NOT NULL, label VARCHAR(64), event_time "
            "TIMESTAMPTZ, latency_ms FLOAT NOT NULL)"
        )
        conn.exec_driver_sql(
            "INSERT INTO predictions VALUES ('old-1', now(), 'hotel_rates', 'hotel_rates', '1', "
            "'champion', 'served', '{}', '{\"lead_time\": 3}', '[]', 99.5, NULL, NULL, 1.0)"
        )
    old.dispose()
    log = PredictionLog(url)
    row = log.get("old-1")
    assert row is not None and row["prediction"] == 99.5 and row["explanation"] is None
    why = {"method": "linear_exact", "base_value": 1.0, "contributions": {"lead_time": 2.0}}
    log.append(
        [
            PredictionRecord(
                request_id="new-1",
                usecase="hotel_rates",
                model_name="hotel_rates",
                model_version="1",
                variant="champion",
                entity_keys={},
                features={"lead_time": 4},
                prediction=3.0,
                latency_ms=1.0,
                explanation=why,
            )
        ]
    )
    assert PredictionLog(url).get("new-1")["explanation"] == why  # type: ignore[index]
    assert [r["request_id"] for r in log.explained("hotel_rates", "hotel_rates", "1")] == ["new-1"]
