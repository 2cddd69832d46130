"""Evidence mapped to regulations: the compliance matrix of an evidence bundle.

Which evidence satisfies which requirement is data, not code: one versioned YAML file
per framework under ``frameworks/`` (EU AI Act Annex IV, NIST AI RMF 1.0, ISO/IEC 42001
Annex A, SR 11-7), validated here on load so a bad file fails naming the file and field.

The matrix is computed from the bundle folder alone (its hash-verified gate records,
cards, lineage and files), after the framework files are copied into it. That makes
``verify`` exact: it re-derives the matrix from the bundled evidence and the bundled
framework files and checks every cited hash, so a tampered record, a doctored matrix or a
doctored mapping each fail verification with the requirement named.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shipway.core.evidence import verify
from shipway.core.typedyaml import load_typed
from shipway.governance import GATES, HUMAN_APPROVAL, PROMOTION, ROLLBACK
from shipway.governance.facts import LINEAGE_KEYS

FRAMEWORKS_DIR = Path(__file__).parent / "frameworks"
MATRIX_DIR = "compliance"
MATRIX = f"{MATRIX_DIR}/matrix.json"
RECORD_KINDS = (*GATES, HUMAN_APPROVAL, PROMOTION, ROLLBACK)
"""Record kinds an evidence bundle of one version holds (``audit._records``)."""
CARDS = ("model_card", "data_card")
LINEAGE_FIELDS = LINEAGE_KEYS
"""Keys of the bundle's ``lineage.json``."""
SATISFIED, PARTIAL, MISSING = "satisfied", "partial", "missing"


class ComplianceError(ValueError):
    """A framework file failed to load; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordEvidence(_Strict):
    """Gate records of one kind; with ``criteria``, only records holding those criteria."""

    kind: Literal["record"]
    gate: str = Field(description="Record kind (gate name), e.g. model_validation.")
    criteria: list[str] = Field(
        default_factory=list,
        description="Criterion names (fnmatch globs, 'a|b' for alternatives); each must "
        "match at least one criterion of the record.",
    )
    passed: bool = Field(
        default=True,
        description="Only records whose matched criteria (or, without criteria, the whole "
        "record) passed count: evidence that the control held, not only that it ran.",
    )

    @field_validator("gate")
    @classmethod
    def _known_gate(cls, v: str) -> str:
        if v not in RECORD_KINDS:
            raise ValueError(f"unknown record kind {v!r}; one of {', '.join(RECORD_KINDS)}")
        return v

    def describe(self) -> str:
        crit = f" with criteria {', '.join(self.criteria)}" if self.criteria else ""
        return f"a {'passed ' if self.passed else ''}{self.gate} record{crit}"


class CardEvidence(_Strict):
    """A section (a ``## `` heading) of a card in the bundle."""

    kind: Literal["card"]
    card: Literal["model_card", "data_card"] = Field(description="Which card.")
    section: str = Field(min_length=1, description="Heading text of the section.")

    def describe(self) -> str:
        return f"section '{self.section}' of the {self.card.replace('_', ' ')}"


class LineageEvidence(_Strict):
    """Lineage fields of the version, non-empty in the bundle's ``lineage.json``."""

    kind: Literal["lineage"]
    fields: list[str] = Field(min_length=1, description="Lineage keys that must be recorded.")

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(LINEAGE_FIELDS))
        if unknown:
            raise ValueError(f"unknown lineage field(s) {unknown}; one of {list(LINEAGE_FIELDS)}")
        return v

    def describe(self) -> str:
        return f"lineage {', '.join(self.fields)}"


class FileEvidence(_Strict):
    """A file of the bundle (e.g. ``spec/usecase.yaml``, ``mlflow/version.json``)."""

    kind: Literal["file"]
    path: str = Field(description="Path inside the bundle.")

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        if v.startswith("/") or ".." in Path(v).parts:
            raise ValueError(f"{v!r} must be a path inside the bundle")
        return v

    def describe(self) -> str:
        return f"bundle file {self.path}"


Evidence = Annotated[
    RecordEvidence | CardEvidence | LineageEvidence | FileEvidence, Field(discriminator="kind")
]


class Requirement(_Strict):
    """One requirement of a framework and the evidence that satisfies it."""

    id: str = Field(min_length=1, description="Identifier as the framework numbers it.")
    title: str = Field(min_length=1, description="Title of the requirement.")
    summary: str = Field(min_length=1, description="What it asks, in a sentence or two.")
    satisfied_by: list[Evidence] = Field(
        default_factory=list, description="Evidence that must all be present to satisfy it."
    )
    outside_shipway: str = Field(
        default="",
        description="What evidence, kept outside Shipway, the requirement also needs (a "
        "requirement without satisfied_by must say; it is then always listed as missing).",
    )

    @model_validator(mode="after")
    def _says_where_evidence_is(self) -> Requirement:
        if not self.satisfied_by and not self.outside_shipway.strip():
            raise ValueError(
                "a requirement without satisfied_by must name its evidence in outside_shipway"
            )
        return self


