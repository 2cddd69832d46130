"""Regulation-mapped evidence: the framework files, the matrix over real gate records, its
verification, and the model card in the Model Card Toolkit schema and with Hugging Face
front matter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from shipway.core.evidence import Criterion, GateRecord
from shipway.core.usecases import load_usecase
from shipway.governance import DATA_READINESS, MODEL_VALIDATION, cards, compliance
from shipway.governance.facts import VersionFacts

SUBJECT = {"usecase": "hotel_rates", "model": "hotel_rates", "version": "3"}


def _ids(fid: str) -> list[str]:
    fw = compliance.load_framework(compliance.FRAMEWORKS_DIR / f"{fid}.yaml")
    return [r.id for r in fw.requirements]


def test_each_framework_file_covers_its_framework() -> None:
    names = {p.stem for p in compliance.framework_files()}
    assert names == {"eu_ai_act_annex_iv", "nist_ai_rmf", "iso_iec_42001_annex_a", "sr_11_7"}
    assert _ids("eu_ai_act_annex_iv") == [f"IV.{i}" for i in range(1, 10)]
    nist = _ids("nist_ai_rmf")
    expected = {"GOVERN": 6, "MAP": 5, "MEASURE": 4, "MANAGE": 4}
    assert nist == [f"{fn} {i}" for fn, n in expected.items() for i in range(1, n + 1)]
    assert _ids("iso_iec_42001_annex_a") == [f"A.{i}" for i in range(2, 11)]
    sr = _ids("sr_11_7")
    for part in ("development", "implementation", "use", "ongoing_monitoring"):
        assert any(i.endswith(part) for i in sr), part
    assert {"V.outcomes_analysis", "VI.model_inventory"} <= set(sr)


def _bad(tmp_path: Path, change: Any, name: str = "sr_11_7") -> str:
    raw = yaml.safe_load((compliance.FRAMEWORKS_DIR / "sr_11_7.yaml").read_text())
    change(raw)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(compliance.ComplianceError) as err:
        compliance.load_framework(path)
    assert str(path) in str(err.value)
    return str(err.value)


def test_a_bad_framework_file_fails_naming_the_file_and_field(tmp_path: Path) -> None:
    def typo_gate(d: dict) -> None:
        d["requirements"][1]["satisfied_by"][0]["gate"] = "production_readyness"

    msg = _bad(tmp_path, typo_gate)
    assert "requirements.1.satisfied_by.0.record.gate" in msg and "production_readyness" in msg
    assert "requirements.0.title: Field required" in _bad(
        tmp_path, lambda d: d["requirements"][0].pop("title")
    )

    def unmapped(d: dict) -> None:
        d["requirements"][0]["satisfied_by"] = []

    assert "requirements.0: Value error, a requirement without satisfied_by" in _bad(
        tmp_path, unmapped
    )
    assert "id 'sr_11_7' is not the file name" in _bad(tmp_path, lambda d: None, "renamed")


def _record(gate: str, criteria: list[Criterion]) -> dict[str, Any]:
    return GateRecord(gate, SUBJECT, criteria, created_at="2026-12-01T00:00:00+00:00").to_dict()


FRAMEWORK = {
    "id": "mini",
    "title": "A two-requirement framework",
    "version": 1,
    "source": "test",
    "requirements": [
        {
            "id": "R1",
            "title": "validated",
            "summary": "the model was validated and its card explains its limits",
            "satisfied_by": [
                {"kind": "record", "gate": "model_validation", "criteria": ["quality_*"]},
                {"kind": "card", "card": "model_card", "section": "Limitations"},
                {"kind": "lineage", "fields": ["data_version"]},
            ],
        },
        {
            "id": "R2",
            "title": "monitored",
            "summary": "drift was reviewed after deployment",
            "satisfied_by": [
                {"kind": "record", "gate": "post_deployment_review", "passed": False},
                {"kind": "record", "gate": "model_validation", "criteria": ["robust_*"]},
            ],
        },
        {"id": "R3", "title": "declared", "summary": "s", "outside_shipway": "a signature"},
    ],
}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A bundle folder holding real, hash-carrying gate records, a card and lineage."""
    folder = tmp_path / "bundle"
    recs = [
        _record(MODEL_VALIDATION, [Criterion("quality_mae", True, 10.0, 20.0, "<=")]),
        _record(MODEL_VALIDATION, [Criterion("robust_perturbation", False, 0.5, 0.1, "<=")]),
    ]
    (folder / "records").mkdir(parents=True)
    for rec in recs:
        path = folder / "records" / f"{rec['gate']}-{rec['content_hash'][7:23]}.json"
        path.write_text(json.dumps(rec, indent=2))
    (folder / "cards").mkdir()
    (folder / "cards" / "model_card.md").write_text("# card\n\n## Limitations\n\n- some\n")
    (folder / "lineage.json").write_text(json.dumps({"data_version": "abc.dir"}))
    frameworks = tmp_path / "frameworks"
    frameworks.mkdir()
    (frameworks / "mini.yaml").write_text(yaml.safe_dump(FRAMEWORK))
    compliance.write(folder, frameworks)
    return folder


