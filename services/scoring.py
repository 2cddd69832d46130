"""The one scoring path, shared with the batch pipeline: it lives in
:mod:`shipway.scoring.features`; the service's modules keep importing it from here."""

from shipway.scoring.features import (
    RESOLVE_TTL_SECONDS,
    Features,
    decide,
    entity_rows,
    fetch,
    fill_missing,
    predict,
    read_online,
    stored_refs,
)

__all__ = [
    "RESOLVE_TTL_SECONDS",
    "Features",
    "decide",
    "entity_rows",
    "fetch",
    "fill_missing",
    "predict",
    "read_online",
    "stored_refs",
]
