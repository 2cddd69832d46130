"""``shipway status`` never cuts a value: the table where it fits (a wide terminal, a pipe
or a file), one block per use case on a narrow terminal."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from shipway.cli.portfolio import print_status
from shipway.governance import portfolio as pf


@pytest.fixture
def statuses() -> list[pf.UseCaseStatus]:
    a = pf.UseCaseStatus(
        name="credit_risk_with_a_long_name",
        risk_level="high",
        champion=None,
        latest="12",
        impact=5,
        feasibility=4,
        gates=[pf.GateState(g, "passed") for g in pf.GATES[:3]]
        + [pf.GateState(g, "missing") for g in pf.GATES[3:]],
        kpi=pf.Kpi("Bad rate", "share", 0.28, 0.15, "lower_is_better", "fomr", None, ""),
    )
    broken = pf.UseCaseStatus(name="churn", error="invalid use-case spec: target.column missing")
    return [a, broken]


VALUES = (
    "credit_risk_with_a_long_name",
    "candidate",
    "high",
    "none (latest v12)",
    "A✓ D✓ M✓ P– R–",
    "no run",
    "n/a / 0.15",
    "spec not committed",
    "5×4",
    "invalid use-case spec: target.column missing",
)


def _render(statuses: list[pf.UseCaseStatus], **console: object) -> str:
    """The output without the legend (whose "… pending" is no cut value)."""
    buf = io.StringIO()
    print_status(statuses, Console(file=buf, **console))  # type: ignore[arg-type]
    body, _, legend = buf.getvalue().partition("gates: A approval")
    assert "no record" in legend  # the legend still explains the letters
    return body


def test_a_narrow_terminal_gets_blocks_with_every_value_whole(
    statuses: list[pf.UseCaseStatus],
) -> None:
    out = _render(statuses, width=80, force_terminal=True, color_system=None)
    assert "…" not in out and "┃" not in out  # blocks, not a squeezed table
    for value in VALUES:
        assert value in out, value
    assert all(len(line) <= 80 for line in out.splitlines())
    lines = out.splitlines()
    head = lines.index("credit_risk_with_a_long_name · candidate · risk high · I×F 5×4")
    assert lines[head + 1].split() == ["champion", "none", "(latest", "v12)"]


def test_a_wide_terminal_gets_the_table(statuses: list[pf.UseCaseStatus]) -> None:
    out = _render(statuses, width=200, force_terminal=True, color_system=None)
    assert "┃ use case" in out and "…" not in out
    row = next(ln for ln in out.splitlines() if "credit_risk_with_a_long_name" in ln)
    for value in VALUES[:-1]:
        assert value in row, value  # one row per use case


def test_a_pipe_gets_the_table_as_wide_as_its_rows(statuses: list[pf.UseCaseStatus]) -> None:
    out = _render(statuses, width=80)  # not a terminal: rich would assume 80 columns
    assert "┃ use case" in out and "…" not in out
    row = next(ln for ln in out.splitlines() if "credit_risk_with_a_long_name" in ln)
    assert len(row) > 80
    for value in VALUES[:-1]:
        assert value in row, value
