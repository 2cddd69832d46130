"""Shared shape of benchmark results: comparisons against a same-run baseline."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.goals import met as goal_met
from benchmarks.procs import load_average

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Comparison:
    """One figure: value vs baseline, with the issue's goal on the ratio (or the value)."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    goal: str = ""  # e.g. "ratio <= 1.5", "value <= 600"
    met: bool | None = None

    def __post_init__(self) -> None:
        """A goal is evaluated from its own text unless the caller decided it."""
        if self.met is None:
            self.met = goal_met(self.goal, self.value, self.ratio)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / float(self.baseline)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "at": datetime.now(UTC).isoformat(),
        "load_average": load_average(),
    }


def save(bench: str, comparisons: list[Comparison], extra: dict[str, Any] | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{bench}.json"
    rows = [{**asdict(c), "ratio": c.ratio} for c in comparisons]
    path.write_text(
        json.dumps(
            {"benchmark": bench, "machine": machine(), "comparisons": rows, **(extra or {})},
            indent=2,
        )
        + "\n"
    )
    return path


def table(bench: str, comparisons: list[Comparison]) -> str:
    lines = [f"{bench}:", f"  {'figure':44} {'value':>12} {'baseline':>12} {'ratio':>7}  goal"]
    for c in comparisons:
        base = f"{c.baseline:12.3f}" if c.baseline is not None else f"{'-':>12}"
        ratio = f"{c.ratio:7.2f}" if c.ratio is not None else f"{'-':>7}"
        met = "" if c.met is None else (" OK" if c.met else " MISSED")
        lines.append(f"  {c.name:44} {c.value:12.3f} {base} {ratio}  {c.goal}{met}")
    return "\n".join(lines)


def _figure(v: float, unit: str) -> str:
    """Four significant digits, or whole numbers with separators from 1,000 up."""
    text = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return f"{text} {unit}".strip()


def markdown(bench: str, comparisons: list[Comparison], notes: str = "") -> Path:
    """``benchmarks/results/<bench>.md``: the comparisons as a table, then ``notes``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# {bench} benchmark",
        "",
        "| figure | measured | baseline (same run) | ratio | goal | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in comparisons:
        base = "-" if c.baseline is None else _figure(c.baseline, c.unit)
        ratio = "-" if c.ratio is None else f"{c.ratio:.3g}"
        mark = "" if c.met is None else ("yes" if c.met else "**no**")
        value = _figure(c.value, c.unit)
        lines.append(f"| {c.name} | {value} | {base} | {ratio} | {c.goal} | {mark} |")
    path = RESULTS / f"{bench}.md"
    path.write_text("\n".join(lines) + "\n\n" + notes.strip() + "\n")
    return path


def post_ready(client: Any, path: str, body: Any, timeout: float = 120.0) -> Any:
    """POST ``body``, retrying while the service answers 503: ``/readyz`` reports the
    worker that answered it, and with two workers the other may still be loading."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        resp = client.post(path, json=body)
        if resp.status_code != 503 or time.monotonic() > deadline:
            resp.raise_for_status()
            return resp
        time.sleep(0.5)
