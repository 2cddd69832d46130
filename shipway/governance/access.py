"""Who may do what in the MLflow registry: one MLflow user per component, least permission.

With MLflow basic auth and ``default_permission = NO_PERMISSIONS`` a user can do nothing
it was not granted. :func:`provision` creates one user per component and grants each
exactly what the code of that component calls (read from the code, not guessed):

=============  ==============  ================  =====================  ====================
user           experiment      registered model  model versions (all)   why
=============  ==============  ================  =====================  ====================
prediction     READ            READ              --                     loads champion and
                                                                        challenger (aliases,
                                                                        versions, artifacts)
monitor        EDIT            READ              EDIT                   reads the reference;
                                                                        the scheduled review
                                                                        appends to the trail
                                                                        (audit run) and tags
                                                                        the champion version
pipeline       EDIT            MANAGE            --                     logs runs, registers
                                                                        versions, tags them,
                                                                        sets challenger, the
                                                                        governed auto-promotion,
                                                                        and withdraws a failed
                                                                        registration (deletes
                                                                        its version and alias)
promotion      EDIT            MANAGE            --                     ``shipway promote`` /
                                                                        ``rollback`` by an
                                                                        operator: moves and
                                                                        deletes aliases
=============  ==============  ================  =====================  ====================

What MLflow can and cannot separate (``mlflow.server.auth``): setting an alias needs
``update`` on the registered model, the same permission that creates versions and sets
tags; deleting an alias or a version needs ``delete`` (MANAGE). So the identity that
registers can also move an alias, and no MLflow permission makes "register but never
promote" true. What least privilege achieves here: the internet-facing prediction pods
and the monitor cannot move or delete anything (their grants stop at READ on the model;
the monitor's version-tier EDIT tags versions but setting an alias needs update on the
model itself), and only the pipeline, whose promotion runs the governance rule under
the model lock, and the promotion identity hold more. The retraining trigger and the
Feast jobs never call MLflow and get no user at all.

The same function is run by the chart's post-install/upgrade Job (``shipway access
provision``) and by the integration test against a real ``mlflow server --app-name
basic-auth``, so what is tested is what is deployed. It is idempotent: users that exist
get their password reset to the given one (rotation), grants are replaced by the matrix.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

READ, EDIT, MANAGE = "READ", "EDIT", "MANAGE"
USER_PREFIX = "shipway-"


@dataclass(frozen=True)
class Role:
    """The grants of one component's MLflow user on every use case it serves."""

    component: str
    experiment: str
    """Permission on each use case's experiment (runs, artifacts, the audit trail)."""
    model: str
    """Permission on each use case's registered model (aliases, versions, tags)."""
    versions: str | None = None
    """Wildcard grant on model versions, still bounded by READ on the model itself."""

    @property
    def username(self) -> str:
        return f"{USER_PREFIX}{self.component}"


ROLES: tuple[Role, ...] = (
    Role("prediction", READ, READ),
    Role("monitor", EDIT, READ, versions=EDIT),
    Role("pipeline", EDIT, MANAGE),
    Role("promotion", EDIT, MANAGE),
)
"""The least-privilege matrix (see the module docstring for why each cell)."""
COMPONENTS = tuple(r.component for r in ROLES)


class AccessError(ValueError):
    """Bad input to :func:`provision`; the message names the component or use case."""


@dataclass(frozen=True)
class Target:
    """One use case's MLflow resources: its experiment and its registered model."""

    experiment: str
    model: str


def role(component: str) -> Role:
    for r in ROLES:
        if r.component == component:
            return r
    raise AccessError(f"unknown component {component!r}: one of {', '.join(COMPONENTS)}")


