"""The real served app: `bentoml serve` as a subprocess on the session's stores and champion.

Proves the HTTP contract (status codes, field-level 400s, 404, 413, response content,
request ids, feedback, /metrics), the declared missing-feature policy, no training-serving
skew against the offline path, and that batch (endpoint and job) equals real time.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import psutil
import pytest

from shipway.core import modelframe
from shipway.core.launch import ServiceHandle
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.data.replay import future_bookings, request_body
from tests.conftest import require, tool_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(server: ServiceHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def bookings(settings: Settings, hotel: UseCaseSpec) -> pd.DataFrame:
    """Real bookings from after the training window (known agents and countries)."""
    return future_bookings(settings, hotel, 12)


@pytest.fixture(scope="module")
def body(hotel: UseCaseSpec, bookings: pd.DataFrame) -> dict[str, Any]:
    return request_body(hotel, bookings.iloc[0])


def test_health_endpoints(client: httpx.Client) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_a_predict_worker_loads_no_sklearn(
    server: ServiceHandle, client: httpx.Client, body: dict
) -> None:
    """The LightGBM champion is served from its serving form: the worker that answered
    has mapped LightGBM's C library but none of scikit-learn's, SciPy's or DuckDB's
    native modules (issue 15: about 125 MB less per worker)."""
    assert client.post("/predict", json=body).status_code == 200
    workers = [
        p
        for p in psutil.Process(server.proc.pid).children(recursive=True)
        if "_bentoml_impl.worker" in " ".join(p.cmdline())
    ]
    assert workers
    for w in workers:
        maps = Path(f"/proc/{w.pid}/maps").read_text()
        assert "lib_lightgbm" in maps
        for package in ("/sklearn/", "/scikit_learn.libs/", "/_duckdb", "/skops/"):
            assert package not in maps, f"worker {w.pid} mapped {package}"


def test_prediction_content(client: httpx.Client, body: dict, champion: dict) -> None:
    resp = client.post("/predict", json=body)
    assert resp.status_code == 200, resp.text
    ans = resp.json()
    assert ans["model_name"] == "hotel_rates"
    assert ans["model_version"] == champion["version"]
    assert ans["variant"] == "champion"
    assert 0 < ans["prediction"] < 1000  # an ADR in EUR, not a probability or garbage
    assert ans["missing_features"] == []
    assert ans["predicted_class"] is None and ans["label"] is None  # regression
    assert resp.headers["x-request-id"] == ans["request_id"]


def test_client_request_id_is_kept_and_logged(
    client: httpx.Client, body: dict, settings: Settings
) -> None:
    from shipway.core.predictionlog import PredictionLog

    resp = client.post("/predict", json=body, headers={"X-Request-ID": "demo-req-0001"})
    assert resp.status_code == 200
    assert resp.json()["request_id"] == "demo-req-0001"
    row = PredictionLog(settings.prediction_log).get("demo-req-0001")
    assert row is not None and row["entity_keys"] == {
        "agent": body["agent"],
        "country": body["country"],
    }
    assert row["prediction"] == pytest.approx(resp.json()["prediction"])
    assert row["features"]["lead_time"] == body["lead_time"]
    # reusing an id is a conflict, never a silent overwrite of the log
    again = client.post("/predict", json=body, headers={"X-Request-ID": "demo-req-0001"})
    assert again.status_code == 409
    bad = client.post("/predict", json=body, headers={"X-Request-ID": "x" * 200})
    assert bad.status_code == 400 and bad.json()["detail"][0]["loc"] == ["header", "X-Request-ID"]


@pytest.mark.parametrize(
    ("change", "loc", "kind"),
    [
        ({"lead_time": None}, "lead_time", "missing"),  # None -> the key is removed below
        ({"lead_time": "soon"}, "lead_time", "int_parsing"),
        ({"adults": 11}, "adults", "less_than_equal"),
        ({"historical_adr": -5.0}, "historical_adr", "greater_than_equal"),
        ({"meal": "pizza"}, "meal", "literal_error"),
        ({"agent": ""}, "agent", "string_too_short"),
        ({"room_upgrade": 1}, "room_upgrade", "extra_forbidden"),
    ],
)
def test_bad_input_gets_field_level_400(
    client: httpx.Client, body: dict, change: dict, loc: str, kind: str
) -> None:
    bad = {**body, **change}
    bad = {k: v for k, v in bad.items() if v is not None}
    resp = client.post("/predict", json=bad)
    assert resp.status_code == 400, resp.text
    detail = resp.json()["detail"]
    assert [d["type"] for d in detail if d["loc"] == [loc]] == [kind], detail


def test_malformed_json_is_400_and_unknown_route_404(client: httpx.Client) -> None:
    resp = client.post(
        "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert client.post("/nope", json={}).status_code == 404
    assert client.get("/predict").status_code in (404, 405)


def test_oversized_body_is_413(client: httpx.Client, body: dict) -> None:
    rows = [body] * 6000  # ~3 MiB of JSON, over the 1 MiB default
    resp = client.post("/predict_batch", json=rows)
    assert resp.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: streamed, still refused
        yield b"["
        for _ in range(6000):
            yield httpx.Request("POST", "/", json=body).content + b","
        yield b"{}]"

    assert client.post("/predict_batch", content=chunks()).status_code == 413


def test_auth_is_off_by_default(client: httpx.Client, body: dict) -> None:
    assert (
        client.post("/predict", json=body, headers={"Authorization": "Bearer x"}).status_code == 200
    )


def test_missing_entity_gets_declared_default_and_flag(
    client: httpx.Client, body: dict, hotel: UseCaseSpec, champion: dict, settings: Settings
) -> None:
    from shipway.core import registry
    from shipway.core.modelframe import model_frame

    unknown = {**body, "agent": "agent_never_seen_xyz"}
    resp = client.post("/predict", json=unknown)
    assert resp.status_code == 200, resp.text
    agent_feats = [a for ef in hotel.entity_features if ef.entity == "agent" for a in ef.aggregates]
    assert resp.json()["missing_features"] == [a.name for a in agent_feats]
    # the answer is the model's prediction with exactly the declared defaults filled in
    registry.connect(champion["uri"])
    model = registry.load(f"models:/hotel_rates/{champion['version']}")
    known = client.post("/predict", json=body).json()
    assert known["missing_features"] == []
    metrics = client.get("/metrics").text
    line = next(
        ln
        for ln in metrics.splitlines()
        if ln.startswith("shipway_missing_features_total") and 'entity="agent"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 1
    frame = pd.DataFrame([unknown])
    for a in agent_feats:
        frame[a.name] = a.default
    from feature_repo.store import feature_store, online_entity

    country = online_entity(feature_store(settings), hotel, "country", body["country"])
    for name, value in country.items():
        frame[name] = value
    expected = modelframe.predict(hotel, model, model_frame(hotel, frame))[0]
    assert resp.json()["prediction"] == pytest.approx(expected, rel=1e-9)


def test_no_training_serving_skew(
    client: httpx.Client,
    bookings: pd.DataFrame,
    hotel: UseCaseSpec,
    feast_store: Any,
    settings: Settings,
    champion: dict,
) -> None:
    """Served == offline: historical features at the materialized time, model_frame, predict."""
    from feature_repo.store import feature_end, historical
    from shipway.core import registry
    from shipway.core.modelframe import model_frame
    from shipway.data.readiness import EVENT_TS

    end = feature_end(hotel, settings.data)
    entity_df = bookings[hotel.entity_columns + hotel.request_field_names].copy()
    for k in hotel.entity_columns:
        entity_df[k] = entity_df[k].astype(str)
    entity_df[EVENT_TS] = pd.Timestamp(end)
    offline = historical(feast_store, hotel, entity_df)
    registry.connect(champion["uri"])
    model = registry.load(f"models:/hotel_rates/{champion['version']}")
    expected = modelframe.predict(hotel, model, model_frame(hotel, offline))
    served = [
        client.post("/predict", json=request_body(hotel, row)).json()
        for _, row in bookings.iterrows()
    ]
    assert all(s["missing_features"] == [] for s in served)
    np.testing.assert_allclose([s["prediction"] for s in served], expected, rtol=1e-9, atol=1e-9)


def test_batch_endpoint_equals_single_predictions(
    client: httpx.Client, bookings: pd.DataFrame, hotel: UseCaseSpec
) -> None:
    rows = [request_body(hotel, r) for _, r in bookings.iterrows()]
    batch = client.post("/predict_batch", json=rows)
    assert batch.status_code == 200, batch.text
    singles = [client.post("/predict", json=r).json()["prediction"] for r in rows]
    got = [a["prediction"] for a in batch.json()]
    np.testing.assert_allclose(got, singles, rtol=1e-12)
    ids = [a["request_id"] for a in batch.json()]
    assert len(set(ids)) == len(ids)
    # an empty batch is a valid call with nothing to score: 200 and no answers
    empty = client.post("/predict_batch", json=[])
    assert (empty.status_code, empty.json()) == (200, []), empty.text


def test_batch_job_equals_real_time(
    client: httpx.Client,
    bookings: pd.DataFrame,
    hotel: UseCaseSpec,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """The streamed job (tiny chunks, CSV and Parquet) answers exactly what /predict does."""
    from services.batch import run

    rows = [request_body(hotel, r) for _, r in bookings.iterrows()]
    rows.append({**rows[0], "country": "country_never_seen"})
    realtime = [client.post("/predict", json=r).json() for r in rows]
    frame = pd.DataFrame(rows)
    frame.to_parquet(tmp_path / "in.parquet")
    frame.to_csv(tmp_path / "in.csv", index=False)
    for name in ("in.parquet", "in.csv"):
        out = tmp_path / f"{name}.out.parquet"
        res = run(settings, hotel, tmp_path / name, out, chunk_rows=5, progress=False)
        assert res.rows == len(rows)
        got = pd.read_parquet(out)
        assert list(got["agent"]) == [r["agent"] for r in rows]
        np.testing.assert_allclose(
            got["prediction"], [r["prediction"] for r in realtime], rtol=1e-12
        )
        assert [list(m) for m in got["missing_features"]] == [
            r["missing_features"] for r in realtime
        ]
        assert set(got["model_version"]) == {realtime[0]["model_version"]}


def test_feedback(client: httpx.Client, body: dict, settings: Settings) -> None:
    from shipway.core.predictionlog import PredictionLog

    rid = client.post("/predict", json=body).json()["request_id"]
    ok = client.post("/feedback", json={"request_id": rid, "actual": 123.4})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {
        "request_id": rid,
        "recorded": True,
        "status": "recorded",
        "revision": 1,
        "actual": 123.4,
    }
    window = PredictionLog(settings.prediction_log).window("hotel_rates")
    assert window.set_index("request_id").loc[rid, "actual"] == pytest.approx(123.4)
    unknown = client.post("/feedback", json={"request_id": "no-such-id", "actual": 1.0})
    assert unknown.status_code == 404
    assert client.post("/feedback", json={"request_id": rid}).status_code == 400


def test_metrics_follow_the_contract(
    client: httpx.Client, body: dict, champion: dict, hotel: UseCaseSpec
) -> None:
    from shipway.core.metrics_contract import CONTRACT, Exporter

    client.post("/predict", json=body)
    client.post("/predict", json={**body, "adults": 99})  # a 400, counted by status
    text = client.get("/metrics").text
    names = {
        ln.split("{")[0].split(" ")[0] for ln in text.splitlines() if ln.startswith("shipway_")
    }
    for m in CONTRACT:
        if m.exporter is Exporter.service and m.name != "shipway_missing_features_total":
            assert set(m.series_names) & names, f"{m.name} not exported"
    assert (
        f'shipway_model_info{{model_name="hotel_rates",model_version="{champion["version"]}",'
        'usecase="hotel_rates",variant="champion"} 1.0'
    ) in text
    assert 'shipway_requests_total{endpoint="/predict",status="200",usecase="hotel_rates"}' in text
    assert 'shipway_requests_total{endpoint="/predict",status="400",usecase="hotel_rates"}' in text
    budget = hotel.acceptance.latency_p99_ms / 1000
    assert f'shipway_latency_budget_seconds{{usecase="hotel_rates"}} {budget}' in text
    assert "pid=" not in "".join(ln for ln in text.splitlines() if ln.startswith("shipway_"))


def test_openapi_documents_the_spec_fields(client: httpx.Client) -> None:
    doc = client.get("/docs.json").json()
    schemas = doc["components"]["schemas"]
    req = next(v for k, v in schemas.items() if k.startswith("HotelRatesRequest"))
    assert req["properties"]["lead_time"]["description"] == "Days between booking and arrival."
    assert req["properties"]["lead_time"]["examples"] == [120]
    assert req["properties"]["adults"]["maximum"] == 10
    assert "online_travel_agent" in req["properties"]["market_segment"]["enum"]
    assert set(req["required"]) >= {"agent", "country", "lead_time"}


def test_bentoml_build_makes_a_bento_offline(tmp_path: Path) -> None:
    """`bentoml build` packs the service from services/bentofile.yaml with no network:
    requirements come from the committed lock (lock_packages: false), models are not baked."""
    import subprocess

    bentoml = shutil.which("bentoml", path=tool_env()["PATH"])
    require(bentoml is not None, "bentoml CLI missing")
    env = {**tool_env(), "BENTOML_HOME": str(tmp_path), "BENTOML_DO_NOT_TRACK": "true"}
    proc = subprocess.run(
        [str(bentoml), "build", "-f", "services/bentofile.yaml", "."],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bentos = list((tmp_path / "bentos" / "shipway-prediction").glob("*/bento.yaml"))
    assert len(bentos) == 1
    src = bentos[0].parent / "src"
    for rel in (
        "services/prediction.py",
        "usecases/hotel_rates/usecase.yaml",
        "feature_repo/store.py",
    ):
        assert (src / rel).is_file(), rel
    assert not list(src.glob("data/**/*.parquet")) and not (src / "tests").exists()
    assert "services.prediction:PredictionService" in bentos[0].read_text()
