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
)
"""Feast modules with ``@typechecked`` classes that Shipway loads (the rest of the list
in Feast is for offline stores Shipway does not use; they would be instrumented as usual)."""


def _passthrough(target: Any = None, **_: Any) -> Any:
    """``typechecked`` as it behaves under ``python -O``: return the target unchanged."""
    if target is None:
        return lambda t: t
    return target


def load(modules: tuple[str, ...] = MODULES) -> bool:
    """Import ``modules`` with typeguard's decorator bypassed; False if it was not (Feast
    already imported, typeguard absent, or SHIPWAY_FEAST_TYPECHECKS=1)."""
    if "feast" in sys.modules or os.environ.get("SHIPWAY_FEAST_TYPECHECKS") == "1":
        return False
    try:
        import typeguard
    except ImportError:
        return False
    real: Callable[..., Any] = typeguard.typechecked
    typeguard.typechecked = _passthrough
    try:
        for name in modules:
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
    finally:
        typeguard.typechecked = real
    return True
