"""The Open Inference Protocol (KServe V2 REST) through real clients written elsewhere.

`bentoml serve` runs on the session's stores and champion (the ``champion`` fixture of
test_service: no second training); two clients installed from PyPI talk to it as they
would to KServe or Triton: ``tritonclient.http`` (JSON tensors, ``binary_data=False``)
and the KServe SDK's ``InferenceRESTClient``. Both build their tensors from the served
model metadata, get the same predictions as ``/predict`` for the same bookings, and
every bad tensor (wrong datatype, wrong shape, missing or unknown input, a category the
spec does not allow) is a 400 with the protocol's error body naming the input. The
answered rows are in the prediction log under the request's id, and the shipway_
metrics count the infer route and its predictions.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from shipway.core.launch import ServiceHandle
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.data.replay import future_bookings, request_body

pytestmark = pytest.mark.integration

ROWS = 6
NUMPY = {"BYTES": np.object_, "INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_}
INFER = "/v2/models/{model_name}/infer"


@pytest.fixture(scope="module")
def served(server: ServiceHandle) -> ServiceHandle:
    """test_service's `bentoml serve` of the champion, started for this module."""
    return server


@pytest.fixture(scope="module")
def bodies(settings: Settings, hotel: UseCaseSpec) -> list[dict[str, Any]]:
    """/predict bodies of real bookings from after the training window."""
    rows: pd.DataFrame = future_bookings(settings, hotel, ROWS)
    return [request_body(hotel, rows.iloc[i]) for i in range(ROWS)]


@pytest.fixture(scope="module")
def expected(served: ServiceHandle, bodies: list[dict[str, Any]]) -> list[float]:
    """What /predict answers for the same bookings."""
    with httpx.Client(base_url=served.url, timeout=60) as client:
        answers = [client.post("/predict", json=b) for b in bodies]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return [a.json()["prediction"] for a in answers]


@pytest.fixture(scope="module")
def triton(served: ServiceHandle) -> Iterator[Any]:
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(
        served.url.removeprefix("http://"), network_timeout=60
    )
    yield client
    client.close()


