"""The benchmark harness's own logic: reading what wrk wrote and judging the goals.

No load is generated here (speed is measured in ``benchmarks/``, never in tests); these
check that a figure is read and judged right, so a benchmark cannot pass by misreading.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks import procs
from benchmarks.common import Comparison
from benchmarks.goals import met
from benchmarks.load import MIN_ANSWERED, machine_share, verdict
from benchmarks.wrk import START_S, TAIL_S, Paced, parse_closed, parse_paced

CLOSED = {
    "duration_us": 10_000_000,
    "requests": 5000,
    "bytes": 1,
    "errors": {"connect": 0, "read": 1, "write": 0, "status": 20, "timeout": 2},
    "latency_us": {
        "p50": 1500,
        "p90": 2500,
        "p99": 9000,
        "p99.9": 12000,
        "max": 30000,
        "mean": 1700.5,
    },
}


def test_closed_summary_counts_only_successes_as_answered() -> None:
    res = parse_closed(json.dumps(CLOSED))
    assert res.answered == 4980
    assert res.rps == pytest.approx(498.0)
    assert res.latency_ms["p50"] == 1.5 and res.latency_ms["p99"] == 9.0
    assert res.error_count == 23


def test_closed_summary_without_answers_is_an_error() -> None:
    with pytest.raises(ValueError):
        parse_closed(json.dumps({**CLOSED, "requests": 0}))


def _paced_text(seconds: float) -> str:
    end_us = int((seconds - START_S - TAIL_S) * 1e6)
    lines = [
        "# duration_us=20000000 requests=9 connect=0 read=0 write=0 status=1 timeout=1",
        "# thread=0 sent=5",
        "1 1000 200 1000000",
        "1 3000 200 2000000",
        "2 50000 200 3000000",
        "3 2000 404 4000000",
        f"1 999999 200 {end_us + 1}",  # due after the measured span: not counted
        "# thread=1 sent=4",
        "1 2000 200 1500000",
        "1 4000 200 2500000",
    ]
    return "\n".join(lines) + "\n"


def test_paced_samples_are_windowed_and_errors_include_lost_requests() -> None:
    run = parse_paced(_paced_text(20.0), rate=10.0, seconds=20.0, warmup=1.0)
    assert run.sent == 9
    assert len(run.status) == 6  # the late-due sample is outside the span
    assert run.answered == 5
    assert run.errors == 2  # one 404 + one timeout
    assert run.by_kind == {"/predict": 4, "/predict_batch": 1, "/feedback": 1}
    assert run.seconds == pytest.approx(20.0 - START_S - TAIL_S - 1.0)
    assert run.percentiles_ms(1, (50,))["p50"] == pytest.approx(2.5)


def test_paced_needs_the_summary_line() -> None:
    with pytest.raises(ValueError):
        parse_paced("1 1000 200 5\n", rate=1, seconds=10, warmup=1)


def _run(answered: int, status_errors: int, p99_us: float, rate: float = 100.0) -> Paced:
    n = answered + status_errors
    status = np.array([200] * answered + [500] * status_errors)
    lat = np.full(n, 1000.0)
    lat[-1] = p99_us
    return Paced(rate, 10.0, {"connect": 0, "read": 0, "write": 0, "timeout": 0},
                 np.ones(n, dtype=np.int64), lat, status, n)  # fmt: skip


def test_load_verdict_needs_rate_errors_and_budget_all_met() -> None:
    assert verdict(_run(1000, 0, 1000.0), budget_ms=100).sustained
    short = verdict(_run(int(1000 * MIN_ANSWERED) - 1, 0, 1000.0), budget_ms=100)
    assert not short.sustained and not short.rate_ok
    assert not verdict(_run(1000, 1, 1000.0), budget_ms=100).errors_ok
    slow = _run(1000, 0, 1000.0)
    slow.latency_us[:] = 150_000.0
    assert not verdict(slow, budget_ms=100).p99_ok


@pytest.mark.parametrize(
    ("goal", "value", "ratio", "want"),
    [
        ("ratio <= 2", 3.0, 1.9, True),
        ("ratio <= 2", 3.0, 2.1, False),
        ("ratio >= 0.5", 1.0, 0.49, False),
        ("value == 0", 0.0, None, True),
        ("value == 0", 1.0, None, False),
        ("ratio <= 3", 1.0, None, False),  # no baseline: never met
        ("ratio <= 3", 1.0, math.nan, False),  # a NaN figure: never met
        ("", 1.0, 1.0, None),
    ],
)
def test_goals(goal: str, value: float, ratio: float | None, want: bool | None) -> None:
    assert met(goal, value, ratio) is want


def test_goal_text_must_parse() -> None:
    with pytest.raises(ValueError):
        met("ratio ~ 2", 1.0, 1.0)


def test_comparison_judges_its_own_goal() -> None:
    assert Comparison("p50", 0.9, "ms", 0.3, "ratio <= 2").met is False
    assert Comparison("p50", 0.5, "ms", 0.3, "ratio <= 2").met is True
    assert Comparison("context", 0.5, "ms", 0.3).met is None


def test_machine_share_is_what_neither_the_service_nor_wrk_used() -> None:
    before = {"busy": 100.0, "steal": 5.0, "iowait": 1.0}
    after = {"busy": 100.0 + 10 * 1.8, "steal": 5.0 + 10 * 0.1, "iowait": 1.5}
    share = machine_share(before, after, 10.0, {"server_cores": 1.3, "wrk_cores": 0.2})
    assert share["other_cores"] == pytest.approx(0.3)
    assert share["steal_cores"] == pytest.approx(0.1)
    assert share["iowait_cores"] == pytest.approx(0.05)
    # per-process and machine counters tick apart: a busy total just under theirs is 0, not < 0
    assert (
        machine_share(before, before, 10.0, {"server_cores": 0.1, "wrk_cores": 0.0})["other_cores"]
        == 0
    )


def test_machine_cpu_seconds_reads_this_machine() -> None:
    first = procs.machine_cpu_seconds()
    sum(i * i for i in range(200_000))  # some CPU, so the busy counter moves
    second = procs.machine_cpu_seconds()
    assert set(first) == {"busy", "steal", "iowait"}
    assert second["busy"] >= first["busy"] > 0 and second["steal"] >= first["steal"] >= 0
