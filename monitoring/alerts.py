"""What the retraining webhook accepts: the two alert payloads, as typed models.

- Alertmanager's webhook (``POST /alertmanager``): ``{"status", "alerts": [{"status",
  "labels", ...}], ...}``, sent to a ``webhook_configs`` receiver;
- a Prometheus push (``POST /api/v2/alerts``): the Alertmanager v2 API's list of
  postable alerts (``labels``, ``startsAt``, ``endsAt``), so a bare Prometheus whose
  ``alerting.alertmanagers`` points at the trigger closes the loop without Alertmanager.

The models validate strictly (a label value that is not a string is a 400, never coerced
or a 500) and are also the source of the webhook's OpenAPI document
(:func:`monitoring.webhook_openapi.openapi`), so what is documented and what is
accepted cannot drift apart. Both senders add fields over versions: unknown fields are
allowed and ignored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

RETRAIN_ALERTS = frozenset({"ShipwayDataDrift", "ShipwayPerformanceDegraded"})
MAX_ALERTS = 1000
"""Alerts accepted in one request (Prometheus sends at most 64 per push; Alertmanager one
group, here grouped by alert name and use case)."""

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def _rfc3339(text: str) -> str:
    """Check an RFC 3339 date-time exactly as JSON Schema's ``date-time`` format does
    (nanosecond fractions as Go writes them, a leap second, upper or lower case T/Z)."""
    parse_time(text)
    return text


def parse_time(text: str) -> datetime:
    """An RFC 3339 date-time as an aware datetime (fraction cut to microseconds, a leap
    second read as :59, year 0000 as 0001); ``ValueError`` when it is not one."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError("not an RFC 3339 date-time (e.g. 2026-01-01T10:00:00Z)")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zulu, sign, off_h, off_m = m.groups()[6:]
    try:
        tz = UTC
        if not zulu:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            tz = timezone(offset if sign == "+" else -offset)
        if second > 60 or int(off_h or 0) > 23 or int(off_m or 0) > 59:
            raise ValueError("out of range")
        micro = int((frac or "0")[:6].ljust(6, "0"))
        return datetime(max(year, 1), month, day, hour, minute, min(second, 59), micro, tz)
    except ValueError:
        raise ValueError("not an RFC 3339 date-time (a field is out of range)") from None


Timestamp = Annotated[
    str,
    AfterValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def _count(value: float) -> float:
    """A JSON number that is a whole, non-negative count (JSON Schema's ``integer``
    includes ``5.0``, as some encoders write it)."""
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise ValueError("must be a whole non-negative number")
    return value


Count = Annotated[float, AfterValidator(_count), WithJsonSchema({"type": "integer", "minimum": 0})]
Labels = Annotated[
    dict[str, str],
    Field(description="Label names to values; ``alertname`` and ``usecase`` are read."),
]
Status = Literal["firing", "resolved"]


class _Open(BaseModel):
    """Strict types, unknown fields allowed (the senders add some over versions)."""

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)


class PushedAlert(_Open):
    """One alert as Prometheus pushes it to an Alertmanager (API v2 postable alert)."""

    labels: Labels
    annotations: dict[str, str] = Field(default_factory=dict, description="Summary, runbook.")
    starts_at: Timestamp | None = Field(default=None, alias="startsAt")
    ends_at: Timestamp | None = Field(
        default=None,
        alias="endsAt",
        description="Prometheus pushes no status: an alert whose endsAt has passed is resolved.",
    )
    generator_url: str | None = Field(default=None, alias="generatorURL")


class WebhookAlert(PushedAlert):
    """One alert inside an Alertmanager webhook body."""

    status: Status | None = Field(default=None, description="Default: the body's status.")
    fingerprint: str | None = None


class AlertmanagerWebhook(_Open):
    """The body Alertmanager posts to a ``webhook_configs`` receiver."""

    version: str | None = None
    group_key: str | None = Field(default=None, alias="groupKey")
    truncated_alerts: Count | None = Field(default=None, alias="truncatedAlerts")
    status: Status = "firing"
    receiver: str | None = None
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str | None = Field(default=None, alias="externalURL")
    alerts: list[WebhookAlert] = Field(max_length=MAX_ALERTS)


PrometheusPush = Annotated[list[PushedAlert], Field(max_length=MAX_ALERTS)]
_PUSH: TypeAdapter[list[PushedAlert]] = TypeAdapter(PrometheusPush)


@dataclass(frozen=True)
class Alert:
    """One alert, whichever sender: its name, labels and whether it is firing now."""

    name: str
    labels: dict[str, str]
    firing: bool
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def usecase(self) -> str | None:
        return self.labels.get("usecase")

    @property
    def wants_retrain(self) -> bool:
        return self.name in RETRAIN_ALERTS or self.labels.get("shipway_action") == "retrain"


class PayloadError(ValueError):
    """A body that is not the sender's format; the message names the fields, never their
    values (they are request data)."""


def _firing_by_time(ends_at: str | None) -> bool:
    """No endsAt, Go's zero time or a future endsAt: still firing."""
    if ends_at is None:
        return True
    end = parse_time(ends_at)
    return end.year == 1 or end > datetime.now(UTC)


def _explain(exc: ValidationError) -> str:
    where = []
    for err in exc.errors(include_input=False, include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        where.append(f"{loc}: {err['msg']}")
    return "; ".join(where)


def parse_alerts(body: bytes | str | Any, source: str) -> list[Alert]:
    """Alerts from an Alertmanager webhook body or a Prometheus push (JSON text, or the
    decoded value); :class:`PayloadError` names what is wrong."""
    raw = body if isinstance(body, bytes | str) else None
    try:
        if source == "alertmanager":
            am = (
                AlertmanagerWebhook.model_validate_json(raw, strict=True)
                if raw is not None
                else AlertmanagerWebhook.model_validate(body, strict=True)
            )
            return [
                Alert(
                    a.labels.get("alertname", ""),
                    a.labels,
                    (a.status or am.status) == "firing",
                    a.annotations,
                )
                for a in am.alerts
            ]
        pushed = (
            _PUSH.validate_json(raw, strict=True)
            if raw is not None
            else _PUSH.validate_python(body, strict=True)
        )
    except ValidationError as exc:
        what = "an Alertmanager webhook body" if source == "alertmanager" else "a Prometheus push"
        raise PayloadError(f"not {what}: {_explain(exc)}") from None
    return [
        Alert(a.labels.get("alertname", ""), a.labels, _firing_by_time(a.ends_at), a.annotations)
        for a in pushed
    ]
