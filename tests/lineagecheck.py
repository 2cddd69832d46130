"""Reading and validating OpenLineage events, for every test that checks them."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

from shipway.core.openlineage import events_path
from shipway.core.settings import Settings
from tests.conftest import ROOT

SCHEMAS = Path(__file__).resolve().parent / "data" / "openlineage"
"""The OpenLineage schemas, vendored: validation never downloads."""


@cache
def _by_id() -> dict[str, Any]:
    """Every vendored schema by its $id, read once per session (not once per facet)."""
    docs = [json.loads(p.read_text()) for p in SCHEMAS.glob("*.json")]
    return {d["$id"]: d for d in docs}


def _retrieve(uri: str) -> Any:
    """Schemas by their $id from the vendored copies: the test never downloads."""
    return _by_id()[uri.split("#", 1)[0]]


def validate_event(event: dict[str, Any]) -> None:
    """The event against OpenLineage.json, and each facet against the schema its own
    ``_schemaURL`` names (a facet whose schema is not vendored here fails the test)."""
    core = json.loads((SCHEMAS / "OpenLineage.json").read_text())
    jsonschema_rs.validator_for(core, retriever=_retrieve).validate(event)
    facets = [event["run"].get("facets", {}), event["job"].get("facets", {})]
    facets += [d.get("facets", {}) for d in event["inputs"] + event["outputs"]]
    for group in facets:
        for key, facet in group.items():
            schema = _retrieve(facet["_schemaURL"])
            jsonschema_rs.validator_for(schema, retriever=_retrieve).validate({key: facet})


def read_events(state: Path) -> list[dict[str, Any]]:
    """Every event the file transport wrote under the state directory ``state``."""
    path = events_path(Settings(root=ROOT, state_dir=state))
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def runs_of(events: list[dict[str, Any]], job: str) -> list[list[dict[str, Any]]]:
    """The events of job ``job``, grouped by run, in order of each run's first event."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if e["job"]["name"] == job:
            runs.setdefault(e["run"]["runId"], []).append(e)
    return list(runs.values())
