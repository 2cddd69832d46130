"""Discovery of use cases: ``usecases/<name>/usecase.yaml``, one spec per folder."""

from __future__ import annotations

from pathlib import Path

from shipway.core.settings import Settings, get_settings
from shipway.core.spec import SpecError, UseCaseSpec, load_spec


def spec_path(name: str, settings: Settings | None = None) -> Path:
    s = settings or get_settings()
    return s.specs / name / "usecase.yaml"


def list_usecases(settings: Settings | None = None) -> list[str]:
    """Names of every use case with a spec, sorted."""
    s = settings or get_settings()
    if not s.specs.is_dir():
        return []
    return sorted(p.parent.name for p in s.specs.glob("*/usecase.yaml"))


def load_usecase(name: str, settings: Settings | None = None) -> UseCaseSpec:
    """Load a use case by name, with a message listing the known ones if it is unknown."""
    path = spec_path(name, settings)
    if not path.is_file():
        known = ", ".join(list_usecases(settings)) or "none"
        raise SpecError(f"unknown use case {name!r} (no {path}); known use cases: {known}")
    spec = load_spec(path)
    if spec.name != name:
        raise SpecError(f"{path}: name {spec.name!r} does not match its folder {name!r}")
    return spec


def load_all(settings: Settings | None = None) -> list[UseCaseSpec]:
    return [load_usecase(n, settings) for n in list_usecases(settings)]
