"""Governance evidence: versioned, content-hashed gate records (JSON + Markdown).

Every gate (use-case approval, data readiness, model validation, production readiness,
post-deployment review) produces one ``GateRecord``. The hash covers the canonical JSON
of everything but the hash itself, so any later edit is detectable with ``verify``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Criterion:
    """One checked criterion: what was measured, against what, and by how much it missed."""

    name: str
    passed: bool
    value: float | str | None
    threshold: float | str | None = None
    comparator: str = ""
    detail: str = ""

    @property
    def margin(self) -> float | None:
        """Signed distance to the threshold (negative = failed by that much)."""
        if not isinstance(self.value, int | float) or not isinstance(self.threshold, int | float):
            return None
        if self.comparator in ("<=", "<"):
            return float(self.threshold) - float(self.value)
        if self.comparator in (">=", ">"):
            return float(self.value) - float(self.threshold)
        return None

    def summary(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        cmp = f" (needs {self.comparator} {_fmt(self.threshold)})" if self.comparator else ""
        miss = ""
        if not self.passed and self.margin is not None:
            miss = f", missed by {_fmt(abs(self.margin))}"
        detail = f" — {self.detail}" if self.detail else ""
        return f"{status} {self.name}: {_fmt(self.value)}{cmp}{miss}{detail}"


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


@dataclass
class GateRecord:
    gate: str
    subject: dict[str, Any]
    criteria: list[Criterion]
    facts: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    schema_version: int = SCHEMA_VERSION

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria)

    @property
    def failures(self) -> list[Criterion]:
        return [c for c in self.criteria if not c.passed]

    def body(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d

    def to_dict(self) -> dict[str, Any]:
        body = self.body()
        return {**body, "content_hash": content_hash(body)}

    def to_markdown(self) -> str:
        d = self.to_dict()
        lines = [
            f"# Gate: {self.gate} — {'PASSED' if self.passed else 'FAILED'}",
            "",
            f"- subject: {', '.join(f'{k}={v}' for k, v in self.subject.items())}",
            f"- recorded: {self.created_at}",
            f"- content hash: `{d['content_hash']}`",
            "",
            "| criterion | result | value | threshold | detail |",
            "| --- | --- | --- | --- | --- |",
        ]
        for c in self.criteria:
            thr = f"{c.comparator} {_fmt(c.threshold)}" if c.comparator else ""
            lines.append(
                f"| {c.name} | {'pass' if c.passed else '**FAIL**'} | {_fmt(c.value)} | {thr} "
                f"| {c.detail} |"
            )
        if self.facts:
            lines += [
                "",
                "## Facts",
                "",
                "```json",
                json.dumps(self.facts, indent=2, default=str),
                "```",
            ]
        return "\n".join(lines) + "\n"

    def explain(self) -> str:
        """One line per failed criterion (what failed and by how much)."""
        return "\n".join(c.summary() for c in self.failures) or "all criteria passed"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateRecord:
        """Rebuild a record from its JSON (``to_dict``); the hash is recomputed, not trusted.

        Readers that need to know whether the stored hash still matches call ``verify`` on
        the raw dict first: rebuilding alone would silently bless an edited file.
        """
        return cls(
            gate=data["gate"],
            subject=dict(data["subject"]),
            criteria=[Criterion(**c) for c in data["criteria"]],
            facts=dict(data.get("facts") or {}),
            created_at=data["created_at"],
            schema_version=int(data.get("schema_version", SCHEMA_VERSION)),
        )


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def content_hash(body: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical(body)).hexdigest()


def record_files(record: GateRecord) -> dict[str, bytes]:
    """The two files of a record, ``<gate>-<hash16>.json`` and ``.md``, by name.

    One naming and serialisation for every store (local folder, MLflow artifacts), so a
    record has the same bytes and the same name wherever the audit trail keeps it.
    """
    d = record.to_dict()
    stem = f"{record.gate}-{d['content_hash'].split(':')[1][:16]}"
    return {
        f"{stem}.json": (json.dumps(d, indent=2, sort_keys=True, default=str) + "\n").encode(),
        f"{stem}.md": record.to_markdown().encode(),
    }


def write_record(record: GateRecord, directory: Path) -> tuple[Path, Path]:
    """Write ``<gate>-<hash>.json`` and ``.md``; never overwrite (append-only)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = record_files(record)
    jname, mname = sorted(files, key=lambda n: not n.endswith(".json"))
    jpath, mpath = directory / jname, directory / mname
    if not jpath.exists():
        jpath.write_bytes(files[jname])
        mpath.write_bytes(files[mname])
    return jpath, mpath


def verify(data: dict[str, Any]) -> bool:
    """True if a record's content hash matches its content."""
    body = {k: v for k, v in data.items() if k != "content_hash"}
    return data.get("content_hash") == content_hash(body)
