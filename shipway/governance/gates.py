"""The five gates as pure functions: facts in, one ``GateRecord`` out.

Gathering facts (reading MLflow, building a Bento, querying the prediction log) lives in
``probes``, ``review`` and ``registration``; the judgement lives here, so every rule is
unit-tested on plain inputs and every failure carries its reason in the record. The
model-validation gate itself is ``pipelines.steps.gate`` (run by the training pipeline);
governance links its record rather than re-deciding it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from shipway.core.evidence import Criterion, GateRecord
from shipway.core.spec import UseCaseSpec
from shipway.governance import (
    DATA_READINESS,
    MODEL_VALIDATION,
    POST_DEPLOYMENT_REVIEW,
    PRODUCTION_READINESS,
    USE_CASE_APPROVAL,
    cost,
)
from shipway.governance.assessment import MIN_DATA_MATURITY, Maturity
from shipway.governance.privacy import pii_criteria, representation
from shipway.governance.provenance import ReportProof

TS = "event_timestamp"


HIGH_COMPLEXITY_FEASIBILITY = 2
"""A use case whose portfolio feasibility is at most this is a high-complexity one."""


def maturity_criterion(spec: UseCaseSpec, maturity: Maturity | None) -> Criterion:
    """The seed's rule: data maturity below 3 blocks high-risk or high-complexity use cases.

    High complexity is read from the portfolio's feasibility score (1-5, hard to easy):
    ``HIGH_COMPLEXITY_FEASIBILITY`` or less. The score comes from the latest readiness
    assessment (``shipway assess``); with none recorded the rule has nothing to judge and
    says so instead of blocking on an assessment nobody was asked to make.
    """
    reasons = []
    if spec.risk_level.value == "high":
        reasons.append("high risk")
    if spec.portfolio.feasibility <= HIGH_COMPLEXITY_FEASIBILITY:
        reasons.append(f"high complexity (feasibility {spec.portfolio.feasibility})")
    name = "data_maturity"
    if not reasons:
        return Criterion(
            name,
            True,
            maturity.score if maturity else "not needed",
            detail="the data-maturity rule applies to high-risk or high-complexity use cases",
        )
    if maturity is None:
        return Criterion(
            name,
            True,
            "not assessed",
            MIN_DATA_MATURITY,
            ">=",
            "no readiness assessment recorded (shipway assess); the rule applies once one is",
        )
    ok = maturity.score >= MIN_DATA_MATURITY
    return Criterion(
        name,
        ok,
        maturity.score,
        MIN_DATA_MATURITY,
        ">=",
        f"readiness assessment of {maturity.created_at[:10]} ({maturity.assessment[:19]})"
        + (
            ""
            if ok
            else f": data maturity below {MIN_DATA_MATURITY:g} blocks a "
            f"{' and '.join(reasons)} use case until the data foundations improve"
        ),
    )


def use_case_approval(
    spec: UseCaseSpec,
    subject: dict[str, Any],
    today: date | None = None,
    maturity: Maturity | None = None,
) -> GateRecord:
    """The business objective is approved by a named person on a real date, owned, and
    its target is an improvement on its baseline; a high-risk or high-complexity use case
    also needs data maturity of at least 3 in the latest readiness assessment."""
    obj, ap = spec.objective, spec.objective.approval
    today = today or datetime.now(UTC).date()
    better = (
        obj.target < obj.baseline
        if obj.direction == "lower_is_better"
        else (obj.target > obj.baseline)
    )
    crit = [
        Criterion(
            "objective_approved",
            ap.approved,
            ap.approved,
            True,
            detail=""
            if ap.approved
            else "objective.approval.approved is false: "
            "the use case has no approved business objective",
        ),
        Criterion("approver_named", bool(ap.approver), ap.approver or "<none>"),
        Criterion(
            "approval_dated",
            ap.approved_on is not None and ap.approved_on <= today,
            str(ap.approved_on),
            f"<= {today}",
            detail=""
            if ap.approved_on is None or ap.approved_on <= today
            else "approval date is in the future",
        ),
        Criterion("owner_named", bool(spec.owner.name and spec.owner.email), spec.owner.email),
        Criterion(
            "target_improves_baseline",
            better,
            obj.target,
            obj.baseline,
            "<" if obj.direction == "lower_is_better" else ">",
            f"{obj.kpi} ({obj.direction})",
        ),
        maturity_criterion(spec, maturity),
    ]
    facts = {
        "title": spec.title,
        "owner": spec.owner.model_dump(),
        "risk_level": spec.risk_level.value,
        "objective": obj.model_dump(mode="json"),
        "spec_hash": spec.content_hash(),
        "approval_required_for_promotion": spec.governance.approval_required(spec.risk_level),
    }
    if maturity is not None:
        facts["readiness_assessment"] = {
            "content_hash": maturity.assessment,
            "created_at": maturity.created_at,
            "data_maturity": maturity.score,
        }
    return GateRecord(USE_CASE_APPROVAL, subject, crit, facts)


def split_facts(frames: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Rows and event-time range of each split: what the data card reports."""
    out: dict[str, Any] = {}
    for name, f in frames.items():
        entry: dict[str, Any] = {"rows": len(f), "columns": len(f.columns)}
        if TS in f.columns and len(f):
            entry["start"] = str(f[TS].min())
            entry["end"] = str(f[TS].max())
        out[name] = entry
    return out


