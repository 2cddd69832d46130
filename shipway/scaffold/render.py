"""The spec as YAML a reviewer reads: every guess listed in a header, request fields and
other small mappings on one line each, like the hand-written specs."""

from __future__ import annotations

from typing import Any

import yaml


def render(spec: dict[str, Any], notes: list[str], source: str) -> str:
    """The YAML file: a header with every guess to review, then the spec."""
    head = [
        f"# Use case {spec['name']}: proposed by `shipway init` from {source}.",
        "# Review every line, above all the ones below, then ask the approver to sign off",
        "# (objective.approval). Until then it trains, but no version becomes champion.",
        "#",
        *(f"# - {n}" for n in notes),
        "",
    ]
    doc = dict(spec)
    doc["request_fields"] = [_Flow(f) for f in spec["request_fields"]]
    doc["entities"] = [_Flow(e) for e in spec["entities"]]
    doc["entity_features"] = [
        {**ef, "aggregates": [_Flow(a) for a in ef["aggregates"]]} for ef in spec["entity_features"]
    ]
    if "derive" in spec:
        doc["derive"] = {
            k: [_Flow(r) for r in v] if k in ("bins", "groups") else v
            for k, v in spec["derive"].items()
        }
    for key in ("owner", "split", "model", "portfolio", "event_timestamp", "target"):
        doc[key] = _Flow(spec[key])
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(head) + "\n" + body


class _Flow(dict[str, Any]):
    """A mapping written on one line, like the hand-written specs' request fields."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes ``_Flow`` mappings in flow style."""


def _flow_mapping(dumper: yaml.SafeDumper, data: _Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", dict(data), flow_style=True)


_Dumper.add_representer(_Flow, _flow_mapping)
