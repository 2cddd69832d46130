"""``shipway access``: the MLflow users of the components and their least permissions.

Run by the chart's post-install/post-upgrade Job against the release's MLflow server,
authenticated as the MLflow admin; the passwords come from the environment (Secrets), never
from arguments, so no process listing or log shows them.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from shipway.cli.app import UserError, app, console, friendly

access_app = typer.Typer(
    help="MLflow users of the components and their least permissions.", no_args_is_help=True
)
app.add_typer(access_app, name="access")

PASSWORD_ENV = "SHIPWAY_MLFLOW_PASSWORD_{}"
"""Where each component's password is read: SHIPWAY_MLFLOW_PASSWORD_PREDICTION, ..."""


@access_app.command("provision")
@friendly
def provision(
    usecases: Annotated[
        list[str],
        typer.Option("--usecase", "-u", help="Use case to grant access to (repeatable)."),
    ],
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow server; default SHIPWAY_MLFLOW_TRACKING_URI."),
    ] = None,
) -> None:
    """Create one MLflow user per component and grant the least-privilege matrix.

    Authenticates as the admin (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD); the
    components' passwords come from SHIPWAY_MLFLOW_PASSWORD_<COMPONENT>. Idempotent.
    """
    from shipway.core.settings import Settings
    from shipway.core.usecases import load_usecase
    from shipway.governance import access

    settings = Settings()
    uri = tracking_uri or settings.mlflow_tracking_uri
    if not uri or not uri.startswith(("http://", "https://")):
        raise UserError(
            "access provision needs an MLflow server: set SHIPWAY_MLFLOW_TRACKING_URI or "
            "--tracking-uri to its http(s) address"
        )
    passwords = {c: os.environ.get(PASSWORD_ENV.format(c.upper()), "") for c in access.COMPONENTS}
    missing = [PASSWORD_ENV.format(c.upper()) for c, pw in passwords.items() if not pw]
    if missing:
        raise UserError(f"no password in {', '.join(missing)}")
    targets = []
    for name in usecases:
        spec = load_usecase(name, settings)
        targets.append(access.Target(spec.name, spec.registered_model_name))
    try:
        lines = access.provision(uri, passwords, targets, settings.mlflow_artifact_root)
    except access.AccessError as exc:
        raise UserError(str(exc)) from exc
    for line in lines:
        console.print(line, highlight=False, markup=False)
