"""validate: rejects corrupted data naming column, rule and count; keeps the last good data."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase
from shipway.data.ingest import ingest
from shipway.data.readiness import ValidationFailed, check, validate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    return load_usecase("hotel_rates")


@pytest.fixture(scope="module")
def raw(spec: UseCaseSpec, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return ingest(spec, ROOT, tmp_path_factory.mktemp("raw") / "raw.parquet")


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def test_real_data_passes_every_rule(spec: UseCaseSpec, raw: pd.DataFrame) -> None:
    report, typed = check(spec, raw)
    assert report.passed, [f.message() for f in report.findings]
    assert report.rows == 15402
    assert len(report.window_counts) == 14  # July 2016 .. August 2017
    assert set(report.group_counts["customer_type"]) == {
        "transient",
        "transient_party",
        "contract",
        "group",
    }
    assert str(typed["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert typed["event_timestamp"].is_monotonic_increasing
    assert (typed["country"] == "unknown").sum() == 164  # nulls get the declared missing key


def _corrupt_type(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["lead_time"] = df["lead_time"].astype(str)  # as if read from a text export
    df.loc[:4, "lead_time"] = "soon"
    return df


def _corrupt_range(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.loc[:6, "adults"] = 99
    return df


def _corrupt_missing(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["meal"])


def _corrupt_category(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.loc[:2, "meal"] = "all_you_can_eat"
    return df


def _corrupt_nulls(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.loc[:9, "avg_price_per_room"] = None
    return df


def _empty(df: pd.DataFrame) -> pd.DataFrame:
    return df.head(0)


@pytest.mark.parametrize(
    ("corrupt", "column", "rule", "count"),
    [
        (_corrupt_type, "lead_time", "type=int", 5),
        (_corrupt_range, "adults", "max<=10", 7),
        (_corrupt_missing, "meal", "present", 15402),
        (_corrupt_category, "meal", "allowed_categories", 3),
        (_corrupt_nulls, "avg_price_per_room", "not_null", 10),
        (_empty, "<table>", "min_rows>=10000", 10000),
    ],
)
def test_corrupted_data_is_rejected_and_last_good_version_kept(
    spec: UseCaseSpec,
    raw: pd.DataFrame,
    tmp_path: Path,
    corrupt: Callable[[pd.DataFrame], pd.DataFrame],
    column: str,
    rule: str,
    count: int,
) -> None:
    good_raw, out, reports = tmp_path / "good.parquet", tmp_path / "validated.parquet", tmp_path
    raw.to_parquet(good_raw, index=False)
    validate(spec, good_raw, out, reports)
    before = _md5(out)

    bad_raw = tmp_path / "bad.parquet"
    corrupt(raw).to_parquet(bad_raw, index=False)
    with pytest.raises(ValidationFailed) as exc:
        validate(spec, bad_raw, out, reports)
    msg = str(exc.value)
    assert f"column {column!r} failed rule {rule!r}: {count} offending" in msg, msg
    assert _md5(out) == before, "the last good validated data must stay untouched"
    report = json.loads((reports / "readiness.json").read_text())
    assert report["passed"] is False
    assert any(f["column"] == column and f["rule"] == rule for f in report["findings"])
    assert "FAILED" in (reports / "readiness.html").read_text()


def test_unreadable_file_is_a_clear_error(spec: UseCaseSpec, tmp_path: Path) -> None:
    bad = tmp_path / "raw.parquet"
    bad.write_bytes(b"")
    with pytest.raises(ValidationFailed, match="readable"):
        validate(spec, bad, tmp_path / "v.parquet", tmp_path)
    assert not (tmp_path / "v.parquet").exists()
