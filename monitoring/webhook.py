"""The retraining trigger's HTTP face: alert receivers, health and metrics.

- ``POST /alertmanager``: Alertmanager's webhook (``{"status", "alerts": [{"status",
  "labels": {...}}, ...]}``); route ``shipway_action="retrain"`` alerts here.
- ``POST /api/v2/alerts``: the Alertmanager API that Prometheus itself pushes to (a JSON
  list of alerts with ``labels``, ``startsAt``, ``endsAt``), so a bare Prometheus with
  ``alerting.alertmanagers`` pointing at the trigger closes the loop without Alertmanager.
- ``GET /healthz`` and ``GET /metrics`` (``shipway_retrain_triggers_total``).

A firing alert asks for retraining when it is ShipwayDataDrift or
ShipwayPerformanceDegraded, or carries ``shipway_action="retrain"``; it names its use
case in the ``usecase`` label. Anything else, and resolved alerts, are logged as
``ignored``. Retraining runs in a background thread: both senders time out after seconds,
a pipeline takes minutes. The stdlib server keeps the trigger free of web frameworks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitoring.trigger import RetrainTrigger
from shipway.core.spec import SpecError
from shipway.core.usecases import list_usecases, load_usecase

log = logging.getLogger(__name__)
RETRAIN_ALERTS = frozenset({"ShipwayDataDrift", "ShipwayPerformanceDegraded"})
MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class Alert:
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


def _firing_by_time(ends_at: str | None) -> bool:
    """Prometheus pushes no status: an alert whose endsAt has passed is resolved."""
    if not ends_at or ends_at.startswith("0001-"):
        return True
    return datetime.fromisoformat(ends_at.replace("Z", "+00:00")) > datetime.now(UTC)


def parse_alerts(payload: Any, source: str) -> list[Alert]:
    """Alerts from an Alertmanager webhook body or a Prometheus push (a list)."""
    if source == "alertmanager":
        if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
            raise ValueError("an Alertmanager webhook body is an object with an 'alerts' list")
        items, status = payload["alerts"], payload.get("status", "firing")
    elif isinstance(payload, list):
        items, status = payload, None
    else:
        raise ValueError("a Prometheus alert push is a JSON list of alerts")
    out = []
    for a in items:
        labels = {str(k): str(v) for k, v in (a.get("labels") or {}).items()}
        if status is None:
            firing = _firing_by_time(a.get("endsAt"))
        else:
            firing = a.get("status", status) == "firing"
        out.append(Alert(labels.get("alertname", ""), labels, firing, a.get("annotations") or {}))
    return out


def handle(trigger: RetrainTrigger, alerts: list[Alert], source: str) -> list[dict[str, Any]]:
    """One decision per use case asking for retraining, one ``ignored`` per other alert."""
    decisions: list[dict[str, Any]] = []
    wanted: dict[str, list[Alert]] = {}
    for a in alerts:
        if a.firing and a.wants_retrain and a.usecase:
            wanted.setdefault(a.usecase, []).append(a)
        elif a.usecase in list_usecases(trigger.settings):
            why = "resolved" if not a.firing else "not a retraining alert"
            decisions.append(trigger.ignore(a.usecase, f"{a.name}: {why}", source, alert=a.labels))
        else:
            log.info("alert %s without a known usecase label ignored: %s", a.name, a.labels)
    for usecase, group in wanted.items():
        names = sorted({a.name for a in group})
        try:
            spec = load_usecase(usecase, trigger.settings)
        except SpecError as exc:
            log.warning("retraining requested for unknown use case %s: %s", usecase, exc)
            continue
        decisions.append(
            trigger.request(
                spec,
                reason=f"alert {', '.join(names)}",
                source=source,
                wait=False,
                details={"alerts": [a.labels for a in group]},
            )
        )
    return decisions


class _Handler(BaseHTTPRequestHandler):
    server: TriggerServer

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, obj: Any) -> None:
        self._send(code, json.dumps(obj, default=str).encode())

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._json(200, {"status": "ok"})
        elif self.path == "/metrics":
            self._send(200, generate_latest(self.server.trigger.registry), CONTENT_TYPE_LATEST)
        else:
            self._json(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        routes = {"/alertmanager": "alertmanager", "/api/v2/alerts": "prometheus"}
        source = routes.get(self.path)
        if source is None:
            return self._json(404, {"error": f"no route {self.path}"})
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._json(413, {"error": f"body larger than {MAX_BODY} bytes"})
        try:
            alerts = parse_alerts(json.loads(self.rfile.read(length) or b"null"), source)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            return self._json(400, {"error": str(exc)})
        self._json(200, {"decisions": handle(self.server.trigger, alerts, source)})

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class TriggerServer(ThreadingHTTPServer):
    """The trigger's HTTP server; ``serve_forever()`` it, ``shutdown()`` to stop."""

    daemon_threads = True

    def __init__(self, trigger: RetrainTrigger, host: str = "0.0.0.0", port: int = 9109):
        super().__init__((host, port), _Handler)
        self.trigger = trigger
        for usecase in list_usecases(trigger.settings):
            trigger.init_usecase(usecase)
