"""Goals of the benchmarks, written as text and evaluated in one place.

A goal reads ``"ratio <= 2"`` (against the same-run baseline) or ``"value == 0"`` (on the
measured figure). Keeping them as text means the results file, the README table and the
check that makes ``make bench`` fail all show the same words.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
}


def met(goal: str, value: float, ratio: float | None) -> bool | None:
    """Whether ``goal`` holds (None when there is no goal). A NaN figure or a ratio
    without a baseline never meets a goal: a missing measurement must not pass."""
    if not goal.strip():
        return None
    subject, op, bound = goal.split()
    if op not in _OPS or subject not in ("ratio", "value"):
        raise ValueError(f"goal {goal!r}: expected 'ratio|value <op> number'")
    x = value if subject == "value" else ratio
    if x is None or x != x:
        return False
    return _OPS[op](float(x), float(bound))


@dataclass(frozen=True)
class Reference:
    """A figure recorded earlier that a later goal is held against."""

    mb: float
    when: str


RSS_REFERENCE = Reference(mb=470.0, when="main 3c8ef8e, 2026-12-05")
"""RSS per BentoML worker of main before issue #15's serving work (README, Benchmarks)."""
RSS_GOAL_SHARE = 0.6
"""Issue #15: a worker's RSS must come down to 60% of the reference or less."""
