"""The durable prediction log and ground-truth feedback store.

Every answered prediction is committed here *before* the response leaves the service,
so an acknowledged prediction survives a kill -9. Embedded default: SQLite in WAL mode
with ``synchronous=FULL`` (safe across processes and crashes); cluster: PostgreSQL via
the same SQLAlchemy Core code. Monitoring reads windows of it, lineage reads single
rows, retention and erasure delete from it.

The hot write, :meth:`PredictionLog.append`, is a group commit with plain driver calls:
SQLAlchemy's per-statement compilation and connection checkout cost more than the insert
itself (372 us against 160 us for a raw sqlite3 insert with the same fsync, issue 15),
so the statement is compiled once and the records go through the DBAPI connection's
``executemany``. Callers that arrive while a commit is in progress queue up, and the
next writer commits all of them in one transaction (one fsync on SQLite, one round of
``executemany`` on PostgreSQL); each caller still returns only after its own records
are committed. Labels (:meth:`PredictionLog.add_feedback`) join the same group commit
(``shipway.core.groupcommit``). Every write transaction on SQLite (group commit,
deletion) holds the log's :class:`~shipway.core.writelock.WriteLock`, so writers of
several workers queue for one another and none sleeps in SQLite's busy handler while
the database is free.

Ground truth is never overwritten silently. ``feedback`` holds the label in force, one
per prediction (what monitoring joins); ``feedback_history`` keeps every label ever in
force, numbered by revision, so a correction replaces the label monitoring uses while
the earlier one stays on record. A different second label without ``correction`` is a
conflict and changes nothing. Which labels a target accepts is ``shipway.core.labels``.

An explained answer (``POST /explain``) carries its explanation in the ``explanation``
column of its own row, committed in the same transaction as the prediction. A log
created before that column existed gains it (nullable) when it is opened: its rows read
back with no explanation, and nothing else changes (:func:`migrate`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from shipway.core.driversql import Statement
from shipway.core.groupcommit import DuplicateRecord as DuplicateRecord  # raised by append
from shipway.core.groupcommit import GroupWriter
from shipway.core.writelock import WriteLock

log = logging.getLogger("shipway.predictionlog")
metadata = sa.MetaData()

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("usecase", sa.String(64), nullable=False, index=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("variant", sa.String(16), nullable=False),  # champion | challenger
    sa.Column("mode", sa.String(16), nullable=False, default="served"),  # served | shadow
    sa.Column("entity_keys", sa.Text, nullable=False),  # JSON object
    sa.Column("features", sa.Text, nullable=False),  # JSON object: every model input
    sa.Column("missing", sa.Text, nullable=False, default="[]"),  # JSON list of features
    sa.Column("prediction", sa.Float, nullable=False),  # value, or positive-class probability
    sa.Column("label", sa.String(64), nullable=True),  # class (classification)
    sa.Column("event_time", sa.DateTime(timezone=True), nullable=True),  # business time
    sa.Column("latency_ms", sa.Float, nullable=False),
    # JSON (``shipway.core.explain.Explanation.to_dict``) when the answer was explained
    # (POST /explain): in the prediction's own row, so one commit makes both durable
    sa.Column("explanation", sa.Text, nullable=True),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("usecase", sa.String(64), nullable=False, index=True),
    sa.Column("actual", sa.Float, nullable=False),
)

feedback_history = sa.Table(
    "feedback_history",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    # 1 for the first label, +1 per correction; the key makes concurrent writers collide
    sa.Column("revision", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("usecase", sa.String(64), nullable=False, index=True),
    sa.Column("actual", sa.Float, nullable=False),
)

sa.Index("ix_predictions_usecase_ts", predictions.c.usecase, predictions.c.ts)


ATTEMPTS = 3
"""Tries of one feedback write; only a first label racing another one needs a second."""


class FeedbackStatus(StrEnum):
    """What ``add_feedback`` did with a label."""

    recorded = "recorded"  # the first label of the prediction
    corrected = "corrected"  # replaced an earlier label, which stays in the history
    unchanged = "unchanged"  # the label in force already was this value (a retry)
    conflict = "conflict"  # a different label is in force and no correction was asked
    unknown = "unknown"  # no prediction of this use case has the id


@dataclass(frozen=True)
class FeedbackResult:
    """The outcome of one label, and the label in force afterwards."""

    status: FeedbackStatus
    revision: int = 0
    """Revision of the label in force (1 = the first label); 0 when there is none."""
    actual: float | None = None
    """The label in force after the call (for a conflict: the one that was kept)."""

    def __bool__(self) -> bool:
        """True when the label sent is the label in force."""
        return self.status in (
            FeedbackStatus.recorded,
            FeedbackStatus.corrected,
            FeedbackStatus.unchanged,
        )


class _LabelSQL:
    """The statements of one label decision, compiled once for the log's dialect."""

    def __init__(self, dialect: sa.engine.Dialect) -> None:
        rid = feedback.c.request_id == sa.bindparam("rid")
        entry = ["request_id", "usecase", "actual", "ts"]
        self.lock = Statement.compile(
            feedback.update().where(rid).values(actual=feedback.c.actual), dialect
        )
        self.current = Statement.compile(
            sa.select(feedback.c.actual, feedback.c.ts, feedback.c.usecase).where(rid), dialect
        )
        self.known = Statement.compile(
            sa.select(predictions.c.request_id).where(
                predictions.c.request_id == sa.bindparam("rid"),
                predictions.c.usecase == sa.bindparam("usecase"),
            ),
            dialect,
        )
        self.revision = Statement.compile(
            sa.select(sa.func.coalesce(sa.func.max(feedback_history.c.revision), 0)).where(
                feedback_history.c.request_id == sa.bindparam("rid")
            ),
            dialect,
        )
        self.insert = Statement.compile(feedback.insert(), dialect, column_keys=entry)
        self.history = Statement.compile(
            feedback_history.insert(), dialect, column_keys=[*entry, "revision"]
        )
        self.replace = Statement.compile(
            feedback.update()
            .where(rid)
            .values(actual=sa.bindparam("new_actual"), ts=sa.bindparam("new_ts")),
            dialect,
        )

    def label(
        self, cur: Any, usecase: str, request_id: str, actual: float, correction: bool
    ) -> FeedbackResult:
        """Decide and write one label in the caller's transaction, on its DBAPI cursor.

        Writers of one id are serialized, so no decision is made on a label that is being
        replaced: the first statement is a write that changes nothing, which takes
        SQLite's database write lock (pysqlite opens the transaction at the first write,
        so reads before it would see no lock) and PostgreSQL's lock on an existing label's
        row. Two first labels of one id can still both find no row on PostgreSQL: the
        ``feedback`` key lets one insert win, the other gets an IntegrityError and
        ``add_feedback`` decides it again against the winner. The history's
        (request_id, revision) key backs this up.
        """
        rid = {"rid": request_id}
        self.lock.execute(cur, rid)
        current = self.current.first(cur, rid)
        now = datetime.now(UTC)
        entry = {"request_id": request_id, "usecase": usecase, "actual": actual, "ts": now}
        if current is None:
            if self.known.first(cur, {"rid": request_id, "usecase": usecase}) is None:
                return FeedbackResult(FeedbackStatus.unknown)
            self.insert.execute(cur, entry)
            self.history.execute(cur, {**entry, "revision": 1})
            return FeedbackResult(FeedbackStatus.recorded, 1, actual)
        current_actual, current_ts, current_usecase = current
        if current_usecase != usecase:
            return FeedbackResult(FeedbackStatus.unknown)
        found = self.revision.first(cur, rid)
        revision = int(found[0]) if found is not None else 0
        if current_actual == actual:
            return FeedbackResult(FeedbackStatus.unchanged, max(revision, 1), actual)
        if not correction:
            return FeedbackResult(FeedbackStatus.conflict, max(revision, 1), float(current_actual))
        if revision == 0:  # a label stored before the history existed: keep it on record first
            revision = 1
            self.history.execute(
                cur, {**entry, "actual": current_actual, "ts": current_ts, "revision": revision}
            )
        self.history.execute(cur, {**entry, "revision": revision + 1})
        self.replace.execute(cur, {"rid": request_id, "new_actual": actual, "new_ts": now})
        return FeedbackResult(FeedbackStatus.corrected, revision + 1, actual)


