"""The prediction log's writer lock (``shipway.core.writelock``), with real processes.

* Two processes appending to one SQLite log at once lose nothing: every acknowledged
  record is in the log, and the log passes SQLite's integrity check.
* The lock is released when the ``with`` block raises, and by the kernel when the
  process holding it dies (kill -9), so a dead writer never blocks the log.
* PostgreSQL and in-memory databases get no lock file.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shipway.core.predictionlog import PredictionLog
from shipway.core.writelock import SUFFIX, WriteLock
from tests.records import prediction_record

N = 150


def _writer(db: str, name: str) -> None:
    plog = PredictionLog(db)
    for i in range(N):
        plog.append([prediction_record(f"{name}-{i}")])
        if i % 10 == 0:
            plog.add_feedback("hotel_rates", f"{name}-{i}", 1.0)
    plog.close()


def test_two_processes_writing_one_log_lose_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "log.db")
    PredictionLog(db).close()  # tables made once, before the writers race
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db, name)) for name in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    plog = PredictionLog(db)
    assert plog.count() == 2 * N
    assert plog.count_labelled("hotel_rates") == 2 * (N // 10)
    assert plog.integrity_ok()
    assert Path(db + SUFFIX).exists()


def test_the_lock_is_released_when_the_block_raises(tmp_path: Path) -> None:
    lock = WriteLock(tmp_path / "log.db")
    with pytest.raises(RuntimeError), lock.held():
        raise RuntimeError("write failed")
    holder = _hold_in_child(tmp_path / "log.db")  # another process can take it now
    holder.kill()
    holder.wait()
    lock.close()


def _hold_in_child(db: Path) -> subprocess.Popen[str]:
    """A process that takes the lock and keeps it until killed (prints once it has it)."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from shipway.core.writelock import WriteLock\n"
        f"lock = WriteLock(Path({str(db)!r}))\n"
        "with lock.held():\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    holder = _hold_in_child(db)
    lock = WriteLock(db)
    taken: list[float] = []

    def take() -> None:
        with lock.held():
            taken.append(time.monotonic())

    import threading

    t = threading.Thread(target=take)
    t.start()
    time.sleep(0.3)
    assert not taken, "the lock is exclusive while the other process holds it"
    killed = time.monotonic()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    t.join(10)
    assert taken and taken[0] >= killed, "the kernel released the dead holder's lock"
    lock.close()


def test_no_lock_file_for_postgresql_or_memory(tmp_path: Path) -> None:
    lock = WriteLock(None)
    with lock.held():
        pass
    assert lock.path is None
    plog = PredictionLog("sqlite://")
    assert plog.write_lock.path is None
    plog.close()
    assert not list(tmp_path.iterdir())
