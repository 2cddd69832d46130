"""The questionnaire: what Shipway cannot measure, answered by people, with evidence.

One YAML file (``assessments/<organisation>.yaml``), validated by the pydantic models
below like a use-case spec: unknown keys are errors, and a bad file fails at load time
naming the file and the field. Every answer is a score 1-5; a score of 3 or more (a
claim of maturity) must link at least one piece of evidence.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shipway.core.typedyaml import load_typed

MIN_EVIDENCED_SCORE = 3
"""From this score on, an answer is a claim of maturity and must link its evidence."""


class QuestionnaireError(ValueError):
    """A questionnaire failed to load; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(_Strict):
    """One answer: a score, the evidence it rests on, and a note."""

    score: int = Field(ge=1, le=5, description="1 (absent) to 5 (optimised).")
    evidence: list[str] = Field(
        default_factory=list, description="Links (URLs or repository paths) that show it."
    )
    note: str = Field(default="", description="What the score rests on, in a sentence.")

    @model_validator(mode="after")
    def _claims_need_evidence(self) -> Answer:
        if self.score >= MIN_EVIDENCED_SCORE and not [e for e in self.evidence if e.strip()]:
            raise ValueError(
                f"a score of {self.score} (>= {MIN_EVIDENCED_SCORE}) needs at least one "
                "evidence link"
            )
        return self


class DataAnswers(_Strict):
    data_ownership: Answer = Field(description="Named owners and stewards for the data used.")
    data_quality_process: Answer = Field(
        description="Data-quality issues are tracked and fixed at their source."
    )


class InfrastructureAnswers(_Strict):
    platform_operations: Answer = Field(
        description="Someone runs the platform (on-call, upgrades, capacity)."
    )


class TalentAnswers(_Strict):
    ml_engineering: Answer = Field(description="People who build and run ML in production.")
    data_science: Answer = Field(description="People who frame problems and build models.")
    data_literacy: Answer = Field(description="Business users read and question model output.")
    training: Answer = Field(description="A training path exists and is used.")


class CultureAnswers(_Strict):
    executive_sponsorship: Answer = Field(description="A named executive sponsors AI work.")
    change_readiness: Answer = Field(
        description="Teams whose work changes are prepared and involved."
    )
    cross_functional_collaboration: Answer = Field(
        description="Business, data, IT and risk work on use cases together."
    )


class GovernanceAnswers(_Strict):
    ai_policy: Answer = Field(description="An approved AI policy exists and is applied.")
    risk_ownership: Answer = Field(description="Model risk has an accountable owner.")


class Questionnaire(_Strict):
    """The answers of one assessment, per dimension."""

    organization: str = Field(min_length=1, description="Who is assessed.")
    assessed_on: date = Field(description="When the answers were given.")
    assessor: str = Field(min_length=1, description="Who gave (and owns) the answers.")
    data_maturity: DataAnswers
    technical_infrastructure: InfrastructureAnswers
    talent_and_skills: TalentAnswers
    organizational_culture: CultureAnswers
    governance_and_compliance: GovernanceAnswers

    def answers(self, dimension: str) -> dict[str, Answer]:
        """``question -> answer`` of one dimension."""
        group: BaseModel = getattr(self, dimension)
        return {name: getattr(group, name) for name in type(group).model_fields}


def load_questionnaire(path: Path) -> Questionnaire:
    """Load and validate a questionnaire; raise ``QuestionnaireError`` naming file and field."""
    return load_typed(path, Questionnaire, "questionnaire", QuestionnaireError)
