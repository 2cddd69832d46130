"""One writer at a time on a SQLite prediction log, with waiters woken at once.

SQLite lets one transaction write at a time; a connection that finds the write lock
taken does not queue for it, it sleeps in SQLite's busy handler (1, 2, 5, 10, 15, 20,
25 ... ms back-off, ``PRAGMA busy_timeout``) and tries again. With two service workers
writing one log, a commit of a few hundred microseconds made the other worker sleep
milliseconds: its group commit and every /feedback write stalled while the lock stood
free, and the service answered ~1,000 req/s of the 1,500 the cores allow (issue 15;
py-spy showed the workers' threads waiting in the first write of a label and in the
group commit's insert, not computing).

:class:`WriteLock` is taken around each write transaction instead: a thread lock for
the writers of this process, and ``flock`` on a sidecar file (``<database>.writelock``)
for the other processes. Both block in the kernel, so the next writer starts as soon as
the previous one released the lock, and the group commit's queue grows meanwhile.

It orders writers, it does not make them safe: SQLite's own locking still guards the
data, so a writer that does not take this lock (a ``shipway`` command, an older
service), or a log whose directory refuses the lock file, is correct as before, only
slower to wait. ``flock`` belongs to the open file, so the kernel releases it when its
process dies (kill -9 included): a dead writer never leaves the log locked.
PostgreSQL queues writers itself; there the lock does nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("shipway.predictionlog")

SUFFIX = ".writelock"
"""The lock file's name is the database's plus this (beside SQLite's -wal and -shm)."""


class WriteLock:
    """Exclusive across the threads of this process and the processes that share the file."""

    def __init__(self, database: Path | None) -> None:
        """``database``: the SQLite file the lock orders writers of; None (PostgreSQL, an
        in-memory database) makes the lock a no-op."""
        self._threads = threading.Lock()
        self._fd: int | None = None
        self.path: Path | None = None
        if database is None:
            return
        path = Path(f"{database}{SUFFIX}")
        try:
            # read-only is enough for flock, so a role that may only read the file can wait too
            self._fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self.path = path
        except OSError as exc:
            log.warning(
                "shipway: no writer lock file %s (%s): writers of the prediction log wait "
                "in SQLite's busy handler instead",
                path,
                exc.strerror,
            )

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the ``with`` block (a write transaction, up to its commit)."""
        if self.path is None:
            yield
            return
        with self._threads:
            fd = self._fd
            if fd is None:  # closed: the process is shutting down; SQLite still guards
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)  # the GIL is released while it waits
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file (releasing the lock if a writer still held it)."""
        with self._threads:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
