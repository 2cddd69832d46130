"""feature_repo.feastload: Feast loads without typeguard's per-process instrumentation,
only Feast is affected, and SHIPWAY_FEAST_TYPECHECKS=1 keeps Feast's checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import feature_repo, typeguard, typeguard._decorators as d, feast.entity as e
names = e.Entity.__init__.__code__.co_names
print("instrumented" if "check_argument_types_internal" in names else "plain")
print("restored" if typeguard.typechecked is d.typechecked else "LEFT PATCHED")
"""


def _probe(**env: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_feast_loads_without_instrumentation_and_typeguard_is_restored() -> None:
    assert _probe(SHIPWAY_FEAST_TYPECHECKS="0") == ["plain", "restored"]


def test_opt_out_keeps_feasts_type_checks() -> None:
    assert _probe(SHIPWAY_FEAST_TYPECHECKS="1") == ["instrumented", "restored"]


def test_objects_still_build_and_type_check_on_the_spec() -> None:
    """The definitions Shipway builds are what Feast expects (apply runs in integration)."""
    from feast import FeatureService

    from feature_repo.objects import build_objects
    from shipway.core.usecases import load_usecase

    objs = build_objects(load_usecase("hotel_rates"), Path("data"))
    assert any(isinstance(o, FeatureService) for o in objs)


MODE = """
import os, feature_repo, prometheus_client.values as v
print(os.environ.get("PROMETHEUS_MULTIPROC_DIR", "unset"), v.ValueClass.__name__)
"""


def test_feast_does_not_switch_prometheus_into_multiprocess_mode(tmp_path: Path) -> None:
    """feast.metrics sets PROMETHEUS_MULTIPROC_DIR at import; the monitor's and trigger's
    in-process counters must stay in-process (a bentoml worker's own setting stays)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_MULTIPROC")}
    run = [sys.executable, "-c", MODE]
    out = subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["unset", "MutexValue"]
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    out = subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == str(tmp_path) and "Mmap" in out.split()[1]
