"""Rollback: champion back to the previous eligible champion, recorded as evidence.

The target is the most recent former champion that passed its gates, was not itself
rolled back and, where the risk level needs one, carries a human approval
(``versions.previous_champion``). The rolled-back version is tagged ``rolled_back_at``
so it is never picked again, and loses the ``challenger`` alias if it held it, so a
split or shadow service stops sending it traffic as well.

Rollback holds the same per-model lock as promotion (``locks.model_lock``): the champion
it rolls back from is the one that is champion when it acts, never a stale read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shipway.core.evidence import Criterion, GateRecord
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.governance import ROLLBACK
from shipway.governance.approval import current_user
from shipway.governance.locks import model_lock
from shipway.governance.trail import trail_for
from shipway.governance.versions import (
    ROLLED_BACK_AT,
    GovernanceError,
    champion,
    ever_champion,
    link,
    mark_champion,
    previous_champion,
)


def rollback(
    settings: Settings, client: Any, spec: UseCaseSpec, by: str | None = None, reason: str = ""
) -> tuple[GateRecord, str]:
    """Move champion to the previous eligible version; record it (refusals too)."""
    with model_lock(settings, spec.registered_model_name) as backend:
        return _rollback(settings, client, spec, by or current_user(), reason, backend)


def _rollback(
    settings: Settings, client: Any, spec: UseCaseSpec, by: str, reason: str, lock: str
) -> tuple[GateRecord, str]:
    from shipway.core import registry

    name = spec.registered_model_name
    current = champion(client, name)
    if current is None:
        raise GovernanceError(f"{name} has no champion: nothing to roll back")
    target = previous_champion(client, spec, current)
    subj = {
        "usecase": spec.name,
        "model": name,
        "version": str(target.version) if target is not None else None,
        "from_version": str(current.version),
    }
    facts: dict[str, Any] = {
        "by": by,
        "reason": reason,
        "lock": lock,
        "from_version": str(current.version),
        "to_version": subj["version"],
        "former_champions": ever_champion(client, name, exclude=str(current.version)),
    }
    trail = trail_for(settings, spec.name, client=client)
    if target is None:
        detail = (
            "no other version has ever been champion (first model): there is nothing to go "
            "back to; take the service down or train a new version"
            if not facts["former_champions"]
            else "no former champion is still eligible (rolled back, failed a gate, or lacks "
            "a required approval)"
        )
        record = GateRecord(
            ROLLBACK, subj, [Criterion("rollback_target", False, "none", detail=detail)], facts
        )
        uri = trail.append(record)
        raise GovernanceError(f"rollback of {name} refused (recorded at {uri}): {detail}")
    mark_champion(client, target)
    now = datetime.now(UTC).isoformat()
    client.set_model_version_tag(name, str(current.version), ROLLED_BACK_AT, now)
    chall = registry.alias_version(client, name, registry.CHALLENGER)
    facts["challenger_removed"] = chall is not None and chall.version == current.version
    if facts["challenger_removed"]:
        client.delete_registered_model_alias(name, registry.CHALLENGER)
    after = champion(client, name)
    moved = after is not None and str(after.version) == str(target.version)
    record = GateRecord(
        ROLLBACK,
        subj,
        [
            Criterion("rollback_target", True, f"v{target.version}", detail="previous champion"),
            Criterion(
                "champion_moved",
                moved,
                f"v{after.version}" if after else "none",
                f"v{target.version}",
                "==",
            ),
        ],
        facts,
    )
    uri = trail.append(record)
    for mv in (current, target):
        link(client, mv, ROLLBACK, uri)
    return record, uri
