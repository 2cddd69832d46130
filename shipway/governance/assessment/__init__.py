"""The AI readiness assessment (the seed's Phase 1): five dimensions scored 1-5.

What Shipway can see it measures itself and cites (``measures``): readiness-rule
coverage and pass rates, lineage coverage, documented data, registry, pipeline and
feature-store reachability, monitoring and alert rules, approvals, fairness bounds,
retention and the audit trail. What it cannot see (skills, sponsorship, change
readiness, policy) comes from a typed questionnaire with evidence links
(``questionnaire``). ``scoring`` combines both into one content-hashed assessment,
``report`` renders it for a board (HTML with a chart) and machines (JSON), and the
use-case approval gate reads the latest one: data maturity below 3 blocks high-risk
and high-complexity use cases.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA_MATURITY = "data_maturity"
TECHNICAL_INFRASTRUCTURE = "technical_infrastructure"
TALENT_AND_SKILLS = "talent_and_skills"
ORGANIZATIONAL_CULTURE = "organizational_culture"
GOVERNANCE_AND_COMPLIANCE = "governance_and_compliance"
DIMENSIONS = (
    DATA_MATURITY,
    TECHNICAL_INFRASTRUCTURE,
    TALENT_AND_SKILLS,
    ORGANIZATIONAL_CULTURE,
    GOVERNANCE_AND_COMPLIANCE,
)
"""The five dimensions, in the order the report shows them."""

MIN_DATA_MATURITY = 3.0
"""The seed's rule: below this, high-risk or high-complexity use cases are not approved."""


def title(dimension: str) -> str:
    return dimension.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Maturity:
    """The data-maturity score the approval gate judges, and which assessment it came from."""

    score: float
    assessment: str
    """Content hash of the assessment (``scoring.latest``)."""
    created_at: str
