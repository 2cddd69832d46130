"""Lineage of one prediction: request -> model version -> training run -> feature service
and feature values -> data version (DVC md5) and git revision -> spec and source.

Every link is resolved against the system that owns it (prediction log, MLflow, Feast,
dvc.lock and git at the training revision), not copied from a tag, so a broken link is
reported with the reason instead of being assumed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shipway.governance.provenance import WORKSPACE, lock_chain
from shipway.governance.versions import GovernanceError
from shipway.settings import Settings
from shipway.spec import UseCaseSpec


@dataclass
class Link:
    """One hop of the trace: what it resolved to, whether it resolved, and how."""

    name: str
    ok: bool
    value: Any
    detail: str = ""


@dataclass
class Trace:
    request_id: str
    links: list[Link] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(link.ok for link in self.links)

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "ok": self.ok,
            "links": [asdict(x) for x in self.links],
        }


def git_show(root: Path, rev: str, path: str) -> str | None:
    """A file's text at a git revision (None if the revision or the file is unknown)."""
    proc = subprocess.run(
        ["git", "-C", str(root), "show", f"{rev}:{path}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.stdout if proc.returncode == 0 else None


def _commit_exists(root: Path, rev: str) -> bool:
    proc = subprocess.run(
        ["git", "-C", str(root), "cat-file", "-e", f"{rev}^{{commit}}"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return proc.returncode == 0


def _spec_at(root: Path, rev: str, usecase: str) -> tuple[UseCaseSpec | None, str]:
    text = (
        (root / "usecases" / usecase / "usecase.yaml").read_text()
        if rev == WORKSPACE
        else git_show(root, rev, f"usecases/{usecase}/usecase.yaml")
    )
    if text is None:
        return None, f"usecases/{usecase}/usecase.yaml not found at {rev}"
    try:
        return UseCaseSpec.model_validate(yaml.safe_load(text)), hashlib.sha256(
            text.encode()
        ).hexdigest()
    except Exception as exc:  # an old spec the current schema rejects is still lineage
        return None, f"spec at {rev} does not load with the current schema: {exc}"


def trace(settings: Settings, client: Any, request_id: str) -> Trace:
    """Resolve every link of one logged prediction."""
    from mlflow.exceptions import MlflowException

    from shipway.predictionlog import PredictionLog

    row = PredictionLog(settings.prediction_log).get(request_id)
    if row is None:
        raise GovernanceError(f"no prediction with request id {request_id!r} in the log")
    t = Trace(request_id)
    t.links.append(
        Link(
            "prediction",
            True,
            {k: row[k] for k in ("ts", "usecase", "prediction", "label", "variant", "mode")},
            f"entity {row['entity_keys']}, latency {row['latency_ms']:.1f} ms",
        )
    )
    try:
        mv = client.get_model_version(row["model_name"], str(row["model_version"]))
    except MlflowException as exc:
        t.links.append(Link("model_version", False, row["model_version"], str(exc)[:300]))
        return t
    tags = dict(mv.tags or {})
    t.links.append(
        Link(
            "model_version",
            True,
            f"{mv.name}@{mv.version}",
            f"aliases {list(getattr(mv, 'aliases', []) or [])}; evidence "
            + ", ".join(sorted(k for k in tags if k.startswith("evidence."))),
        )
    )
    run = client.get_run(mv.run_id)
    same = all(run.data.tags.get(k) == tags.get(k) for k in ("data_version", "spec_hash"))
    t.links.append(
        Link(
            "training_run",
            run.info.status == "FINISHED" and same,
            mv.run_id,
            f"status {run.info.status}, kfp run {tags.get('kfp_run_id')}"
            + ("" if same else "; run tags disagree with the version's lineage tags"),
        )
    )
    rev = tags.get("data_rev", "")
    spec, spec_info = _spec_at(settings.root, rev, row["usecase"])
    t.links.append(_feature_service(settings, spec, tags.get("feature_service", "")))
    t.links.append(_feature_values(spec, row))
    t.links.append(_data_version(settings.root, rev, row["usecase"], tags.get("data_version")))
    commit = tags.get("git_commit", "")
    t.links.append(
        Link(
            "code",
            _commit_exists(settings.root, commit),
            commit,
            "git commit of the training code" if commit else "no git_commit tag",
        )
    )
    t.links.append(_source(settings.root, rev, row["usecase"], spec, spec_info, tags))
    return t


def _feature_service(settings: Settings, spec: UseCaseSpec | None, name: str) -> Link:
    try:
        from feature_repo.store import feature_store

        fs = feature_store(settings).get_feature_service(name)
        feats = sorted(f.name for p in fs.feature_view_projections for f in p.features)
    except Exception as exc:
        return Link("feature_service", False, name, f"not in the Feast registry: {exc}"[:300])
    want = spec.stored_feature_names if spec else []
    absent = sorted(set(want) - set(feats))
    return Link(
        "feature_service",
        not absent,
        name,
        f"{len(feats)} features in Feast, the {len(want)} stored ones of the training spec "
        + (f"missing: {absent}" if absent else "all among them"),
    )


def _feature_values(spec: UseCaseSpec | None, row: dict[str, Any]) -> Link:
    values = row["features"]
    need = spec.model_feature_names if spec else list(values)
    absent = [n for n in need if n not in values]
    return Link(
        "feature_values",
        not absent,
        values,
        f"{len(values)} values logged; served with defaults: {row.get('missing') or 'none'}"
        + (f"; not logged: {absent}" if absent else ""),
    )


def _data_version(root: Path, rev: str, usecase: str, version: str | None) -> Link:
    lock = (root / "dvc.lock").read_text() if rev == WORKSPACE else git_show(root, rev, "dvc.lock")
    if lock is None:
        return Link("data_version", False, version, f"no dvc.lock at {rev}")
    chain = lock_chain(lock, usecase)
    ok = bool(version) and chain.get("features_md5") == version
    return Link(
        "data_version",
        ok,
        version,
        f"dvc.lock at {rev[:12]}: features {chain.get('features_md5')}, validated "
        f"{chain.get('validated_md5')}, readiness report {chain.get('report_md5')}",
    )


def _source(
    root: Path,
    rev: str,
    usecase: str,
    spec: UseCaseSpec | None,
    spec_info: str,
    tags: dict[str, str],
) -> Link:
    if spec is None:
        return Link("source", False, None, spec_info)
    lock = (root / "dvc.lock").read_text() if rev == WORKSPACE else git_show(root, rev, "dvc.lock")
    stages = ((yaml.safe_load(lock or "") or {}).get("stages")) or {}
    outs = (stages.get(f"ingest@{usecase}") or {}).get("outs") or []
    raw = next((o.get("md5") for o in outs if o.get("path") == f"data/{usecase}/raw.parquet"), None)
    same_hash = spec.content_hash() == tags.get("spec_hash")
    return Link(
        "source",
        raw is not None,
        json.loads(spec.source.model_dump_json()),
        f"spec usecases/{usecase}/usecase.yaml at {rev[:12]} (sha256 {spec_info[:12]}; spec "
        f"hash {'matches' if same_hash else 'differs from'} the version's spec_hash), raw "
        f"data md5 {raw}",
    )
