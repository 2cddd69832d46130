"""Training benchmark: kfp.local versus the same steps in-process, and raw data to a
registered champion. Run: ``python -m benchmarks.training`` (``make bench-training``).

Both variants are what a user runs: ``shipway train`` (every component in its own
kfp.local subprocess) and ``shipway train --in-process`` (the same step functions, one
interpreter), each as a fresh process on a fresh state directory (its own MLflow
registry, Feast store and KFP root), so both pay interpreter start-up and imports the
way a user does. The rounds alternate the order, so drift in the machine's load hits
both; the figure is the median of the rounds, and the machine's load average is kept
with the results. ``SHIPWAY_BENCH_ROUNDS`` sets the rounds (default 3).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.common import Comparison, save, table

ROOT = Path(__file__).resolve().parent.parent
USECASE = "hotel_rates"
TASK_LINE = re.compile(
    r"(\d\d:\d\d:\d\d\.\d+) - INFO - (Executing task|Task) '([\w-]+)'( finished)?"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _env(state: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPWAY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if state is not None:
        env["SHIPWAY_STATE_DIR"] = str(state)
    return env


def task_seconds(log: str) -> dict[str, float]:
    """Per-component wall time from kfp.local's own log lines (start and finish)."""
    started: dict[str, datetime] = {}
    out: dict[str, float] = {}
    for m in TASK_LINE.finditer(ANSI.sub("", log)):
        at = datetime.strptime(m.group(1), "%H:%M:%S.%f")
        if m.group(2) == "Executing task":
            started[m.group(3)] = at
        elif m.group(3) in started:
            out[m.group(3)] = round((at - started[m.group(3)]).total_seconds(), 2)
    return out


def fresh_state() -> tuple[Path, float]:
    """A new state dir whose Feast online store is applied and materialized (the
    production-readiness smoke serves from it), and the seconds that took."""
    state = Path(tempfile.mkdtemp(prefix="bench-train-"))
    t0 = time.perf_counter()
    for cmd in (["features", "apply"], ["features", "materialize", "-u", USECASE]):
        subprocess.run(
            ["shipway", *cmd], cwd=ROOT, env=_env(state), check=True, capture_output=True
        )
    return state, time.perf_counter() - t0


def train(in_process: bool, state: Path | None = None) -> tuple[float, dict[str, float]]:
    """Wall time of one fresh ``shipway train`` on a fresh state dir; kfp.local task times."""
    state = state or fresh_state()[0]
    cmd = ["shipway", "train", "-u", USECASE, "--output", str(state / "result.json")]
    cmd += ["--in-process"] if in_process else []
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(state), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    result = json.loads((state / "result.json").read_text())
    if not result.get("promoted"):  # the figure is "to a champion": every run must get there
        raise RuntimeError(f"{' '.join(cmd)} did not promote: {result.get('promotion_blocked')}")
    return wall, task_seconds(proc.stdout + proc.stderr)


def main() -> None:
    rounds = int(os.environ.get("SHIPWAY_BENCH_ROUNDS", "3"))
    load_before = os.getloadavg()
    # raw data -> champion: rerun every data stage and push, then the pipeline (kfp.local)
    t0 = time.perf_counter()
    for args in (["dvc", "repro", "-f", "features"], ["dvc", "push", "-q"]):
        subprocess.run(args, cwd=ROOT, env=_env(), check=True, capture_output=True)
    t_data = time.perf_counter() - t0
    state, t_features = fresh_state()
    t_first, _ = train(in_process=False, state=state)
    raw_to_champion = t_data + t_features + t_first

    runs: dict[str, list[float]] = {"in_process": [], "kfp_local": []}
    tasks: list[dict[str, float]] = []
    for i in range(rounds):
        order = (True, False) if i % 2 == 0 else (False, True)
        for in_process in order:
            wall, per_task = train(in_process)
            runs["in_process" if in_process else "kfp_local"].append(round(wall, 2))
            if per_task:
                tasks.append(per_task)
    kfp, inproc = statistics.median(runs["kfp_local"]), statistics.median(runs["in_process"])
    comps = [
        Comparison("pipeline wall time, kfp.local vs in-process", kfp, "s", inproc, "ratio <= 1.5"),
        Comparison("raw data -> registered champion", raw_to_champion, "s", None, "value <= 600"),
        Comparison("  of which data stages (dvc repro -f + push)", t_data, "s"),
        Comparison("  of which feast apply + materialize", t_features, "s"),
    ]
    comps[0].met = (comps[0].ratio or 99) <= 1.5
    comps[1].met = raw_to_champion <= 600
    extra: dict[str, Any] = {
        "runs": runs,
        "rounds": rounds,
        "kfp_task_seconds": tasks,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    save("training", comps, extra)
    print(table("training", comps))


if __name__ == "__main__":
    main()
