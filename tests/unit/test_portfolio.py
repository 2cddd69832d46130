"""The portfolio view reads evidence faithfully: git dates, monitor results, readiness
reports, gate records (hash-checked), KPI verdicts, and renders the table, the matrix and
the self-contained HTML page. Real files and a real git repository; no registry needed."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from shipway.core.evidence import Criterion, GateRecord
from shipway.core.settings import Settings
from shipway.governance import portfolio as pf
from shipway.governance.portfolio import sources as pf_sources

ROOT = Path(__file__).resolve().parents[2]


def _git(repo: Path, *args: str, date: str | None = None) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com"}
    if date:
        env |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    subprocess.run(["git", "-C", str(repo), *args], check=True, env=env, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Settings:
    """A git repository with the two real specs, their first commits at known dates."""
    root = tmp_path / "repo"
    for name in ("hotel_rates", "credit_risk"):
        (root / "usecases" / name).mkdir(parents=True)
    (root / "feature_repo").mkdir()
    _git(root, "init", "-q")
    for name, when in (
        ("hotel_rates", "2026-01-05T10:00:00+00:00"),
        ("credit_risk", "2026-03-01T09:30:00+00:00"),
    ):
        shutil.copy(ROOT / "usecases" / name / "usecase.yaml", root / "usecases" / name)
        _git(root, "add", ".")
        _git(root, "commit", "-qm", f"add {name}", date=when)
    # a later edit must not move the "first commit" date
    spec = root / "usecases" / "credit_risk" / "usecase.yaml"
    spec.write_text(spec.read_text() + "\n")
    _git(root, "commit", "-qam", "edit", date="2026-06-01T00:00:00+00:00")
    return Settings(root=root, state_dir=tmp_path / "state", data_dir=tmp_path / "data")


def test_first_commit_of_the_spec_is_its_adding_commit(repo: Settings) -> None:
    got = pf.spec_first_commit(repo.root, repo.specs / "credit_risk" / "usecase.yaml")
    assert got == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    new = repo.specs / "new_case" / "usecase.yaml"
    new.parent.mkdir()
    new.write_text("name: new_case\n")
    assert pf.spec_first_commit(repo.root, new) is None  # not committed yet


def test_last_drift_is_the_newest_window(repo: Settings) -> None:
    base = repo.state / "monitoring" / "credit_risk"
    for end, outcome, share in (
        ("2025-01-31T000000Z", "drift", 0.5),
        ("2025-02-28T000000Z", "ok", 0.1),
    ):
        (base / end).mkdir(parents=True)
        (base / end / "results.json").write_text(
            json.dumps(
                {
                    "outcome": outcome,
                    "window": {"end": end},
                    "drift": {"share": share, "threshold": 0.3},
                }
            )
        )
    d = pf.last_drift(repo, "credit_risk")
    assert d is not None and (d.outcome, d.share, d.threshold) == ("ok", 0.1, 0.3)
    assert pf.last_drift(repo, "hotel_rates") is None


def test_readiness_gate_reads_the_validate_report(repo: Settings) -> None:
    assert pf.readiness_gate(repo, "credit_risk").state == "missing"
    report = repo.data / "credit_risk" / "reports" / "readiness.json"
    report.parent.mkdir(parents=True)
    checks = [
        {"column": "age", "rule": "min>=18", "offending": 0, "passed": True},
        {"column": "<table>", "rule": "min_rows>=4000", "offending": 10, "passed": False},
    ]
    report.write_text(json.dumps({"passed": False, "rows": 3990, "checks": checks}))
    g = pf.readiness_gate(repo, "credit_risk")
    assert g.state == "failed" and "min_rows>=4000" in g.detail


def test_gate_records_are_hash_checked() -> None:
    rec = GateRecord(
        "model_validation", {"usecase": "x"}, [Criterion("quality_roc_auc", True, 0.84, 0.8, ">=")]
    ).to_dict()
    assert pf_sources._record_state("model_validation", rec, "uri").state == "passed"
    rec["criteria"][0]["value"] = 0.99  # edited after the fact
    tampered = pf_sources._record_state("model_validation", rec, "uri")
    assert tampered.state == "failed" and "hash" in tampered.detail
    assert pf_sources._record_state("model_validation", None, "uri").state == "missing"


@pytest.mark.parametrize(
    ("direction", "value", "met", "beats"),
    [
        ("lower_is_better", 0.14, True, True),
        ("lower_is_better", 0.2, False, True),
        ("higher_is_better", 0.9, True, True),
        ("higher_is_better", 0.6, False, False),
        ("lower_is_better", None, None, None),
    ],
)
def test_kpi_verdict_follows_its_direction(direction: str, value, met, beats) -> None:
    lo = direction == "lower_is_better"
    k = pf.Kpi("kpi", "", 0.28 if lo else 0.7, 0.15 if lo else 0.85, direction, "m", value, "")
    assert (k.met, k.beats_baseline) == (met, beats)


def _status(name: str, **kw) -> pf.UseCaseStatus:
    st = pf.UseCaseStatus(
        name=name,
        title=name.title(),
        owner="o@example.com",
        risk_level="high",
        impact=5,
        feasibility=4,
        **kw,
    )
    st.gates = [pf.GateState(g, "missing") for g in pf.GATES]
    return st


def test_lead_time_and_stage() -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    st = _status(
        "a_case",
        spec_committed_at=t0,
        first_champion_at=t0 + timedelta(days=2.5),
        champion="3",
        latest="4",
    )
    assert st.lead_time_days == pytest.approx(2.5) and st.stage == "production"
    assert pf.lead_time_text(st) == "2.5 d"
    assert _status("b_case", latest="1").stage == "candidate"
    assert _status("c_case").stage == "idea"
    assert pf.lead_time_text(_status("d_case")) == "spec not committed"


def test_table_matrix_and_html_show_every_use_case(tmp_path: Path) -> None:
    a = _status("a_case", champion="2", latest="2")
    a.gates[2] = pf.GateState("model_validation", "passed", "14 criteria")
    a.kpi = pf.Kpi(
        "Bad rate",
        "share",
        0.28,
        0.15,
        "lower_is_better",
        "false_omission_rate",
        0.137,
        "champion v2, test window",
    )
    b = _status("b_case", latest="1")
    b.gates[0] = pf.GateState("use_case_approval", "pending", "not approved")
    b.impact, b.feasibility = 2, 5
    broken = pf.UseCaseStatus(name="c_case", error="invalid use-case spec")
    buf = io.StringIO()
    Console(file=buf, width=200).print(pf.table([a, b, broken]))
    out = buf.getvalue()
    assert "a_case" in out and "A– D– M✓ P– R–" in out and "0.137 / 0.15 ✓" in out
    assert "A… D– M– P– R–" in out and "invalid use-case spec" in out
    png = pf.matrix_png([a, b, broken], tmp_path / "m.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = pf.render_html([a, b, broken], png.read_bytes(), datetime(2026, 11, 25, tzinfo=UTC))
    assert "data:image/png;base64," in page and "Impact-feasibility matrix" in page
    for needed in ("a_case", "b_case", "c_case", "model validation: passed", "target met"):
        assert needed in page, needed


def test_collect_without_a_registry_reads_specs_and_creates_nothing(repo: Settings) -> None:
    statuses = pf.collect(repo)
    assert [s.name for s in statuses] == ["credit_risk", "hotel_rates"]
    credit = statuses[0]
    assert credit.stage == "idea" and credit.champion is None
    assert credit.gate("use_case_approval").state == "passed"  # approved in the spec
    assert credit.kpi is not None and credit.kpi.metric == "false_omission_rate"
    assert credit.spec_committed_at == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert not (repo.state / "mlflow.db").exists()
    page = pf.write_report(repo, statuses)
    assert page == repo.state / "portfolio" / "index.html" and page.is_file()
    assert (repo.state / "portfolio" / "matrix.png").is_file()