def data_readiness(
    spec: UseCaseSpec,
    subject: dict[str, Any],
    proof: ReportProof,
    frames: dict[str, pd.DataFrame],
    data_version: str,
) -> GateRecord:
    """Validate results of this data version, privacy of the training frames, and the
    representation of every sensitive group in the data the model is fitted on."""
    report = proof.report
    crit: list[Criterion] = []
    if report is None:
        crit.append(Criterion("readiness_report", False, "missing", detail=proof.error))
    else:
        failed = [c for c in report.get("checks", []) if not c.get("passed")]
        crit.append(
            Criterion(
                "readiness_rules",
                bool(report.get("passed")) and not failed,
                len(failed),
                0,
                "<=",
                "; ".join(f"{c['column']} {c['rule']}: {c['offending']}" for c in failed[:5])
                or f"{len(report.get('checks', []))} rules passed on {report.get('rows')} rows",
            )
        )
        linked, how = proof.linked_to(data_version)
        crit.append(Criterion("report_matches_data_version", linked, data_version, detail=how))
    crit += pii_criteria(spec, frames)
    rep_crit, groups = representation(spec, frames)
    crit += rep_crit
    facts: dict[str, Any] = {
        "data_version": data_version,
        "splits": split_facts(frames),
        "groups": groups,
        "pii_columns": spec.pii_columns,
        "pii_policy": spec.pii_policy,
        "report_md5": proof.report_md5,
    }
    if report is not None:
        facts["readiness"] = {
            "rows": report.get("rows"),
            "data_through": report.get("data_through") or None,
            "rules": len(report.get("checks", [])),
            "group_counts": report.get("group_counts", {}),
            "window_counts": report.get("window_counts", {}),
        }
    return GateRecord(DATA_READINESS, subject, crit, facts)


def production_readiness(
    spec: UseCaseSpec, subject: dict[str, Any], probes: dict[str, Any]
) -> GateRecord:
    """Earlier gates passed; the Bento builds and answers within budget with this model
    (latency, and the compute cost per 1,000 predictions when the spec sets a budget);
    a monitoring reference and checked alert rules exist; a rollback target exists (or
    this is, as a recorded fact, the first model of the use case)."""
    crit = [
        Criterion(
            f"prerequisite_{gate}",
            passed is True,
            "passed" if passed else ("no record" if passed is None else "failed"),
            detail=f"{gate} gate of this version",
        )
        for gate, passed in probes["prerequisites"].items()
    ]
    b, s, r, a, rb = (probes[k] for k in ("bento", "smoke", "reference", "rules", "rollback"))
    crit.append(Criterion("bento_builds", b["ok"], b.get("tag") or "failed", detail=b["detail"]))
    crit.append(Criterion("smoke_request", s["ok"], s.get("status"), 200, "==", s["detail"]))
    p99 = s.get("p99_ms")
    budget = spec.acceptance.latency_p99_ms
    crit.append(
        Criterion(
            "smoke_latency_p99_ms",
            p99 is not None and p99 <= budget,
            p99 if p99 is not None else "not measured",
            budget,
            "<=",
            f"client-side, {s.get('requests', 0)} requests to the running Bento",
        )
    )
    crit += cost.criteria(spec.acceptance.cost_budget, s.get("cost"))
    crit.append(Criterion("monitoring_reference", r["ok"], r.get("rows"), detail=r["detail"]))
    crit.append(Criterion("alert_rules", a["ok"], a.get("rules"), detail=a["detail"]))
    crit.append(rollback_criterion(rb))
    return GateRecord(PRODUCTION_READINESS, subject, crit, probes)


