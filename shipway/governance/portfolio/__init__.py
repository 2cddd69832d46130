"""The portfolio: every use case side by side, from the evidence that already exists.

Nothing here decides anything; it reads what the other parts recorded and shows it, so
the view cannot disagree with them: the spec (owner, risk, approval, KPI, impact and
feasibility), the registry (champion, challenger, the model-validation evidence each
version links, the first champion), the data-readiness report of the DVC stage, the
governance records a version links (``evidence.<gate>`` tags), the monitor's last
results.json, and git (when the spec was first committed). ``shipway status`` prints it;
``write_report`` renders ``<state_dir>/portfolio/index.html`` with the impact-feasibility
matrix embedded, so the page is one self-contained file.

``model``: the status records; ``sources``: collecting them from the spec, git, the
registry, the readiness report and the monitor; ``text``: terminal texts and the table;
``report``: the HTML page and the matrix. Callers import from this package.
"""

from shipway.governance.portfolio.model import (
    GATES,
    Cost,
    Drift,
    GateState,
    Kpi,
    UseCaseStatus,
)
from shipway.governance.portfolio.report import (
    STAGE_COLOR,
    matrix_png,
    render_html,
    write_report,
)
from shipway.governance.portfolio.sources import (
    approval_gate,
    collect,
    last_drift,
    readiness_gate,
    serving_cost,
    spec_first_commit,
    status_of,
)
from shipway.governance.portfolio.text import (
    GATE_LETTER,
    STATE_MARK,
    cost_text,
    drift_text,
    gate_summary,
    kpi_text,
    lead_time_text,
    table,
)

__all__ = [
    "GATES",
    "GATE_LETTER",
    "STAGE_COLOR",
    "STATE_MARK",
    "Cost",
    "Drift",
    "GateState",
    "Kpi",
    "UseCaseStatus",
    "approval_gate",
    "collect",
    "cost_text",
    "drift_text",
    "gate_summary",
    "kpi_text",
    "last_drift",
    "lead_time_text",
    "matrix_png",
    "readiness_gate",
    "render_html",
    "serving_cost",
    "spec_first_commit",
    "status_of",
    "table",
    "write_report",
]