@dataclass
class PredictionRecord:
    request_id: str
    usecase: str
    model_name: str
    model_version: str
    variant: str
    entity_keys: dict[str, Any]
    features: dict[str, Any]
    prediction: float
    latency_ms: float
    mode: str = "served"
    label: str | None = None
    missing: list[str] = field(default_factory=list)
    event_time: datetime | None = None
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))
    explanation: dict[str, Any] | None = None
    """Every feature's contribution, base value and method (``/explain`` only)."""

    def row(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "ts": self.ts,
            "usecase": self.usecase,
            "model_name": self.model_name,
            "model_version": str(self.model_version),
            "variant": self.variant,
            "mode": self.mode,
            "entity_keys": json.dumps(self.entity_keys, default=str, sort_keys=True),
            "features": json.dumps(self.features, default=_json_default, sort_keys=True),
            "missing": json.dumps(self.missing),
            "prediction": float(self.prediction),
            "label": self.label,
            "event_time": self.event_time,
            "latency_ms": float(self.latency_ms),
            "explanation": (
                None if self.explanation is None else json.dumps(self.explanation, sort_keys=True)
            ),
        }


def _json_default(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v)


def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # fsync on commit: acknowledged = on disk
    cur.execute("PRAGMA busy_timeout=10000")  # several workers share the file
    cur.close()