class Framework(_Strict):
    """One framework file: its requirements and their mapping to evidence."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Equals the file name stem.")
    title: str = Field(min_length=1, description="Name of the framework.")
    version: int = Field(ge=1, description="Version of this mapping; bump on every change.")
    source: str = Field(min_length=1, description="The text the requirements summarise.")
    requirements: list[Requirement] = Field(min_length=1)

    @field_validator("requirements")
    @classmethod
    def _unique_ids(cls, v: list[Requirement]) -> list[Requirement]:
        ids = [r.id for r in v]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate requirement id(s) {dup}")
        return v


def load_framework(path: Path) -> Framework:
    """Load and validate one framework file; raise ``ComplianceError`` naming file and field."""
    fw = load_typed(path, Framework, "framework file", ComplianceError)
    if fw.id != path.stem:
        raise ComplianceError(f"invalid framework file {path}: id {fw.id!r} is not the file name")
    return fw


def framework_files(directory: Path = FRAMEWORKS_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


# ---- the bundle, as the matrix sees it ----
@dataclass(frozen=True)
class Citation:
    """One piece of evidence a requirement rests on: a record by content hash, or a file
    by sha256."""

    kind: Literal["record", "file"]
    path: str
    hash: str
    gate: str = ""


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


class Bundle:
    """The intact evidence of a bundle folder: records whose content hash verifies, files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.records: list[tuple[str, dict[str, Any]]] = []
        for p in sorted((folder / "records").glob("*.json")):
            try:
                rec = json.loads(p.read_text())
            except ValueError:
                continue
            if isinstance(rec, dict) and verify(rec):
                self.records.append((p.relative_to(folder).as_posix(), rec))

    def file(self, rel: str) -> Citation | None:
        p = self.folder / rel
        return Citation("file", rel, _sha256(p)) if p.is_file() else None

    def find(
        self, item: RecordEvidence | CardEvidence | LineageEvidence | FileEvidence
    ) -> list[Citation]:
        """The citations that satisfy one evidence item (empty: not in this bundle)."""
        if isinstance(item, RecordEvidence):
            return [
                Citation("record", rel, rec["content_hash"], rec["gate"])
                for rel, rec in self.records
                if rec.get("gate") == item.gate and _record_satisfies(rec, item)
            ]
        if isinstance(item, CardEvidence):
            rel = f"cards/{item.card}.md"
            cite = self.file(rel)
            text = (self.folder / rel).read_text() if cite else ""
            return [cite] if cite and f"\n## {item.section}\n" in f"\n{text}" else []
        if isinstance(item, LineageEvidence):
            cite = self.file("lineage.json")
            if cite is None:
                return []
            try:
                lineage = json.loads((self.folder / "lineage.json").read_text())
            except ValueError:
                return []
            return [cite] if all(lineage.get(f) for f in item.fields) else []
        cite = self.file(item.path)
        return [cite] if cite else []


def _record_satisfies(rec: dict[str, Any], item: RecordEvidence) -> bool:
    if not item.criteria:
        return bool(rec.get("passed")) or not item.passed
    crits = rec.get("criteria") or []
    for pattern in item.criteria:
        alts = pattern.split("|")
        matched = [c for c in crits if any(fnmatch.fnmatchcase(c["name"], a) for a in alts)]
        if not matched or (item.passed and not all(c.get("passed") for c in matched)):
            return False
    return True


def evaluate(fw: Framework, bundle: Bundle, file_sha256: str) -> dict[str, Any]:
    """The matrix rows of one framework: each requirement's status, citations and gaps."""
    rows = []
    for req in fw.requirements:
        cited: list[Citation] = []
        gaps: list[str] = []
        for item in req.satisfied_by:
            found = bundle.find(item)
            cited += [c for c in found if c not in cited]
            if not found:
                gaps.append(item.describe())
        found_n = len(req.satisfied_by) - len(gaps)
        status = SATISFIED if req.satisfied_by and not gaps else PARTIAL if found_n else MISSING
        rows.append(
            {
                "id": req.id,
                "title": req.title,
                "status": status,
                "evidence": [c.__dict__ for c in cited],
                "missing": gaps,
                "outside_shipway": req.outside_shipway,
            }
        )
    counts = {s: sum(r["status"] == s for r in rows) for s in (SATISFIED, PARTIAL, MISSING)}
    return {
        "id": fw.id,
        "title": fw.title,
        "version": fw.version,
        "source": fw.source,
        "file_sha256": file_sha256,
        "summary": counts,
        "requirements": rows,
    }


