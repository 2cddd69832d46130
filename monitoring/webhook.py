"""The retraining trigger's HTTP face: alert receivers, health, metrics, its OpenAPI.

- ``POST /alertmanager``: Alertmanager's webhook; route ``shipway_action="retrain"``
  alerts here, with ``http_config: authorization: {type: Bearer, credentials_file: ...}``.
- ``POST /api/v2/alerts``: what Prometheus itself pushes to an Alertmanager (see
  ``monitoring.alerts``), with ``alerting.alertmanagers[].authorization`` set the same way.
- ``GET /healthz``, ``GET /metrics`` (``shipway_retrain_triggers_total``) and
  ``GET /openapi.json``: open, like the prediction service's probes and metrics.

A retraining costs a pipeline run, so the receivers are not for anyone who can reach the
port: they need the bearer token (``SHIPWAY_TRIGGER_TOKEN`` or ``SHIPWAY_TRIGGER_TOKEN_FILE``,
compared in constant time; a 401 says nothing more), the server binds loopback unless
told otherwise, and it refuses to start without a token unless explicitly made insecure
for local use, on loopback only. A body is refused from its headers before it is read
(``monitoring.httpbody``), validated strictly (``monitoring.alerts``), and any failure is
a 4xx or a logged 500, never a dropped connection with a traceback.

A firing alert asks for retraining when it is ShipwayDataDrift or
ShipwayPerformanceDegraded, or carries ``shipway_action="retrain"``; it names its use
case in the ``usecase`` label. Other alerts of a known use case, and resolved ones, are
logged as ``ignored``. Retraining runs in a background thread: both senders time out
after seconds, a pipeline takes minutes.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitoring.alerts import Alert, PayloadError, parse_alerts
from monitoring.httpbody import BodyError, read_body
from monitoring.trigger import RetrainTrigger
from monitoring.webhook_openapi import openapi
from shipway.core.settings import Settings
from shipway.core.spec import SpecError
from shipway.core.usecases import list_usecases, load_usecase

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024
MIN_TOKEN_CHARS = 16
DRAIN_BYTES = MAX_BODY
"""After refusing a body unread, up to this much of what the client already sent is
discarded before closing, so the refusal reaches it instead of a connection reset."""
_TOKEN = re.compile(r"[\x21-\x7e]+")
RECEIVERS = {"/alertmanager": "alertmanager", "/api/v2/alerts": "prometheus"}
ROUTES = {
    **{path: ("POST",) for path in RECEIVERS},
    "/healthz": ("GET",),
    "/metrics": ("GET",),
    "/openapi.json": ("GET",),
}


class TokenError(ValueError):
    """The trigger's token setting is missing, unreadable or too weak (never echoed)."""


def trigger_token(settings: Settings) -> str | None:
    """The bearer token the receivers require, from ``SHIPWAY_TRIGGER_TOKEN`` or the file
    named by ``SHIPWAY_TRIGGER_TOKEN_FILE`` (surrounding whitespace dropped, as Prometheus
    and Alertmanager do with ``credentials_file``); None when neither is set."""
    inline, path = settings.trigger_token, settings.trigger_token_file
    if inline is not None and path is not None:
        raise TokenError("set SHIPWAY_TRIGGER_TOKEN or SHIPWAY_TRIGGER_TOKEN_FILE, not both")
    if path is not None:
        try:
            token, where = path.read_text(encoding="utf-8").strip(), f"the file {path}"
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise TokenError(f"SHIPWAY_TRIGGER_TOKEN_FILE: cannot read {path}: {reason}") from None
    elif inline is not None:
        token, where = inline.get_secret_value().strip(), "SHIPWAY_TRIGGER_TOKEN"
    else:
        return None
    if len(token) < MIN_TOKEN_CHARS or not _TOKEN.fullmatch(token):
        raise TokenError(
            f"the trigger token in {where} must be at least {MIN_TOKEN_CHARS} printable "
            "characters without spaces (e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')"
        )
    return token


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bearer_matches(header_values: list[str], token: str) -> bool:
    """Exactly one ``Authorization: Bearer <token>`` with the right token, compared in
    constant time (the comparison runs whatever the scheme, so timing says nothing)."""
    value = header_values[0] if len(header_values) == 1 else ""
    scheme, _, given = value.strip().partition(" ")
    same = hmac.compare_digest(given.strip().encode(), token.encode())
    return same and scheme.lower() == "bearer"