def schema_sql() -> str:
    """The PostgreSQL DDL of the log's tables and indexes (``IF NOT EXISTS``, so re-runnable).

    On a cluster the tables belong to a role no pod logs in as, so that the roles the
    service and the monitor use can write or read rows but never drop or alter the log;
    the chart's PostgreSQL init creates them from this text as that owner
    (``charts/shipway/files/predictions-schema.psql``, golden-tested against it).
    """
    dialect = postgresql.dialect()
    statements: list[str] = []
    for table in metadata.sorted_tables:
        statements.append(
            str(sa.schema.CreateTable(table, if_not_exists=True).compile(dialect=dialect)).strip()
        )
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(
                str(
                    sa.schema.CreateIndex(index, if_not_exists=True).compile(dialect=dialect)
                ).strip()
            )
    for name in ADDED_COLUMNS:  # a log created before them gains them (the owner runs this)
        col = predictions.c[name]
        statements.append(
            f"ALTER TABLE predictions ADD COLUMN IF NOT EXISTS {name} {col.type.compile(dialect)}"
        )
    header = "-- Generated from shipway/core/predictionlog.py (schema_sql); do not edit.\n"
    body = "".join(f"{s};\n" for s in statements)
    return header + "\n".join(line.rstrip() for line in body.split("\n"))


ADDED_COLUMNS = ("explanation",)
"""Nullable columns of ``predictions`` added after logs were first created."""


def migrate(engine: Engine) -> list[str]:
    """Add the nullable columns an older log lacks (``ALTER TABLE ... ADD COLUMN``: its
    rows keep their values and read back with NULL there); returns the names added.

    Several workers open one log at once: a column another one added in between is
    taken as done, not as an error. A role that may not alter the table (the cluster's
    service role) leaves it missing, said once here: the log then works without it, and
    only storing what needs it is refused (:class:`ColumnMissing`); the table's owner
    adds it with :func:`schema_sql`'s ``ALTER TABLE ... ADD COLUMN IF NOT EXISTS``."""
    added = []
    for name in ADDED_COLUMNS:
        if name in {c["name"] for c in sa.inspect(engine).get_columns("predictions")}:
            continue
        col = predictions.c[name]
        ddl = f"ALTER TABLE predictions ADD COLUMN {name} {col.type.compile(engine.dialect)}"
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(ddl)
            added.append(name)
        except sa.exc.DBAPIError as exc:
            cols = {c["name"] for c in sa.inspect(engine).get_columns("predictions")}
            if name not in cols:  # not a concurrent opener's doing
                log.warning(
                    "shipway: the prediction log has no %s column and this role cannot add it "
                    "(%s); predictions are logged without it until the table's owner runs "
                    "ALTER TABLE predictions ADD COLUMN IF NOT EXISTS %s %s",
                    name,
                    type(exc.orig).__name__,
                    name,
                    col.type.compile(engine.dialect),
                )
    return added


class ColumnMissing(RuntimeError):
    """A record needs a column the log's table lacks and this role could not add."""


def url_for(uri: str) -> str:
    """A path becomes a SQLite URL; SQLAlchemy URLs pass through."""
    if "://" in uri:
        return uri.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"sqlite:///{Path(uri).resolve()}"


