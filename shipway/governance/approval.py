"""Recorded human approvals of a model version: who, when, with what comment, on what.

An approval binds to the evidence the approver saw: the record carries the content hash
of every gate record of the version at that moment. Promotion then checks that the
approval covers the production-readiness record it promotes on, so an approval given
before (or on different) evidence does not count.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Any

from shipway.core.evidence import Criterion, GateRecord
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.governance import HUMAN_APPROVAL
from shipway.governance.facts import collect
from shipway.governance.trail import trail_for
from shipway.governance.versions import APPROVED_BY, GovernanceError, link, subject


def current_user() -> str:
    """The operating-system user, for records of actions whose actor was not named."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def approve(
    settings: Settings, client: Any, spec: UseCaseSpec, mv: Any, by: str, comment: str
) -> tuple[GateRecord, str]:
    """Record that ``by`` approved the version; return the record and its URI."""
    if not by.strip():
        raise GovernanceError("an approval must name the approver (--by NAME)")
    if not comment.strip():
        raise GovernanceError("an approval needs a comment saying what was approved and why")
    facts = collect(settings, client, spec, mv)
    seen = {gate: rec["content_hash"] for gate, rec in facts.records.items()}
    now = datetime.now(UTC).isoformat()
    record = GateRecord(
        HUMAN_APPROVAL,
        subject(mv, spec.name),
        [
            Criterion("approver_named", True, by.strip()),
            Criterion("comment_given", True, len(comment.strip()), detail="characters"),
            Criterion(
                "evidence_intact",
                not facts.tampered,
                len(facts.tampered),
                0,
                "<=",
                "; ".join(facts.tampered) or "every linked record verified",
            ),
        ],
        facts={
            "approver": by.strip(),
            "comment": comment.strip(),
            "approved_at": now,
            "recorded_by": current_user(),
            "risk_level": spec.risk_level.value,
            "evidence_seen": seen,
            "gate_status": {g: rec.get("passed") for g, rec in facts.records.items()},
        },
    )
    if not record.passed:
        raise GovernanceError(f"cannot approve {mv.name}@{mv.version}:\n{record.explain()}")
    uri = trail_for(settings, spec.name, run_id=mv.run_id, client=client).append(record)
    link(client, mv, HUMAN_APPROVAL, uri)
    client.set_model_version_tag(mv.name, str(mv.version), APPROVED_BY, by.strip())
    client.set_model_version_tag(mv.name, str(mv.version), "approved_at", now)
    return record, uri
