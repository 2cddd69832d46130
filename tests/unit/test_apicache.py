"""BentoML's per-request rebuilds, done once (services/apicache.py): same answers, once."""

from __future__ import annotations

import bentoml
import pydantic
import pytest
from _bentoml_sdk.io_models import IORootModel

from services import apicache


class Item(pydantic.BaseModel):
    x: int
    name: str = "a"


@bentoml.service(name="apicache_probe")
class Probe:
    def __init__(self) -> None:
        self.bound = apicache.bind_api_methods(self)

    @bentoml.api(route="/many")
    def many(self, items: list[Item], /) -> list[Item]:
        return items

    @bentoml.api(route="/one")
    def one(self, item: Item, /) -> Item:
        return item


ROOT_SPECS = [
    spec
    for m in Probe.apis.values()
    for spec in (m.input_spec, m.output_spec)
    if issubclass(spec, IORootModel)
]
BEFORE = {spec: spec.model_json_schema() for spec in ROOT_SPECS}
BEFORE_REF = {
    spec: spec.model_json_schema(ref_template="#/components/{model}") for spec in ROOT_SPECS
}
FROZEN = apicache.cache_root_schemas(Probe)


def test_only_the_list_endpoints_root_specs_are_frozen_and_only_once() -> None:
    assert FROZEN == len(ROOT_SPECS) == 2  # /many's input and output; /one has none
    assert apicache.cache_root_schemas(Probe) == 0


@pytest.mark.parametrize("spec", ROOT_SPECS, ids=lambda s: s.__name__)
def test_frozen_schema_equals_the_built_one_and_callers_cannot_change_it(spec: type) -> None:
    first = spec.model_json_schema()
    assert first == BEFORE[spec]
    first["type"] = "string"  # a caller's edit stays its own
    assert spec.model_json_schema() == BEFORE[spec]
    assert spec.mime_type() == "application/json"
    # calls with arguments (the OpenAPI page) are still built, not frozen
    assert spec.model_json_schema(ref_template="#/components/{model}") == BEFORE_REF[spec]


def test_root_input_still_validates_and_refuses_like_before() -> None:
    spec = Probe.apis["many"].input_spec
    parsed = spec.model_validate_json(b'[{"x": 1}, {"x": 2, "name": "b"}]')
    assert [i.x for i in parsed.root] == [1, 2]
    with pytest.raises(pydantic.ValidationError, match="x"):
        spec.model_validate_json(b'[{"x": "not a number"}]')


def test_api_methods_are_bound_once_and_still_call_the_method() -> None:
    probe = Probe.inner()
    assert sorted(probe.bound) == ["many", "one"]
    assert probe.many is probe.many  # no new wrapper (and inspect.signature) per lookup
    assert probe.one.local is probe.one  # what BentoML's server calls
    assert probe.one.local(Item(x=3)) == Item(x=3)
