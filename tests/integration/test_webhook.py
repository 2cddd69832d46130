"""Hostile input against the real retraining webhook (`shipway trigger serve`, a process).

* No token, a wrong one, another scheme: 401 with nothing more; the right one: 200.
* It binds loopback by default.
* The body's framing is refused from the headers before any of it is read (sent): no
  length 411; a negative, non-numeric, conflicting length or one beside a transfer coding
  400; more than the limit 413, declared or chunked.
* Every media type but JSON is 415; malformed or 100,000-deep JSON is 400.
* Schemathesis (its CLI, all checks, ``--mode all``, every phase) over the served OpenAPI
  document: no failure, no server error.
* Neither the token nor a request's values reach the process's output or log.

The process's state dir holds a fresh retraining of hotel_rates (its cooldown is on), so
a retraining alert is decided (``cooldown``) without a pipeline run.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import pytest

from shipway.core.net import free_port
from tests.conftest import ROOT, require, tool_env

pytestmark = pytest.mark.integration

TOKEN = secrets.token_urlsafe(32)
WRONG = secrets.token_urlsafe(32)
LIMIT = 1024 * 1024
SCHEMATHESIS_EXAMPLES = 60
"""Generated cases per operation and mode; with the coverage phase's cases this sends
several hundred requests (counted below, not assumed) in well under a minute."""
MIN_REQUESTS = 300


@dataclass
class Trigger:
    url: str
    proc: subprocess.Popen[str]
    state: Path
    out: Path

    def output(self) -> str:
        """What the process printed, and every log file it wrote."""
        logs = sorted((self.state / "logs").glob("*.log"))
        return self.out.read_text() + "".join(p.read_text(errors="replace") for p in logs)


def _cooling_down(state: Path) -> None:
    retraining = state / "retraining"
    retraining.mkdir(parents=True)
    now = datetime.now(UTC).isoformat()
    (retraining / "hotel_rates.state.json").write_text(
        json.dumps({"last_started_at": now, "last_reason": "test", "running": None})
    )


@pytest.fixture(scope="module")
def trigger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trigger]:
    exe = shutil.which("shipway", path=tool_env()["PATH"])
    require(exe is not None, "the shipway CLI is not installed in this venv")
    assert exe is not None
    root = tmp_path_factory.mktemp("webhook")
    state, token_file, out = root / "state", root / "token", root / "out.txt"
    _cooling_down(state)
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    port = free_port()
    env = {
        **tool_env(),
        "SHIPWAY_ROOT": str(ROOT),
        "SHIPWAY_STATE_DIR": str(state),
        "SHIPWAY_TRIGGER_TOKEN_FILE": str(token_file),
    }
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [exe, "trigger", "serve", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, out.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail(f"the trigger did not answer within 60 s:\n{out.read_text()}")
        yield Trigger(url, proc, state, out)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _raw(trigger: Trigger, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send a request as given (no client fixes its framing); the status and response."""
    port = int(trigger.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head + b"\r\n" + body)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def _head(*lines: str, auth: str = TOKEN, path: str = "/alertmanager") -> bytes:
    headers = [f"POST {path} HTTP/1.1", "Host: x", f"Authorization: Bearer {auth}", *lines]
    return "".join(h + "\r\n" for h in headers).encode()


JSON = "Content-Type: application/json"
FIRING = json.dumps(
    {
        "status": "firing",
        "alerts": [{"labels": {"alertname": "ShipwayDataDrift", "usecase": "hotel_rates"}}],
    }
).encode()