class PredictionLog:
    """Append-only prediction log plus feedback, on SQLite or PostgreSQL."""

    def __init__(self, uri: str):
        self.url = url_for(uri)
        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = sa.create_engine(self.url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        database = self.engine.url.database
        self.write_lock = WriteLock(
            Path(database)
            if self.engine.dialect.name == "sqlite" and database not in (None, "", ":memory:")
            else None
        )
        """Taken around every write transaction, so that writers of this log (threads and
        worker processes) queue for one another instead of sleeping in SQLite's busy
        handler (``shipway.core.writelock``); a no-op on PostgreSQL."""
        metadata.create_all(self.engine)
        migrate(self.engine)
        present = {c["name"] for c in sa.inspect(self.engine).get_columns("predictions")}
        self.columns = [c for c in predictions.c if c.name in present]
        """The columns the table has (an unmigrated log lacks the later, nullable ones)."""
        self._writer = GroupWriter(self.engine, predictions, self.columns, self.write_lock)
        self._labels = _LabelSQL(self.engine.dialect)

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Commit the records (one transaction, possibly shared with concurrent callers);
        returns only once they are durable. Raises :class:`DuplicateRecord` when one of
        them reuses a logged request id: then none of them is written."""
        if not records:
            return
        if "explanation" not in {c.name for c in self.columns} and any(
            r.explanation is not None for r in records
        ):
            raise ColumnMissing(
                "the prediction log has no explanation column to store explanations in; its "
                "owner must run ALTER TABLE predictions ADD COLUMN IF NOT EXISTS explanation TEXT"
            )
        self._writer.insert([r.row() for r in records])

    def close(self) -> None:
        """Release the writer's connection and the pool."""
        self._writer.close()
        self.engine.dispose()
        self.write_lock.close()

    def add_feedback(
        self, usecase: str, request_id: str, actual: float, *, correction: bool = False
    ) -> FeedbackResult:
        """Record the ground truth of a logged prediction, never overwriting one silently.

        The first label is recorded; the same value again is a no-op (a client's retry);
        a different value is a conflict unless ``correction``, which makes it the label in
        force and keeps the earlier one in ``feedback_history``. The value must already be
        validated against the target (the service does, by ``shipway.core.labels``); a
        non-finite one is refused here so that no caller can store it.
        """
        value = float(actual)
        if not math.isfinite(value):
            raise ValueError(f"actual must be a finite number, not {actual!r}")
        for attempt in range(1, ATTEMPTS + 1):
            try:  # in the group commit, with the prediction rows and other labels queued
                result: FeedbackResult = self._writer.run(
                    lambda cur: self._labels.label(cur, usecase, request_id, value, correction)
                )
                return result
            except self._writer.integrity_errors:
                if attempt == ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def feedback_history(self, request_id: str) -> list[dict[str, Any]]:
        """Every label the prediction has had, oldest first (the last one is in force)."""
        q = (
            sa.select(feedback_history)
            .where(feedback_history.c.request_id == request_id)
            .order_by(feedback_history.c.revision)
        )
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def get(self, request_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(*self.columns).where(predictions.c.request_id == request_id))
                .mappings()
                .first()
            )
        return _decode(dict(row)) if row else None

    def explained(
        self, usecase: str, model_name: str, model_version: str, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The explained predictions of one model version, newest first (at most
        ``limit``): request id, time, prediction, label and the decoded explanation."""
        c = predictions.c
        q = (
            sa.select(c.request_id, c.ts, c.prediction, c.label, c.variant, c.explanation)
            .where(
                c.usecase == usecase,
                c.model_name == model_name,
                c.model_version == str(model_version),
                c.explanation.is_not(None),
            )
            .order_by(c.ts.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_decode(dict(r)) for r in conn.execute(q).mappings()]

    def count(self, usecase: str | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(predictions)
        if usecase:
            q = q.where(predictions.c.usecase == usecase)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def window(
        self,
        usecase: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        with_feedback: bool = True,
        by: str = "ts",
    ) -> pd.DataFrame:
        """Predictions of a use case in [start, end) (by log time or event time), with the
        features expanded into columns and the feedback joined as ``actual``."""
        q = _window_query(usecase, start, end, by)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
        return _window_frame(rows, with_feedback)

    def iter_window(
        self,
        usecase: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        chunk_rows: int | None = 50_000,
        with_feedback: bool = True,
        by: str = "ts",
    ) -> Iterator[pd.DataFrame]:
        """The rows of :meth:`window`, in the same order, as frames of at most ``chunk_rows``
        rows (``None``: one frame), so a window larger than memory can be read.

        One query streamed from the database (a server-side cursor on PostgreSQL, SQLite
        steps lazily), not pages: paging on the unindexed ``event_time`` would sort the
        window once per page. The read stays one snapshot, so no row is seen twice or
        missed while the service keeps appending. Each frame has the columns its own rows
        carry (a feature no row of a chunk has is absent from that chunk). Nothing is
        yielded for an empty window.
        """
        if chunk_rows is not None and chunk_rows < 1:
            raise ValueError(f"chunk_rows must be a positive number of rows, not {chunk_rows!r}")
        q = _window_query(usecase, start, end, by)
        with self.engine.connect() as conn:
            if chunk_rows is None:
                rows = [dict(r) for r in conn.execute(q).mappings()]
                if rows:
                    yield _window_frame(rows, with_feedback)
                return
            result = conn.execution_options(stream_results=True).execute(q).mappings()
            for part in result.partitions(chunk_rows):
                yield _window_frame([dict(r) for r in part], with_feedback)

    def count_labelled(self, usecase: str, since: datetime | None = None) -> int:
        """Served predictions with a label in force whose business time (``event_time``,
        else the log time) is at or after ``since``: the labelled rows that accrued since
        then. Shadow records never carry labels (feedback goes to the served id)."""
        when = sa.func.coalesce(predictions.c.event_time, predictions.c.ts)
        q = (
            sa.select(sa.func.count())
            .select_from(
                predictions.join(feedback, feedback.c.request_id == predictions.c.request_id)
            )
            .where(predictions.c.usecase == usecase, predictions.c.mode == "served")
        )
        if since is not None:
            q = q.where(when >= since)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def delete(
        self,
        usecase: str,
        *,
        before: datetime | None = None,
        entity: tuple[str, str] | None = None,
        dry_run: bool = False,
    ) -> dict[str, int]:
        """Delete predictions (and their feedback, with its history) older than ``before``
        or of one entity. The counts are of predictions and of labels in force."""
        with self.write_lock.held(), self.engine.begin() as conn:
            q = sa.select(predictions.c.request_id, predictions.c.entity_keys).where(
                predictions.c.usecase == usecase
            )
            if before is not None:
                q = q.where(predictions.c.ts < before)
            ids = [
                r.request_id
                for r in conn.execute(q)
                if entity is None or str(json.loads(r.entity_keys).get(entity[0])) == entity[1]
            ]
            n_fb = 0
            for chunk in _chunks(ids, 500):
                n_fb += int(
                    conn.execute(
                        sa.select(sa.func.count())
                        .select_from(feedback)
                        .where(feedback.c.request_id.in_(chunk))
                    ).scalar_one()
                )
                if not dry_run:
                    for table in (feedback_history, feedback):
                        conn.execute(table.delete().where(table.c.request_id.in_(chunk)))
                    conn.execute(predictions.delete().where(predictions.c.request_id.in_(chunk)))
        return {"predictions": len(ids), "feedback": n_fb}

    def delete_feedback_before(self, usecase: str, before: datetime, dry_run: bool = False) -> int:
        """Delete labels received before ``before``: in force and in the history (each
        label has its own age; the one in force and its history row share a timestamp).
        Returns the count of labels in force deleted."""
        cond = sa.and_(feedback.c.usecase == usecase, feedback.c.ts < before)
        with self.write_lock.held(), self.engine.begin() as conn:
            n = int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(feedback).where(cond)
                ).scalar_one()
            )
            if not dry_run:
                conn.execute(feedback.delete().where(cond))
                conn.execute(
                    feedback_history.delete().where(
                        feedback_history.c.usecase == usecase, feedback_history.c.ts < before
                    )
                )
        return n

    def integrity_ok(self) -> bool:
        """SQLite's own integrity check (PostgreSQL is always consistent here)."""
        if self.engine.dialect.name != "sqlite":
            return True
        with self.engine.connect() as conn:
            return conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def _window_query(
    usecase: str, start: datetime | None, end: datetime | None, by: str
) -> sa.Select[Any]:
    """Predictions of a use case in [start, end) by ``by``, feedback joined, in time order."""
    col = predictions.c[by]
    served = [c for c in predictions.c if c.name != "explanation"]  # monitoring's columns
    q = (
        sa.select(*served, feedback.c.actual)
        .select_from(
            predictions.outerjoin(feedback, feedback.c.request_id == predictions.c.request_id)
        )
        .where(predictions.c.usecase == usecase)
    )
    if start is not None:
        q = q.where(col >= start)
    if end is not None:
        q = q.where(col < end)
    return q.order_by(col)


def _window_frame(rows: list[dict[str, Any]], with_feedback: bool) -> pd.DataFrame:
    """Rows with their JSON decoded and the features expanded into ``f.<name>`` columns."""
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame([_decode(r) for r in rows])
    feats = pd.DataFrame(df.pop("features").tolist(), index=df.index)
    out = pd.concat([df, feats.add_prefix("f.")], axis=1)
    if not with_feedback:
        out = out.drop(columns=["actual"])
    return out


def _chunks(items: Sequence[str], n: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("entity_keys", "features", "missing", "explanation"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row
