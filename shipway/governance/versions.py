"""Model versions as governance sees them: references, evidence links, champion history.

MLflow aliases say only where ``champion`` points *now*. Rollback needs the history, so
every change of champion made through Shipway tags the version ``champion_at`` (and a
rolled-back one ``rolled_back_at``); the previous champion is the most recent
``champion_at`` that is still eligible. Evidence is linked with one tag per gate,
``evidence.<gate>`` = the URI of the record.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from shipway.core.spec import UseCaseSpec

CHAMPION_AT = "champion_at"
ROLLED_BACK_AT = "rolled_back_at"
APPROVED_BY = "approved_by"
GOVERNANCE_PASSED = "governance_passed"
EVIDENCE_PREFIX = "evidence."
REF_RE = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)@(?P<version>[A-Za-z0-9_-]+)$")


class GovernanceError(Exception):
    """A governed action was refused or cannot run; the message says why."""


@dataclass(frozen=True)
class ModelRef:
    """``<model>@<version>``, where version is a number or an alias (champion, challenger)."""

    name: str
    version: str

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        m = REF_RE.match(text.strip())
        if m is None:
            raise GovernanceError(f"expected <model>@<version> (e.g. my_model@3), got {text!r}")
        return cls(m["name"], m["version"])

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


def resolve(client: Any, ref: ModelRef) -> Any:
    """The ModelVersion a reference names; aliases are resolved to their version now.

    Only MLflow's "does not exist" means the version is missing (``GovernanceError``); a
    registry that refuses these credentials (401, 403), fails (5xx) or cannot be reached
    raises ``RegistryUnavailable`` naming its address, so a promotion or rollback is never
    told "no such version" by a registry it could not read.
    """
    from mlflow.exceptions import MlflowException

    from shipway.core import registry  # loads MLflow: not for every importer of this module

    try:
        if ref.version.isdigit():
            return client.get_model_version(ref.name, ref.version)
        return client.get_model_version_by_alias(ref.name, ref.version)
    except MlflowException as exc:
        alias = None if ref.version.isdigit() else ref.version
        if registry.not_found(exc, alias):
            raise GovernanceError(f"no model version {ref} in the registry") from exc
        raise registry.RegistryUnavailable(
            registry.registry_uri(client), f"read the model version {ref}", exc
        ) from exc


def versions(client: Any, name: str) -> list[Any]:
    """Every version of a registered model, newest first."""
    found = client.search_model_versions(f"name = '{name}'")
    return sorted(found, key=lambda mv: int(mv.version), reverse=True)


def subject(mv: Any, usecase: str) -> dict[str, Any]:
    """The subject of a record about one model version."""
    return {"usecase": usecase, "model": mv.name, "version": str(mv.version), "run_id": mv.run_id}


def link(client: Any, mv: Any, gate: str, uri: str) -> None:
    """Tag the version with the URI of its newest record of ``gate``."""
    client.set_model_version_tag(mv.name, str(mv.version), f"{EVIDENCE_PREFIX}{gate}", uri)


def evidence_links(mv: Any) -> dict[str, str]:
    """``gate -> URI`` of every evidence tag of a version."""
    return {
        k.removeprefix(EVIDENCE_PREFIX): v
        for k, v in (mv.tags or {}).items()
        if k.startswith(EVIDENCE_PREFIX)
    }


def read_uri(uri: str, client: Any = None) -> bytes:
    """Bytes behind a record URI: ``file://``, a plain path, or ``runs:/<run>/<path>``."""
    if uri.startswith("runs:/"):
        run_id, _, path = uri.removeprefix("runs:/").partition("/")
        if client is None:
            raise GovernanceError(f"reading {uri} needs an MLflow client")
        with tempfile.TemporaryDirectory(prefix="shipway-uri-") as tmp:
            return Path(client.download_artifacts(run_id, path, tmp)).read_bytes()
    if uri.startswith("file:"):
        return Path(unquote(urlparse(uri).path)).read_bytes()
    return Path(uri).read_bytes()


def champion(client: Any, name: str) -> Any | None:
    from shipway.core import registry

    return registry.alias_version(client, name, registry.CHAMPION)


def mark_champion(client: Any, mv: Any) -> None:
    """Point ``champion`` at the version and remember when (the history rollback needs)."""
    from shipway.core import registry

    registry.set_alias(client, mv.name, registry.CHAMPION, str(mv.version))
    client.set_model_version_tag(
        mv.name, str(mv.version), CHAMPION_AT, datetime.now(UTC).isoformat()
    )


def eligible(mv: Any, spec: UseCaseSpec) -> tuple[bool, str]:
    """Whether a version may serve as champion again, and if not, why not."""
    tags = mv.tags or {}
    if tags.get("gate_passed") != "true":
        return False, "its model-validation gate did not pass"
    if tags.get(GOVERNANCE_PASSED) == "false":
        return False, "its use-case approval or data-readiness gate did not pass"
    if ROLLED_BACK_AT in tags:
        return False, f"it was rolled back at {tags[ROLLED_BACK_AT]}"
    if spec.governance.approval_required(spec.risk_level) and APPROVED_BY not in tags:
        return False, f"risk level {spec.risk_level.value} needs a recorded approval it lacks"
    return True, ""


def previous_champion(client: Any, spec: UseCaseSpec, current: Any | None) -> Any | None:
    """The most recent former champion that is still eligible (the rollback target)."""
    cur = str(current.version) if current is not None else None
    former = [
        mv
        for mv in versions(client, spec.registered_model_name)
        if str(mv.version) != cur and CHAMPION_AT in (mv.tags or {})
    ]
    former.sort(key=lambda mv: mv.tags[CHAMPION_AT], reverse=True)
    return next((mv for mv in former if eligible(mv, spec)[0]), None)


def ever_champion(client: Any, name: str, exclude: str | None = None) -> list[str]:
    """Versions that have been champion at some point (other than ``exclude``)."""
    return [
        str(mv.version)
        for mv in versions(client, name)
        if CHAMPION_AT in (mv.tags or {}) and str(mv.version) != exclude
    ]
