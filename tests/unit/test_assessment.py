"""The readiness assessment: a typed questionnaire, measured scores that follow the
evidence, and the seed's rule in the use-case approval gate (data maturity below 3 blocks
high-risk and high-complexity use cases)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipway.core.evidence import Criterion, GateRecord
from shipway.core.settings import Settings
from shipway.core.usecases import load_usecase
from shipway.governance import RETENTION, checks, gates
from shipway.governance.assessment import (
    DATA_MATURITY,
    DIMENSIONS,
    TECHNICAL_INFRASTRUCTURE,
    Maturity,
    measures,
    report,
    scoring,
)
from shipway.governance.assessment.questionnaire import QuestionnaireError, load_questionnaire
from shipway.governance.trail import trail_for
from tests.conftest import ROOT

EXAMPLE = ROOT / "assessments" / "example.yaml"


def _bad(tmp_path: Path, change: Any) -> str:
    raw = yaml.safe_load(EXAMPLE.read_text())
    change(raw)
    path = tmp_path / "q.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(QuestionnaireError) as err:
        load_questionnaire(path)
    assert str(path) in str(err.value)
    return str(err.value)


def test_a_bad_questionnaire_fails_naming_the_field(tmp_path: Path) -> None:
    assert load_questionnaire(EXAMPLE).organization == "Shipway demo"

    def too_high(d: dict) -> None:
        d["talent_and_skills"]["training"]["score"] = 7

    assert "talent_and_skills.training.score: Input should be less than or equal to 5" in (
        _bad(tmp_path, too_high)
    )

    def unevidenced(d: dict) -> None:
        d["organizational_culture"]["executive_sponsorship"]["evidence"] = []

    assert (
        "organizational_culture.executive_sponsorship: Value error, a score of 4 (>= 3) needs "
        "at least one evidence link"
    ) in _bad(tmp_path, unevidenced)

    def typo(d: dict) -> None:
        d["organizational_culture"]["change_readyness"] = d["organizational_culture"].pop(
            "change_readiness"
        )

    msg = _bad(tmp_path, typo)
    assert "organizational_culture.change_readiness: Field required" in msg
    assert "organizational_culture.change_readyness: Extra inputs are not permitted" in msg


def _root(tmp_path: Path, alerts: bool) -> Settings:
    """A repository root whose rules file has (or has lost) its alerting rules."""
    root = tmp_path / ("with" if alerts else "without")
    rules = root / measures.RULES
    rules.parent.mkdir(parents=True)
    doc = yaml.safe_load((ROOT / measures.RULES).read_text())
    if not alerts:
        for g in doc["groups"]:
            g["rules"] = [r for r in g["rules"] if "alert" not in r]
    rules.write_text(yaml.safe_dump(doc))
    return Settings(root=root, state_dir=tmp_path / "state", data_dir=tmp_path / "data")


def test_measured_scores_follow_the_evidence(tmp_path: Path) -> None:
    answers = load_questionnaire(EXAMPLE)
    specs = [load_usecase("hotel_rates"), load_usecase("credit_risk")]
    with_alerts, without = _root(tmp_path, True), _root(tmp_path, False)
    fixed = [measures.documented_data(specs), measures.approvals(specs)]

    def scores(s: Settings) -> dict[str, float]:
        signals = [*fixed, measures.alert_rules(s), *measures.trails(s, specs, None)]
        return scoring.assess(signals, answers, "q.yaml").scores

    before = scores(with_alerts)
    rule = measures.alert_rules(with_alerts)
    assert rule.value == 1.0 and "with a runbook" in rule.detail  # every alert has one
    after = scores(without)
    assert after[TECHNICAL_INFRASTRUCTURE] < before[TECHNICAL_INFRASTRUCTURE]
    assert measures.alert_rules(without).detail == "0 alerting rules, 0 with a runbook"
    # enforcing retention (a real record in the use case's trail) raises governance
    gov = "governance_and_compliance"
    trail_for(with_alerts, "hotel_rates").append(
        GateRecord(RETENTION, {"usecase": "hotel_rates"}, [Criterion("applied", True, 1)])
    )
    assert scores(with_alerts)[gov] > before[gov]


def test_readiness_rules_that_fail_lower_data_maturity(tmp_path: Path) -> None:
    spec = load_usecase("hotel_rates")
    s = Settings(root=ROOT, state_dir=tmp_path / "state", data_dir=tmp_path / "data")
    report_path = s.usecase_data(spec.name) / "reports" / "readiness.json"
    assert measures.readiness(s, [spec])[0].value == 0.0  # no report: nothing checked
    report_path.parent.mkdir(parents=True)
    cols = [c.name for c in spec.request_fields]
    checks_ = [{"column": c, "rule": "nulls", "passed": True} for c in cols]
    report_path.write_text(json.dumps({"checks": checks_}))
    cov, rate = measures.readiness(s, [spec])
    assert rate.value == 1.0 and cov.value == pytest.approx(len(cols) / (len(cols) + 1))
    checks_[0]["passed"] = False
    report_path.write_text(json.dumps({"checks": checks_}))
    assert measures.readiness(s, [spec])[1].score < rate.score


def _spec(name: str, **change: Any) -> Any:
    spec = load_usecase(name)
    return spec.model_copy(update=change) if change else spec


def test_data_maturity_below_3_refuses_a_high_risk_or_complex_use_case() -> None:
    low = Maturity(2.4, "sha256:" + "a" * 64, "2026-12-05T08:00:00+00:00")
    credit = _spec("credit_risk")  # high risk
    rec = gates.use_case_approval(credit, {"usecase": "credit_risk"}, maturity=low)
    assert not rec.passed and [c.name for c in rec.failures] == ["data_maturity"]
    assert "data maturity below 3 blocks a high risk use case" in rec.explain()
    assert rec.facts["readiness_assessment"]["content_hash"] == low.assessment
    ok = Maturity(3.0, low.assessment, low.created_at)
    assert gates.use_case_approval(credit, {}, maturity=ok).passed
    hotel = _spec("hotel_rates")  # medium risk, feasibility 5: the rule does not apply
    assert gates.use_case_approval(hotel, {}, maturity=low).passed
    hard = hotel.model_copy(
        update={"portfolio": hotel.portfolio.model_copy(update={"feasibility": 2})}
    )
    assert (
        "high complexity (feasibility 2)"
        in gates.use_case_approval(hard, {}, maturity=low).explain()
    )
    unassessed = {c.name: c for c in gates.use_case_approval(credit, {}).criteria}
    assert (
        unassessed["data_maturity"].passed and unassessed["data_maturity"].value == "not assessed"
    )


def _saved(s: Settings, maturity: float) -> dict[str, Any]:
    answers = load_questionnaire(EXAMPLE)
    data = scoring.assess([], answers, str(EXAMPLE)).to_dict()
    data = {k: v for k, v in data.items() if k != "content_hash"}
    data["scores"] = {**data["scores"], DATA_MATURITY: maturity}
    from shipway.core.evidence import content_hash

    data["content_hash"] = content_hash(data)
    scoring.save(s, data)
    return data


def test_the_gate_reads_the_latest_intact_assessment(tmp_path: Path) -> None:
    s = Settings(root=ROOT, state_dir=tmp_path)
    credit = _spec("credit_risk")
    first = _saved(s, 3.4)
    low = _saved(s, 2.1)
    record, _ = checks.use_case_approval(s, None, credit)
    assert not record.passed and "data maturity below 3" in record.explain()
    assert record.facts["readiness_assessment"]["content_hash"] == low["content_hash"]
    assert trail_for(s, "credit_risk").latest("use_case_approval")["passed"] is False
    # an edited assessment is not believed: the gate falls back to the last intact one
    path = sorted((tmp_path / "assessments").glob("*/assessment.json"))[-1]
    edited = json.loads(path.read_text())
    edited["scores"][DATA_MATURITY] = 4.5
    path.write_text(json.dumps(edited))
    maturity = scoring.data_maturity(s)
    assert maturity is not None and maturity.assessment == first["content_hash"]
    assert checks.use_case_approval(s, None, credit)[0].passed


def test_the_report_has_a_chart_and_every_item(tmp_path: Path) -> None:
    s = Settings(root=ROOT, state_dir=tmp_path)
    answers = load_questionnaire(EXAMPLE)
    specs = [load_usecase("hotel_rates")]
    data = scoring.assess([measures.approvals(specs)], answers, "q.yaml").to_dict()
    folder = scoring.save(s, data)
    files = report.write(folder, data)
    page = files["html"].read_text()
    assert page.count("<svg") == 1 and "approved_objectives" in page
    assert all(f"{d.replace('_', ' ').capitalize()}" in page for d in DIMENSIONS)
    assert "https://example.org/board/minutes-2026-10#ai" in page
    saved = json.loads(files["json"].read_text())
    assert saved == data and scoring.latest(s) == data
    shutil.rmtree(folder)
    assert scoring.latest(s) is None


def test_shipway_assess_refuses_a_bad_questionnaire_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from shipway.cli import app
    from shipway.core.settings import get_settings

    raw = yaml.safe_load(EXAMPLE.read_text())
    del raw["talent_and_skills"]["data_science"]
    bad = tmp_path / "q.yaml"
    bad.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("SHIPWAY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COLUMNS", "300")
    get_settings.cache_clear()
    try:
        run = CliRunner().invoke(app, ["assess", "--questionnaire", str(bad)])
    finally:
        get_settings.cache_clear()
    assert run.exit_code == 1
    assert "talent_and_skills.data_science: Field required" in " ".join(run.output.split())
    assert not (tmp_path / "state" / "assessments").exists()  # nothing measured or written


def test_shipway_status_shows_the_latest_assessment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from shipway.cli import app
    from shipway.core.settings import get_settings

    monkeypatch.setenv("SHIPWAY_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "300")
    args = ["status", "-u", "hotel_rates", "--no-html"]
    get_settings.cache_clear()
    try:
        none = CliRunner().invoke(app, args)
        _saved(Settings(root=ROOT, state_dir=tmp_path), 2.6)
        shown = CliRunner().invoke(app, args)
    finally:
        get_settings.cache_clear()
    assert none.exit_code == 0, none.output
    assert "readiness assessment: none recorded" in none.output
    assert shown.exit_code == 0, shown.output
    line = next(ln for ln in shown.output.splitlines() if "readiness assessment" in ln)
    assert "Shipway demo" in line and "data maturity 2.6 · technical infrastructure" in line
    assert "hotel_rates" in shown.output  # next to the portfolio, not instead of it
