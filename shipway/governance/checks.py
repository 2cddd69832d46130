"""Run one gate end to end: gather its facts, judge them, append the record, link it.

The training pipeline runs the first three gates itself (``registration``); these are
the same gates on demand (``shipway gate ...``), plus production readiness, which needs
a built and served model. The post-deployment review is ``review.post_deployment_review``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd

from shipway.core.evidence import GateRecord, verify
from shipway.core.lineage import data_version
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.governance import MODEL_VALIDATION, gates, probes
from shipway.governance.assessment.scoring import data_maturity
from shipway.governance.facts import collect
from shipway.governance.provenance import WORKSPACE, readiness_at
from shipway.governance.trail import append_and_link, trail_for
from shipway.governance.versions import GovernanceError, link, read_uri, subject

if TYPE_CHECKING:
    from concurrent.futures import Future


def use_case_approval(
    settings: Settings, client: Any, spec: UseCaseSpec, mv: Any = None
) -> tuple[GateRecord, str]:
    subj = subject(mv, spec.name) if mv is not None else {"usecase": spec.name}
    record = gates.use_case_approval(spec, subj, maturity=data_maturity(settings))
    return record, append_and_link(settings, client, spec, record, mv)


def data_readiness(settings: Settings, client: Any, spec: UseCaseSpec) -> tuple[GateRecord, str]:
    """The gate on the working tree's data: readiness report, and the events table and
    feature tables that training reads (PII must not be in any of them)."""
    features = settings.usecase_data(spec.name) / "features"
    if not features.is_dir():
        raise GovernanceError(f"no feature data at {features} (run `dvc repro features`)")
    frames = {p.stem: pd.read_parquet(p) for p in sorted(features.glob("*.parquet"))}
    if "events" in frames:  # the rows training fits on: representation is judged there
        frames = {"train": frames.pop("events"), **frames}
    version = data_version(settings.root, settings.data, spec.name)
    proof = readiness_at(str(settings.root), WORKSPACE, spec.name)
    subj = {"usecase": spec.name, "data_version": version, "git_rev": WORKSPACE}
    record = gates.data_readiness(spec, subj, proof, frames, version)
    return record, append_and_link(settings, client, spec, record)


def model_validation(
    settings: Settings, client: Any, spec: UseCaseSpec, mv: Any
) -> tuple[GateRecord, str]:
    """Link the pipeline's model-validation record (verified first, never re-decided)."""
    uri = f"runs:/{mv.run_id}/evidence/model_validation.json"
    try:
        data = json.loads(read_uri(uri, client))
    except (OSError, ValueError) as exc:
        raise GovernanceError(
            f"{mv.name}@{mv.version} has no model-validation record: {exc}"
        ) from exc
    if not verify(data):
        raise GovernanceError(f"{uri} was modified after it was recorded (hash mismatch)")
    record = GateRecord.from_dict(data)
    trail_for(settings, spec.name, run_id=mv.run_id, client=client).append(record)
    link(client, mv, MODEL_VALIDATION, uri)
    return record, uri


def production_readiness(
    settings: Settings,
    client: Any,
    spec: UseCaseSpec,
    mv: Any,
    port: int,
    build: Future[dict[str, Any]] | None = None,
) -> tuple[GateRecord, str]:
    """``build``: the Bento build already started (``probes.start_build``), else it runs
    here."""
    facts = collect(settings, client, spec, mv)
    bento = build.result() if build is not None else probes.build_bento(settings, spec)
    found = {
        "prerequisites": {g: facts.passed(g) for g in gates.prerequisite_gates()},
        "bento": bento,
        "smoke": probes.smoke(settings, spec, mv, client, bento.get("tag"), port),
        "reference": probes.reference(client, mv),
        "rules": probes.alert_rules(settings),
        "rollback": probes.rollback(client, spec, mv),
    }
    record = gates.production_readiness(spec, subject(mv, spec.name), found)
    return record, append_and_link(settings, client, spec, record, mv)
