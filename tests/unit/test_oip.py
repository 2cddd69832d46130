"""The Open Inference Protocol's parts that need no server: tensors to validated rows (the
same rows /predict scores), the errors naming the input, ids, metadata, outputs and the
route templates the metrics use. The real server and real clients: tests/integration/test_oip.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.batcher import Coalescer
from services.models import ModelSet, ServedModel
from services.oip import INFER_ROUTES, inline_schema, route_template
from services.oiptensors import (
    InferenceRequest,
    RequestInput,
    RequestOutput,
    TensorError,
    model_metadata,
    response_outputs,
    row_ids,
    tensor_rows,
)
from services.schema import api_types
from shipway.core.spec import UseCaseSpec, load_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    return load_spec(ROOT / "usecases" / "hotel_rates" / "usecase.yaml")


def _body(spec: UseCaseSpec, i: int = 0) -> dict[str, Any]:
    row: dict[str, Any] = {"agent": f"a{i}", "country": "prt"}
    row.update({c.name: c.example for c in spec.request_fields})
    row["lead_time"] = 10 + i
    return row


def _tensors(
    spec: UseCaseSpec, bodies: list[dict[str, Any]], nested: bool = False
) -> list[RequestInput]:
    meta = model_metadata(spec, ModelSet(ServedModel("m", "3", "champion", None, 0.0)))
    out = []
    for t in meta.inputs:
        data: list[Any] = [b[t.name] for b in bodies]
        shape = [len(data), 1] if nested else [len(data)]
        out.append(
            RequestInput(
                name=t.name,
                shape=shape,
                datatype=t.datatype,  # type: ignore[arg-type]
                data=[[v] for v in data] if nested else data,
            )
        )
    return out


@pytest.mark.parametrize("nested", [False, True])
def test_tensors_become_the_rows_predict_scores(spec: UseCaseSpec, nested: bool) -> None:
    row = api_types(spec).row
    bodies = [_body(spec, i) for i in range(3)]
    rows = tensor_rows(spec, row, _tensors(spec, bodies, nested))
    assert rows == [row.model_validate(b).model_dump() for b in bodies]


def _spoilt(spec: UseCaseSpec, name: str, **change: Any) -> list[RequestInput]:
    tensors = _tensors(spec, [_body(spec)])
    return [t.model_copy(update=change) if t.name == name else t for t in tensors]


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda s: _spoilt(s, "lead_time", datatype="FP64", data=[1.0]), ["'lead_time'", "INT64"]),
        (lambda s: _spoilt(s, "agent", datatype="INT64", data=[5]), ["'agent'", "BYTES"]),
        (lambda s: _spoilt(s, "lead_time", shape=[2]), ["'lead_time'", "shape [2]"]),
        (lambda s: _spoilt(s, "lead_time", shape=[1, 2]), ["'lead_time'", "[N, 1]"]),
        (lambda s: _spoilt(s, "lead_time", shape=[0], data=[]), ["'lead_time'", "no rows"]),
        (lambda s: _spoilt(s, "lead_time", shape=[2], data=[1, 2]), ["'lead_time'", "2 rows"]),
        (lambda s: _spoilt(s, "lead_time", data=[[1, 2]]), ["'lead_time'", "scalars"]),
        (lambda s: _spoilt(s, "lead_time", data=["soon"]), ["'lead_time'", "row 0", "integer"]),
        (lambda s: _spoilt(s, "lead_time", data=[True]), ["'lead_time'", "integer"]),
        (lambda s: _spoilt(s, "meal", data=["pizza"]), ["'meal'", "row 0"]),
        (lambda s: _spoilt(s, "adults", data=[99]), ["'adults'", "less than or equal"]),
        (lambda s: _spoilt(s, "historical_adr", data=[float("nan")]), ["'historical_adr'"]),
        (
            lambda s: _spoilt(s, "lead_time", parameters={"binary_data_size": 8}),
            ["'lead_time'", "binary"],
        ),
        (lambda s: [t for t in _tensors(s, [_body(s)]) if t.name != "meal"], ["'meal'", "missing"]),
        (
            lambda s: [
                *_tensors(s, [_body(s)]),
                RequestInput(name="room_upgrade", shape=[1], datatype="INT64", data=[1]),
            ],
            ["'room_upgrade'", "unknown"],
        ),
        (lambda s: [*_tensors(s, [_body(s)])] * 2, ["'agent'", "more than once"]),
    ],
)
def test_bad_tensors_name_the_input(spec: UseCaseSpec, make: Any, words: list[str]) -> None:
    with pytest.raises(TensorError) as err:
        tensor_rows(spec, api_types(spec).row, make(spec))
    assert err.value.status == 400
    for w in words:
        assert w in str(err.value), (w, str(err.value))
    assert "pizza" not in str(err.value) and "soon" not in str(err.value)  # never the value


def test_request_envelope_is_strict() -> None:
    ok = {"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}
    assert InferenceRequest.model_validate(ok).id == ""
    for bad in (
        {},
        {"inputs": []},
        {**ok, "extra": 1},
        {**ok, "id": "has space"},
        {"inputs": [{**ok["inputs"][0], "datatype": "STRING"}]},
        {"inputs": [{**ok["inputs"][0], "shape": [1, 1, 1]}]},
    ):
        with pytest.raises(ValueError):
            InferenceRequest.model_validate(bad)


def test_row_ids_tie_rows_to_the_request() -> None:
    assert row_ids("req-1", 1) == ["req-1"]
    assert row_ids("req-1", 3) == ["req-1.0", "req-1.1", "req-1.2"]
    with pytest.raises(TensorError, match="id"):
        row_ids("x" * 56, 2)


def test_metadata_outputs_and_routes(spec: UseCaseSpec) -> None:
    champ = ServedModel("hotel_rates", "3", "champion", None, 0.0)
    chall = ServedModel("hotel_rates", "4", "challenger", None, 0.0)
    meta = model_metadata(spec, ModelSet(champ, chall))
    assert meta.name == spec.name and meta.versions == ["3", "4"]
    types = {t.name: t.datatype for t in meta.inputs}
    assert types["agent"] == "BYTES" and types["lead_time"] == "INT64"
    assert types["historical_adr"] == "FP64" and types["meal"] == "BYTES"
    answer = {
        "request_id": "r",
        "model_version": "3",
        "variant": "champion",
        "prediction": 1.5,
        "predicted_class": None,
        "label": None,
        "missing_features": ["agent_adr_mean_90d"],
    }
    outs = {o.name: o for o in response_outputs(spec, [answer, answer], [])}
    assert "label" not in outs  # a regression answers no class
    assert outs["prediction"].data == [1.5, 1.5] and outs["prediction"].shape == [2]
    assert outs["missing_features"].data == ["agent_adr_mean_90d"] * 2
    picked = response_outputs(spec, [answer], [RequestOutput(name="request_id")])
    assert [o.name for o in picked] == ["request_id"]
    with pytest.raises(TensorError, match="unknown output 'nope'"):
        response_outputs(spec, [answer], [RequestOutput(name="nope")])
    assert route_template("/v2/models/hotel_rates/infer") == INFER_ROUTES[0]
    assert route_template("/v2/models/x/versions/3/infer") == INFER_ROUTES[1]
    assert route_template("/v2/models/x/versions/3/ready").endswith("/ready")  # type: ignore[union-attr]
    assert route_template("/v2") == "/v2" and route_template("/v2/nope/x") is None
    assert route_template("/predict") is None
    assert "$ref" not in str(inline_schema(InferenceRequest))


def test_submit_all_keeps_order_and_exceptions() -> None:
    def score(items: Any) -> list[Any]:
        return [ValueError(i) if i < 0 else i * 2 for i in items]

    async def run() -> tuple[list[Any], list[Any]]:
        c: Coalescer[int, int] = Coalescer(score, max_batch=2)
        return await c.submit_all([1, -1, 3]), await c.submit_all([-2])

    many, one = asyncio.run(run())
    assert many[0] == 2 and isinstance(many[1], ValueError) and many[2] == 6
    assert isinstance(one[0], ValueError)


def test_guard_protects_and_labels_the_oip_routes(spec: UseCaseSpec) -> None:
    """Infer needs the token like /predict; metrics label routes by template (no model
    names or versions as label values); an unroutable /v2 path gets the JSON 404."""
    from prometheus_client import CollectorRegistry, generate_latest

    from services.metrics import ServiceMetrics
    from services.middleware import GuardMiddleware

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    reg = CollectorRegistry()
    app = GuardMiddleware(echo, metrics=ServiceMetrics(spec, reg), token="tok", max_body_bytes=100)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.post("/v2/models/x/infer", content=b"{}")).status_code == 401
            auth = {"Authorization": "Bearer tok"}
            ok = await c.post("/v2/models/x/versions/7/infer", content=b"{}", headers=auth)
            assert ok.status_code == 200
            text = await c.post(
                "/v2/models/x/infer", content=b"{}", headers={**auth, "Content-Type": "text/plain"}
            )
            assert text.status_code == 415
            assert (await c.get("/v2/models/x")).status_code == 200  # metadata: unprotected
            for odd in ("/v2/models/a%0Ab", "/v2/nope"):
                resp = await c.get(odd)
                assert resp.status_code == 404 and set(resp.json()) == {"error"}

    asyncio.run(main())
    text = generate_latest(reg).decode()
    assert 'endpoint="/v2/models/{model_name}/infer",status="401"' in text
    assert 'endpoint="/v2/models/{model_name}/versions/{model_version}/infer",status="200"' in text
    assert 'endpoint="other",status="404"' in text and "models/x" not in text


def test_classification_nullable_and_boolean_fields() -> None:
    """Another task and the dtypes hotel_rates lacks: credit_risk (binary classification,
    nullable fields) plus a boolean field: BOOL tensors, JSON null or an omitted tensor
    for a nullable field, null refused where the field is not nullable, and the class
    outputs."""
    from shipway.core.spec import Column, DType

    spec = load_spec(ROOT / "usecases" / "credit_risk" / "usecase.yaml")
    spec = spec.model_copy(
        update={"request_fields": [*spec.request_fields, Column(name="vip", dtype=DType.bool)]}
    )
    row = api_types(spec).row
    meta = model_metadata(spec, ModelSet(ServedModel("credit_risk", "1", "champion", None, 0.0)))
    types = {t.name: t.datatype for t in meta.inputs}
    assert types["vip"] == "BOOL" and types["income"] == "FP64" and types["job"] == "BYTES"
    assert {"predicted_class", "label"} <= {t.name for t in meta.outputs}
    body: dict[str, Any] = {"job": "fixed", "home": "owner", "vip": True}
    body.update({c.name: c.example for c in spec.request_fields if c.example is not None})
    body["income"] = None

    def tensors(values: dict[str, Any]) -> list[RequestInput]:
        return [
            RequestInput(name=n, shape=[1], datatype=types[n], data=[v])  # type: ignore[arg-type]
            for n, v in values.items()
        ]

    rows = tensor_rows(spec, row, tensors(body))
    assert rows[0]["vip"] is True and rows[0]["income"] is None
    no_marital = {k: v for k, v in body.items() if k != "marital"}
    assert tensor_rows(spec, row, tensors(no_marital))[0]["marital"] is None
    as_int = [
        t.model_copy(update={"datatype": "INT64"}) if t.name == "vip" else t for t in tensors(body)
    ]
    with pytest.raises(TensorError, match=r"'vip'.*takes BOOL"):
        tensor_rows(spec, row, as_int)
    with pytest.raises(TensorError, match="'age', row 0"):
        tensor_rows(spec, row, tensors({**body, "age": None}))
    answer = {
        "request_id": "r",
        "model_version": "1",
        "variant": "champion",
        "prediction": 0.7,
        "predicted_class": 1,
        "label": "bad",
        "missing_features": [],
    }
    outs = {o.name: o for o in response_outputs(spec, [answer], [])}
    assert outs["predicted_class"].datatype == "INT64" and outs["predicted_class"].data == [1]
    assert outs["label"].data == ["bad"] and outs["missing_features"].data == [""]
