"""The evidence bundle of one model version: everything an auditor needs, offline.

``export`` writes records (trail + linked MLflow evidence), the run's evidence files,
version and run metadata, lineage, cards, the spec snapshot at the training revision and
the trail's own verification, then ``manifest.json`` with the sha256 of every file and a
hash of the manifest itself. The manifest hash is also appended to the audit trail
(``audit_export``), so even a bundle rewritten together with its manifest no longer
matches what was recorded when it was exported.

``verify`` needs nothing but the folder: every listed file present and unchanged, no
file added, every gate record's own content hash intact, the manifest hash right, and
the compliance matrix (``compliance``) citing only intact evidence and following from the
bundled evidence and framework files.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipway.core.evidence import Criterion, GateRecord, content_hash, verify
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.governance import AUDIT_EXPORT, compliance, importance
from shipway.governance.cards import facts_json, write
from shipway.governance.facts import VersionFacts, collect
from shipway.governance.lineage import trained_spec_text
from shipway.governance.trail import trail_for, trails_for_version
from shipway.governance.versions import subject

MANIFEST = "manifest.json"
README = """# Evidence bundle: {model} v{version}

Exported {created_at}. Check it offline with `shipway audit verify <this folder>`:
every file listed in manifest.json must be present with the same sha256, no file may
be added, every gate record (records/*.json) must match its own content hash, and the
manifest hash must match the manifest. The same manifest hash was recorded in the audit
trail (gate `audit_export`) when the bundle was written.

- records/: every governance record of this version (JSON for machines, Markdown)
- mlflow/: the training run's evidence files, version tags, run params and metrics
- cards/: model card and data card (Markdown and HTML), the model card as Model Card
  Toolkit JSON (model_card.json) and with Hugging Face front matter (README.md), and the
  facts they came from
- compliance/: the compliance matrix (matrix.json, matrix.md): per requirement of the EU
  AI Act Annex IV, NIST AI RMF 1.0, ISO/IEC 42001 Annex A and SR 11-7, the records (by
  content hash) and files (by sha256) that satisfy it, or what is missing; frameworks/
  holds the mapping files it was computed with
- explanations/summary.json: the model's global feature importance and its stability
  against the previous version, and every explained prediction of this version in the
  prediction log (request id, answer, base value and each feature's contribution)
- lineage.json: data version (DVC md5), git revisions, feature service, run ids
- spec/usecase.yaml: the spec at the training revision
- trail.json: the audit trail's own verification at export time
"""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _records(
    settings: Settings, client: Any, spec: UseCaseSpec, mv: Any, facts: VersionFacts, out: Path
) -> list[str]:
    """Every record about the version into records/; the trails' problems, if any."""
    problems: list[str] = []
    seen: set[str] = set()
    recs = list(facts.records.values()) + facts.approvals + facts.history
    for trail in trails_for_version(settings, spec.name, mv.run_id, client):
        problems += trail.verify()
        recs += trail.records(model=mv.name, version=str(mv.version))
        recs += trail.records(model=mv.name, from_version=str(mv.version))  # rolled back from it
    for rec in recs:
        if rec["content_hash"] in seen:
            continue
        seen.add(rec["content_hash"])
        stem = f"{rec['gate']}-{rec['content_hash'].split(':')[1][:16]}"
        _write_json(out / "records" / f"{stem}.json", rec)
        (out / "records" / f"{stem}.md").write_text(GateRecord.from_dict(rec).to_markdown())
    return problems + facts.tampered


def export(
    settings: Settings, client: Any, spec: UseCaseSpec, mv: Any, out: Path
) -> dict[str, Any]:
    """Write the bundle into ``out`` (must be empty or new); return the manifest."""
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: an evidence bundle needs its own folder")
    out.mkdir(parents=True, exist_ok=True)
    facts = importance.attach(client, spec, collect(settings, client, spec, mv), mv)
    problems = _records(settings, client, spec, mv, facts, out)
    with tempfile.TemporaryDirectory(prefix="shipway-audit-") as tmp:
        ev = Path(client.download_artifacts(mv.run_id, "evidence", tmp))
        for f in sorted(ev.rglob("*")):
            if f.is_file():
                dst = out / "mlflow" / "evidence" / f.relative_to(ev)
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(f.read_bytes())
    run = client.get_run(mv.run_id)
    _write_json(
        out / "mlflow" / "version.json",
        {
            "name": mv.name,
            "version": str(mv.version),
            "aliases": list(getattr(mv, "aliases", []) or []),
            "tags": dict(mv.tags or {}),
            "run": {
                "id": mv.run_id,
                "status": run.info.status,
                "params": dict(run.data.params),
                "metrics": dict(run.data.metrics),
                "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
            },
        },
    )
    _write_json(out / "lineage.json", facts.lineage)
    write(spec, facts, out / "cards")
    (out / "cards" / "facts.json").write_text(facts_json(facts))
    _write_json(
        out / "explanations" / "summary.json", importance.bundle_summary(settings, spec, mv, facts)
    )
    rev = facts.tags.get("data_rev", "")
    # the spec the version trained on (found by its spec_hash for a workspace run), never
    # today's file, which may have been edited since
    text = trained_spec_text(settings.root, rev, spec.name, facts.tags.get("spec_hash"))
    (out / "spec").mkdir(exist_ok=True)
    (out / "spec" / "usecase.yaml").write_text(
        text or f"# the spec this version trained on was not found (data_rev {rev})\n"
    )
    _write_json(out / "trail.json", {"verified_at": _now(), "problems": problems})
    compliance.write(out)  # last: it cites the records, cards, lineage and files above
    created = _now()
    (out / "README.md").write_text(
        README.format(model=mv.name, version=mv.version, created_at=created)
    )
    body = {
        "model": mv.name,
        "version": str(mv.version),
        "created_at": created,
        "files": {
            p.relative_to(out).as_posix(): sha256_file(p)
            for p in sorted(out.rglob("*"))
            if p.is_file()
        },
    }
    manifest = {**body, "manifest_hash": content_hash(body)}
    _write_json(out / MANIFEST, manifest)
    _anchor(settings, client, spec, mv, manifest, problems)
    return manifest


def _anchor(
    settings: Settings,
    client: Any,
    spec: UseCaseSpec,
    mv: Any,
    manifest: dict[str, Any],
    problems: list[str],
) -> None:
    """Record the export (and its manifest hash) in the version's audit trail."""

    record = GateRecord(
        AUDIT_EXPORT,
        subject(mv, spec.name),
        [Criterion("trail_intact", not problems, len(problems), 0, "<=", "; ".join(problems))],
        {"manifest_hash": manifest["manifest_hash"], "files": len(manifest["files"])},
    )
    trail_for(settings, spec.name, run_id=mv.run_id, client=client).append(record)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def verify_bundle(folder: Path) -> list[str]:
    """Every problem of a bundle (empty: intact). Needs nothing but the folder."""
    mpath = folder / MANIFEST
    if not mpath.is_file():
        return [f"{MANIFEST} missing: not an evidence bundle"]
    try:
        manifest = json.loads(mpath.read_text())
    except ValueError as exc:
        return [f"{MANIFEST} unreadable: {exc}"]
    problems = []
    body = {k: v for k, v in manifest.items() if k != "manifest_hash"}
    if content_hash(body) != manifest.get("manifest_hash"):
        problems.append(f"{MANIFEST} was modified (its hash does not match its content)")
    files = manifest.get("files", {})
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    for rel, digest in sorted(files.items()):
        if rel not in present:
            problems.append(f"{rel}: missing")
        elif sha256_file(folder / rel) != digest:
            problems.append(f"{rel}: modified (sha256 differs from the manifest)")
    for rel in sorted(present - set(files) - {MANIFEST}):
        problems.append(f"{rel}: not in the manifest (added after export)")
    for rel in sorted(r for r in present if r.startswith("records/") and r.endswith(".json")):
        try:
            ok = verify(json.loads((folder / rel).read_text()))
        except ValueError:
            ok = False
        if not ok:
            problems.append(f"{rel}: gate record content does not match its content hash")
    return problems + compliance.verify_matrix(folder)
