"""Where a window's results go: Evidently's HTML, a Shipway summary page, results.json,
and an index of every window, so reports stay browsable from a plain file browser.

Layout: ``<state>/monitoring/<usecase>/<window-end>/{report.html,summary.html,results.json}``
and ``<state>/monitoring/<usecase>/index.html``. Window directories are named after the
window's end (UTC, sortable, no colons), so re-running a window replaces it. Evidently's
page embeds its JavaScript (~4 MB), so only the newest ``KEEP_REPORTS`` windows keep it; a
monitor looping every few minutes would otherwise fill the disk. Summaries and results
are small and kept for every window.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment

RESULTS, REPORT, SUMMARY, INDEX = "results.json", "report.html", "summary.html", "index.html"
KEEP_REPORTS = 100
_env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
    ".bad{color:#b00;font-weight:bold}.ok{color:#070}"
)

SUMMARY_TEMPLATE = _env.from_string(
    """<!doctype html><html><head><meta charset="utf-8">
<title>{{ r.usecase }} monitor {{ r.window.end }}</title><style>{{ style }}</style></head><body>
<p><a href="../index.html">all windows</a> · <a href="report.html">Evidently report</a>
 · <a href="results.json">results.json</a></p>
<h1>{{ r.usecase }}: window {{ r.window.start }} → {{ r.window.end }} (by {{ r.window.by }})</h1>
<p>Outcome: <b class="{{ 'ok' if r.outcome == 'ok' else 'bad' }}">{{ r.outcome }}</b>.
 Compared with {{ r.model.name }} v{{ r.model.version }} (reference {{ r.model.reference_uri }}).</p>
<pre>{{ summary }}</pre>
{% if r.drift %}
<h2>Feature drift: {{ "%.0f"|format(100 * r.drift.share) }}% drifted
 (threshold {{ "%.0f"|format(100 * r.drift.threshold) }}%)</h2>
<table><tr><th>feature</th><th>kind</th><th>test</th><th>score</th><th>threshold</th><th>drifted</th></tr>
{% for f in r.drift.features %}
<tr><td>{{ f.name }}</td><td>{{ f.kind }}</td><td>{{ f.method }}</td><td>{{ "%.4g"|format(f.score) }}</td>
<td>{{ f.threshold }}</td><td class="{{ 'bad' if f.drifted else 'ok' }}">{{ 'yes' if f.drifted else 'no' }}</td></tr>
{% endfor %}
</table>
{% endif %}
{% if r.challenger %}
<h2>Challenger vs champion ({{ r.challenger.design }})</h2>
<p>{{ r.challenger.verdict }}: difference {{ r.challenger.difference }} in {{ r.challenger.metric }},
 {{ "%.0f"|format(100 * r.challenger.confidence) }}% CI [{{ r.challenger.ci_low }}, {{ r.challenger.ci_high }}]</p>
{% endif %}
</body></html>
"""
)

INDEX_TEMPLATE = _env.from_string(
    """<!doctype html><html><head><meta charset="utf-8"><title>{{ usecase }} monitoring</title>
<style>{{ style }}</style></head><body><h1>{{ usecase }}: monitoring windows</h1>
<table><tr><th>window end</th><th>start</th><th>by</th><th>rows</th><th>drift share</th>
<th>live metric</th><th>drop</th><th>challenger</th><th>outcome</th><th>reports</th></tr>
{% for w in windows %}
<tr><td>{{ w.window.end }}</td><td>{{ w.window.start }}</td><td>{{ w.window.by }}</td>
<td>{{ w.rows_evaluated }}</td>
<td>{{ "%.0f%%"|format(100 * w.drift.share) if w.drift else "–" }}</td>
<td>{{ "%s %.4g"|format(w.performance.metric, w.performance.live) if w.performance and w.performance.live is not none else "–" }}</td>
<td>{{ "%+.1f%%"|format(100 * w.performance.drop_ratio) if w.performance and w.performance.drop_ratio is not none else "–" }}</td>
<td>{{ w.challenger.verdict if w.challenger else "–" }}</td>
<td class="{{ 'ok' if w.outcome == 'ok' else 'bad' }}">{{ w.outcome }}</td>
<td><a href="{{ w.dir }}/summary.html">summary</a> · <a href="{{ w.dir }}/report.html">Evidently</a></td></tr>
{% endfor %}
</table></body></html>
"""
)


def window_dirname(end: datetime) -> str:
    """Sortable, colon-free name of a window directory, e.g. ``2017-09-01T000000Z``."""
    return end.strftime("%Y-%m-%dT%H%M%SZ")


def write_window(
    directory: Path, results: dict[str, Any], summary: str, snapshot: Any | None
) -> Path:
    """Write one window's files and refresh the use case's index; return report.html."""
    directory.mkdir(parents=True, exist_ok=True)
    report = directory / REPORT
    if snapshot is not None:
        snapshot.save_html(str(report))
    else:  # nothing to compare (no rows): keep the link working
        report.write_text(f"<!doctype html><p>No drift report: {results['outcome']}.</p>\n")
    (directory / RESULTS).write_text(json.dumps(results, indent=2, default=str) + "\n")
    (directory / SUMMARY).write_text(
        SUMMARY_TEMPLATE.render(r=results, summary=summary, style=_STYLE)
    )
    prune(directory.parent)
    write_index(directory.parent, results["usecase"])
    return report


def prune(usecase_dir: Path, keep: int = KEEP_REPORTS) -> int:
    """Delete Evidently pages beyond the newest ``keep`` windows; return how many."""
    old = sorted(usecase_dir.glob(f"*/{REPORT}"), reverse=True)[keep:]
    pages = [p for p in old if p.stat().st_size > 10_000]  # stubs are already pruned
    for page in pages:
        page.write_text("<!doctype html><p>Evidently report pruned (only the newest kept).</p>\n")
    return len(pages)


def list_windows(usecase_dir: Path) -> list[dict[str, Any]]:
    """Every window's results, newest window end first, with ``dir`` (its folder name)."""
    out = []
    for path in sorted(usecase_dir.glob(f"*/{RESULTS}"), reverse=True):
        try:
            out.append({**json.loads(path.read_text()), "dir": path.parent.name})
        except (OSError, json.JSONDecodeError):
            continue  # a window being written concurrently; the next index picks it up
    return out


def write_index(usecase_dir: Path, usecase: str) -> Path:
    path = usecase_dir / INDEX
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        INDEX_TEMPLATE.render(usecase=usecase, windows=list_windows(usecase_dir), style=_STYLE)
    )
    tmp.replace(path)  # atomic: a browser never sees half an index
    return path
