"""Import Feast without typeguard re-instrumenting it in every process.

Feast decorates its public classes (DataSource, FeatureView, Entity, Field, the SQLite
online store...) with typeguard's ``@typechecked``. That decorator does its work at
import time: it reads each class's source, rewrites the syntax tree and recompiles it,
in every new interpreter (typeguard issue #468; featurebyte patches it for the same
reason). On these 2-core machines that is most of Feast's 5-6 s import, paid by every
KFP component, every ``bentoml serve`` worker and every CLI call that touches the store.

The checks it buys guard Feast's own constructors against arguments of the wrong type.
Shipway builds every Feast object from the pydantic-validated spec
(``feature_repo.objects``) and ``feast apply`` runs in the tests, so those checks add
nothing at run time here. The decorator is bypassed only while the Feast modules below
are imported, and restored right after, so no other library is affected. Set
``SHIPWAY_FEAST_TYPECHECKS=1`` to keep Feast's checks (for example while writing new
feature definitions); the ``feast`` CLI imports Feast itself and always keeps them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

MODULES = (
    "feast",
    "feast.on_demand_feature_view",
    "feast.labeling.label_view",
    "feast.infra.online_stores.sqlite",
    "feast.infra.data_sources.mlflow.mlflow_dataset_source",
)
"""Feast modules with ``@typechecked`` classes that Shipway loads (the rest of the list
in Feast is for offline stores Shipway does not use; they would be instrumented as usual).

The MLflow dataset source is one Shipway never defines, but the DuckDB offline store
imports it on every historical read to ask whether a source is one: instrumented, that
import costs the training-set step 0.3 s; loaded here it costs 1 ms."""


def _passthrough(target: Any = None, **_: Any) -> Any:
    """``typechecked`` as it behaves under ``python -O``: return the target unchanged."""
    if target is None:
        return lambda t: t
    return target


MULTIPROC_VARS = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")
"""Set by ``feast.metrics`` at import (for its Gunicorn feature server) when absent. Left
set, they switch prometheus_client into multiprocess mode for the whole process: the
monitor's and the trigger's in-process counters then live in files shared by every
registry of the process, and stale series cannot be removed. Feast's own server is not
used here, so the variables are put back as they were."""


def load(modules: tuple[str, ...] = MODULES) -> bool:
    """Import ``modules`` with typeguard's decorator bypassed; False if it was not (Feast
    already imported, typeguard absent, or SHIPWAY_FEAST_TYPECHECKS=1). Either way the
    Prometheus multiprocess variables end as they were before Feast was imported."""
    if "feast" in sys.modules:
        return False
    saved = {k: os.environ.get(k) for k in MULTIPROC_VARS}
    import prometheus_client.values  # noqa: F401  (its mode follows the environment we had)

    try:
        return _import(modules)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _import(modules: tuple[str, ...]) -> bool:
    """Import the modules that exist, with typeguard's decorator bypassed unless opted out
    or typeguard is absent; whether it was bypassed."""
    if importlib.util.find_spec(modules[0].split(".")[0]) is None:
        return False  # Feast is not installed: nothing to load
    bypass = (
        os.environ.get("SHIPWAY_FEAST_TYPECHECKS") != "1"
        and importlib.util.find_spec("typeguard") is not None
    )
    real: Callable[..., Any] | None = None
    if bypass:
        import typeguard

        real, typeguard.typechecked = typeguard.typechecked, _passthrough
    try:
        for name in modules:
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
    finally:
        if real is not None:
            typeguard.typechecked = real
    return bypass
