"""The /explain API types and answer, generated from the spec (issue 17, point 1):
``top`` is bounded by the spec's feature count and refused by name otherwise, and the
answer's listed contributions plus ``remainder`` always make the output."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.explanation import ExplainTypes, explain_types, why
from services.schema import api_types
from shipway.core.explain import Explanation
from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase

Types = tuple[UseCaseSpec, ExplainTypes]


@pytest.fixture(scope="module")
def types() -> Types:
    spec = load_usecase("hotel_rates")
    api = api_types(spec)
    return spec, explain_types(spec, api.row, api.prediction)


def _body(spec: UseCaseSpec) -> dict[str, Any]:
    body: dict[str, Any] = {e.name: "9" for e in spec.entities}
    body.update({c.name: c.example for c in spec.request_fields})
    return body


def test_top_is_bounded_by_the_features_and_named_when_wrong(types: Types) -> None:
    spec, ex = types
    n = len(spec.model_feature_names)
    ok = ex.request.model_validate({**_body(spec), "top": n})
    assert ok.top == n  # type: ignore[attr-defined]
    assert ex.request.model_validate(_body(spec)).top == 5  # type: ignore[attr-defined]
    # an exact float is an integer, as in JSON Schema and the row's own integer fields
    assert ex.request.model_validate({**_body(spec), "top": 2.0}).top == 2  # type: ignore[attr-defined]
    for bad in (0, n + 1, "3", 2.5, True):
        with pytest.raises(ValidationError) as err:
            ex.request.model_validate({**_body(spec), "top": bad})
        assert [e["loc"] for e in err.value.errors()] == [("top",)], bad
    with pytest.raises(ValidationError) as err:  # the row's own rules still hold
        ex.request.model_validate({**_body(spec), "colour": "red"})
    assert err.value.errors()[0]["loc"] == ("colour",)


def test_listed_contributions_and_remainder_make_the_output(types: Types) -> None:
    _, ex = types
    contributions = {"a": 0.1, "b": -3.0, "c": 2.0, "d": 1e-9}
    e = Explanation(
        "linear_exact", "value", 10.0, 10.0 + sum(contributions.values()), 9.1, contributions
    )
    for top in range(1, 5):
        w = why(e, top)
        assert [c["feature"] for c in w["contributions"]] == ["b", "c", "a", "d"][:top]
        listed = sum(c["contribution"] for c in w["contributions"])
        assert w["base_value"] + listed + w["remainder"] == pytest.approx(w["output"], abs=1e-12)
    assert why(e, 4)["remainder"] == 0.0
    answer = {"request_id": "r", "model_name": "m", "model_version": "1", "variant": "champion",
              "prediction": 9.1}  # fmt: skip
    ex.response.model_validate({**answer, "explanation": why(e, 2)})  # the answer's own type