def test_binds_loopback_by_default(trigger: Trigger) -> None:
    listening = {
        c.laddr.ip
        for c in psutil.Process(trigger.proc.pid).connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening == {"127.0.0.1"}
    assert f"trigger on {trigger.url}" in trigger.out.read_text()


def test_token_required_and_401_says_nothing_more(trigger: Trigger) -> None:
    with httpx.Client(base_url=trigger.url, timeout=10) as c:
        for headers in (
            {},
            {"Authorization": f"Bearer {WRONG}"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": TOKEN},
            {"Authorization": f"Bearer {TOKEN[:-1]}"},
        ):
            r = c.post(
                "/alertmanager", content=FIRING, headers={**headers, **dict([JSON.split(": ")])}
            )
            assert r.status_code == 401, headers
            assert r.json() == {"error": "unauthorized"}
            assert r.headers["WWW-Authenticate"] == "Bearer"
        ok = c.post(
            "/alertmanager",
            content=FIRING,
            headers={"Authorization": f"bearer {TOKEN}", "Content-Type": "application/json"},
        )
        assert ok.status_code == 200, ok.text
        assert [d["outcome"] for d in ok.json()["decisions"]] == ["cooldown"]
        # probes, metrics and the API document stay open
        assert c.get("/healthz").status_code == 200
        assert "shipway_retrain_triggers_total" in c.get("/metrics").text
        assert c.get("/openapi.json").json()["openapi"].startswith("3.")


FRAMING = {
    "no length": ([JSON], 411),
    "negative length": ([JSON, "Content-Length: -1"], 400),
    "non-numeric length": ([JSON, "Content-Length: abc"], 400),
    "signed length": ([JSON, "Content-Length: +5"], 400),
    "conflicting lengths": ([JSON, "Content-Length: 5", "Content-Length: 6"], 400),
    "length and chunked": ([JSON, "Content-Length: 5", "Transfer-Encoding: chunked"], 400),
    "unknown coding": ([JSON, "Transfer-Encoding: gzip"], 400),
    "64 MiB declared": ([JSON, f"Content-Length: {64 * LIMIT}"], 413),
    "limit + 1 declared": ([JSON, f"Content-Length: {LIMIT + 1}"], 413),
}


@pytest.mark.parametrize("case", list(FRAMING))
def test_framing_is_refused_before_the_body_is_sent(trigger: Trigger, case: str) -> None:
    """Only the headers go out: an answer proves the server did not wait for a body."""
    lines, status = FRAMING[case]
    got, data = _raw(trigger, _head(*lines))
    assert got == status, data
    assert b"Traceback" not in data


def test_chunked_body_over_the_limit_is_refused_at_the_chunk_that_passes_it(
    trigger: Trigger,
) -> None:
    head = _head(JSON, "Transfer-Encoding: chunked")
    # a first chunk within the limit, then one declared past it: its data is never sent
    first = b"%x\r\n" % 1000 + b"x" * 1000 + b"\r\n"
    got, data = _raw(trigger, head, first + b"%x\r\n" % LIMIT)
    assert got == 413, data
    # a well-formed chunked body within the limit is read and decided
    body = b"%x\r\n" % len(FIRING) + FIRING + b"\r\n0\r\n\r\n"
    got, data = _raw(trigger, head, body)
    assert got == 200, data
    got, data = _raw(trigger, head, b"zz\r\n{}\r\n0\r\n\r\n")
    assert got == 400, data


MEDIA = {
    "text/plain": 415,
    "multipart/form-data": 415,  # no boundary
    "application/x-www-form-urlencoded": 415,
    "application/xml": 415,
    "": 415,
    "application/json; charset=utf-8": 200,
    "Application/JSON": 200,
}


@pytest.mark.parametrize("media", list(MEDIA))
def test_media_types(trigger: Trigger, media: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": media}
    r = httpx.post(f"{trigger.url}/alertmanager", content=FIRING, headers=headers, timeout=10)
    assert r.status_code == MEDIA[media], r.text


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"alerts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"alerts": [{"labels": {"usecase": 1}}]}',
        b'{"alerts": "x"}',
        b"\xff\xfe not utf-8",
        b"null",
    ],
    ids=[
        "malformed",
        "deep",
        "deep in a field",
        "label not a string",
        "wrong type",
        "bytes",
        "null",
    ],
)
@pytest.mark.parametrize("path", ["/alertmanager", "/api/v2/alerts"])
def test_malformed_bodies_are_400(trigger: Trigger, path: str, body: bytes) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    r = httpx.post(f"{trigger.url}{path}", content=body, headers=headers, timeout=10)
    assert r.status_code == 400, r.text
    assert "error" in r.json()


def test_other_methods_are_405_with_allow(trigger: Trigger) -> None:
    with httpx.Client(base_url=trigger.url, timeout=10) as c:
        for method, path, allow in (
            ("DELETE", "/alertmanager", "POST"),
            ("PUT", "/api/v2/alerts", "POST"),
            ("POST", "/healthz", "GET"),
            ("FROB", "/metrics", "GET"),
        ):
            r = c.request(method, path)
            assert r.status_code == 405 and r.headers["Allow"] == allow, (method, path)
        assert c.get("/nowhere").status_code == 404


def test_schemathesis_all_checks_all_modes(trigger: Trigger, tmp_path: Path) -> None:
    exe = shutil.which("schemathesis", path=tool_env()["PATH"])
    require(exe is not None, "schemathesis is not installed (a dev dependency)")
    assert exe is not None
    har = tmp_path / "run.har"
    proc = subprocess.run(
        [
            exe, "run", f"{trigger.url}/openapi.json",
            "--checks", "all", "--mode", "all",
            "--phases", "examples,coverage,fuzzing,stateful",
            "-H", f"Authorization: Bearer {TOKEN}",
            "--max-examples", str(SCHEMATHESIS_EXAMPLES), "--seed", "16",
            "--generation-database", "none", "--workers", "1",
            "--report", "har", "--report-har-path", str(har), "--no-color",
        ],
        capture_output=True, text=True, timeout=600, env=tool_env(), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    entries = json.loads(har.read_text())["log"]["entries"]
    statuses = Counter(e["response"]["status"] for e in entries)
    assert sum(statuses.values()) >= MIN_REQUESTS, statuses
    assert not [s for s in statuses if s >= 500], statuses
    # accepted and refused bodies, no token, other methods and media types were all sent
    assert {200, 400, 401, 405, 415}.issubset(statuses), statuses


def test_nothing_secret_or_sent_reaches_output_or_log(trigger: Trigger) -> None:
    """Runs after the hostile tests above (same module): the token, the wrong ones
    clients sent and the values they posted appear nowhere the process wrote."""
    canary = "canary-value-" + secrets.token_hex(8)
    body = json.dumps(
        [{"labels": {"alertname": "X", "usecase": canary}, "annotations": {"s": canary}}]
    )
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    assert (
        httpx.post(f"{trigger.url}/api/v2/alerts", content=body, headers=headers).status_code == 200
    )
    bad = {"Authorization": f"Bearer {WRONG}", "Content-Type": "application/json"}
    assert (
        httpx.post(
            f"{trigger.url}/api/v2/alerts?token={canary}", content=body, headers=bad
        ).status_code
        == 401
    )
    time.sleep(0.5)
    text = trigger.output()
    assert "-> 401" in text, "refusals are logged"
    for secret in (TOKEN, WRONG, canary):
        assert secret not in text
    assert "Traceback" not in text
    assert trigger.proc.poll() is None, "still serving"
