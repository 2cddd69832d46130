"""Lineage of one prediction: request -> model version -> training run -> feature service
and feature values -> data version (DVC md5) and git revision -> spec and source.

Every link is resolved against the system that owns it (prediction log, MLflow, Feast,
dvc.lock and git at the training revision, the DVC cache and remote), not copied from a
tag, so a broken link is reported with the reason instead of being assumed.

A version trained from the working tree (``data_rev: workspace``) has no revision to read
back, and today's working tree is not what it trained on (a later ingest may have
rewritten it). Its links are resolved by content instead: the data by the md5 it recorded
(DVC cache or remote), the spec by its recorded ``spec_hash``, the upstream chain by a
committed dvc.lock recording the same features md5; what cannot be found is said.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.governance.provenance import WORKSPACE, lock_chain, retrievable
from shipway.governance.versions import GovernanceError


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
    explanation: dict[str, Any] | None = None
    """Why the answer was given, as logged with it (``POST /explain``); None when the
    prediction was not explained (``/predict`` never computes one)."""

    @property
    def ok(self) -> bool:
        return all(link.ok for link in self.links)

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "ok": self.ok,
            "links": [asdict(x) for x in self.links],
            "explanation": self.explanation,
        }

    def why(self, top: int = 10) -> list[tuple[str, float]]:
        """The logged explanation's ``top`` contributions, largest effect first."""
        contributions = (self.explanation or {}).get("contributions") or {}
        return sorted(contributions.items(), key=lambda kv: -abs(kv[1]))[:top]


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


