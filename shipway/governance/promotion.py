"""Promotion to champion: the governed path (``shipway promote``) and the pipeline's.

The rule, from the spec, is the same for both:

* the version passed use-case approval, data readiness and model validation; its newest
  production-readiness record passed (the Bento builds and answers within budget, the
  monitoring reference and alert rules exist); the use case is approved *now*; every
  linked record still verifies; a rollback target exists now, or this is the use case's
  first champion (recorded as ``first_model``: there is nothing to go back to, which the
  production-readiness gate already stated); and, when ``governance.approval_required_for``
  lists the spec's risk level, a recorded human approval covers that very
  production-readiness record;
* the training pipeline (``auto_promote``) additionally needs ``governance.auto_promote``
  on and a risk level that needs no human approval; it never approves anything itself.

The read of the current champion, the decision, the record (with the true previous
champion) and the alias move happen inside one lock per registered model
(``locks.model_lock``), shared with rollback, so concurrent promotions serialize.
Every attempt, refused or not, is a ``promotion`` record in the trail.
"""

from __future__ import annotations

from typing import Any

from shipway.core.evidence import Criterion, GateRecord
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.governance import (
    DATA_READINESS,
    MODEL_VALIDATION,
    PRODUCTION_READINESS,
    PROMOTION,
    USE_CASE_APPROVAL,
    probes,
)
from shipway.governance.approval import current_user
from shipway.governance.assessment import Maturity
from shipway.governance.assessment.scoring import data_maturity
from shipway.governance.facts import VersionFacts, collect
from shipway.governance.gates import rollback_criterion, use_case_approval
from shipway.governance.locks import model_lock
from shipway.governance.trail import trail_for
from shipway.governance.versions import (
    GovernanceError,
    champion,
    link,
    mark_champion,
    subject,
)


def _gate(facts: VersionFacts, gate: str) -> Criterion:
    p = facts.passed(gate)
    status = "no record" if p is None else "passed" if p else "failed"
    return Criterion(gate, p is True, status, detail=facts.uris.get(gate, ""))


def approval_criterion(spec: UseCaseSpec, facts: VersionFacts) -> Criterion:
    """A human approval, when the risk level needs one, covering the production-readiness
    record being promoted on."""
    if not spec.governance.approval_required(spec.risk_level):
        return Criterion(
            "human_approval",
            True,
            "not required",
            detail=f"risk level {spec.risk_level.value} is not in approval_required_for",
        )
    pr = facts.records.get(PRODUCTION_READINESS)
    valid = [a for a in facts.approvals if a.get("passed")]
    if not valid:
        return Criterion(
            "human_approval",
            False,
            "missing",
            detail=f"risk level {spec.risk_level.value} requires a recorded human approval "
            f"(shipway approve {facts.name}@{facts.version} --by NAME --comment ...)",
        )
    last = valid[-1]
    seen = last["facts"].get("evidence_seen", {}).get(PRODUCTION_READINESS)
    if pr is None or seen != pr.get("content_hash"):
        return Criterion(
            "human_approval",
            False,
            last["facts"].get("approver"),
            detail="the approval does not cover the current production-readiness record "
            "(approve again after the gate ran)",
        )
    return Criterion(
        "human_approval",
        True,
        last["facts"].get("approver"),
        detail=f"{last['facts'].get('approved_at')}: {last['facts'].get('comment')}",
    )


