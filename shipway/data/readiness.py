"""Validate: the data-readiness check between ingest and features.

Checks schema, types, nulls, ranges, duplicates, category sets, minimum rows overall,
per time window and per sensitive group. Writes a JSON report (machines) and an HTML
report (people). Only when every rule passes is the typed, normalised table written,
atomically, so a failed run leaves the last good data version in place.
"""

from __future__ import annotations

import html
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from shipway.core.io import write_json, write_parquet, write_text
from shipway.core.spec import Column, DType, UseCaseSpec

log = logging.getLogger(__name__)

EVENT_TS = "event_timestamp"


@dataclass(frozen=True)
class Finding:
    """One failed rule: which column, which rule, how many rows offend."""

    column: str
    rule: str
    offending: int
    detail: str = ""

    def message(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return (
            f"column {self.column!r} failed rule {self.rule!r}: {self.offending} offending{extra}"
        )


@dataclass
class ReadinessReport:
    usecase: str
    rows: int
    findings: list[Finding] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    group_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    window_counts: dict[str, int] = field(default_factory=dict)
    data_through: str = ""
    """Latest event time in the data. No wall-clock time here: the report is a DVC output
    and must hash the same when `dvc repro` reruns on the same data."""

    @property
    def passed(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d


class ValidationFailed(RuntimeError):
    """Raised when data fails readiness; the message lists every failed rule."""

    def __init__(self, report: ReadinessReport):
        self.report = report
        lines = [f"data readiness failed for {report.usecase!r}:"]
        lines += [f"  - {f.message()}" for f in report.findings]
        super().__init__("\n".join(lines))


def _check(report: ReadinessReport, column: str, rule: str, bad: int, detail: str = "") -> None:
    report.checks.append(
        {"column": column, "rule": rule, "offending": int(bad), "passed": bad == 0}
    )
    if bad:
        report.findings.append(Finding(column, rule, int(bad), detail))


def _coerce(series: pd.Series, col: Column) -> tuple[pd.Series, int]:
    """Convert to the declared type; return the converted series and the failures count."""
    notna = series.notna()
    if col.dtype in (DType.int, DType.float):
        if series.dtype == bool:
            return series, int(notna.sum())
        conv = pd.to_numeric(series, errors="coerce")
        bad = int((conv.isna() & notna).sum())
        if col.dtype is DType.int and bad == 0:
            frac = conv[conv.notna()] % 1 != 0
            bad = int(frac.sum())
        return conv, bad
    if col.dtype is DType.bool:
        mapping = {True: True, False: False, "true": True, "false": False}  # 1 == True, 0 == False
        conv = series.map(lambda v: mapping.get(v.lower() if isinstance(v, str) else v))
        return conv, int((conv.isna() & notna).sum())
    bad = int((notna & ~series.map(lambda v: isinstance(v, str))).sum())
    return series.astype("string"), bad


def _columns(spec: UseCaseSpec) -> list[Column]:
    """Every declared column with its rules (target included)."""
    t = spec.target
    target_dtype = DType.str if t.positive_class is not None else DType.float
    return [*spec.request_fields, Column(name=t.column, dtype=target_dtype, min=t.min, max=t.max)]


def _check_labels(report: ReadinessReport, spec: UseCaseSpec, labels: pd.Series) -> None:
    """Binary classification: exactly two labels, the positive class and (if declared) the
    negative class."""
    seen = sorted(set(labels.dropna()))
    col = spec.target.column
    extra = len(seen) - 2 if len(seen) > 2 else int(len(seen) < 2)
    _check(report, col, "two_classes", extra, f"labels {seen[:5]}")
    _check(
        report,
        col,
        "positive_class_present",
        int(spec.target.positive_class not in seen),
        f"positive_class {spec.target.positive_class!r}, labels {seen[:5]}",
    )
    if spec.target.negative_class is not None:  # /feedback accepts it: it must be real
        _check(
            report,
            col,
            "negative_class_present",
            int(spec.target.negative_class not in seen),
            f"negative_class {spec.target.negative_class!r}, labels {seen[:5]}",
        )


def check(spec: UseCaseSpec, raw: pd.DataFrame) -> tuple[ReadinessReport, pd.DataFrame]:
    """Apply every rule; return the report and the typed table (meaningful only if passed)."""
    report = ReadinessReport(usecase=spec.name, rows=len(raw))
    _check(
        report,
        "<table>",
        f"min_rows>={spec.readiness.min_rows}",
        max(0, spec.readiness.min_rows - len(raw)),
        f"{len(raw)} rows",
    )
    out = pd.DataFrame(index=raw.index)
    if spec.derive.row_key:
        out[spec.derive.row_key] = raw.get(spec.derive.row_key)

    # entities: present, string keys; nulls get the declared missing key
    for ent in spec.entities:
        if ent.column not in raw.columns:
            _check(report, ent.column, "present", len(raw) or 1, "entity column missing")
            continue
        keys = raw[ent.column]
        out[ent.name] = keys.astype("string").fillna(ent.missing_key).str.strip()
        _check(report, ent.column, "non_empty_key", int((out[ent.name] == "").sum()))

    # event timestamp: present and parseable
    ts_col = spec.timestamp_column
    if ts_col not in raw.columns:
        _check(report, ts_col, "present", len(raw) or 1, "event timestamp column missing")
    else:
        parsed = pd.to_datetime(
            raw[ts_col], format=spec.event_timestamp.format, errors="coerce", utc=True
        )
        _check(
            report,
            ts_col,
            "parseable_timestamp",
            int(parsed.isna().sum()),
            f"format {spec.event_timestamp.format or 'ISO 8601'}",
        )
        out[EVENT_TS] = parsed
        if parsed.notna().any():
            report.data_through = parsed.max().isoformat()

    # declared columns: presence, type, nulls, range, categories
    for col in _columns(spec):
        if col.name not in raw.columns:
            _check(report, col.name, "present", len(raw) or 1, "declared column missing")
            continue
        source = raw[col.name]
        if col.name == spec.target.column and spec.target.positive_class is not None:
            # class labels are compared as strings everywhere (0/1, True/False or words)
            source = source.where(source.isna(), source.astype(str))
            _check_labels(report, spec, source)
        series, bad_type = _coerce(source, col)
        _check(
            report,
            col.name,
            f"type={col.dtype.value}",
            bad_type,
            f"source dtype {raw[col.name].dtype}",
        )
        if not col.nullable:
            _check(report, col.name, "not_null", int(raw[col.name].isna().sum()))
        if col.min is not None and bad_type == 0:
            _check(
                report,
                col.name,
                f"min>={col.min:g}",
                int((series < col.min).sum()),
                f"smallest {series.min()}",
            )
        if col.max is not None and bad_type == 0:
            _check(
                report,
                col.name,
                f"max<={col.max:g}",
                int((series > col.max).sum()),
                f"largest {series.max()}",
            )
        if col.allowed is not None:
            unknown = series.notna() & ~series.isin(col.allowed)
            vals = sorted(set(series[unknown].astype(str)))[:5]
            _check(
                report,
                col.name,
                "allowed_categories",
                int(unknown.sum()),
                f"unexpected {vals}" if vals else "",
            )
        out[col.name] = series
    for pii in spec.pii_columns:
        if pii in raw.columns:
            out[pii] = raw[pii]

    # duplicates (whole rows)
    dups = int(raw.duplicated().sum())
    _check(
        report,
        "<table>",
        f"duplicates<={spec.readiness.max_duplicate_rows}",
        max(0, dups - spec.readiness.max_duplicate_rows),
        f"{dups} duplicate rows",
    )

    # rows per time window
    rule = spec.readiness.per_time_window
    if rule is not None and EVENT_TS in out and len(out):
        ts = out[EVENT_TS].dropna().dt.tz_localize(None)
        counts = ts.groupby(ts.dt.to_period(rule.freq.rstrip("S") or "M")).size()
        report.window_counts = {str(k): int(v) for k, v in counts.items()}
        thin = {k: v for k, v in report.window_counts.items() if v < rule.min_rows}
        _check(
            report,
            ts_col,
            f"rows_per_window>={rule.min_rows}",
            len(thin),
            f"thin windows {dict(list(thin.items())[:5])}" if thin else "",
        )

    # rows per sensitive group (nulls are no group: the column's not_null rule covers them)
    for attr in spec.sensitive_attributes:
        if attr in out:
            vc = out[attr].dropna().astype(str).value_counts()
            report.group_counts[attr] = {str(k): int(v) for k, v in vc.items()}
            small = vc[vc < spec.readiness.min_rows_per_group]
            _check(
                report,
                attr,
                f"rows_per_group>={spec.readiness.min_rows_per_group}",
                len(small),
                f"small groups {small.to_dict()}" if len(small) else "",
            )

    typed = (
        out.sort_values([EVENT_TS, *spec.entity_columns], kind="stable") if (report.passed) else out
    )
    return report, typed.reset_index(drop=True)


def render_html(report: ReadinessReport) -> str:
    """A self-contained page a reviewer can read without tools."""
    status = "PASSED" if report.passed else "FAILED"
    color = "#1a7f37" if report.passed else "#cf222e"
    rows = "".join(
        f"<tr class={'ok' if c['passed'] else 'bad'}><td>{html.escape(c['column'])}</td>"
        f"<td>{html.escape(c['rule'])}</td><td>{c['offending']}</td>"
        f"<td>{'pass' if c['passed'] else 'FAIL'}</td></tr>"
        for c in report.checks
    )
    groups = "".join(
        f"<h3>{html.escape(a)}</h3><ul>"
        + "".join(f"<li>{html.escape(k)}: {v}</li>" for k, v in g.items())
        + "</ul>"
        for a, g in report.group_counts.items()
    )
    windows = "".join(f"<li>{k}: {v}</li>" for k, v in report.window_counts.items())
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Data readiness — {html.escape(report.usecase)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}tr.bad{{background:#ffebe9}}</style></head><body>
<h1>Data readiness: {html.escape(report.usecase)}</h1>
<p style="color:{color};font-weight:bold">{status}: {report.rows} rows,
{len(report.findings)} failed rule(s), data through {html.escape(report.data_through)}</p>
<table><tr><th>column</th><th>rule</th><th>offending</th><th>result</th></tr>{rows}</table>
<h2>Rows per time window</h2><ul>{windows}</ul>
<h2>Sensitive groups</h2>{groups}</body></html>"""


def validate(spec: UseCaseSpec, raw_path: Path, out: Path, report_dir: Path) -> ReadinessReport:
    """Check ``raw_path``; write reports always, and ``out`` only if every rule passed."""
    if not raw_path.is_file():
        raise FileNotFoundError(f"raw data not found: {raw_path} (run `shipway data ingest`)")
    try:
        raw = pd.read_parquet(raw_path)
    except Exception as exc:
        raise ValidationFailed(
            ReadinessReport(spec.name, 0, [Finding(str(raw_path), "readable", 1, str(exc))])
        ) from exc
    report, typed = check(spec, raw)
    write_json(report.to_dict(), report_dir / "readiness.json")
    write_text(render_html(report), report_dir / "readiness.html")
    if not report.passed:
        raise ValidationFailed(report)
    write_parquet(typed, out)
    log.info("validated %d rows of %s into %s", len(typed), spec.name, out)
    return report