def provision(
    tracking_uri: str,
    passwords: Mapping[str, str],
    targets: Sequence[Target],
    artifact_root: str | None = None,
) -> list[str]:
    """Create the experiments, registered models and one user per component, and grant
    the matrix. The caller authenticates as the MLflow admin (``MLFLOW_TRACKING_USERNAME``
    / ``MLFLOW_TRACKING_PASSWORD``). ``passwords`` maps component -> password; every
    component of :data:`ROLES` needs one. Returns one line per action, without secrets.
    """
    if not targets:
        raise AccessError("no use case given: nothing to grant access to")
    missing = [c for c in COMPONENTS if not passwords.get(c)]
    if missing:
        raise AccessError(f"no MLflow password for component(s) {', '.join(missing)}")
    unknown = sorted(set(passwords) - set(COMPONENTS))
    if unknown:
        raise AccessError(f"unknown component(s) {', '.join(unknown)}: {', '.join(COMPONENTS)}")
    from shipway.core import registry

    client = registry.connect(tracking_uri)
    auth = AuthApi(tracking_uri)
    done: list[str] = []
    resources: list[tuple[str, str]] = []  # (experiment id, model name)
    for t in targets:
        exp_id = registry.experiment(client, t.experiment, artifact_root)
        _ensure_model(client, t.model)
        resources.append((exp_id, t.model))
        done.append(f"experiment {t.experiment} (id {exp_id}) and model {t.model} exist")
    for r in ROLES:
        done.append(_ensure_user(auth, r.username, passwords[r.component]))
        for exp_id, model in resources:
            _grant(auth, r.username, "experiment", exp_id, r.experiment)
            _grant(auth, r.username, "registered_model", model, r.model)
        if r.versions:
            _grant(auth, r.username, "registered_model_version", "*", r.versions)
        grants = f"experiment {r.experiment}, model {r.model}" + (
            f", versions {r.versions}" if r.versions else ""
        )
        done.append(f"{r.username}: {grants} on {', '.join(t.model for t in targets)}")
    for line in done:
        log.info("%s", line)
    return done


class AuthApi:
    """The basic-auth app's REST API (what ``mlflow.server.auth.client.AuthServiceClient``
    calls), spoken directly: importing that client loads MLflow's whole server app (about
    5 s of CPU) for four requests. Credentials are MLflow's usual ``MLFLOW_TRACKING_*``."""

    CREATE_USER = "/api/2.0/mlflow/users/create"
    UPDATE_PASSWORD = "/api/2.0/mlflow/users/update-password"
    GRANT = "/api/3.0/mlflow/users/permissions/grant"
    REVOKE = "/api/3.0/mlflow/users/permissions/revoke"

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri

    def _call(self, endpoint: str, method: str, body: dict[str, str]) -> None:
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        creds = get_default_host_creds(self.tracking_uri)
        verify_rest_response(http_request(creds, endpoint, method, json=body), endpoint)

    def create_user(self, username: str, password: str) -> None:
        self._call(self.CREATE_USER, "POST", {"username": username, "password": password})

    def update_user_password(self, username: str, password: str) -> None:
        self._call(self.UPDATE_PASSWORD, "PATCH", {"username": username, "password": password})

    def grant_user_permission(self, username: str, kind: str, rid: str, permission: str) -> None:
        body = {"username": username, "resource_type": kind, "resource_id": rid}
        self._call(self.GRANT, "POST", {**body, "permission": permission})

    def revoke_user_permission(self, username: str, kind: str, rid: str) -> None:
        body = {"username": username, "resource_type": kind, "resource_id": rid}
        self._call(self.REVOKE, "POST", body)


def _ensure_model(client: Any, name: str) -> None:
    """Create the registered model as the admin, so no component becomes its owner (an
    owner is given MANAGE by MLflow)."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _ensure_user(auth: Any, username: str, password: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        auth.create_user(username, password)
        return f"user {username} created"
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    auth.update_user_password(username, password)
    return f"user {username} exists, password set"


def _grant(auth: Any, username: str, kind: str, resource: str, permission: str) -> None:
    """Grant exactly ``permission`` (replacing an earlier, possibly wider, grant)."""
    from mlflow.exceptions import MlflowException

    try:
        auth.grant_user_permission(username, kind, resource, permission)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(username, kind, resource)
        auth.grant_user_permission(username, kind, resource, permission)