def matrix(folder: Path, frameworks: Iterable[Path]) -> dict[str, Any]:
    """The compliance matrix of the bundle in ``folder`` under the given framework files."""
    bundle = Bundle(folder)
    return {
        "frameworks": [evaluate(load_framework(p), bundle, _sha256(p)) for p in sorted(frameworks)]
    }


def to_markdown(m: dict[str, Any]) -> str:
    """The matrix for a reader: one table per framework, hashes shortened."""
    lines = ["# Compliance matrix", ""]
    for fw in m["frameworks"]:
        s = fw["summary"]
        lines += [
            f"## {fw['title']} (mapping v{fw['version']})",
            "",
            f"{s[SATISFIED]} satisfied, {s[PARTIAL]} partial, {s[MISSING]} missing. "
            f"Source: {fw['source']}",
            "",
            "| requirement | status | evidence | missing |",
            "| --- | --- | --- | --- |",
        ]
        for r in fw["requirements"]:
            ev = ", ".join(
                f"{c['gate'] or c['path']} `{c['hash'].split(':')[1][:12]}`" for c in r["evidence"]
            )
            gaps = "; ".join(
                [*r["missing"], *([r["outside_shipway"]] if r["outside_shipway"] else [])]
            )
            lines.append(
                f"| {r['id']} {r['title']} | {r['status']} | {ev or '-'} | "
                f"{gaps.replace('|', '/') or '-'} |"
            )
        lines.append("")
    return "\n".join(lines)


def write(folder: Path, frameworks_dir: Path = FRAMEWORKS_DIR) -> dict[str, Any]:
    """Copy the framework files into the bundle and write the matrix (JSON + Markdown).

    Runs after the records, cards and lineage are in ``folder`` and before the manifest,
    so the manifest covers the matrix and the mapping it was computed with."""
    dest = folder / MATRIX_DIR / "frameworks"
    dest.mkdir(parents=True, exist_ok=True)
    for p in framework_files(frameworks_dir):
        load_framework(p)  # a bad mapping fails the export, naming the file and field
        (dest / p.name).write_bytes(p.read_bytes())
    m = matrix(folder, framework_files(dest))
    (folder / MATRIX).write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    (folder / MATRIX_DIR / "matrix.md").write_text(to_markdown(m))
    return m


def verify_matrix(folder: Path) -> list[str]:
    """Every problem of the bundle's matrix: a cited hash no intact evidence has, or a
    matrix that does not follow from the bundled evidence and framework files."""
    path = folder / MATRIX
    if not path.is_file():
        return [f"{MATRIX} missing: the bundle has no compliance matrix"]
    try:
        stored = json.loads(path.read_text())
        frameworks = stored["frameworks"]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{MATRIX} unreadable: {exc}"]
    bundle = Bundle(folder)
    intact = {rec["content_hash"] for _, rec in bundle.records}
    problems = []
    for fw in frameworks:
        for req in fw.get("requirements", []):
            for c in req.get("evidence", []):
                where = f"{MATRIX}: {fw.get('id')} {req.get('id')}"
                if c.get("kind") == "record" and c.get("hash") not in intact:
                    problems.append(
                        f"{where} cites {c.get('gate')} record {c.get('hash')}, which no intact "
                        f"record in the bundle has ({c.get('path')} modified or missing)"
                    )
                elif c.get("kind") == "file":
                    now = bundle.file(str(c.get("path")))
                    if now is None or now.hash != c.get("hash"):
                        problems.append(f"{where} cites {c.get('path')}, which was modified")
    try:
        fresh = matrix(folder, framework_files(folder / MATRIX_DIR / "frameworks"))
    except ComplianceError as exc:
        return [*problems, f"{MATRIX}: bundled framework file invalid: {exc}"]
    if fresh != stored:
        problems.append(
            f"{MATRIX} does not follow from the bundle's evidence and framework files: "
            + (", ".join(_differences(fresh, stored)) or "framework list or metadata differ")
        )
    return problems


def _differences(fresh: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """``<framework> <requirement> (stored X, evidence says Y)`` per differing row."""

    def rows(m: dict[str, Any]) -> dict[tuple[str, str], Any]:
        return {
            (str(fw.get("id")), str(r.get("id"))): r
            for fw in m.get("frameworks", [])
            for r in fw.get("requirements", [])
        }

    a, b = rows(fresh), rows(stored)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            was = (b.get(key) or {}).get("status", "absent")
            now = (a.get(key) or {}).get("status", "absent")
            out.append(f"{key[0]} {key[1]} (stored {was}, evidence says {now})")
    return out
