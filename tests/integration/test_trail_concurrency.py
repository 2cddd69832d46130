"""Concurrent appends to one cluster audit trail lose nothing (the trail lock).

On a cluster the trail is an MLflow run's artifacts, which cannot be created
exclusively: two appenders that read the same last entry would both write entry N and
MLflow would keep whichever came last, dropping an audit record and breaking the chain.
Real processes (spawned, not threads) append distinct records at the same moment to the
same trail, with MLflow tracking on a real PostgreSQL server and environment=cluster, as
the chart configures it. Afterwards every record is in the trail exactly once, entries
are numbered 1..N, each writer's records are in its own order, and ``verify`` finds
nothing. Without the lock (``locked=False``) the same race loses records: the negative
control below asserts it, so the first test cannot pass because the race never happened.
"""

from __future__ import annotations

import multiprocessing as mp
from collections import Counter
from typing import Any

import pytest

from shipway.core import registry
from shipway.core.evidence import Criterion, GateRecord
from shipway.core.settings import Settings
from shipway.governance.locks import model_lock
from shipway.governance.trail import AUDIT_RUN_TAG, AuditTrail, trail_for
from tests.conftest import ROOT
from tests.pgdb import create_database, sa_url

pytestmark = pytest.mark.integration
NAME = "hotel_rates"
WORKERS, EACH = 3, 5
UNLOCKED_ROUNDS = 5
"""Unlocked races tried at most before the negative control gives up: a race is timing,
so one round may happen to interleave harmlessly; the first loss ends it."""


def _record(worker: int, i: int) -> GateRecord:
    return GateRecord(
        f"gate_{worker}",
        {"usecase": NAME, "model": NAME, "version": str(worker)},
        [Criterion("quality_mae", True, float(i), 30.0, "<=")],
        facts={"worker": worker, "i": i},
    )


def _append(kwargs: dict[str, Any], run_id: str, worker: int, go: Any, locked: bool) -> None:
    s = Settings(**kwargs)
    trail = trail_for(s, NAME, run_id=run_id, client=registry.connect(s.tracking_uri))
    if not locked:  # the store alone, as before the trail lock: only to show the race
        trail = AuditTrail(trail.store)
    go.wait()
    for i in range(EACH):
        trail.append(_record(worker, i))


def race(kwargs: dict[str, Any], run_id: str, locked: bool = True) -> list[int | None]:
    """WORKERS processes append EACH records apiece to the trail of ``run_id`` at once;
    returns their exit codes."""
    ctx = mp.get_context("spawn")
    go = ctx.Barrier(WORKERS)
    procs = [
        ctx.Process(target=_append, args=(kwargs, run_id, w, go, locked)) for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    return [p.exitcode for p in procs]


def lost_or_broken(trail: AuditTrail) -> list[str]:
    """Everything wrong with the trail after a race (empty: nothing lost, nothing broken)."""
    entries = trail.entries()
    problems = list(trail.verify())
    if (seqs := [e.seq for e in entries]) != list(range(1, WORKERS * EACH + 1)):
        problems.append(f"sequence numbers {seqs}")
    found = Counter((r["facts"]["worker"], r["facts"]["i"]) for r in trail.records())
    for w in range(WORKERS):
        if (mine := [i for (fw, i) in found if fw == w]) != list(range(EACH)):
            problems.append(f"worker {w}: records {mine} in the trail, not 0..{EACH - 1}")
    problems += [f"record {k} appended {n} times" for k, n in found.items() if n != 1]
    return problems


@pytest.fixture(scope="module")
def cluster(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], str]:
    """Cluster settings (as keyword arguments, for the spawned writers) on MLflow tracking
    in PostgreSQL, and a fresh run whose trail they race on."""
    create_database(postgres_url, "trail_race")
    tmp = tmp_path_factory.mktemp("trail-race")
    kwargs: dict[str, Any] = {
        "root": ROOT,
        "state_dir": tmp / "state",
        "data_dir": ROOT / "data",
        "environment": "cluster",
        "mlflow_tracking_uri": sa_url(postgres_url, "trail_race"),
        "mlflow_artifact_root": (tmp / "artifacts").as_uri(),
    }
    client = registry.connect(kwargs["mlflow_tracking_uri"])
    exp = registry.experiment(client, NAME, kwargs["mlflow_artifact_root"])
    return kwargs, client.create_run(exp).info.run_id


def test_concurrent_appends_to_one_cluster_trail_lose_nothing(
    cluster: tuple[dict[str, Any], str],
) -> None:
    kwargs, run_id = cluster
    exits = race(kwargs, run_id)
    s = Settings(**kwargs)
    trail = trail_for(s, NAME, run_id=run_id, client=registry.connect(s.tracking_uri))
    assert (lost_or_broken(trail), exits) == ([], [0] * WORKERS)


def test_without_the_lock_the_same_race_loses_records(
    cluster: tuple[dict[str, Any], str],
) -> None:
    """The negative control: the race above on the bare store (``locked=False``) loses or
    breaks records, so that test would catch a trail lock that stopped serializing."""
    kwargs, run_id = cluster
    s = Settings(**kwargs)
    client = registry.connect(s.tracking_uri)
    experiment = client.get_run(run_id).info.experiment_id
    problems: list[str] = []
    for _ in range(UNLOCKED_ROUNDS):
        run = client.create_run(experiment).info.run_id
        race(kwargs, run, locked=False)  # a writer may also give up after 5 collisions
        problems = lost_or_broken(trail_for(s, NAME, run_id=run, client=client))
        if problems:
            break
    assert problems, f"{UNLOCKED_ROUNDS} unlocked races lost nothing: the race is not caught"


def test_appending_while_holding_the_champion_lock_does_not_wait_for_it(
    cluster: tuple[dict[str, Any], str],
) -> None:
    """Promotion and rollback append inside ``model_lock``: the trail lock is another key
    on another session, so the append neither deadlocks nor waits."""
    kwargs, run_id = cluster
    s = Settings(**kwargs)
    client = registry.connect(s.tracking_uri)
    run = client.create_run(client.get_run(run_id).info.experiment_id).info.run_id
    trail = trail_for(s, NAME, run_id=run, client=client)
    with model_lock(s, NAME, "champion", timeout=10) as backend:
        assert backend == "postgresql-advisory"
        trail.append(_record(0, 0))
    assert [e.seq for e in trail.entries()] == [1] and trail.verify() == []


def _first_append(kwargs: dict[str, Any], usecase: str, worker: int, go: Any) -> None:
    s = Settings(**kwargs)
    client = registry.connect(s.tracking_uri)
    go.wait()
    trail_for(s, usecase, client=client).append(_record(worker, 0))


def test_first_appenders_of_a_use_case_share_one_audit_run(
    cluster: tuple[dict[str, Any], str],
) -> None:
    """Records about no version go to the use case's audit run, created on first use:
    processes racing to create it end up in the same run, and no record is hidden."""
    kwargs, _ = cluster
    usecase = "fresh_usecase"
    ctx = mp.get_context("spawn")
    go = ctx.Barrier(WORKERS)
    procs = [
        ctx.Process(target=_first_append, args=(kwargs, usecase, w, go)) for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * WORKERS
    s = Settings(**kwargs)
    client = registry.connect(s.tracking_uri)
    exp = registry.experiment(client, usecase, s.artifact_root)
    runs = client.search_runs([exp], filter_string=f"tags.`{AUDIT_RUN_TAG}` = 'true'")
    assert len(runs) == 1
    trail = trail_for(s, usecase, client=client)
    assert sorted(r["facts"]["worker"] for r in trail.records()) == list(range(WORKERS))
