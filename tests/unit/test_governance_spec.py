"""The governance fields of the spec: defaults, the approval rule, errors naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shipway.core.spec import RiskLevel, SpecError, load_spec

HOTEL = Path(__file__).resolve().parents[2] / "usecases" / "hotel_rates" / "usecase.yaml"


def _load(tmp_path: Path, **change: Any) -> Any:
    data = yaml.safe_load(HOTEL.read_text())
    data.update(change)
    p = tmp_path / "usecase.yaml"
    p.write_text(yaml.safe_dump(data))
    return load_spec(p)


def test_defaults_require_a_human_only_for_high_risk(tmp_path: Path) -> None:
    spec = _load(tmp_path)
    g = spec.governance
    assert g.approval_required_for == [RiskLevel.high] and g.auto_promote
    assert not g.approval_required(RiskLevel.medium) and g.approval_required(RiskLevel.high)
    assert spec.pii_policy == "drop" and g.review_after_days == 7.0


def test_a_stricter_rule_is_declared_in_the_spec(tmp_path: Path) -> None:
    spec = _load(
        tmp_path,
        governance={
            "approval_required_for": ["medium", "high"],
            "auto_promote": False,
            "review_after_days": 14,
            "review_min_predictions": 1000,
        },
        pii_columns=["guest_name"],
        pii_policy="hash",
    )
    assert spec.governance.approval_required(spec.risk_level)  # hotel_rates is medium
    assert spec.governance.review_min_predictions == 1000 and spec.pii_policy == "hash"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pii_policy": "encrypt"}, "pii_policy"),
        (
            {"governance": {"approval_required_for": ["extreme"]}},
            "governance.approval_required_for",
        ),
        ({"governance": {"review_after_days": 0}}, "governance.review_after_days"),
        ({"governance": {"aproval_required_for": ["high"]}}, "governance.aproval_required_for"),
    ],
)
def test_bad_governance_fields_name_the_field(tmp_path: Path, change: dict, field: str) -> None:
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        _load(tmp_path, **change)