def handle(trigger: RetrainTrigger, alerts: list[Alert], source: str) -> list[dict[str, Any]]:
    """One decision per use case asking for retraining, one ``ignored`` per other alert
    of a known use case; alerts naming no known use case are counted in one log line
    (their labels are the sender's data, and a label is never used as a path)."""
    known = set(list_usecases(trigger.settings))
    decisions: list[dict[str, Any]] = []
    wanted: dict[str, list[Alert]] = {}
    unknown = 0
    for a in alerts:
        if a.usecase not in known:
            unknown += 1
        elif a.firing and a.wants_retrain:
            wanted.setdefault(a.usecase, []).append(a)
        else:
            why = "resolved" if not a.firing else "not a retraining alert"
            decisions.append(trigger.ignore(a.usecase, f"{a.name}: {why}", source, alert=a.labels))
    if unknown:
        log.info("%d alert(s) from %s without a known usecase label ignored", unknown, source)
    for usecase, group in wanted.items():
        names = sorted({a.name for a in group})
        try:
            spec = load_usecase(usecase, trigger.settings)
        except SpecError:
            log.warning("retraining requested for %s, whose spec does not load", usecase)
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
    timeout = 30  # seconds per socket read: a slow client cannot hold a thread forever
    server_version = "shipway-trigger"
    sys_version = ""
    _unread = False

    # ------------------------------------------------------------- answers
    def _send(
        self, code: int, body: bytes, ctype: str = "application/json", **headers: str
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, obj: Any, **headers: str) -> None:
        self._send(code, json.dumps(obj, default=str).encode(), **headers)

    def _refuse(self, code: int, message: str, **headers: str) -> None:
        """A 4xx/5xx answer; the connection closes after it (a body may be unread)."""
        self.close_connection = True
        try:
            self._json(code, {"error": message}, Connection="close", **headers)
            self.wfile.flush()
        except OSError:
            return
        if self._unread:
            self._drain()

    def _drain(self) -> None:
        """Discard what the client already sent (bounded in bytes and time) so it reads
        the refusal instead of a reset; nothing of it is kept."""
        deadline, left = time.monotonic() + 1.0, DRAIN_BYTES
        try:
            self.connection.settimeout(0.2)
            while left > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    # ------------------------------------------------------------- dispatch
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def __getattr__(self, name: str) -> Callable[[], None]:
        """Any other method (PUT, DELETE, HEAD, a made-up one): 405, not the stdlib's 501."""
        if name.startswith("do_"):
            return lambda: self._dispatch(name[3:])
        raise AttributeError(name)

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        self._unread = method not in ("GET", "HEAD")
        allowed = ROUTES.get(path)
        try:
            if allowed is None:
                self._refuse(404, "no such route")
            elif method not in allowed:
                self._refuse(405, "method not allowed", Allow=", ".join(allowed))
            elif path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/metrics":
                self._send(200, generate_latest(self.server.trigger.registry), CONTENT_TYPE_LATEST)
            elif path == "/openapi.json":
                self._json(200, openapi())
            else:
                self._receive(RECEIVERS[path])
        except BodyError as exc:
            self._refuse(exc.status, exc.message)
        except PayloadError as exc:
            self._refuse(400, str(exc))
        except (TimeoutError, ConnectionError):
            self.close_connection = True  # the client stalled or went away: nobody to answer
        except Exception:
            log.exception("trigger: %s %s failed", method, path)
            self._refuse(500, "internal error")

    def _receive(self, source: str) -> None:
        token = self.server.token
        if token is not None and not bearer_matches(
            self.headers.get_all("Authorization", []), token
        ):
            return self._refuse(401, "unauthorized", WWW_Authenticate="Bearer")
        media = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media != "application/json":
            return self._refuse(415, "the body must be application/json")
        body = read_body(self.headers, self.rfile, self.server.max_body)
        self._unread = False
        alerts = parse_alerts(body, source)
        self._json(200, {"decisions": handle(self.server.trigger, alerts, source)})

    # ------------------------------------------------------------- logging
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line per answer: method, route and status, never the path's query or the
        body (the client's data). A refused token is a warning, other 4xx are INFO."""
        path = urlsplit(getattr(self, "path", "") or "").path
        route = path if path in ROUTES else "(other route)"
        status = int(code) if str(code).isdigit() else 0
        if status == 401:
            level = logging.WARNING
        elif 400 <= status < 500:
            level = logging.INFO
        else:  # a 5xx was logged with its traceback where it happened
            level = logging.DEBUG
        who = self.client_address[0]
        log.log(level, "%s %s from %s -> %s", self.command or "-", route, who, code)

    def log_error(self, format: str, *args: Any) -> None:
        """The stdlib's own refusals (malformed request line or headers): their text
        quotes the request, so only the answer's status line is logged (log_request)."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("trigger http: %s", format.split(" ", 1)[0])


class TriggerServer(ThreadingHTTPServer):
    """The trigger's HTTP server; ``serve_forever()`` it, ``shutdown()`` to stop.

    ``token`` is required: ``None`` only with ``insecure=True``, which is refused on any
    address but loopback and logs a warning.
    """

    daemon_threads = True

    def __init__(
        self,
        trigger: RetrainTrigger,
        host: str = "127.0.0.1",
        port: int = 9109,
        *,
        token: str | None,
        insecure: bool = False,
        max_body: int = MAX_BODY,
    ) -> None:
        if token is None and not insecure:
            raise TokenError(
                "the retraining webhook needs a bearer token; set SHIPWAY_TRIGGER_TOKEN_FILE "
                "(or SHIPWAY_TRIGGER_TOKEN), or run it insecure on loopback for local use"
            )
        if token is None and not is_loopback(host):
            raise TokenError(f"an insecure webhook (no token) may only bind loopback, not {host}")
        super().__init__((host, port), _Handler)
        self.trigger, self.token, self.max_body = trigger, token, max_body
        if token is None:
            log.warning(
                "INSECURE: the retraining webhook on %s:%d accepts alerts from anyone who "
                "can reach it, without a token. Local use only; set SHIPWAY_TRIGGER_TOKEN_FILE "
                "for anything else.",
                host,
                self.server_address[1],
            )
        for usecase in list_usecases(trigger.settings):
            trigger.init_usecase(usecase)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """An error outside a request's own handling: logged, not printed to stderr."""
        log.error("trigger: connection from %s failed", client_address[0], exc_info=True)
