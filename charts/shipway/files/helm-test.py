"""`helm test` for one prediction service: ready, protected, and answering.

1. GET /readyz until it answers 200 (the model and the feature store are loaded);
2. when a token file is mounted, POST /predict without it must be refused (401/403);
3. POST /predict with the example body (and the token) must answer 200 with a JSON object
   holding every expected key.

Standard library only, so it runs in any Python image. Configuration by environment:
SHIPWAY_TEST_URL, SHIPWAY_TEST_REQUEST (path of the JSON body), SHIPWAY_TEST_TOKEN_FILE
(optional), SHIPWAY_TEST_READY_TIMEOUT (seconds), SHIPWAY_TEST_POLL_SECONDS,
SHIPWAY_TEST_EXPECT_KEYS (comma list).
Exits non-zero with a one-line reason on any failure.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request


def call(method: str, url: str, body: bytes | None = None, token: str | None = None):
    """Return (status, body bytes); HTTP errors are answers, not exceptions."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def fail(message: str) -> None:
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def main() -> None:
    base = os.environ["SHIPWAY_TEST_URL"].rstrip("/")
    with open(os.environ["SHIPWAY_TEST_REQUEST"], "rb") as fh:
        body = fh.read()
    json.loads(body)  # a broken example is a chart bug: fail loudly here
    token_file = os.environ.get("SHIPWAY_TEST_TOKEN_FILE", "")
    token = None
    if token_file and os.path.exists(token_file):
        with open(token_file, encoding="utf-8") as fh:
            token = fh.read().strip()
    timeout = float(os.environ.get("SHIPWAY_TEST_READY_TIMEOUT", "300"))
    poll = float(os.environ.get("SHIPWAY_TEST_POLL_SECONDS", "2"))
    expect = [k for k in os.environ.get("SHIPWAY_TEST_EXPECT_KEYS", "").split(",") if k]

    deadline = time.monotonic() + timeout
    status, last = 0, b""
    while time.monotonic() < deadline:
        try:
            status, last = call("GET", f"{base}/readyz")
        except OSError as err:  # connection refused / DNS while pods start
            status, last = 0, str(err).encode()
        if status == 200:
            break
        time.sleep(poll)
    if status != 200:
        fail(f"/readyz did not answer 200 within {timeout:.0f}s (last: {status} {last[:200]!r})")
    print("ok: /readyz 200", flush=True)

    if token:
        status, last = call("POST", f"{base}/predict", body)
        if status not in (401, 403):
            fail(f"/predict without a token answered {status}, expected 401 or 403")
        print(f"ok: /predict without token refused ({status})", flush=True)

    status, last = call("POST", f"{base}/predict", body, token)
    if status != 200:
        fail(f"/predict answered {status}: {last[:500]!r}")
    try:
        answer = json.loads(last)
    except ValueError:
        fail(f"/predict answer is not JSON: {last[:200]!r}")
    if not isinstance(answer, dict) or not answer:
        fail(f"/predict answer is not a non-empty JSON object: {answer!r}")
    missing = [k for k in expect if k not in answer]
    if missing:
        fail(f"/predict answer lacks {missing}: {answer!r}")
    print(f"ok: /predict 200 {json.dumps(answer)[:500]}", flush=True)


if __name__ == "__main__":
    main()
