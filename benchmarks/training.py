"""Training benchmark: kfp.local overhead vs the same steps in-process, and raw data to
champion on this machine. Run: ``python -m benchmarks.training`` (``make bench``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Comparison, save, table
from pipelines.runner import run_in_process, run_local
from shipway.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _tool_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPWAY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _fresh(tag: str) -> Settings:
    return Settings(root=ROOT, state_dir=Path(tempfile.mkdtemp(prefix=f"bench-{tag}-")))


def main() -> None:
    # raw data -> champion: rerun every data stage, push, then the pipeline (kfp.local)
    t0 = time.perf_counter()
    for args in (["dvc", "repro", "-f", "features"], ["dvc", "push", "-q"]):
        subprocess.run(args, cwd=ROOT, env=_tool_env(), check=True, capture_output=True)
    t_data = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = run_local(_fresh("raw"), "hotel_rates", "HEAD")
    t_kfp_first = time.perf_counter() - t1
    raw_to_champion = t_data + t_kfp_first
    assert res["promoted"], res

    # kfp.local vs in-process, same steps, each on a fresh registry, best of 2
    inproc, kfp = [], []
    for i in range(2):
        t = time.perf_counter()
        run_in_process(_fresh(f"in{i}"), "hotel_rates", "HEAD")
        inproc.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_local(_fresh(f"kfp{i}"), "hotel_rates", "HEAD")
        kfp.append(time.perf_counter() - t)
    comps = [
        Comparison(
            "pipeline wall time, kfp.local vs in-process",
            min(kfp),
            "s",
            min(inproc),
            "ratio <= 1.5",
        ),
        Comparison("raw data -> registered champion", raw_to_champion, "s", None, "value <= 600"),
        Comparison("  of which data stages (dvc repro -f + push)", t_data, "s"),
    ]
    comps[0].met = (comps[0].ratio or 99) <= 1.5
    comps[1].met = raw_to_champion <= 600
    save("training", comps, {"runs": {"in_process": inproc, "kfp_local": kfp}})
    print(table("training", comps))


if __name__ == "__main__":
    main()
