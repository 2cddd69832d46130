"""The prediction log's group commit (real SQLite files, WAL, synchronous=FULL).

* Callers that arrive while a commit is in progress are committed together, in one
  transaction, and each returns only after its own records are in the log.
* A reused request id fails only the caller that sent it; nothing of its batch is
  written, and the others of the same group are.
* Rows written through the driver read back through SQLAlchemy exactly as before
  (timestamps compare in window queries, JSON columns decode).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shipway.core.predictionlog import DuplicateRecord, PredictionLog, PredictionRecord
from tests.records import prediction_record


def _record(rid: str, value: float = 1.0, ts: datetime | None = None) -> PredictionRecord:
    return prediction_record(
        rid,
        value,
        ts,
        entity_keys={"agent": "9", "country": "PRT"},
        features={"lead_time": 12.0, "agent": "9"},
        missing=["agent_adr_mean_90d"],
        event_time=ts,
    )


def _queued(plog: PredictionLog, calls: list[Callable[[], None]]) -> list[BaseException | None]:
    """Start ``calls`` while a commit is in progress (the write lock held), wait until all
    of them are queued, then let them go; returns each call's exception or None."""
    writer = plog._writer
    errors: list[BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            calls[i]()
        except BaseException as exc:
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    with writer._write_lock:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(writer._queue) < len(calls):
            assert time.monotonic() < deadline, "appends never queued"
            time.sleep(0.005)
    for t in threads:
        t.join(30)
    return errors


def test_concurrent_appends_share_one_commit(tmp_path: Path) -> None:
    plog = PredictionLog(str(tmp_path / "p.db"))
    before = plog._writer.commits
    calls = [
        (lambda i=i: plog.append([_record(f"r{i}-{j}", float(j)) for j in range(3)]))
        for i in range(12)
    ]
    assert _queued(plog, calls) == [None] * 12
    assert plog._writer.commits - before == 1, "twelve callers, one transaction"
    assert plog.count("hotel_rates") == 36
    assert plog.get("r7-2")["prediction"] == 2.0  # type: ignore[index]


def test_a_reused_id_fails_only_its_caller(tmp_path: Path) -> None:
    plog = PredictionLog(str(tmp_path / "p.db"))
    plog.append([_record("taken")])
    calls = [
        lambda: plog.append([_record("a1"), _record("a2")]),
        lambda: plog.append([_record("b1"), _record("taken")]),
        lambda: plog.append([_record("c1")]),
    ]
    errors = _queued(plog, calls)
    assert errors[0] is None and errors[2] is None
    assert isinstance(errors[1], DuplicateRecord)
    assert plog.get("b1") is None, "nothing of the failed batch is written"
    assert {plog.get(r) is not None for r in ("a1", "a2", "c1", "taken")} == {True}
    assert plog.count() == 4
    with pytest.raises(DuplicateRecord):
        plog.append([_record("solo"), _record("solo")])
    assert plog.get("solo") is None
    plog.append([_record("after")])  # the connection is still usable
    assert plog.count() == 5


def test_driver_rows_read_back_like_sqlalchemy_rows(tmp_path: Path) -> None:
    plog = PredictionLog(str(tmp_path / "p.db"))
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    plog.append([_record(f"w{i}", float(i), t0 + timedelta(hours=i)) for i in range(6)])
    win = plog.window("hotel_rates", t0 + timedelta(hours=2), t0 + timedelta(hours=5))
    assert win["request_id"].tolist() == ["w2", "w3", "w4"]
    by_event = plog.window(
        "hotel_rates", t0 + timedelta(hours=4), None, with_feedback=False, by="event_time"
    )
    assert by_event["request_id"].tolist() == ["w4", "w5"]
    row = plog.get("w3")
    assert row is not None
    assert row["entity_keys"] == {"agent": "9", "country": "PRT"}
    assert row["features"] == {"agent": "9", "lead_time": 12.0}
    assert row["missing"] == ["agent_adr_mean_90d"]
    assert row["ts"].replace(tzinfo=UTC) == t0 + timedelta(hours=3)
    assert plog.add_feedback("hotel_rates", "w3", 10.0)
    assert plog.delete("hotel_rates", before=t0 + timedelta(hours=1)) == {
        "predictions": 1,
        "feedback": 0,
    }
    assert plog.integrity_ok()


def test_a_second_process_view_sees_every_acknowledged_record(tmp_path: Path) -> None:
    """What append returned for is committed: a fresh connection (another worker, or the
    service after a restart) reads it at once."""
    path = str(tmp_path / "p.db")
    plog = PredictionLog(path)
    threads = [threading.Thread(target=plog.append, args=([_record(f"t{i}")],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    other = PredictionLog(path)
    assert other.count() == 20
    plog.close()
    other.close()


def test_labels_join_the_group_commit_with_their_own_results(tmp_path: Path) -> None:
    """Labels queued with prediction rows commit in the same transaction; each caller
    gets its own outcome, and a reused id in the group fails only its own append."""
    plog = PredictionLog(str(tmp_path / "p.db"))
    plog.append([_record("known"), _record("labelled"), _record("taken")])
    assert plog.add_feedback("hotel_rates", "labelled", 5.0)
    results: dict[str, object] = {}

    def label(rid: str, value: float, correction: bool = False) -> Callable[[], None]:
        def call() -> None:
            results[f"{rid}:{value}"] = plog.add_feedback(
                "hotel_rates", rid, value, correction=correction
            ).status.value

        return call

    before = plog._writer.commits
    calls = [
        lambda: plog.append([_record("n1"), _record("n2")]),
        label("known", 7.0),
        label("nobody", 1.0),
        label("labelled", 6.0),  # a different second label: a conflict, nothing changes
        label("labelled", 5.0),  # the same again: unchanged
        lambda: plog.append([_record("taken")]),
    ]
    errors = _queued(plog, calls)
    assert errors[:5] == [None] * 5
    assert isinstance(errors[5], DuplicateRecord)
    assert results == {
        "known:7.0": "recorded",
        "nobody:1.0": "unknown",
        "labelled:6.0": "conflict",
        "labelled:5.0": "unchanged",
    }
    assert plog._writer.commits - before >= 1
    assert plog.count() == 5
    win = plog.window("hotel_rates").set_index("request_id")["actual"]
    assert win["known"] == 7.0 and win["labelled"] == 5.0
    assert [h["actual"] for h in plog.feedback_history("labelled")] == [5.0]
    fixed = plog.add_feedback("hotel_rates", "labelled", 6.0, correction=True)
    assert fixed.status.value == "corrected" and fixed.revision == 2
    plog.close()


def test_a_label_group_without_faults_is_one_commit(tmp_path: Path) -> None:
    plog = PredictionLog(str(tmp_path / "p.db"))
    plog.append([_record(f"r{i}") for i in range(8)])
    before = plog._writer.commits
    calls = [
        (lambda i=i: plog.add_feedback("hotel_rates", f"r{i}", float(i)) and None) for i in range(8)
    ] + [lambda: plog.append([_record("late")])]
    assert _queued(plog, calls) == [None] * 9
    assert plog._writer.commits - before == 1, "eight labels and an append, one transaction"
    assert plog.window("hotel_rates")["actual"].notna().sum() == 8
    plog.close()


def test_an_operation_that_fails_fails_only_its_own_caller(tmp_path: Path) -> None:
    """A queued operation that raises is its caller's error: the group is replayed one
    caller per transaction and every other caller's writes are committed."""
    plog = PredictionLog(str(tmp_path / "p.db"))
    plog.append([_record("a")])

    def broken(conn: object) -> None:
        raise ValueError("this caller's own mistake")

    calls = [
        lambda: plog.append([_record("b")]),
        lambda: plog._writer.run(broken),
        lambda: plog.add_feedback("hotel_rates", "a", 2.0) and None,
    ]
    errors = _queued(plog, calls)
    assert errors[0] is None and errors[2] is None
    assert isinstance(errors[1], ValueError) and "own mistake" in str(errors[1])
    assert plog.count() == 2
    assert plog.window("hotel_rates").set_index("request_id")["actual"]["a"] == 2.0
    plog.close()
