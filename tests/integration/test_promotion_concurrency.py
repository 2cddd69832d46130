"""Concurrent promotions and rollbacks leave the champion consistent (issue 9, point 3).

Real processes (spawned, not threads) promote different versions at the same moment,
round after round, against one real MLflow registry and audit trail. Afterwards the
trail's promotions and rollbacks, replayed in order, must each start from the champion
the one before left — every ``previous_champion`` and ``from_version`` is the true one —
and end on the version the ``champion`` alias points at, whose ``champion_at`` tag is
the newest; rollback then goes to the version that really was champion before.

The lock itself (``shipway.governance.locks``) is also tested on its own with real
processes, as a file lock and as a PostgreSQL advisory lock on a real server.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipway.core import registry
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.governance.locks import lock_backend, model_lock
from shipway.governance.trail import trail_for
from shipway.governance.versions import CHAMPION_AT, ROLLED_BACK_AT
from tests.conftest import ROOT
from tests.governancesteps import own_stores, register_steps, train_steps
from tests.pgdb import sa_url

pytestmark = pytest.mark.integration
NAME = "hotel_rates"
ROUNDS = 8


# ---- the lock on its own: one holder at a time, across processes ----
def _hold(kwargs: dict[str, Any], log: str, go: Any, times: int) -> None:
    s = Settings(**kwargs)
    go.wait()
    for _ in range(times):
        with model_lock(s, NAME, "champion"), open(log, "a") as fh:
            fh.write("enter\n")
            fh.flush()
            time.sleep(0.02)
            fh.write("exit\n")


def _exclusive(kwargs: dict[str, Any], log: Path, workers: int = 4, times: int = 15) -> None:
    ctx = mp.get_context("spawn")
    go = ctx.Barrier(workers)
    procs = [ctx.Process(target=_hold, args=(kwargs, str(log), go, times)) for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    lines = log.read_text().split()
    assert len(lines) == 2 * workers * times
    assert lines == ["enter", "exit"] * workers * times, "two holders overlapped"


def test_file_lock_admits_one_process_at_a_time(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {
        "root": ROOT,
        "state_dir": tmp_path / "state",
        "data_dir": ROOT / "data",
    }
    assert lock_backend(Settings(**kwargs)) == "file"
    _exclusive(kwargs, tmp_path / "log")


def test_postgres_advisory_lock_admits_one_process_at_a_time(
    postgres_url: str, tmp_path: Path
) -> None:
    uri = sa_url(postgres_url)
    kwargs: dict[str, Any] = {
        "root": ROOT,
        "state_dir": tmp_path / "state",
        "data_dir": ROOT / "data",
        "prediction_log_uri": uri,
        "environment": "cluster",
    }
    assert lock_backend(Settings(**kwargs)) == "postgresql-advisory"
    _exclusive(kwargs, tmp_path / "log")


def test_a_cluster_without_a_postgres_store_refuses_to_promote(tmp_path: Path) -> None:
    from shipway.governance.versions import GovernanceError

    s = Settings(root=ROOT, state_dir=tmp_path, data_dir=ROOT / "data", environment="cluster")
    with pytest.raises(GovernanceError, match="postgresql:// URI"), model_lock(s, NAME):
        pass


# ---- promotions racing on a real registry ----
@pytest.fixture(scope="module")
def registry_world(repo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Three versions that each passed every gate, production readiness included (v3 is
    champion): the real pipeline steps on the real data, one training, three
    registrations, each through the pipeline's readiness and promotion steps."""
    s = own_stores(repo_data, tmp_path_factory.mktemp("race"))
    w = s.state / "w"
    train_steps(s, w)
    for i in (1, 2, 3):
        _, res = register_steps(s, w, f"race-{i}", w / f"reg{i}")
        assert res["promoted"] and res["version"] == i, res
        assert res["previous_champion"] == (str(i - 1) if i > 1 else None)
    return s


def _spec_of(s: Settings) -> UseCaseSpec:
    data = yaml.safe_load((s.state / "w" / "data" / "usecase.yaml").read_text())
    return UseCaseSpec.model_validate(data)


