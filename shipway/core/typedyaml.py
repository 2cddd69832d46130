"""One way to load a typed YAML file: read, parse, validate, and fail naming file and field.

Framework mappings, questionnaires (and any new typed file) share it, so each bad file
reads the same way: ``invalid <kind> <path>:`` then one ``- <field.path>: <message>``
line per error, raised as the caller's own error type.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def load_typed(path: Path, model: type[M], kind: str, error: type[Exception]) -> M:
    """``model`` validated from the YAML mapping in ``path``; ``error`` names file and field."""
    if not path.is_file():
        raise error(f"{kind} not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"invalid YAML in {kind} {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise error(f"invalid {kind} {path}: top level must be a mapping")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = [f"invalid {kind} {path}:"]
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "<root>"
            lines.append(f"  - {loc}: {e['msg']}")
        raise error("\n".join(lines)) from exc