def promotion_criteria(
    spec: UseCaseSpec,
    facts: VersionFacts,
    current: Any | None,
    rollback: dict[str, Any],
    maturity: Maturity | None = None,
) -> list[Criterion]:
    """The rule of ``shipway promote`` (see the module docstring); ``rollback`` is what
    ``probes.rollback`` finds now (the target, or that this is the first model);
    ``maturity`` the latest readiness assessment's data maturity, judged again now."""
    crit = [_gate(facts, g) for g in (USE_CASE_APPROVAL, DATA_READINESS, MODEL_VALIDATION)]
    crit.append(_gate(facts, PRODUCTION_READINESS))
    now = use_case_approval(spec, {"usecase": spec.name}, maturity=maturity)
    crit.append(
        Criterion(
            "use_case_approved_now",
            now.passed,
            "approved" if now.passed else "not approved",
            detail=now.explain() if not now.passed else "current spec",
        )
    )
    crit.append(
        Criterion(
            "evidence_intact",
            not facts.tampered,
            len(facts.tampered),
            0,
            "<=",
            "; ".join(facts.tampered),
        )
    )
    crit.append(rollback_criterion(rollback))
    crit.append(approval_criterion(spec, facts))
    is_champ = current is not None and str(current.version) == facts.version
    crit.append(Criterion("not_already_champion", not is_champ, "champion" if is_champ else "no"))
    return crit


def _record(
    settings: Settings,
    client: Any,
    spec: UseCaseSpec,
    mv: Any,
    crit: list[Criterion],
    facts: dict[str, Any],
) -> tuple[GateRecord, str]:
    record = GateRecord(PROMOTION, subject(mv, spec.name), crit, facts)
    uri = trail_for(settings, spec.name, run_id=mv.run_id, client=client).append(record)
    link(client, mv, PROMOTION, uri)
    return record, uri


def _decide(
    settings: Settings,
    client: Any,
    spec: UseCaseSpec,
    mv: Any,
    info: dict[str, Any],
    extra: list[Criterion],
) -> tuple[GateRecord, str]:
    """Inside the model's lock: read the champion, judge, record, move the alias if passed.

    Nothing another promoter or a rollback does can fall between reading the current
    champion and moving the alias, so ``previous_champion`` is the version that really
    was champion just before this one.
    """
    with model_lock(settings, mv.name) as backend:
        fresh = client.get_model_version(mv.name, str(mv.version))
        facts = collect(settings, client, spec, fresh)
        current = champion(client, mv.name)
        crit = promotion_criteria(
            spec, facts, current, probes.rollback(client, spec, fresh), data_maturity(settings)
        )
        crit += extra
        info = {
            **info,
            "previous_champion": str(current.version) if current is not None else None,
            "relied_on": {g: r["content_hash"] for g, r in facts.records.items()},
            "lock": backend,
        }
        record, uri = _record(settings, client, spec, mv, crit, info)
        if record.passed:
            mark_champion(client, mv)
    return record, uri


def promote(
    settings: Settings, client: Any, spec: UseCaseSpec, mv: Any, by: str | None = None
) -> tuple[GateRecord, str]:
    """Make the version champion if the rule holds; record the attempt either way."""
    info = {"by": by or current_user(), "how": "shipway promote"}
    record, uri = _decide(settings, client, spec, mv, info, [])
    if not record.passed:
        raise GovernanceError(
            f"promotion of {mv.name}@{mv.version} refused (recorded at {uri}):\n{record.explain()}"
        )
    return record, uri


def auto_promote(
    settings: Settings,
    client: Any,
    spec: UseCaseSpec,
    mv: Any,
    kfp_run_id: str,
    readiness: str = "",
) -> tuple[GateRecord, str]:
    """The pipeline's promotion: the rule of ``shipway promote`` (production readiness
    included) where the spec lets a pipeline promote without a human; recorded.

    ``readiness`` says what the pipeline's production-readiness step did (ran, or why it
    was skipped), kept in the record beside the gate's own verdict.
    """
    g = spec.governance
    allowed = Criterion(
        "auto_promote_allowed",
        g.auto_promote and not g.approval_required(spec.risk_level),
        f"risk {spec.risk_level.value}, auto_promote {g.auto_promote}",
        detail="otherwise: shipway gate production-readiness, approve, promote",
    )
    info = {
        "by": "training pipeline",
        "how": "auto-promotion",
        "kfp_run_id": kfp_run_id,
        "production_readiness_step": readiness,
    }
    return _decide(settings, client, spec, mv, info, [allowed])
