"""``shipway assess``: the AI readiness assessment (five dimensions, 1-5)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shipway.cli.app import UserError, app, console, friendly
from shipway.core.settings import get_settings

DEFAULT_QUESTIONNAIRE = Path("assessments/example.yaml")


@app.command("assess")
@friendly
def assess_cmd(
    questionnaire: Annotated[
        Path,
        typer.Option(
            "--questionnaire",
            "-q",
            help="The answers Shipway cannot measure (skills, sponsorship, change readiness, "
            "policy), with evidence links.",
        ),
    ] = DEFAULT_QUESTIONNAIRE,
) -> None:
    """Score data maturity, technical infrastructure, talent and skills, organizational
    culture, and governance and compliance (1-5): measured where Shipway can see the
    evidence, answered in the questionnaire where it cannot. Writes report.html (with a
    chart) and assessment.json under <state_dir>/assessments/; the use-case approval gate
    reads the latest one."""
    from shipway.core import registry
    from shipway.governance.assessment import DIMENSIONS, report, title
    from shipway.governance.assessment.questionnaire import QuestionnaireError, load_questionnaire
    from shipway.governance.assessment.scoring import run

    settings = get_settings()
    path = questionnaire if questionnaire.is_absolute() else settings.root / questionnaire
    try:
        load_questionnaire(path)  # a bad file fails here, before any store is contacted
    except QuestionnaireError as exc:
        raise UserError(str(exc)) from exc
    with console.status("measuring readiness"):
        data, folder = run(settings, path, registry.connect(settings.tracking_uri))
    files = report.write(folder, data)
    table = Table("dimension", "score", "measured", "answered", title="AI readiness (1-5)")
    for d in DIMENSIONS:
        mine = [i for i in data["items"] if i["dimension"] == d]
        table.add_row(
            title(d),
            f"{data['scores'][d]:.1f}",
            str(sum(i["origin"] == "measured" for i in mine)),
            str(sum(i["origin"] == "questionnaire" for i in mine)),
        )
    console.print(table)
    console.print(f"report: {files['html']}\njson: {files['json']}")
