"""Each gate blocks what it should, with a reason that names what failed.

Pure judgements on plain inputs: the use-case approval, data readiness (readiness report,
its link to the data version, PII in the training frames, group representation),
production readiness, the post-deployment review, and the promotion rule.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipway.core.spec import RiskLevel, UseCaseSpec
from shipway.core.usecases import load_usecase
from shipway.governance import gates
from shipway.governance.facts import VersionFacts
from shipway.governance.privacy import pseudonymise
from shipway.governance.promotion import approval_criterion
from shipway.governance.provenance import ReportProof, lock_chain

VERSION = "874faec0574ac740fb7d06db78d98ecb.dir"
LOCK = """
schema: '2.0'
stages:
  validate@hotel_rates:
    outs:
    - {path: data/hotel_rates/reports/readiness.json, md5: aaa}
    - {path: data/hotel_rates/validated.parquet, md5: vvv}
  features@hotel_rates:
    deps:
    - {path: data/hotel_rates/validated.parquet, md5: vvv}
    outs:
    - {path: data/hotel_rates/features, md5: 874faec0574ac740fb7d06db78d98ecb.dir}
"""


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    return load_usecase("hotel_rates")


def _with(spec: UseCaseSpec, **update: Any) -> UseCaseSpec:
    """A copy of the spec with top-level fields replaced (validated like a loaded spec)."""
    return UseCaseSpec.model_validate({**spec.model_dump(), **update})


def _failed(record: Any) -> dict[str, str]:
    return {c.name: c.summary() for c in record.failures}


def _frames(n: int = 200, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def part(rows: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "agent": rng.choice(["a1", "a2"], rows),
                "event_timestamp": pd.date_range("2016-07-01", periods=rows, freq="h", tz="UTC"),
                "customer_type": rng.choice(["transient", "contract"], rows),
                "is_repeated_guest": rng.choice([0, 1], rows),
                "lead_time": rng.integers(0, 300, rows),
            }
        )

    return {"train": part(n), "validation": part(n // 2), "test": part(n // 2)}


def _proof(report_passed: bool = True, md5: str = "aaa") -> ReportProof:
    checks = [{"column": "lead_time", "rule": "min>=0", "offending": 0, "passed": True}]
    if not report_passed:
        checks.append({"column": "adults", "rule": "not_null", "offending": 12, "passed": False})
    report = {"passed": report_passed, "rows": 15402, "checks": checks, "group_counts": {}}
    return ReportProof(report, md5, lock_chain(LOCK, "hotel_rates"))


# ---- use-case approval ----
def test_approved_spec_passes_and_unapproved_is_blocked_with_the_reason(spec: UseCaseSpec) -> None:
    assert gates.use_case_approval(spec, {"usecase": spec.name}).passed
    obj = spec.objective.model_dump()
    obj["approval"] = {"approved": False}
    rec = gates.use_case_approval(_with(spec, objective=obj), {"usecase": spec.name})
    failed = _failed(rec)
    assert not rec.passed and "objective_approved" in failed
    assert "no approved business objective" in failed["objective_approved"]
    assert "approver_named" in failed and "approval_dated" in failed


def test_future_approval_and_a_target_worse_than_baseline_fail(spec: UseCaseSpec) -> None:
    obj = spec.objective.model_dump()
    obj["target"] = 40.0  # lower is better; the baseline is 36
    rec = gates.use_case_approval(
        _with(spec, objective=obj), {"usecase": spec.name}, today=date(2026, 1, 1)
    )
    failed = _failed(rec)
    assert set(failed) == {"approval_dated", "target_improves_baseline"}
    assert "in the future" in failed["approval_dated"]


# ---- data readiness ----
def test_clean_frames_with_a_linked_passing_report_pass(spec: UseCaseSpec) -> None:
    rec = gates.data_readiness(spec, {}, _proof(), _frames(), VERSION)
    assert rec.passed, rec.explain()
    assert rec.facts["splits"]["train"]["rows"] == 200
    assert set(rec.facts["groups"]["customer_type"]["train"]) == {"contract", "transient"}


def test_pii_in_the_training_data_is_blocked(spec: UseCaseSpec) -> None:
    frames = _frames()
    frames["train"]["guest_email"] = "someone@example.com"
    leaky = _with(spec, pii_columns=["guest_email"])
    rec = gates.data_readiness(leaky, {}, _proof(), frames, VERSION)
    failed = _failed(rec)
    assert list(failed) == ["pii_guest_email"]
    assert (
        "declared PII column 'guest_email' is in the training data (train"
        in (failed["pii_guest_email"])
    )
    del frames["train"]["guest_email"]  # dropped: passes
    assert gates.data_readiness(leaky, {}, _proof(), frames, VERSION).passed


def test_hash_policy_accepts_digests_and_rejects_raw_values(spec: UseCaseSpec) -> None:
    hashing = _with(spec, pii_columns=["guest_email"], pii_policy="hash")
    frames = _frames()
    frames["train"]["guest_email"] = [f"guest{i}@example.com" for i in range(200)]
    raw = gates.data_readiness(hashing, {}, _proof(), frames, VERSION)
    assert "raw (unhashed) values" in _failed(raw)["pii_guest_email"]
    frames["train"] = pseudonymise(frames["train"], ["guest_email"], salt="s3cret")
    assert frames["train"]["guest_email"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert gates.data_readiness(hashing, {}, _proof(), frames, VERSION).passed
    # the drop policy does not accept digests either: the column must be absent
    dropping = _with(spec, pii_columns=["guest_email"])
    assert not gates.data_readiness(dropping, {}, _proof(), frames, VERSION).passed


def test_failed_missing_or_unlinked_readiness_report_blocks(spec: UseCaseSpec) -> None:
    bad = gates.data_readiness(spec, {}, _proof(report_passed=False), _frames(), VERSION)
    assert "adults not_null: 12" in _failed(bad)["readiness_rules"]
    missing = gates.data_readiness(
        spec, {}, ReportProof(None, error="no such file"), _frames(), VERSION
    )
    assert "no such file" in _failed(missing)["readiness_report"]
    other = gates.data_readiness(spec, {}, _proof(md5="bbb"), _frames(), VERSION)
    assert "not the one dvc.lock records" in _failed(other)["report_matches_data_version"]
    wrong = gates.data_readiness(spec, {}, _proof(), _frames(), "0123.dir")
    assert "!= 0123.dir" in _failed(wrong)["report_matches_data_version"]


def test_a_starved_or_unseen_sensitive_group_blocks(spec: UseCaseSpec) -> None:
    frames = _frames()
    frames["train"].loc[:5, "customer_type"] = "group"  # 6 rows: too few to learn
    frames["test"].loc[:40, "customer_type"] = "transient_party"  # never in training
    failed = _failed(gates.data_readiness(spec, {}, _proof(), frames, VERSION))
    assert "customer_type=group" in failed["group_rows_customer_type"]
    assert "transient_party" in failed["groups_seen_in_training_customer_type"]


# ---- production readiness ----
def _probes(**change: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "prerequisites": {
            "use_case_approval": True,
            "data_readiness": True,
            "model_validation": True,
        },
        "bento": {"ok": True, "tag": "shipway-prediction:abc", "detail": "built"},
        "smoke": {"ok": True, "status": 200, "p99_ms": 20.0, "requests": 30, "detail": "ok"},
        "reference": {"ok": True, "rows": 2231, "detail": "2231 rows"},
        "rules": {"ok": True, "rules": 22, "detail": "promtool passed"},
        "rollback": {"target": "3", "first_model": False, "detail": "current champion v3"},
    }
    for k, v in change.items():
        p[k] = {**p[k], **v} if isinstance(v, dict) and k != "prerequisites" else v
    return p


def test_production_readiness_blocks_a_failing_smoke_test_and_a_slow_one(
    spec: UseCaseSpec,
) -> None:
    assert gates.production_readiness(spec, {}, _probes()).passed
    down = gates.production_readiness(
        spec, {}, _probes(smoke={"ok": False, "status": 500, "detail": "0/30 answered 200"})
    )
    assert "0/30 answered 200" in _failed(down)["smoke_request"]
    budget = spec.acceptance.latency_p99_ms
    slow = gates.production_readiness(spec, {}, _probes(smoke={"p99_ms": budget + 30}))
    assert f"needs <= {budget:g}" in _failed(slow)["smoke_latency_p99_ms"]
    assert "missed by 30" in _failed(slow)["smoke_latency_p99_ms"]


def test_first_model_is_a_recorded_fact_but_lost_rollback_targets_block(
    spec: UseCaseSpec,
) -> None:
    first = gates.production_readiness(
        spec, {}, _probes(rollback={"target": None, "first_model": True, "detail": "first"})
    )
    assert first.passed
    crit = {c.name: c for c in first.criteria}
    assert crit["rollback_target"].value == "none (first model)"
    none = gates.production_readiness(
        spec, {}, _probes(rollback={"target": None, "first_model": False, "detail": "all gone"})
    )
    assert "all gone" in _failed(none)["rollback_target"]


def test_missing_prerequisite_and_missing_rules_block(spec: UseCaseSpec) -> None:
    rec = gates.production_readiness(
        spec,
        {},
        _probes(
            prerequisites={
                "use_case_approval": True,
                "data_readiness": None,
                "model_validation": False,
            },
            rules={"ok": False, "rules": 0, "detail": "monitoring/prometheus/rules.yml not found"},
        ),
    )
    failed = _failed(rec)
    assert "no record" in failed["prerequisite_data_readiness"]
    assert "failed" in failed["prerequisite_model_validation"]
    assert "rules.yml not found" in failed["alert_rules"]


# ---- post-deployment review ----
def _review(**change: Any) -> dict[str, Any]:
    f: dict[str, Any] = {
        "champion_at": "2026-11-01T00:00:00+00:00",
        "days_served": 8.0,
        "predictions": 500,
        "latency_p99_ms": 30.0,
        "performance": {"drop": 0.05, "detail": "live mae 21 vs 20"},
        "drift": {"detected": False, "share": 0.1, "detail": "window ok"},
        "kpi": {"value": 21.0, "detail": "live mae"},
    }
    f.update(change)
    return f


def test_review_passes_a_healthy_champion_and_names_each_problem(spec: UseCaseSpec) -> None:
    assert gates.post_deployment_review(spec, {}, _review()).passed
    bad = gates.post_deployment_review(
        spec,
        {},
        _review(
            days_served=1.0,
            predictions=3,
            latency_p99_ms=None,
            performance={"drop": None, "detail": "not assessed: 3 rows with feedback"},
            drift={"detected": True, "share": 0.6, "detail": "8 drifted"},
            kpi={"value": 40.0, "detail": "live mae"},
        ),
    )
    failed = _failed(bad)
    assert set(failed) == {
        "review_window_elapsed",
        "volume",
        "latency_slo_p99_ms",
        "live_performance",
        "drift",
        "business_kpi_vs_baseline",
    }
    assert "needs < 36" in failed["business_kpi_vs_baseline"]  # worse than the baseline
    assert "not assessed" in failed["live_performance"]


# ---- promotion rule: approvals ----
def _facts(approvals: list[dict[str, Any]], pr_hash: str = "sha256:pr") -> VersionFacts:
    return VersionFacts(
        name="hotel_rates",
        version="4",
        run_id="r",
        created_at="",
        aliases=[],
        tags={},
        metrics={},
        params={},
        records={"production_readiness": {"passed": True, "content_hash": pr_hash}},
        approvals=approvals,
    )


def test_missing_approval_blocks_promotion_where_the_risk_level_requires_one(
    spec: UseCaseSpec,
) -> None:
    assert approval_criterion(spec, _facts([])).passed  # medium: not required
    high = _with(spec, risk_level=RiskLevel.high)
    missing = approval_criterion(high, _facts([]))
    assert not missing.passed and "requires a recorded human approval" in missing.detail
    approval = {
        "passed": True,
        "facts": {
            "approver": "Dana",
            "approved_at": "t",
            "comment": "ok",
            "evidence_seen": {"production_readiness": "sha256:old"},
        },
    }
    stale = approval_criterion(high, _facts([approval]))
    assert not stale.passed and "does not cover" in stale.detail
    approval["facts"]["evidence_seen"] = {"production_readiness": "sha256:pr"}
    ok = approval_criterion(high, _facts([approval]))
    assert ok.passed and ok.value == "Dana"


# ---- an unfair slice: the model-validation gate blocks, so promotion is refused ----
def test_an_unfair_slice_fails_model_validation_and_blocks_promotion(spec: UseCaseSpec) -> None:
    from pipelines.steps import gate
    from shipway.core.modelframe import model_frame
    from shipway.governance.promotion import promotion_criteria

    class Unfair:
        """Right for everyone except contract customers, whose rate it inflates by 60."""

        def predict(self, x: pd.DataFrame) -> np.ndarray:
            base = 50 + 0.3 * x["lead_time"].to_numpy() + 0.5 * x["agent_adr_mean_90d"].to_numpy()
            return base + 60.0 * (x["customer_type"] == "contract").to_numpy()

    rng = np.random.default_rng(1)
    n = 800
    df = pd.DataFrame(
        {
            c.name: rng.choice(c.allowed, n) if c.allowed else rng.integers(0, 10, n).astype(float)
            for c in spec.request_fields
        }
    )
    for name in spec.stored_feature_names:
        df[name] = rng.normal(100, 10, n)
    df["customer_type"] = rng.choice(["transient", "contract"], n, p=[0.85, 0.15])
    y = 50 + 0.3 * df["lead_time"].to_numpy() + 0.5 * df["agent_adr_mean_90d"].to_numpy()
    rec = gate.evaluate_gate(spec, Unfair(), df, model_frame(spec, df), y, None, 0.0, {})
    failed = _failed(rec)
    assert "slice_ratio_customer_type" in failed
    assert "quality_mae" not in failed  # the average hides it; the slice does not
    assert "worst/best group mae error over customer_type" in failed["slice_ratio_customer_type"]
    passed = {"passed": True, "content_hash": "sha256:x"}
    facts = _facts([])
    facts.records.update(
        use_case_approval=passed, data_readiness=passed, model_validation=rec.to_dict()
    )
    first = {"target": None, "first_model": True, "detail": "first model"}
    crit = {c.name: c for c in promotion_criteria(spec, facts, None, first)}
    assert not crit["model_validation"].passed and crit["model_validation"].value == "failed"
    assert all(c.passed for n, c in crit.items() if n != "model_validation")


# ---- the pipeline's promotion: production readiness first, and only when it can matter ----
def test_pipeline_runs_production_readiness_only_when_it_may_promote(spec: UseCaseSpec) -> None:
    from shipway.governance.readiness import skip_reason

    ok = {"gate_passed": True, "governance": {"use_case_approval": True, "data_readiness": True}}
    assert spec.governance.pipeline_promotes(spec.risk_level)
    assert skip_reason(spec, ok) == ""
    assert "model validation failed" in skip_reason(spec, {**ok, "gate_passed": False})
    bad = {**ok, "governance": {"use_case_approval": True, "data_readiness": False}}
    assert skip_reason(spec, bad).startswith("data_readiness failed")
    high = _with(spec, risk_level=RiskLevel.high)
    assert not high.governance.pipeline_promotes(high.risk_level)
    assert "risk level high" in skip_reason(high, ok) and "shipway promote" in skip_reason(high, ok)
    manual = _with(spec, governance={**spec.governance.model_dump(), "auto_promote": False})
    assert "auto_promote False" in skip_reason(manual, ok)


def test_promotion_needs_production_readiness_and_a_rollback_target_unless_first(
    spec: UseCaseSpec,
) -> None:
    from shipway.governance.promotion import promotion_criteria

    passed = {"passed": True, "content_hash": "sha256:x"}
    facts = _facts([])
    facts.records = dict(use_case_approval=passed, data_readiness=passed, model_validation=passed)
    first = {"target": None, "first_model": True, "detail": "first model"}
    crit = {c.name: c for c in promotion_criteria(spec, facts, None, first)}
    assert not crit["production_readiness"].passed
    assert crit["production_readiness"].value == "no record"
    facts.records["production_readiness"] = passed
    crit = {c.name: c for c in promotion_criteria(spec, facts, None, first)}
    assert all(c.passed for c in crit.values()), crit
    assert crit["rollback_target"].value == "none (first model)"
    lost = {"target": None, "first_model": False, "detail": "earlier champions [1] exist"}
    crit = {c.name: c for c in promotion_criteria(spec, facts, None, lost)}
    assert [n for n, c in crit.items() if not c.passed] == ["rollback_target"]
    assert "earlier champions [1] exist" in crit["rollback_target"].summary()


# ---- the scheduled post-deployment review: when it is due ----
def test_review_is_due_once_per_champion_tenure_after_the_window(spec: UseCaseSpec) -> None:
    from datetime import UTC, datetime, timedelta

    from mlflow.entities.model_registry import ModelVersion, ModelVersionTag

    from shipway.governance.review import REVIEWED, review_due

    since = datetime(2026, 1, 1, tzinfo=UTC)
    days = spec.governance.review_after_days

    def mv(**tags: str) -> ModelVersion:
        return ModelVersion(
            "hotel_rates", "3", 0, tags=[ModelVersionTag(k, v) for k, v in tags.items()]
        )

    champ = mv(champion_at=since.isoformat())
    assert review_due(spec, None, since) == "no champion"
    assert "outside Shipway" in review_due(spec, mv(), since)
    assert "is reviewed at" in review_due(spec, champ, since + timedelta(days=days) * 0.99)
    assert review_due(spec, champ, since + timedelta(days=days)) == ""
    done = mv(champion_at=since.isoformat(), **{REVIEWED: since.isoformat()})
    assert "already reviewed" in review_due(spec, done, since + timedelta(days=2 * days))
    # champion again later (after a rollback): a new tenure, reviewed again when due
    again = since + timedelta(days=30)
    back = mv(champion_at=again.isoformat(), **{REVIEWED: since.isoformat()})
    assert review_due(spec, back, again + timedelta(days=days)) == ""
