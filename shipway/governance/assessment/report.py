"""The assessment for a board: one self-contained HTML page with a chart, and the JSON.

The chart is a horizontal bar per dimension on the 1-5 scale with the line at 3 that
high-risk and high-complexity use cases need for data maturity; it is drawn with
matplotlib (Agg, no display) and embedded as SVG, so the page is one file that mails
and prints. The page lists every item with where its number came from.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from shipway.governance.assessment import DIMENSIONS, MIN_DATA_MATURITY, title

HTML = "report.html"
TEMPLATE = "report.html.j2"


def chart_svg(scores: dict[str, float]) -> str:
    """Bars of the five dimension scores, with the data-maturity threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [title(d) for d in DIMENSIONS][::-1]
    values = [scores[d] for d in DIMENSIONS][::-1]
    colours = ["#c0392b" if v < 2.5 else "#e67e22" if v < 3.5 else "#27ae60" for v in values]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    try:
        bars = ax.barh(names, values, color=colours)
        ax.set_xlim(0, 5)
        ax.set_xticks([1, 2, 3, 4, 5])
        ax.axvline(MIN_DATA_MATURITY, color="#555", linestyle="--", linewidth=1)
        ax.text(
            MIN_DATA_MATURITY + 0.05,
            len(values) - 0.45,
            "3 = needed for high risk",
            fontsize=8,
            color="#555",
        )
        for bar, v in zip(bars, values, strict=True):
            ax.text(v + 0.05, bar.get_y() + bar.get_height() / 2, f"{v:.1f}", va="center")
        ax.set_xlabel("score (1 = absent, 5 = optimised)")
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
    finally:
        plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog: the SVG is inlined in HTML


def render_html(data: dict[str, Any]) -> str:
    env = Environment(
        loader=PackageLoader("shipway.governance.assessment", "."),
        autoescape=select_autoescape(["html", "j2"]),
    )
    rows = [
        {
            "dimension": d,
            "title": title(d),
            "score": data["scores"][d],
            "items": [i for i in data["items"] if i["dimension"] == d],
        }
        for d in DIMENSIONS
    ]
    return env.get_template(TEMPLATE).render(
        a=data, rows=rows, chart=chart_svg(data["scores"]), threshold=MIN_DATA_MATURITY
    )


def write(folder: Path, data: dict[str, Any]) -> dict[str, Path]:
    """``report.html`` beside ``assessment.json`` (the JSON is written by ``scoring.save``)."""
    page = folder / HTML
    page.write_text(render_html(data))
    return {"html": page, "json": folder / "assessment.json"}