def _worker(state: str, data: str, inbox: Any, start: Any, end: Any, out: Any) -> None:
    """Each round: take an action, wait for the other racer, act at the same moment."""
    from shipway.governance.promotion import promote
    from shipway.governance.rollback import rollback
    from shipway.governance.versions import GovernanceError

    s = Settings(root=ROOT, state_dir=Path(state), data_dir=Path(data))
    spec = _spec_of(s)
    client = registry.connect(s.tracking_uri)
    while (action := inbox.get()) is not None:
        start.wait()
        try:
            if action == "rollback":
                rec, _ = rollback(s, client, spec, "racer", "race")
            else:
                rec, _ = promote(s, client, spec, client.get_model_version(NAME, action), "racer")
            out.put((action, rec.passed))
        except GovernanceError as exc:
            out.put((action, f"refused: {str(exc)[:300]}"))
        end.wait()


def _replay(s: Settings) -> list[str]:
    """Walk the trail's champion moves in order; each must start where the last ended.
    Returns the champion after each move."""
    champion: str | None = None
    holders = []
    for rec in trail_for(s, NAME).records():
        if not rec["passed"] or rec["gate"] not in ("promotion", "rollback"):
            continue
        f = rec["facts"]
        if rec["gate"] == "promotion":
            assert f["previous_champion"] == champion, (rec["subject"], f, champion)
            assert f["lock"] == "file"
            champion = rec["subject"]["version"]
        else:
            assert f["from_version"] == champion, (f, champion)
            champion = f["to_version"]
        holders.append(str(champion))
    return holders


def _consistent(s: Settings, client: Any) -> str:
    """The alias, the replayed trail and the champion_at tags agree; returns the champion."""
    replayed = _replay(s)[-1]
    champ = registry.alias_version(client, NAME, registry.CHAMPION)
    assert champ is not None and str(champ.version) == replayed
    stamped = {
        str(mv.version): mv.tags[CHAMPION_AT]
        for mv in client.search_model_versions(f"name = '{NAME}'")
        if CHAMPION_AT in mv.tags
    }
    assert max(stamped, key=lambda v: stamped[v]) == replayed, stamped  # newest tenure
    return replayed


def test_concurrent_promotions_and_rollbacks_keep_the_champion_consistent(
    registry_world: Settings,
) -> None:
    import random

    from shipway.governance.rollback import rollback

    s = registry_world
    client = registry.connect(s.tracking_uri)
    assert _consistent(s, client) == "3"
    ctx = mp.get_context("spawn")
    start, end, out = ctx.Barrier(3), ctx.Barrier(3), ctx.Queue()
    inboxes = [ctx.Queue(), ctx.Queue()]
    procs = [
        ctx.Process(target=_worker, args=(str(s.state), str(s.data), box, start, end, out))
        for box in inboxes
    ]
    for p in procs:
        p.start()
    rng = random.Random(7)
    moves = len(_replay(s))
    for r in range(ROUNDS + 1):
        # the two versions that are not champion race; both must pass, one after the other
        champ = _consistent(s, client)
        racers = sorted({"1", "2", "3"} - {champ})
        rng.shuffle(racers)
        if r == ROUNDS:  # the last round races a rollback against a promotion
            racers[0] = "rollback"
        for box, action in zip(inboxes, racers, strict=True):
            box.put(action)
        start.wait(timeout=300)
        end.wait(timeout=300)
        pair = dict(out.get(timeout=60) for _ in racers)
        passed = sum(ok is True for ok in pair.values())
        # the one legitimate refusal: rollback went first, to the version being promoted
        assert passed == 2 or (
            r == ROUNDS
            and pair["rollback"] is True
            and "not_already_champion" in str(next(v for v in pair.values() if v is not True))
        ), pair
        _consistent(s, client)
        moves += passed
        assert len(_replay(s)) == moves  # every accepted move is in the trail, in order
    for box in inboxes:
        box.put(None)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    # rollback goes to the version that really was champion before: the latest earlier
    # holder in the replayed history that was not itself rolled back
    holders = _replay(s)
    now = holders[-1]
    rolled = {
        str(mv.version)
        for mv in client.search_model_versions(f"name = '{NAME}'")
        if ROLLED_BACK_AT in mv.tags
    }
    target = next(v for v in reversed(holders) if v != now and v not in rolled)
    rec, _ = rollback(s, client, _spec_of(s), "oncall", "after the race")
    assert rec.facts["from_version"] == now and rec.facts["to_version"] == target
    assert _consistent(s, client) == target
    assert trail_for(s, NAME).verify() == []
