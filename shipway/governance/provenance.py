"""Where a data version's readiness report comes from, and proof that it belongs to it.

The validate stage writes ``data/<usecase>/reports/readiness.json``; DVC records its md5
and the md5 of the validated table it let through, and the features stage records that
same table as its input. Reading all three from one ``dvc.lock`` (of the git revision the
model was trained on) links the report to the feature data (the data version) without
trusting file names or timestamps.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

WORKSPACE = "workspace"


@dataclass
class ReportProof:
    """The readiness report of a data version and the dvc.lock facts that tie them."""

    report: dict[str, Any] | None
    report_md5: str | None = None
    lock: dict[str, str | None] = field(default_factory=dict)
    error: str = ""

    def linked_to(self, data_version: str) -> tuple[bool, str]:
        """Whether report -> validated table -> features (= data_version) is one chain."""
        if self.report is None:
            return False, self.error or "no readiness report"
        lk = self.lock
        if not lk:
            return False, "no dvc.lock entry for the validate/features stages"
        if lk.get("report_md5") != self.report_md5:
            return False, f"report md5 {self.report_md5} is not the one dvc.lock records"
        if lk.get("validated_md5") is None or lk.get("validated_md5") != lk.get("features_input"):
            return False, "the validated table the report passed is not the features' input"
        if lk.get("features_md5") != data_version:
            return False, f"dvc.lock features md5 {lk.get('features_md5')} != {data_version}"
        return True, f"readiness.json {self.report_md5} -> validated -> features {data_version}"


def _outs(stage: dict[str, Any]) -> dict[str, str | None]:
    return {o["path"]: o.get("md5") for o in stage.get("outs", []) or []}


def _deps(stage: dict[str, Any]) -> dict[str, str | None]:
    return {d["path"]: d.get("md5") for d in stage.get("deps", []) or []}


def lock_chain(lock_text: str, usecase: str) -> dict[str, str | None]:
    """The md5s of report, validated table and features that one dvc.lock records."""
    stages = (yaml.safe_load(lock_text) or {}).get("stages") or {}
    validate = stages.get(f"validate@{usecase}") or {}
    features = stages.get(f"features@{usecase}") or {}
    if not validate or not features:
        return {}
    base = f"data/{usecase}"
    return {
        "report_md5": _outs(validate).get(f"{base}/reports/readiness.json"),
        "validated_md5": _outs(validate).get(f"{base}/validated.parquet"),
        "features_input": _deps(features).get(f"{base}/validated.parquet"),
        "features_md5": _outs(features).get(f"{base}/features"),
    }


def readiness_at(repo: str, rev: str, usecase: str) -> ReportProof:
    """The readiness report and dvc.lock of a git revision (``workspace``: working tree)."""
    rel = f"data/{usecase}/reports/readiness.json"
    try:
        if rev == WORKSPACE:
            raw = (Path(repo) / rel).read_bytes()
            lock = (Path(repo) / "dvc.lock").read_text()
        else:
            import dvc.api

            raw = dvc.api.read(rel, repo=repo, rev=rev, mode="rb")
            lock = dvc.api.read("dvc.lock", repo=repo, rev=rev)
    except Exception as exc:  # missing file, unknown rev, remote without the object
        return ReportProof(None, error=f"readiness report of {rev} not readable: {exc}")
    return ReportProof(
        report=json.loads(raw),
        report_md5=hashlib.md5(raw).hexdigest(),
        lock=lock_chain(lock, usecase),
    )
