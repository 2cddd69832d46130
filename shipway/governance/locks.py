"""One lock per registered model, so champion moves happen one at a time.

``shipway promote``, the pipeline's auto-promotion and ``shipway rollback`` each read the
current champion, decide, record the previous champion and move the alias. Two of them
interleaving could record a "previous champion" that was not the champion just before,
or leave the alias on a version whose history says otherwise. They therefore run the
whole read-decide-record-move sequence inside ``model_lock(settings, name, "champion")``.
The scheduled post-deployment review uses the same mechanism (``"review"``) so two
monitors never review the same champion twice.

The mechanism follows where the stores are, because the lock must be visible to every
process that can promote:

* a PostgreSQL store is configured (the MLflow tracking URI or the prediction log, as on
  a cluster): a session-level PostgreSQL advisory lock on that server, keyed by a hash of
  the lock name. Every pod that can promote reaches that database, and the server drops
  the lock when the holder's connection dies, so a killed pod cannot wedge promotion;
* otherwise (embedded): ``flock`` on ``<state_dir>/locks/<kind>-<model>.lock``, released
  by the kernel when the holder exits, however it exits.

On a cluster without a PostgreSQL store a file lock in one pod's scratch directory would
serialize nothing, so that configuration is refused instead of pretending.

``trail_lock`` is the same advisory lock for a second purpose: on a cluster the audit
trail lives in an MLflow run's artifacts, where writing cannot be made exclusive, so every
append to one run's trail serializes on a lock keyed by that run id (see
``shipway.governance.trail``). Its key differs from every model's, so a promotion that
appends while holding its champion lock takes a second, independent lock; each lock is
its own database session, so nothing is shared or re-entered between them. The order is
always model lock, then trail lock (an append takes no other lock), so no two holders can
wait for each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from shipway.core.settings import Settings
from shipway.governance.versions import GovernanceError

POLL_SECONDS = 0.05
DEFAULT_TIMEOUT = 300.0


def _pg_uri(settings: Settings) -> str | None:
    """The first configured PostgreSQL store (tracking URI, then the prediction log)."""
    for uri in (settings.tracking_uri, settings.prediction_log):
        if uri.startswith(("postgresql:", "postgresql+", "postgres:")):
            return uri.replace("postgres://", "postgresql://", 1)
    return None


def _shared_uri(settings: Settings, what: str, who: str) -> str:
    """The PostgreSQL store every pod reaches, or the error that names the settings:
    without one no lock is visible to every process that can take it."""
    uri = _pg_uri(settings)
    if uri is None:
        raise GovernanceError(
            f"no shared lock for {what}: on a cluster {who} on a PostgreSQL advisory lock, "
            "so SHIPWAY_MLFLOW_TRACKING_URI or SHIPWAY_PREDICTION_LOG_URI must be a "
            "postgresql:// URI"
        )
    return uri


def lock_backend(settings: Settings) -> str:
    """``postgresql-advisory`` or ``file``: which mechanism ``model_lock`` uses here."""
    return "postgresql-advisory" if _pg_uri(settings) else "file"


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` (same name, same key, any host)."""
    digest = hashlib.sha256(f"shipway:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


MODEL_HOLDERS = "another promotion, rollback or review of this model"
TRAIL_KIND, TRAIL_HOLDERS = "audit-trail", "another append to this audit trail"


def _timed_out(
    kind: str, model: str, timeout: float, where: str, holders: str = MODEL_HOLDERS
) -> GovernanceError:
    return GovernanceError(
        f"could not take the {kind} lock of {model} within {timeout:.0f}s ({where}): "
        f"{holders} is still running; retry when it is done"
    )


@contextlib.contextmanager
def _file_lock(path: Path, kind: str, model: str, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _timed_out(kind, model, timeout, f"file lock {path}") from None
                time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _advisory_lock(
    uri: str, kind: str, model: str, timeout: float, holders: str = MODEL_HOLDERS
) -> Iterator[None]:
    """A session-level advisory lock on a connection of its own (never a pooled one:
    advisory locks are re-entrant per session, so a shared session would admit two
    holders). Taking the same key again while holding it therefore waits for itself."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    key = advisory_key(f"{kind}:{model}")
    engine = sa.create_engine(uri, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            deadline = time.monotonic() + timeout
            while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                conn.rollback()  # no transaction held open while waiting
                if time.monotonic() >= deadline:
                    where = f"PostgreSQL advisory lock {key}"
                    raise _timed_out(kind, model, timeout, where, holders)
                time.sleep(POLL_SECONDS)
            conn.commit()  # session-level lock: survives the transaction, not the connection
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
    finally:
        engine.dispose()


@contextlib.contextmanager
def model_lock(
    settings: Settings, model: str, kind: str = "champion", timeout: float = DEFAULT_TIMEOUT
) -> Iterator[str]:
    """Hold the ``kind`` lock of registered model ``model``; yields the backend's name.

    Raises ``GovernanceError`` naming the lock when it cannot be taken in ``timeout``
    seconds, and on a cluster configured without any PostgreSQL store.
    """
    if settings.environment == "cluster" or _pg_uri(settings) is not None:
        what = f"the {kind} of {model}"
        uri = _shared_uri(settings, what, "promotion, rollback and review serialize")
        with _advisory_lock(uri, kind, model, timeout):
            yield "postgresql-advisory"
        return
    with _file_lock(settings.state / "locks" / f"{kind}-{model}.lock", kind, model, timeout):
        yield "file"


@contextlib.contextmanager
def trail_lock(settings: Settings, run_id: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator[str]:
    """Hold the append lock of the audit trail in MLflow run ``run_id``; yields the backend.

    Only cluster trails need it: their store (MLflow's ``log_artifact``) overwrites
    silently, so two appenders that read the same last sequence number would each write
    it and one record would vanish from the chain. The lock must be visible to every pod
    that appends (pipeline steps, the CLI, the monitor), which only a PostgreSQL
    advisory lock is; without a PostgreSQL store the append is refused (``GovernanceError``)
    rather than risk losing an audit record. Not re-entrant: do not append to the same
    trail from inside an append.
    """
    what = f"the audit trail of run {run_id}"
    uri = _shared_uri(settings, what, "appends to the audit trail serialize")
    with _advisory_lock(uri, TRAIL_KIND, run_id, timeout, TRAIL_HOLDERS):
        yield "postgresql-advisory"
