"""Measured signals and questionnaire answers, combined into one scored assessment.

A dimension's score is the mean of its items' scores (each 1-5): measured signals score
``1 + 4 x share``, answers score what the questionnaire says. The result is content-
hashed like a gate record and stored under ``<state_dir>/assessments/<time>/``, so the
approval gate can cite exactly which assessment it read, and an edited file is ignored.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipway.core.evidence import content_hash, verify
from shipway.core.settings import Settings
from shipway.governance.assessment import DATA_MATURITY, DIMENSIONS, Maturity
from shipway.governance.assessment.measures import Signal
from shipway.governance.assessment.questionnaire import Questionnaire

ASSESSMENT_FILE = "assessment.json"


@dataclass(frozen=True)
class Item:
    """One scored item of a dimension: measured by Shipway or answered in the questionnaire."""

    dimension: str
    name: str
    score: float
    origin: str  # "measured" or "questionnaire"
    detail: str
    evidence: list[str] = field(default_factory=list)


@dataclass
class Assessment:
    organization: str
    assessor: str
    assessed_on: str
    questionnaire: str
    items: list[Item]
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def scores(self) -> dict[str, float]:
        """Dimension -> mean item score, one decimal (1.0 where nothing was scored)."""
        out = {}
        for d in DIMENSIONS:
            mine = [i.score for i in self.items if i.dimension == d]
            out[d] = round(sum(mine) / len(mine), 1) if mine else 1.0
        return out

    def to_dict(self) -> dict[str, Any]:
        body = {
            "organization": self.organization,
            "assessor": self.assessor,
            "assessed_on": self.assessed_on,
            "questionnaire": self.questionnaire,
            "created_at": self.created_at,
            "scores": self.scores,
            "items": [asdict(i) for i in self.items],
        }
        return {**body, "content_hash": content_hash(body)}


def assess(signals: list[Signal], answers: Questionnaire, questionnaire: str) -> Assessment:
    """The assessment from what was measured and what was answered (``questionnaire``: the
    file the answers came from, recorded with them)."""
    items = [Item(s.dimension, s.name, s.score, "measured", s.detail, [s.source]) for s in signals]
    for d in DIMENSIONS:
        for name, a in answers.answers(d).items():
            items.append(Item(d, name, float(a.score), "questionnaire", a.note, list(a.evidence)))
    return Assessment(
        organization=answers.organization,
        assessor=answers.assessor,
        assessed_on=answers.assessed_on.isoformat(),
        questionnaire=questionnaire,
        items=items,
    )


def assessments_dir(settings: Settings) -> Path:
    return settings.state / "assessments"


def save(settings: Settings, data: dict[str, Any]) -> Path:
    """Write the assessment JSON into a new folder named after its time; return the folder."""
    stamp = datetime.fromisoformat(data["created_at"]).strftime("%Y%m%dT%H%M%S%fZ")
    folder = assessments_dir(settings) / stamp
    folder.mkdir(parents=True, exist_ok=False)
    (folder / ASSESSMENT_FILE).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return folder


def latest(settings: Settings) -> dict[str, Any] | None:
    """The newest assessment whose content hash still matches (an edited one is skipped)."""
    for path in sorted(assessments_dir(settings).glob(f"*/{ASSESSMENT_FILE}"), reverse=True):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and verify(data):
            return data
    return None


def data_maturity(settings: Settings) -> Maturity | None:
    """Data maturity of the latest intact assessment (None: no assessment recorded)."""
    data = latest(settings)
    if data is None:
        return None
    return Maturity(float(data["scores"][DATA_MATURITY]), data["content_hash"], data["created_at"])


def run(settings: Settings, questionnaire: Path, client: Any) -> tuple[dict[str, Any], Path]:
    """Measure, read the answers, score, save; return the assessment and its folder."""
    from shipway.core.usecases import load_all
    from shipway.governance.assessment.measures import measure
    from shipway.governance.assessment.questionnaire import load_questionnaire

    answers = load_questionnaire(questionnaire)  # a bad file fails before anything is measured
    signals = measure(settings, load_all(settings), client)
    data = assess(signals, answers, str(questionnaire)).to_dict()
    return data, save(settings, data)