def _workspace_specs(root: Path, usecase: str) -> Iterator[tuple[str, str]]:
    """(where, text) of every spec a workspace run may have trained on: the working
    tree's, then each committed one, newest first."""
    rel = f"usecases/{usecase}/usecase.yaml"
    if (root / rel).is_file():
        yield "the working tree", (root / rel).read_text()
    log = subprocess.run(
        ["git", "-C", str(root), "log", "--format=%H", "--", rel],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    for commit in log.stdout.split():
        text = git_show(root, commit, rel)
        if text is not None:
            yield commit[:12], text


def _load_spec(text: str) -> tuple[UseCaseSpec | None, str]:
    try:
        return UseCaseSpec.model_validate(yaml.safe_load(text)), ""
    except Exception as exc:  # an old spec the current schema rejects is still lineage
        return None, f"does not load with the current schema: {exc}"


def trained_spec_text(root: Path, rev: str, usecase: str, spec_hash: str | None) -> str | None:
    """The text of the spec a version trained on: the file at its git revision, or for a
    workspace run the spec whose content hash is the recorded ``spec_hash`` (today's file
    only while it still hashes the same); None when it cannot be found."""
    if rev != WORKSPACE:
        return git_show(root, rev, f"usecases/{usecase}/usecase.yaml")
    for _, candidate in _workspace_specs(root, usecase):
        spec, _ = _load_spec(candidate)
        if spec is not None and spec.content_hash() == spec_hash:
            return candidate
    return None


def _spec_at(
    root: Path, rev: str, usecase: str, spec_hash: str | None
) -> tuple[UseCaseSpec | None, str]:
    """The training spec and where it was found. At a git revision, the file at the
    revision; for a workspace run, the spec whose content hash is the recorded
    ``spec_hash`` (the working tree's only while it still hashes the same)."""
    if rev == WORKSPACE:
        for where, candidate in _workspace_specs(root, usecase):
            spec, _ = _load_spec(candidate)
            if spec is not None and spec.content_hash() == spec_hash:
                return spec, f"found by the version's spec_hash in {where}"
        return None, (
            f"no spec with the version's spec_hash {spec_hash} in the working tree or the "
            "git history: it trained on an uncommitted spec that has changed since"
        )
    text = git_show(root, rev, f"usecases/{usecase}/usecase.yaml")
    if text is None:
        return None, f"usecases/{usecase}/usecase.yaml not found at {rev}"
    spec, error = _load_spec(text)
    sha = hashlib.sha256(text.encode()).hexdigest()[:12]
    return spec, f"spec at {rev} {error}" if spec is None else f"at {rev[:12]} (sha256 {sha})"


def recorded_lock(root: Path, rev: str, usecase: str, version: str) -> tuple[str | None, str]:
    """The dvc.lock that records a version's data (text, where). At a git revision it is
    that revision's; for a workspace run, a committed dvc.lock whose features md5 is the
    version's (never today's dvc.lock, which a later ingest may have rewritten)."""
    if rev != WORKSPACE:
        return git_show(root, rev, "dvc.lock"), f"dvc.lock at {rev[:12]}"
    if version:
        log = subprocess.run(  # commits that added or removed the md5
            ["git", "-C", str(root), "log", "--format=%H", f"-S{version}", "--", "dvc.lock"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        for commit in log.stdout.split():
            lock = git_show(root, commit, "dvc.lock")
            if lock and lock_chain(lock, usecase).get("features_md5") == version:
                return lock, f"dvc.lock committed at {commit[:12]}"
    return None, f"no committed dvc.lock records features {version} (a workspace run)"


def trace(settings: Settings, client: Any, request_id: str) -> Trace:
    """Resolve every link of one logged prediction."""
    from mlflow.exceptions import MlflowException

    from shipway.core.predictionlog import PredictionLog

    row = PredictionLog(settings.prediction_log).get(request_id)
    if row is None:
        raise GovernanceError(f"no prediction with request id {request_id!r} in the log")
    t = Trace(request_id, explanation=row.get("explanation"))
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
    rev, version = tags.get("data_rev", ""), tags.get("data_version", "")
    spec, spec_info = _spec_at(settings.root, rev, row["usecase"], tags.get("spec_hash"))
    lock = recorded_lock(settings.root, rev, row["usecase"], version)
    t.links.append(_feature_service(settings, spec, tags.get("feature_service", "")))
    t.links.append(_feature_values(spec, row))
    t.links.append(_data_version(settings, rev, row["usecase"], version, lock))
    commit = tags.get("git_commit", "")
    t.links.append(
        Link(
            "code",
            _commit_exists(settings.root, commit),
            commit,
            "git commit of the training code" if commit else "no git_commit tag",
        )
    )
    t.links.append(_source(row["usecase"], spec, spec_info, tags, lock))
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


def _data_version(
    settings: Settings, rev: str, usecase: str, version: str, lock: tuple[str | None, str]
) -> Link:
    """The recorded data version: named by the training revision's dvc.lock (a workspace
    run has none to name it by) and still retrievable from the DVC cache or remote."""
    text, where = lock
    chain = lock_chain(text, usecase) if text else {}
    named = rev == WORKSPACE or chain.get("features_md5") == version
    if text is None:
        recorded = where if rev == WORKSPACE else f"no dvc.lock at {rev}"
    elif not named:
        recorded = f"{where} records features {chain.get('features_md5')}, not this md5"
    else:
        recorded = (
            f"{where}: validated {chain.get('validated_md5')}, readiness report "
            f"{chain.get('report_md5')}"
        )
    found = retrievable(settings.root, version, settings.dvc_remote_url)
    return Link(
        "data_version", bool(version) and named and found.ok, version, f"{found.detail}; {recorded}"
    )


def _source(
    usecase: str,
    spec: UseCaseSpec | None,
    spec_info: str,
    tags: dict[str, str],
    lock: tuple[str | None, str],
) -> Link:
    """The spec's declared source and the raw data md5 the recording dvc.lock names."""
    if spec is None:
        return Link("source", False, None, spec_info)
    text, where = lock
    stages = ((yaml.safe_load(text or "") or {}).get("stages")) or {}
    outs = (stages.get(f"ingest@{usecase}") or {}).get("outs") or []
    raw = next((o.get("md5") for o in outs if o.get("path") == f"data/{usecase}/raw.parquet"), None)
    same_hash = spec.content_hash() == tags.get("spec_hash")
    return Link(
        "source",
        raw is not None,
        json.loads(spec.source.model_dump_json()),
        f"spec usecases/{usecase}/usecase.yaml {spec_info} (spec hash "
        f"{'matches' if same_hash else 'differs from'} the version's spec_hash), raw "
        f"data md5 {raw} ({where})",
    )