def _rows(folder: Path) -> dict[str, dict[str, Any]]:
    m = json.loads((folder / compliance.MATRIX).read_text())
    return {r["id"]: r for r in m["frameworks"][0]["requirements"]}


def test_the_matrix_cites_records_by_hash_and_lists_what_is_missing(bundle: Path) -> None:
    rows = _rows(bundle)
    assert rows["R1"]["status"] == "satisfied" and rows["R1"]["missing"] == []
    cited = {c["kind"]: c for c in rows["R1"]["evidence"]}
    rec = json.loads((bundle / cited["record"]["path"]).read_text())
    assert cited["record"]["hash"] == rec["content_hash"]
    assert rec["criteria"][0]["name"] == "quality_mae"  # the passed one, not the robustness one
    assert {c["path"] for c in rows["R1"]["evidence"]} >= {"cards/model_card.md", "lineage.json"}
    # a failed criterion is not evidence the control held; an absent review is missing
    assert rows["R2"]["status"] == "missing" and rows["R2"]["evidence"] == []
    assert rows["R2"]["missing"] == [
        "a post_deployment_review record",
        "a passed model_validation record with criteria robust_*",
    ]
    assert rows["R3"]["status"] == "missing" and rows["R3"]["outside_shipway"] == "a signature"
    assert "| R1 validated | satisfied |" in (bundle / "compliance" / "matrix.md").read_text()
    assert compliance.verify_matrix(bundle) == []


def test_tampering_with_a_mapped_record_fails_matrix_verification(bundle: Path) -> None:
    path = bundle / _rows(bundle)["R1"]["evidence"][0]["path"]
    rec = json.loads(path.read_text())
    rec["criteria"][0]["value"] = 1.0  # a better error than was measured
    path.write_text(json.dumps(rec))
    problems = compliance.verify_matrix(bundle)
    assert any("mini R1 cites model_validation record" in p for p in problems), problems
    assert any("mini R1 (stored satisfied, evidence says partial)" in p for p in problems)


def test_a_doctored_matrix_or_mapping_fails_verification(bundle: Path) -> None:
    path = bundle / compliance.MATRIX
    m = json.loads(path.read_text())
    m["frameworks"][0]["requirements"][1]["status"] = "satisfied"
    path.write_text(json.dumps(m))
    assert compliance.verify_matrix(bundle) == [
        f"{compliance.MATRIX} does not follow from the bundle's evidence and framework files: "
        "mini R2 (stored satisfied, evidence says missing)"
    ]
    (bundle / "lineage.json").write_text(json.dumps({"data_version": "other.dir"}))
    assert any(
        "mini R1 cites lineage.json, which was modified" in p
        for p in compliance.verify_matrix(bundle)
    )


# ---- the model card in standard shapes ----
def _facts() -> VersionFacts:
    return VersionFacts(
        name="hotel_rates",
        version="3",
        run_id="r",
        created_at="2026-12-04T10:00:00+00:00",
        aliases=["champion"],
        tags={"data_version": "d.dir", "git_commit": "abc", "feature_service": "hotel_rates_v1"},
        metrics={"test": {"mae": 12.5, "r2": 0.71}, "train": {"mae": 9.0}},
        params={"algorithm": "lightgbm"},
        records={
            DATA_READINESS: {
                "passed": True,
                "criteria": [],
                "facts": {"splits": {"train": {"rows": 900, "start": "2016", "end": "2017"}}},
            },
            MODEL_VALIDATION: {
                "passed": True,
                "criteria": [],
                "facts": {"slices": {"customer_type": {"Transient": {"rows": 50, "mae": 11.0}}}},
            },
        },
    )


def test_the_model_card_validates_against_the_model_card_toolkit_schema() -> None:
    spec = load_usecase("hotel_rates")
    card = json.loads(cards.render(spec, _facts())["model_card.json"])
    schema = json.loads(cards.MCT_SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(card, schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    perf = card["quantitative_analysis"]["performance_metrics"]
    assert {"type": "mae", "value": "12.5", "slice": "test"} in perf
    assert {"type": "mae", "value": "11", "slice": "test: customer_type=Transient"} in perf
    assert card["model_details"]["version"] == {
        "name": "3",
        "date": "2026-12-04",
        "diff": "git abc, data d.dir",
    }
    bad = {**card, "model_details": {**card["model_details"], "version": {"date": "4 Dec"}}}
    with pytest.raises(jsonschema.ValidationError, match="is not a 'date'"):
        jsonschema.validate(bad, schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def test_the_readme_carries_hugging_face_front_matter() -> None:
    spec = load_usecase("hotel_rates")
    readme = cards.render(spec, _facts())["README.md"]
    assert readme.startswith("---\n")
    meta = yaml.safe_load(readme.split("---\n")[1])
    result = meta["model-index"][0]["results"][0]
    assert result["task"]["type"] == "tabular-regression"
    assert {"type": "mae", "value": 12.5, "name": "test mae"} in result["metrics"]
    assert meta["library_name"] == "lightgbm" and "risk-medium" in meta["tags"]
    assert "# Model card: hotel_rates v3" in readme.split("---\n", 2)[2]
