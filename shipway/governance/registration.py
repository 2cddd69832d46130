"""What the training pipeline's register step asks of governance, in one call.

After the version is registered and before any alias moves: run the use-case-approval
and data-readiness gates on the spec and the actual training splits of this run, put
them and the model-validation record in the audit trail, link all three from the
version (``evidence.<gate>``), and publish the model and data cards. Production
readiness and promotion come after, as their own pipeline steps
(``governance.readiness``, ``governance.promotion.auto_promote``). A version whose
use case is unapproved or whose data is not ready gets no alias at all — not even
challenger, which a split service would answer real traffic with — so an unapproved
use case cannot produce a production model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from shipway.core.evidence import GateRecord
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.governance import MODEL_VALIDATION, cards, gates, importance
from shipway.governance.assessment.scoring import data_maturity
from shipway.governance.facts import SPLITS, collect
from shipway.governance.provenance import readiness_at
from shipway.governance.trail import trail_for
from shipway.governance.versions import GOVERNANCE_PASSED, link, subject


@dataclass
class Governed:
    """The governance outcome of one registration."""

    settings: Settings
    spec: UseCaseSpec
    mv: Any
    records: dict[str, GateRecord] = field(default_factory=dict)
    uris: dict[str, str] = field(default_factory=dict)

    @property
    def gates_passed(self) -> bool:
        """Use-case approval and data readiness (the gates before the model's own)."""
        return all(r.passed for g, r in self.records.items() if g != MODEL_VALIDATION)

    @property
    def failures(self) -> list[str]:
        return [
            f"{g}: {c.summary()}"
            for g, r in self.records.items()
            if g != MODEL_VALIDATION
            for c in r.failures
        ]


def govern_registration(
    client: Any,
    spec: UseCaseSpec,
    meta: dict[str, Any],
    sets: Path,
    mv: Any,
    validation: GateRecord,
    settings: Settings | None = None,
) -> Governed:
    """Gates, trail, evidence links and cards of a freshly registered version."""
    # a fresh Settings reads this process's environment (the pipeline exports it), not a
    # cached copy from another configuration
    s = settings or Settings()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # pipeline logs
    subj = {
        **subject(mv, spec.name),
        "data_version": meta["data_version"],
        "git_rev": meta["git_rev"],
    }
    frames = {name: pd.read_parquet(sets / f"{name}.parquet") for name in SPLITS}
    proof = readiness_at(meta.get("repo") or str(s.root), meta["git_rev"], spec.name)
    gov = Governed(s, spec, mv)
    gov.records = {
        "use_case_approval": gates.use_case_approval(spec, subj, maturity=data_maturity(s)),
        "data_readiness": gates.data_readiness(spec, subj, proof, frames, meta["data_version"]),
        MODEL_VALIDATION: validation,
    }
    trail = trail_for(s, spec.name, run_id=mv.run_id, client=client)
    for gate, record in gov.records.items():
        uri = trail.append(record)
        if gate == MODEL_VALIDATION:  # the run's own artifact stays the linked original
            uri = f"runs:/{mv.run_id}/evidence/model_validation.json"
        gov.uris[gate] = uri
        link(client, mv, gate, uri)
    client.set_model_version_tag(
        mv.name, str(mv.version), GOVERNANCE_PASSED, str(gov.gates_passed).lower()
    )
    publish_cards(s, client, spec, mv)
    return gov


def publish_cards(settings: Settings, client: Any, spec: UseCaseSpec, mv: Any) -> dict[str, str]:
    """(Re)render both cards from the recorded facts and attach them to the version."""

    fresh = client.get_model_version(mv.name, str(mv.version))
    facts = importance.attach(client, spec, collect(settings, client, spec, fresh), fresh)
    return cards.publish(client, spec, facts)
