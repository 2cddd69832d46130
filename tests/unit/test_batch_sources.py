"""Batch input listing and sharding (shipway.scoring.sources) and the schedule's cron
(pipelines.batchrun): pure, on small local files and a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest

from pipelines.batchrun import BatchJob, kfp_cron, next_runs, run_on_schedule
from pipelines.steps.batch import staging_path
from shipway.core.settings import Settings
from shipway.scoring import sources


def rows_of(groups: list[list[sources.Piece]], chunk: int = 7) -> list[tuple[str, int]]:
    """(file, row number) of every row the shards read, in shard order."""
    fs = pafs.LocalFileSystem()
    out = []
    for group in groups:
        for piece in group:
            for first, batch in sources.read_piece(fs, piece, chunk):
                assert batch.column("i").to_pylist() == list(range(first, first + batch.num_rows))
                out += [(piece.name, first + k) for k in range(batch.num_rows)]
    return out


@pytest.mark.parametrize("shards", [1, 2, 3, 5, 64])
def test_shards_cover_every_row_exactly_once(tmp_path: Path, shards: int) -> None:
    (tmp_path / "part").mkdir()
    pd.DataFrame({"i": range(23)}).to_parquet(tmp_path / "a.parquet", row_group_size=5)
    pd.DataFrame({"i": range(9)}).to_parquet(tmp_path / "part" / "b.parquet")
    pd.DataFrame({"i": range(4)}).to_csv(tmp_path / "c.csv", index=False)
    (tmp_path / "_manifest.json").write_text("{}")  # metadata and staging are not input
    (tmp_path / "_out.staging-r1").mkdir()
    pd.DataFrame({"i": range(3)}).to_parquet(tmp_path / "_out.staging-r1" / "x.parquet")
    (tmp_path / "notes.md").write_text("not data")
    pieces = sources.list_input(str(tmp_path))
    assert [p.name for p in pieces] == ["a.parquet", "c.csv", "part/b.parquet"]
    groups = sources.split(pieces, shards)
    assert 1 <= len(groups) <= shards and all(groups)
    got = rows_of(groups)
    want = [("a.parquet", i) for i in range(23)] + [("part/b.parquet", i) for i in range(9)]
    want += [("c.csv", i) for i in range(4)]
    assert sorted(got) == sorted(want) and len(got) == len(set(got))
    if shards == 2:  # about equal rows: the 32 Parquet rows split 16/16, the CSV beside
        parquet = [sum(p.rows for p in g if p.fmt == "parquet") for g in groups]
        assert parquet == [16, 16]


def test_empty_input_is_one_empty_shard(tmp_path: Path) -> None:
    pd.DataFrame({"i": pd.Series([], dtype="int64")}).to_parquet(tmp_path / "e.parquet")
    groups = sources.split(sources.list_input(str(tmp_path)), 4)
    assert len(groups) == 1 and rows_of(groups) == []


def test_bad_input_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        sources.list_input(str(tmp_path / "nowhere"))
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match=r"x\.json.*\.parquet or \.csv"):
        sources.list_input(str(tmp_path / "x.json"))
    with pytest.raises(ValueError, match=r"no \.parquet or \.csv"):
        sources.list_input(str(tmp_path))
    with pytest.raises(ValueError, match="shards must be at least 1"):
        sources.split([], 0)


def test_staging_is_beside_the_output_and_named_by_run() -> None:
    assert staging_path("/data/scored", "run/7 x") == "/data/_scored.staging-run_7_x"


def test_cron_is_normalised_for_kfp_and_a_bad_one_is_named() -> None:
    assert kfp_cron("30 2 * * *") == "0 30 2 * * *"
    assert kfp_cron("15 30 2 * * 1") == "15 30 2 * * 1"
    with pytest.raises(ValueError, match="'every day'"):
        kfp_cron("every day")
    with pytest.raises(ValueError, match="'61 \\* \\* \\* \\*'"):
        kfp_cron("61 * * * *")
    start = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
    assert next_runs("30 2 * * *", start, 2) == [
        datetime(2026, 12, 5, 2, 30, tzinfo=UTC),
        datetime(2026, 12, 6, 2, 30, tzinfo=UTC),
    ]


def test_the_local_schedule_runs_at_due_times_and_survives_a_failed_run() -> None:
    now = [datetime(2026, 12, 5, 0, 0, 30, tzinfo=UTC)]
    started: list[datetime] = []

    def sleep(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)

    def job() -> None:
        started.append(now[0])
        now[0] += timedelta(minutes=90 if len(started) == 2 else 1)  # run 2 overruns
        if len(started) == 1:
            raise RuntimeError("input not there yet")

    failed = run_on_schedule("0 * * * *", job, runs=3, clock=lambda: now[0], sleep=sleep)
    assert failed == 1
    # hourly; the 03:00 due time passed while run 2 was still going: skipped, not queued
    assert [t.strftime("%H:%M") for t in started] == ["01:00", "02:00", "04:00"]


def test_cluster_arguments_need_a_tracking_server(tmp_path: Path) -> None:
    local = Settings(root=tmp_path, state_dir=tmp_path / "s", mlflow_tracking_uri=None)
    with pytest.raises(ValueError, match="SHIPWAY_MLFLOW_TRACKING_URI"):
        BatchJob("hotel_rates", "s3://in", "s3://out").arguments(local, cluster=True)
    args = BatchJob("hotel_rates", "in", "out", shards=3).arguments(local, cluster=False)
    assert args["shards"] == 3 and args["tracking_uri"] == local.tracking_uri
    with pytest.raises(ValueError, match="parallelism must be at least 1, got 0"):
        BatchJob("hotel_rates", "in", "out", parallelism=0)
