"""The audit trail is append-only and hash-chained: records verify, and any edit, removal
or reordering is found; cards are rendered from recorded facts only."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipway.core.evidence import Criterion, GateRecord
from shipway.core.usecases import load_usecase
from shipway.governance import cards
from shipway.governance.facts import VersionFacts
from shipway.governance.trail import AuditTrail, FileStore


def _record(gate: str, value: float, version: str = "1") -> GateRecord:
    return GateRecord(
        gate,
        {"usecase": "hotel_rates", "model": "hotel_rates", "version": version},
        [Criterion("quality_mae", value <= 30, value, 30.0, "<=")],
        facts={"note": f"value {value}"},
    )


@pytest.fixture
def trail(tmp_path: Path) -> AuditTrail:
    t = AuditTrail(FileStore(tmp_path / "audit"))
    for i, gate in enumerate(("use_case_approval", "data_readiness", "model_validation")):
        t.append(_record(gate, 20.0 + i))
    t.append(_record("production_readiness", 25.0, version="2"))
    return t


def test_records_are_chained_filtered_and_verified(trail: AuditTrail) -> None:
    entries = trail.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev == "genesis"
    assert all(b.prev == a.entry_hash for a, b in itertools.pairwise(entries))
    assert trail.verify() == []
    assert [r["gate"] for r in trail.records(version="1")] == [
        "use_case_approval",
        "data_readiness",
        "model_validation",
    ]
    latest = trail.latest("production_readiness", version="2")
    assert latest is not None and latest["passed"] is True
    # idempotent: the same record (same content hash) is not appended twice
    again = GateRecord.from_dict(trail.records("data_readiness")[0])
    uri = trail.append(again)
    assert len(trail.entries()) == 4 and uri == trail.uri_of(again.to_dict())


def test_the_store_refuses_to_overwrite(trail: AuditTrail) -> None:
    name = trail.entries()[0].record
    with pytest.raises(FileExistsError):
        trail.store.put(name, b"{}")


def test_a_modified_record_is_detected(trail: AuditTrail, tmp_path: Path) -> None:
    entry = trail.entries()[2]
    path = tmp_path / "audit" / entry.record
    data = json.loads(path.read_text())
    data["criteria"][0]["value"] = 5.0  # a better number than was measured
    path.write_text(json.dumps(data))
    problems = trail.verify()
    assert problems == [f"entry 3: record {entry.record} was modified (hash mismatch)"]


def test_a_record_swapped_for_another_valid_one_is_detected(
    trail: AuditTrail, tmp_path: Path
) -> None:
    """Replacing a record with a different, internally consistent one still breaks the
    entry that recorded the original hash."""
    entry = trail.entries()[1]
    forged = _record("data_readiness", 1.0).to_dict()
    (tmp_path / "audit" / entry.record).write_text(json.dumps(forged))
    assert trail.verify() == [f"entry 2: record {entry.record} is not the one recorded"]


def test_removed_or_edited_entries_break_the_chain(trail: AuditTrail, tmp_path: Path) -> None:
    entries_dir = tmp_path / "audit" / "trail"
    (entries_dir / "000002.json").unlink()
    problems = trail.verify()
    assert any("an entry was removed" in p for p in problems)
    assert any("chain broken" in p for p in problems)
    e4 = entries_dir / "000004.json"
    data = json.loads(e4.read_text())
    data["passed"] = False
    e4.write_text(json.dumps(data))
    assert any("entry 4: entry hash does not match" in p for p in trail.verify())


class _WatchedStore(FileStore):
    """A store that notes whether the trail's lock is held at each read and write."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.held = False
        self.calls: list[tuple[str, bool]] = []

    def put(self, name: str, data: bytes) -> None:
        self.calls.append(("put", self.held))
        super().put(name, data)

    def names(self, folder: str) -> list[str]:
        self.calls.append(("names", self.held))
        return super().names(folder)