def rollback_criterion(rb: dict[str, Any]) -> Criterion:
    """A version rollback could restore (``probes.rollback``'s finding) must exist.

    The one exception is the first champion of a use case: there is no earlier model to go
    back to, so rollback would mean taking the service down. That is not a reason to block
    the first model forever; it passes with the value ``none (first model)`` and the fact
    ``first_model: true`` in the record. Earlier champions that are all ineligible (rolled
    back, failed a gate, lack a required approval) do fail it.
    """
    target = rb.get("target")
    first = bool(rb.get("first_model"))
    value = f"v{target}" if target is not None else "none (first model)" if first else "none"
    return Criterion(
        "rollback_target", target is not None or first, value, detail=rb.get("detail", "")
    )


def post_deployment_review(
    spec: UseCaseSpec, subject: dict[str, Any], facts: dict[str, Any]
) -> GateRecord:
    """After the review window: volume, latency SLO, live performance vs validation,
    drift (the monitor's verdict) and the business KPI against its baseline."""
    g, acc, obj = spec.governance, spec.acceptance, spec.objective
    crit = [
        Criterion(
            "review_window_elapsed",
            facts["days_served"] >= g.review_after_days,
            facts["days_served"],
            g.review_after_days,
            ">=",
            f"days as champion since {facts['champion_at']}",
        ),
        Criterion(
            "volume",
            facts["predictions"] >= g.review_min_predictions,
            facts["predictions"],
            g.review_min_predictions,
            ">=",
            "predictions answered by this version in the window",
        ),
    ]
    p99 = facts.get("latency_p99_ms")
    crit.append(
        Criterion(
            "latency_slo_p99_ms",
            p99 is not None and p99 <= acc.latency_p99_ms,
            p99 if p99 is not None else "no predictions",
            acc.latency_p99_ms,
            "<=",
            "server-side latency from the prediction log",
        )
    )
    perf = facts["performance"]
    drop = perf.get("drop")
    crit.append(
        Criterion(
            "live_performance",
            drop is not None and drop <= spec.monitoring.performance_drop_threshold,
            drop if drop is not None else "not assessed",
            spec.monitoring.performance_drop_threshold,
            "<=",
            perf["detail"],
        )
    )
    drift = facts["drift"]
    crit.append(
        Criterion(
            "drift",
            drift.get("detected") is False,
            drift.get("share", "not assessed"),
            spec.monitoring.drift_share_threshold,
            "<=",
            drift["detail"],
        )
    )
    kpi = facts["kpi"]
    value = kpi.get("value")
    better = value is not None and (
        value < obj.baseline if obj.direction == "lower_is_better" else value > obj.baseline
    )
    crit.append(
        Criterion(
            "business_kpi_vs_baseline",
            better,
            value if value is not None else "not measured",
            obj.baseline,
            "<" if obj.direction == "lower_is_better" else ">",
            kpi["detail"],
        )
    )
    return GateRecord(POST_DEPLOYMENT_REVIEW, subject, crit, facts)


def prerequisite_gates() -> tuple[str, ...]:
    """Gates a version must have passed before it can be production-ready."""
    return (USE_CASE_APPROVAL, DATA_READINESS, MODEL_VALIDATION)