def _columns(metadata: dict[str, Any], bodies: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """One numpy column per model input, typed as the metadata says."""
    return {
        t["name"]: np.array([b[t["name"]] for b in bodies], dtype=NUMPY[t["datatype"]])
        for t in metadata["inputs"]
    }


def _triton_inputs(metadata: dict[str, Any], columns: dict[str, np.ndarray]) -> list[Any]:
    import tritonclient.http as triton_http

    dtypes = {t["name"]: t["datatype"] for t in metadata["inputs"]}
    inputs = []
    for name, values in columns.items():
        tensor = triton_http.InferInput(name, list(values.shape), dtypes.get(name, "BYTES"))
        tensor.set_data_from_numpy(values, binary_data=False)
        inputs.append(tensor)
    return inputs


def _triton_outputs(names: list[str]) -> list[Any]:
    import tritonclient.http as triton_http

    return [triton_http.InferRequestedOutput(n, binary_data=False) for n in names]


def test_health_and_metadata_through_tritonclient(
    triton: Any,
    hotel: UseCaseSpec,
    champion: dict[str, str],
) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready(hotel.name)
    assert triton.is_model_ready(hotel.name, champion["version"])
    assert not triton.is_model_ready("no_such_model")
    info = triton.get_server_metadata()
    assert info["name"] == "shipway" and info["extensions"] == []
    meta = triton.get_model_metadata(hotel.name)
    assert meta["name"] == hotel.name and meta["versions"] == [champion["version"]]
    inputs = {t["name"]: t["datatype"] for t in meta["inputs"]}
    assert list(inputs) == [e.name for e in hotel.entities] + hotel.request_field_names
    assert inputs["agent"] == "BYTES" and inputs["meal"] == "BYTES"
    assert inputs["lead_time"] == "INT64" and inputs["historical_adr"] == "FP64"
    assert all(t["shape"] == [-1] for t in meta["inputs"])
    assert {t["name"] for t in meta["outputs"]} >= {"prediction", "request_id", "model_version"}


def test_tritonclient_gets_the_predictions_of_predict(
    triton: Any,
    settings: Settings,
    hotel: UseCaseSpec,
    bodies: list[dict[str, Any]],
    expected: list[float],
    champion: dict[str, str],
) -> None:
    from shipway.core.predictionlog import PredictionLog

    meta = triton.get_model_metadata(hotel.name)
    inputs = _triton_inputs(meta, _columns(meta, bodies))
    wanted = ["prediction", "request_id", "model_version"]
    result = triton.infer(
        hotel.name, inputs, outputs=_triton_outputs(wanted), request_id="triton-req-1"
    )
    got = result.as_numpy("prediction")
    assert got.shape == (ROWS,) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    ids = [v.decode() if isinstance(v, bytes) else str(v) for v in result.as_numpy("request_id")]
    assert ids == [f"triton-req-1.{i}" for i in range(ROWS)]
    versions = {
        v.decode() if isinstance(v, bytes) else str(v) for v in result.as_numpy("model_version")
    }
    assert versions == {champion["version"]}
    response = result.get_response()
    assert response["id"] == "triton-req-1" and response["model_version"] == champion["version"]
    # every answered row is in the prediction log, tied back by its id
    plog = PredictionLog(settings.prediction_log)
    for i, rid in enumerate(ids):
        row = plog.get(rid)
        assert row is not None, rid
        assert row["prediction"] == pytest.approx(expected[i])
        assert row["entity_keys"] == {"agent": bodies[i]["agent"], "country": bodies[i]["country"]}
    # the version route forces that version; [N, 1] tensors are N rows too
    column = {k: v.reshape(-1, 1) for k, v in _columns(meta, bodies[:2]).items()}
    one = triton.infer(
        hotel.name,
        _triton_inputs(meta, column),
        model_version=champion["version"],
        outputs=_triton_outputs(["prediction"]),
    )
    np.testing.assert_allclose(one.as_numpy("prediction"), expected[:2], rtol=1e-9)


def test_kserve_client_gets_the_predictions_of_predict(
    served: ServiceHandle,
    hotel: UseCaseSpec,
    bodies: list[dict[str, Any]],
    expected: list[float],
    champion: dict[str, str],
) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    async def run() -> tuple[Any, bool, bool, bool]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
        try:
            live = await client.is_server_live(served.url)
            ready = await client.is_server_ready(served.url)
            model_ready = await client.is_model_ready(served.url, hotel.name)
            meta = httpx.get(f"{served.url}/v2/models/{hotel.name}", timeout=60).json()
            tensors = []
            for name, values in _columns(meta, bodies).items():
                datatype = next(t["datatype"] for t in meta["inputs"] if t["name"] == name)
                tensor = InferInput(name, list(values.shape), datatype)
                tensor.set_data_from_numpy(values, binary_data=False)
                tensors.append(tensor)
            request = InferRequest(hotel.name, tensors, request_id="kserve-req-1")
            answer = await client.infer(served.url, request, model_name=hotel.name)
            return answer, live, ready, model_ready
        finally:
            await client.close()

    answer, live, ready, model_ready = asyncio.run(run())
    assert live and ready and model_ready
    outputs = {o.name: o for o in answer.outputs}
    np.testing.assert_allclose(outputs["prediction"].as_numpy(), expected, rtol=1e-9)
    assert answer.id == "kserve-req-1" and answer.model_name == hotel.name
    assert [str(v) for v in outputs["request_id"].as_numpy()] == [
        f"kserve-req-1.{i}" for i in range(ROWS)
    ]
    assert {str(v) for v in outputs["variant"].as_numpy()} == {"champion"}
    assert answer.parameters["model_versions"] == champion["version"]


def _bad(body: dict[str, Any], meta: dict[str, Any], case: str) -> list[dict[str, Any]]:
    """The JSON input tensors of one booking, spoiled as ``case`` says."""
    tensors = [
        {"name": t["name"], "shape": [1], "datatype": t["datatype"], "data": [body[t["name"]]]}
        for t in meta["inputs"]
    ]
    by_name = {t["name"]: t for t in tensors}
    if case == "wrong datatype":
        by_name["lead_time"].update(datatype="FP64", data=[float(body["lead_time"])])
    elif case == "wrong shape":
        by_name["lead_time"]["shape"] = [2]
    elif case == "rows disagree":
        by_name["lead_time"].update(shape=[2], data=[body["lead_time"]] * 2)
    elif case == "missing input":
        tensors.remove(by_name["lead_time"])
    elif case == "unknown input":
        tensors.append({"name": "room_upgrade", "shape": [1], "datatype": "INT64", "data": [1]})
    elif case == "bad category":
        by_name["meal"]["data"] = ["pizza"]
    elif case == "out of range":
        by_name["adults"]["data"] = [99]
    return tensors


BAD_CASES = {
    "wrong datatype": "lead_time",
    "wrong shape": "lead_time",
    "rows disagree": "lead_time",
    "missing input": "lead_time",
    "unknown input": "room_upgrade",
    "bad category": "meal",
    "out of range": "adults",
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_tensors_get_400_with_the_oip_error_body(
    served: ServiceHandle, triton: Any, hotel: UseCaseSpec, bodies: list[dict[str, Any]], case: str
) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from tritonclient.utils import InferenceServerException

    meta = triton.get_model_metadata(hotel.name)
    tensors = _bad(bodies[0], meta, case)
    field = BAD_CASES[case]
    raw = httpx.post(
        f"{served.url}/v2/models/{hotel.name}/infer", json={"inputs": tensors}, timeout=60
    )
    assert raw.status_code == 400, (case, raw.text)
    assert raw.headers["content-type"] == "application/json"
    assert set(raw.json()) == {"error"} and field in raw.json()["error"], raw.json()
    # tritonclient: its own JSON tensors, the server's status and message in its exception
    import tritonclient.http as triton_http

    inputs = []
    for t in tensors:
        tensor = triton_http.InferInput(t["name"], t["shape"], t["datatype"])
        tensor._data = t["data"]  # as sent above: a spoilt shape cannot come from numpy
        inputs.append(tensor)
    with pytest.raises(InferenceServerException) as err:
        triton.infer(hotel.name, inputs, outputs=_triton_outputs(["prediction"]))
    assert err.value.status() == "400" and field in err.value.message()

    async def kserve_call() -> httpx.Response:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
        try:
            request = InferRequest(
                hotel.name,
                [InferInput(t["name"], t["shape"], t["datatype"], t["data"]) for t in tensors],
            )
            with pytest.raises(httpx.HTTPStatusError) as failed:
                await client.infer(served.url, request, model_name=hotel.name)
            return failed.value.response
        finally:
            await client.close()

    response = asyncio.run(kserve_call())
    assert response.status_code == 400 and field in response.json()["error"]


def test_unknown_model_or_version_is_404_and_metrics_count_the_route(
    served: ServiceHandle, triton: Any, hotel: UseCaseSpec, bodies: list[dict[str, Any]]
) -> None:
    meta = triton.get_model_metadata(hotel.name)
    tensors = _bad(bodies[0], meta, "none")
    with httpx.Client(base_url=served.url, timeout=60) as client:
        for path in ("/v2/models/nope/infer", f"/v2/models/{hotel.name}/versions/999999/infer"):
            resp = client.post(path, json={"inputs": tensors})
            assert resp.status_code == 404 and set(resp.json()) == {"error"}, resp.text
        assert client.get("/v2/models/nope").status_code == 404
        ok = client.post(
            f"/v2/models/{hotel.name}/infer", json={"inputs": tensors, "id": "oip-one"}
        )
        assert ok.status_code == 200, ok.text
        again = client.post(
            f"/v2/models/{hotel.name}/infer", json={"inputs": tensors, "id": "oip-one"}
        )
        assert again.status_code == 409 and "oip-one" in again.json()["error"]
        notjson = client.post(
            f"/v2/models/{hotel.name}/infer", content=b"x", headers={"Content-Type": "text/plain"}
        )
        assert notjson.status_code == 415
        text = client.get("/metrics").text
        doc = client.get("/docs.json").json()
    for status in ("200", "400", "404", "409"):
        assert re.search(
            rf'shipway_requests_total{{endpoint="{re.escape(INFER)}",status="{status}",'
            r'usecase="hotel_rates"} [1-9]',
            text,
        ), status
    assert re.search(r'shipway_predictions_total\{[^}]*variant="champion"\} [1-9]', text)
    assert {INFER, "/v2/health/ready", "/v2/models/{model_name}", "/v2"} <= set(doc["paths"])
    assert {"400", "404", "415"} <= set(doc["paths"][INFER]["post"]["responses"])


def test_the_readme_example_answers(served: ServiceHandle, hotel: UseCaseSpec) -> None:
    """The curl example of README's OIP section, sent as written."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Open Inference Protocol") :]
    body = section[section.index("-d '") + 4 :]
    body = body[: body.index("'")]
    resp = httpx.post(
        f"{served.url}/v2/models/{hotel.name}/infer",
        content=body.encode(),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    outputs = {o["name"]: o["data"] for o in resp.json()["outputs"]}
    assert 0 < outputs["prediction"][0] < 1000 and outputs["request_id"] == ["oip-demo-1"]
