"""Where a data version's readiness report comes from, and proof that it belongs to it.

The validate stage writes ``data/<usecase>/reports/readiness.json``; DVC records its md5
and the md5 of the validated table it let through, and the features stage records that
same table as its input. Reading all three from one ``dvc.lock`` (of the git revision the
model was trained on) links the report to the feature data (the data version) without
trusting file names or timestamps.

Whether those bytes can still be read is a separate fact, answered by the DVC cache and
remote, which are content-addressed: an object is found by the md5 a version recorded
and proven by hashing what is stored, never by hashing today's working tree.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shipway.core.lineage import file_md5

WORKSPACE = "workspace"
DVC_MD5 = re.compile(r"[0-9a-f]{32}(\.dir)?")


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


@dataclass(frozen=True)
class Retrieval:
    """Where the bytes behind one recorded DVC md5 can still be read from, if anywhere."""

    md5: str
    where: str
    """``DVC cache``, ``DVC remote '<name>'``, or empty: not retrievable."""
    detail: str

    @property
    def ok(self) -> bool:
        return bool(self.where)


def _intact(cache: Any, oid: str) -> bool:
    path = Path(cache.oid_to_path(oid))
    return path.is_file() and file_md5(path) == oid.removesuffix(".dir")


def _cached(cache: Any, oid: str) -> str:
    """What keeps ``oid`` from being read out of the local cache ("" = nothing): each
    object is re-hashed, so a corrupted cache file does not pass for the data."""
    if not _intact(cache, oid):
        return f"DVC cache: no intact {oid}"
    if oid.endswith(".dir"):
        entries = json.loads(Path(cache.oid_to_path(oid)).read_bytes())
        bad = [e["relpath"] for e in entries if not _intact(cache, e["md5"])]
        if bad:
            return f"DVC cache: {len(bad)} of {len(entries)} files missing or corrupted {bad[:3]}"
    return ""


def _in_remote(odb: Any, oid: str) -> str:
    """What keeps ``oid`` from being pulled from a DVC remote ("" = nothing): the listing
    is read and hashed, the files are checked for existence (nothing is downloaded)."""
    if not odb.exists(oid):
        return f"no {oid}"
    if oid.endswith(".dir"):
        with odb.fs.open(odb.oid_to_path(oid), "rb") as fh:
            raw = fh.read()
        if hashlib.md5(raw).hexdigest() != oid.removesuffix(".dir"):
            return f"{oid} is corrupted"
        want = {e["md5"] for e in json.loads(raw)}
        missing = want - set(odb.oids_exist(sorted(want)))
        if missing:
            return f"{len(missing)} of {len(want)} files missing"
    return ""


def retrievable(root: Path, md5: str, remote_url: str | None = None) -> Retrieval:
    """Whether the data a version recorded as ``md5`` can still be read: from the local
    DVC cache, else from the default remote (``remote_url`` replaces its URL, as in the
    fetch step). Nothing in the working tree is looked at."""
    if not DVC_MD5.fullmatch(md5 or ""):
        return Retrieval(md5, "", f"NOT retrievable: {md5!r} is not a DVC md5 (never DVC-tracked)")
    from dvc.repo import Repo

    try:
        repo = Repo(str(root), remote_config={"url": remote_url} if remote_url else None)
    except Exception as exc:  # not a DVC repository, unreadable config
        return Retrieval(md5, "", f"NOT retrievable: no DVC repository at {root}: {exc}")
    files = "all files" if md5.endswith(".dir") else "the file"
    with repo:
        in_cache = _cached(repo.cache.local, md5)
        if not in_cache:
            return Retrieval(md5, "DVC cache", f"retrievable: {files} in the DVC cache (re-hashed)")
        where = f"DVC remote '{repo.config['core'].get('remote') or '(none)'}'"
        try:
            in_remote = _in_remote(repo.cloud.get_remote_odb(None, "lineage"), md5)
        except Exception as exc:  # no remote configured, unreachable, no credentials
            in_remote = f"not readable ({type(exc).__name__}: {exc})"
    if not in_remote:
        return Retrieval(md5, where, f"retrievable: {files} in {where} (not cached: dvc pull)")
    return Retrieval(md5, "", f"NOT retrievable: {in_cache}; {where}: {in_remote}")
