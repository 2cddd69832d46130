"""The append-only audit trail: every governance record of a use case, hash-chained.

Two stores, one layout and one interface:

* ``FileStore`` (embedded default): ``<state_dir>/audit/<usecase>/``;
* ``MlflowStore`` (cluster): the artifact store of an MLflow run, under ``audit/`` — the
  run of the model version a record is about, or the use case's own audit run for
  records about no single version (erasure, retention, rollback).

Layout: ``records/<gate>-<hash16>.json|.md`` (``shipway.core.evidence.record_files``) and one
immutable entry per append, ``trail/<seq:06d>.json``, holding the record's name and hash
and the hash of the previous entry. Files are created exclusively and never rewritten,
so appending is the only operation; ``verify`` re-checks every record hash and the
chain, so an edited record, an edited entry, a removed entry or a reordering is found.

Concurrent appenders: locally the OS's exclusive create makes a second writer of the
same sequence number fail and retry. MLflow cannot create exclusively (``log_artifact``
overwrites, and checking first leaves a window), so a cluster trail also holds a lock
every writer sees around the read-sequence/write-entry step:
``shipway.governance.locks.trail_lock``, a PostgreSQL advisory lock keyed by the run id.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from shipway.core.evidence import GateRecord, content_hash, record_files, verify
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.governance.locks import trail_lock
from shipway.governance.versions import GovernanceError, link

GENESIS = "genesis"
RECORDS, ENTRIES = "records", "trail"
AUDIT_RUN_TAG = "shipway.audit_trail"


class Store(Protocol):
    """Write-once named blobs: what the trail needs from a storage backend."""

    def uri(self, name: str) -> str: ...

    def put(self, name: str, data: bytes) -> None:
        """Create ``name``; raise ``FileExistsError`` if it exists (never overwrite)."""

    def get(self, name: str) -> bytes: ...

    def names(self, folder: str) -> list[str]:
        """Names (``folder/file``) directly inside ``folder``, sorted."""


class FileStore:
    """A local folder; exclusive creation makes the OS refuse any overwrite."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def uri(self, name: str) -> str:
        return (self.root / name).resolve().as_uri()

    def put(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as fh:
            fh.write(data)

    def get(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def names(self, folder: str) -> list[str]:
        d = self.root / folder
        return (
            sorted(f"{folder}/{p.name}" for p in d.iterdir() if p.is_file()) if d.is_dir() else []
        )


class MlflowStore:
    """The artifact store of one MLflow run, under ``prefix``.

    ``put`` refuses a name it can see, but seeing and writing are two calls and MLflow
    overwrites silently: it is exclusive only under ``trail_lock`` (``trail_for``)."""

    def __init__(self, client: Any, run_id: str, prefix: str = "audit") -> None:
        self.client = client
        self.run_id = run_id
        self.prefix = prefix

    def uri(self, name: str) -> str:
        return f"runs:/{self.run_id}/{self.prefix}/{name}"

    def put(self, name: str, data: bytes) -> None:
        folder, _, fname = name.rpartition("/")
        if name in self.names(folder):
            raise FileExistsError(self.uri(name))
        with tempfile.TemporaryDirectory(prefix="shipway-trail-") as tmp:
            local = Path(tmp) / fname
            local.write_bytes(data)
            path = f"{self.prefix}/{folder}" if folder else self.prefix
            self.client.log_artifact(self.run_id, str(local), artifact_path=path)

    def get(self, name: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="shipway-trail-") as tmp:
            local = self.client.download_artifacts(self.run_id, f"{self.prefix}/{name}", tmp)
            return Path(local).read_bytes()

    def names(self, folder: str) -> list[str]:
        path = f"{self.prefix}/{folder}" if folder else self.prefix
        arts = self.client.list_artifacts(self.run_id, path)
        return sorted(a.path.removeprefix(f"{self.prefix}/") for a in arts if not a.is_dir)


@dataclass(frozen=True)
class Entry:
    """One append: which record, its hash, and the chain link to the entry before."""

    seq: int
    gate: str
    record: str
    content_hash: str
    subject: dict[str, Any]
    passed: bool
    prev: str
    recorded_at: str
    entry_hash: str = ""

    def body(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("entry_hash")
        return d


def _matches(subject: dict[str, Any], filt: dict[str, Any]) -> bool:
    return all(str(subject.get(k)) == str(v) for k, v in filt.items() if v is not None)


Lock = Callable[[], AbstractContextManager[object]]


class AuditTrail:
    """Append records, read them back in order, verify the whole trail.

    ``lock`` (a context-manager factory) is held around each append when the store cannot
    refuse a second writer of the same entry by itself (``MlflowStore``); reads need none.
    """

    def __init__(self, store: Store, lock: Lock | None = None) -> None:
        self.store = store
        self.lock: Lock = lock or contextlib.nullcontext

    def entries(self) -> list[Entry]:
        out = []
        for name in self.store.names(ENTRIES):
            d = json.loads(self.store.get(name))
            out.append(Entry(**d))
        return sorted(out, key=lambda e: e.seq)

    def append(self, record: GateRecord) -> str:
        """Store the record and chain an entry to it; return the record's URI.

        Idempotent per content: a record whose hash is already in the trail is not
        appended again (re-linking the same evidence must not grow the trail). The check,
        the sequence number and the entry are read and written under ``self.lock``.
        """
        with self.lock():
            return self._append(record)

    def _append(self, record: GateRecord) -> str:
        files = record_files(record)
        jname = next(n for n in files if n.endswith(".json"))
        chash = record.to_dict()["content_hash"]
        for _ in range(5):  # another writer may take our sequence number: re-read and retry
            entries = self.entries()
            if any(e.content_hash == chash for e in entries):
                return self.store.uri(f"{RECORDS}/{jname}")
            for name, blob in files.items():
                # same name means same content hash: a stored file is already this record
                with contextlib.suppress(FileExistsError):
                    self.store.put(f"{RECORDS}/{name}", blob)
            entry = Entry(
                seq=len(entries) + 1,
                gate=record.gate,
                record=f"{RECORDS}/{jname}",
                content_hash=chash,
                subject=record.subject,
                passed=record.passed,
                prev=entries[-1].entry_hash if entries else GENESIS,
                recorded_at=datetime.now(UTC).isoformat(),
            )
            body = entry.body()
            data = {**body, "entry_hash": content_hash(body)}
            try:
                self.store.put(f"{ENTRIES}/{entry.seq:06d}.json", _dump(data))
            except FileExistsError:
                continue
            return self.store.uri(f"{RECORDS}/{jname}")
        raise RuntimeError("audit trail: could not append after 5 concurrent attempts")

    def read(self, entry: Entry) -> dict[str, Any]:
        return dict(json.loads(self.store.get(entry.record)))

    def records(self, gate: str | None = None, **subject: Any) -> list[dict[str, Any]]:
        """Records (raw JSON dicts, oldest first) of ``gate`` whose subject matches."""
        return [
            self.read(e)
            for e in self.entries()
            if (gate is None or e.gate == gate) and _matches(e.subject, subject)
        ]

    def latest(self, gate: str, **subject: Any) -> dict[str, Any] | None:
        found = self.records(gate, **subject)
        return found[-1] if found else None

    def uri_of(self, record: dict[str, Any]) -> str:
        for e in self.entries():
            if e.content_hash == record.get("content_hash"):
                return self.store.uri(e.record)
        raise LookupError(f"record {record.get('content_hash')} is not in this trail")

    def verify(self) -> list[str]:
        """Every problem found (empty: the trail is intact)."""
        problems: list[str] = []
        prev = GENESIS
        for i, e in enumerate(self.entries(), start=1):
            if e.seq != i:
                problems.append(f"entry {i}: missing (found seq {e.seq}): an entry was removed")
            if content_hash(e.body()) != e.entry_hash:
                problems.append(f"entry {e.seq}: entry hash does not match its content")
            if e.prev != prev:
                problems.append(f"entry {e.seq}: chain broken (previous entry changed or removed)")
            prev = e.entry_hash
            try:
                rec = self.read(e)
            except (OSError, KeyError, ValueError) as exc:
                problems.append(f"entry {e.seq}: record {e.record} unreadable ({exc})")
                continue
            if not verify(rec):
                problems.append(f"entry {e.seq}: record {e.record} was modified (hash mismatch)")
            elif rec.get("content_hash") != e.content_hash:
                problems.append(f"entry {e.seq}: record {e.record} is not the one recorded")
        return problems


def _dump(d: dict[str, Any]) -> bytes:
    return (json.dumps(d, indent=2, sort_keys=True, default=str) + "\n").encode()


def audit_run(client: Any, usecase: str, artifact_root: str | None = None) -> str:
    """The use case's own MLflow run for records about no single model version."""
    from shipway.core import registry

    exp_id = registry.experiment(client, usecase, artifact_root)
    runs = client.search_runs([exp_id], filter_string=f"tags.`{AUDIT_RUN_TAG}` = 'true'")
    if runs:
        return str(runs[0].info.run_id)
    run = client.create_run(exp_id, run_name=f"audit-{usecase}", tags={AUDIT_RUN_TAG: "true"})
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def trail_for(
    settings: Settings, usecase: str, *, run_id: str | None = None, client: Any = None
) -> AuditTrail:
    """The trail of a use case: files locally; on a cluster, MLflow artifacts of ``run_id``
    (the version's run) or of the use case's audit run when no version is concerned.

    A cluster trail appends under ``locks.trail_lock`` of its run, so appends from any pod
    serialize (and are refused without a PostgreSQL store); reading takes no lock."""
    if settings.environment == "local":
        return AuditTrail(FileStore(settings.state / "audit" / usecase))
    if client is None:
        from shipway.core import registry

        client = registry.connect(settings.tracking_uri)
    rid = run_id or shared_audit_run(settings, client, usecase)
    return AuditTrail(MlflowStore(client, rid), lock=lambda: trail_lock(settings, rid))


def shared_audit_run(settings: Settings, client: Any, usecase: str) -> str:
    """``audit_run`` under a lock, so the first appenders of a use case agree on one run.

    ``audit_run`` looks the run up and creates it when absent; two pods doing that at
    once would make two audit runs and the records of one would never be read. Without
    a PostgreSQL store there is no shared lock, but appending is refused there anyway
    (``trail_lock``), so reading goes ahead unlocked.
    """
    try:
        with trail_lock(settings, f"audit-run:{usecase}"):
            return audit_run(client, usecase, settings.artifact_root)
    except GovernanceError:
        return audit_run(client, usecase, settings.artifact_root)


def trails_for_version(
    settings: Settings, usecase: str, run_id: str, client: Any = None
) -> list[AuditTrail]:
    """Every trail that can hold records about one version (one locally, two on a cluster)."""
    if settings.environment == "local":
        return [trail_for(settings, usecase)]
    return [
        trail_for(settings, usecase, run_id=run_id, client=client),
        trail_for(settings, usecase, client=client),
    ]


def append_and_link(
    settings: Settings, client: Any, spec: UseCaseSpec, record: GateRecord, mv: Any = None
) -> str:
    """Append a gate record to the use case's trail (the version's run's, when given)
    and link it from the version; returns the record's URI."""
    run_id = mv.run_id if mv is not None else None
    uri = trail_for(settings, spec.name, run_id=run_id, client=client).append(record)
    if mv is not None:
        link(client, mv, record.gate, uri)
    return uri