def test_append_reads_the_sequence_and_writes_the_entry_under_the_lock(tmp_path: Path) -> None:
    """What makes a cluster trail safe: the lock spans the whole read-sequence/put-entry
    step (and the duplicate check), is taken once per append, and reads take none."""
    store = _WatchedStore(tmp_path / "audit")
    taken: list[str] = []

    @contextlib.contextmanager
    def lock() -> Iterator[None]:
        assert not store.held, "the trail lock was re-entered"
        taken.append("lock")
        store.held = True
        try:
            yield
        finally:
            store.held = False

    t = AuditTrail(store, lock=lock)
    t.append(_record("use_case_approval", 20.0))
    t.append(_record("data_readiness", 21.0))
    assert taken == ["lock", "lock"]
    assert {"put", "names"} == {op for op, _ in store.calls}
    assert all(held for _, held in store.calls), store.calls
    store.calls.clear()
    assert t.verify() == [] and [e.seq for e in t.entries()] == [1, 2]
    assert taken == ["lock", "lock"] and not any(held for _, held in store.calls)

    def failing() -> contextlib.AbstractContextManager[None]:
        raise RuntimeError("no lock")

    before = store.names("records")
    with pytest.raises(RuntimeError, match="no lock"):
        AuditTrail(store, lock=failing).append(_record("model_validation", 22.0))
    assert store.names("records") == before and len(t.entries()) == 2  # nothing written


def _facts() -> VersionFacts:
    mv_record = {
        "gate": "model_validation",
        "passed": True,
        "content_hash": "sha256:mv",
        "criteria": [{"name": "quality_mae", "passed": True, "detail": ""}],
        "facts": {
            "slices": {
                "customer_type": {
                    "transient": {"rows": 1356.0, "mae": 22.9},
                    "group": {"rows": 27.0},
                }
            }
        },
    }
    dr_record = {
        "gate": "data_readiness",
        "passed": True,
        "content_hash": "sha256:dr",
        "criteria": [{"name": "pii_in_training_data", "passed": True, "detail": "none"}],
        "facts": {
            "splits": {"train": {"rows": 6471, "start": "2016-07-02", "end": "2016-12-31"}},
            "groups": {"customer_type": {"train": {"transient": 4728, "group": 44}}},
            "readiness": {"rows": 15402, "rules": 87, "checked_at": "t"},
        },
    }
    approval = {
        "gate": "human_approval",
        "passed": True,
        "created_at": "2026-11-25T10:00:00+00:00",
        "content_hash": "sha256:ap",
        "facts": {"approver": "Dana Whitfield", "comment": "Fine for decision support."},
    }
    return VersionFacts(
        name="hotel_rates",
        version="3",
        run_id="r3",
        created_at="2026-11-25T09:00:00+00:00",
        aliases=["champion"],
        tags={"data_version": "874f.dir", "git_commit": "abc", "feature_service": "hotel_rates_v1"},
        metrics={"train": {"mae": 5.7}, "validation": {"mae": 8.4}, "test": {"mae": 19.7}},
        params={"algorithm": "lightgbm"},
        records={"model_validation": mv_record, "data_readiness": dr_record},
        approvals=[approval],
    )


def test_cards_state_the_recorded_facts() -> None:
    spec = load_usecase("hotel_rates")
    out = cards.render(spec, _facts())
    model = out["model_card.md"]
    assert spec.description.split()[0] in model  # intended use from the spec
    assert "| test | 19.7 |" in model  # metrics per split
    assert "| customer_type | group | 27 | too few rows |" in model  # slices
    assert "Dana Whitfield" in model and "Fine for decision support." in model
    assert "Too few test rows to evaluate customer_type group(s) group" in model
    assert "from 2016-07-02 to 2016-12-31" in model  # limitation from the data record
    data = out["data_card.md"]
    assert "| train | 6471 | 2016-07-02 | 2016-12-31 |" in data
    assert "874f.dir" in data and "87 rules checked on 15402 rows" in data
    assert "<table>" in out["model_card.html"] and "Dana Whitfield" in out["model_card.html"]
