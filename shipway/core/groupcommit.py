"""Group commit of the prediction log's hot writes: prediction rows and labels together.

Under load, one transaction per write made the log the service's bottleneck: every
/feedback label was its own fsync'd transaction, and on SQLite every transaction of
every worker queues for the one write lock, while the thread that holds it waits for
its process's GIL. At 1,400 req/s of the realistic mix the service answered with a p50
of 100 ms on cores a third idle; without the labels, 16 ms (issue 15).

So every hot write queues here, and whoever gets the writer's lock commits everything
queued so far in one transaction (one fsync on SQLite): the prediction rows through the
DBAPI cursor's ``executemany`` (the statement compiled once, the parameters converted by
the caller's thread before it queues, so little runs under the lock), then each queued
label decision on the same cursor (its statements compiled once too,
``shipway.core.driversql``). Every caller returns
only once its own writes are committed, with its own result.

A failure that belongs to one caller fails only that caller: on an integrity error (or
any error an operation raises) the group is rolled back and replayed one caller per
transaction, so a reused request id fails its own batch (:class:`DuplicateRecord`) and a
label that lost a race to another first label gets the IntegrityError back to decide
again. A connection error fails the callers not yet committed, and the next write
reconnects.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shipway.core.driversql import Statement
from shipway.core.writelock import WriteLock


class DuplicateRecord(RuntimeError):
    """A record's request id is already in the log (nothing of that append was written)."""


@dataclass
class _Pending:
    """One caller's writes, waiting for a commit: rows to insert, or a decision to run."""

    params: list[Any]
    op: Callable[[Any], Any] | None = None
    result: Any = None
    done: bool = False
    error: BaseException | None = None


class GroupWriter:
    """Commits queued inserts of ``table``'s ``columns`` and queued operations together."""

    def __init__(
        self,
        engine: Engine,
        table: sa.Table,
        columns: Sequence[sa.Column[Any]],
        file_lock: WriteLock,
    ) -> None:
        self.engine = engine
        self.file_lock = file_lock
        dialect = engine.dialect
        self.integrity_errors: tuple[type[BaseException], ...] = (
            dialect.loaded_dbapi.IntegrityError,
            sa.exc.IntegrityError,
        )
        # anything else the driver raises is the database's failure, not one caller's
        self.connection_errors: tuple[type[BaseException], ...] = (
            dialect.loaded_dbapi.OperationalError,
            dialect.loaded_dbapi.InterfaceError,
            dialect.loaded_dbapi.InternalError,
            sa.exc.OperationalError,
            sa.exc.InterfaceError,
            sa.exc.InternalError,
        )
        self.statement = Statement.compile(
            table.insert(), dialect, column_keys=[c.name for c in columns]
        )
        """The insert, compiled once; rows are converted by the dialect's processors."""
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._conn: Connection | None = None
        self.commits = 0
        """Transactions committed (observability and tests: fewer than writes under load)."""

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` (all or none); returns once they are committed."""
        self._submit(_Pending([self.statement.params(r) for r in rows]))

    def run(self, op: Callable[[Any], Any]) -> Any:
        """Run ``op`` with a DBAPI cursor inside the group's transaction and return its
        result once that transaction is committed. ``op`` must only read and write through
        the cursor it is given (it may run again after a rollback); compile its statements
        once with :class:`~shipway.core.driversql.Statement`."""
        return self._submit(_Pending([], op)).result

    def close(self) -> None:
        with self._write_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _submit(self, mine: _Pending) -> _Pending:
        with self._queue_lock:
            self._queue.append(mine)
        with self._write_lock:
            if not mine.done:
                # the group is taken once the log's write lock is held: what queued while
                # another writer (a deletion, the other worker) committed joins this commit
                with self.file_lock.held():
                    with self._queue_lock:
                        group, self._queue = self._queue, []
                    self._commit(group)
        if mine.error is not None:
            raise mine.error
        return mine

    def _apply(self, conn: Connection, group: Sequence[_Pending]) -> None:
        """One transaction: every row of the group, then every operation, then commit."""
        with conn.begin():
            cur = conn.connection.cursor()
            try:
                rows = [r for p in group for r in p.params]
                if rows:
                    cur.executemany(self.statement.sql, rows)
                results = [p.op(cur) if p.op is not None else None for p in group]
            finally:
                cur.close()
        self.commits += 1
        for p, result in zip(group, results, strict=True):
            p.result, p.done = result, True

    def _commit(self, group: list[_Pending]) -> None:
        try:
            if self._conn is None:
                self._conn = self.engine.connect()
            conn = self._conn
            try:
                self._apply(conn, group)
            except self.connection_errors:
                raise  # the database failed, not a caller: fail the group, reconnect
            except Exception:
                for p in group:  # one caller per transaction: only the one at fault fails
                    try:
                        self._apply(conn, [p])
                    except self.connection_errors:
                        raise
                    except Exception as exc:
                        p.error = (
                            DuplicateRecord("request id already logged")
                            if p.params and isinstance(exc, self.integrity_errors)
                            else exc
                        )
                        p.done = True
        except BaseException as exc:
            self._drop()
            for p in group:
                if not p.done:  # committed callers stay committed; the rest failed
                    p.error, p.done = exc, True

    def _drop(self) -> None:
        """Forget a connection that failed mid-write (invalidated: never reused)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing more to release
                conn.invalidate()
                conn.close()
