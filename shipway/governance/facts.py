"""Everything recorded about one model version, gathered from the registry and the trail.

Cards, the audit bundle, promotion and the production-readiness prerequisites all read
the same collection, so they can never disagree about what was recorded. Records are
read back and hash-verified; a record whose hash no longer matches is reported as such
instead of being believed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shipway.core.evidence import verify
from shipway.core.registry import LINEAGE_TAGS
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.governance import GATES, HUMAN_APPROVAL, MODEL_VALIDATION, PROMOTION, ROLLBACK
from shipway.governance.trail import trails_for_version
from shipway.governance.versions import evidence_links, read_uri

SPLITS = ("train", "validation", "test")
LINEAGE_KEYS = (*LINEAGE_TAGS, "run_id")


@dataclass
class VersionFacts:
    """The recorded facts of one version (``records``: newest record per gate)."""

    name: str
    version: str
    run_id: str
    created_at: str
    aliases: list[str]
    tags: dict[str, str]
    metrics: dict[str, dict[str, float]]
    params: dict[str, str]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    uris: dict[str, str] = field(default_factory=dict)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    tampered: list[str] = field(default_factory=list)
    explanations: dict[str, Any] = field(default_factory=dict)
    """Global importance and its stability across versions
    (``shipway.governance.importance.attach``); empty where not computed."""

    @property
    def lineage(self) -> dict[str, str]:
        return {k: self.tags[k] for k in LINEAGE_KEYS if k in self.tags}

    def passed(self, gate: str) -> bool | None:
        """True/False for the newest record of ``gate``; None when there is none."""
        rec = self.records.get(gate)
        return None if rec is None else bool(rec.get("passed"))


def _split_metrics(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        split, _, name = key.partition("_")
        if split in SPLITS and name:
            out.setdefault(split, {})[name] = float(value)
    return out


def collect(settings: Settings, client: Any, spec: UseCaseSpec, mv: Any) -> VersionFacts:
    """Read the version, its run, its linked evidence and its trail records."""
    run = client.get_run(mv.run_id)
    created = datetime.fromtimestamp((mv.creation_timestamp or 0) / 1000, UTC).isoformat()
    facts = VersionFacts(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id,
        created_at=created,
        aliases=list(getattr(mv, "aliases", []) or []),
        tags=dict(mv.tags or {}),
        metrics=_split_metrics(dict(run.data.metrics)),
        params=dict(run.data.params),
    )
    for gate, uri in evidence_links(mv).items():
        try:
            rec = json.loads(read_uri(uri, client))
        except (OSError, ValueError) as exc:
            facts.tampered.append(f"{gate}: linked record {uri} unreadable ({exc})")
            continue
        if not verify(rec):
            facts.tampered.append(f"{gate}: linked record {uri} was modified (hash mismatch)")
            continue
        facts.records[gate], facts.uris[gate] = rec, uri
    for trail in trails_for_version(settings, spec.name, mv.run_id, client):
        for rec in trail.records(model=mv.name, version=mv.version):
            gate = rec["gate"]
            if gate == HUMAN_APPROVAL:
                facts.approvals.append(rec)
            elif gate in (PROMOTION, ROLLBACK):
                facts.history.append(rec)
            elif gate in GATES and gate != MODEL_VALIDATION:
                newer = rec["created_at"] >= facts.records.get(gate, {}).get("created_at", "")
                if newer:
                    facts.records[gate] = rec
                    facts.uris[gate] = trail.uri_of(rec)
    return facts
