"""Loading a spec file: YAML, then validation, with errors that name the file and field."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from shipway.core.spec.base import SpecError
from shipway.core.spec.usecase import UseCaseSpec


def _format_error(path: Path, err: ValidationError) -> str:
    lines = [f"invalid use-case spec {path}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        lines.append(f"  - {loc}: {e['msg']}")
    return "\n".join(lines)


def load_spec(path: str | Path) -> UseCaseSpec:
    """Load and validate one spec file; raise SpecError naming the file and field."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"use-case spec not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML in {p}: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"invalid use-case spec {p}: top level must be a mapping")
    try:
        spec = UseCaseSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_error(p, exc)) from exc
    if re.sub(r"\.ya?ml$", "", p.name) not in ("usecase", spec.name):
        raise SpecError(f"invalid use-case spec {p}: file name does not match name {spec.name!r}")
    return spec
