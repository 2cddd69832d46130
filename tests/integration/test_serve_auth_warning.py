"""A local service with authentication off says so (issue 16, point 7): ``shipway serve``
without ``SHIPWAY_API_TOKEN`` logs a warning naming the open endpoints and the address;
with a token it does not (and never prints the token)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.integration
TOKEN = "tok-canary-0c1d2e3f4a5b"


def _banner(tmp_path: Path, **env: str) -> str:
    """What `shipway serve` writes until its 'serving' banner (then it is stopped)."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if k != "SHIPWAY_API_TOKEN"}
    out = tmp_path / f"serve-{port}.log"
    with out.open("wb") as fh:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "shipway"), "serve", "--port", str(port)],
            cwd=ROOT,
            env={**base, "SHIPWAY_STATE_DIR": str(tmp_path / "state"), **env},
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "serving" not in out.read_text(errors="replace"):
            assert proc.poll() is None or "serving" in out.read_text(), out.read_text()[-2000:]
            assert time.monotonic() < deadline, out.read_text()[-2000:]
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    return re.sub(r"\s+", " ", out.read_text(errors="replace"))


def test_serve_without_a_token_warns_and_with_one_does_not(tmp_path: Path) -> None:
    text = _banner(tmp_path)
    assert "authentication is off: SHIPWAY_API_TOKEN is not set" in text, text[-2000:]
    assert "accept anonymous calls" in text
    protected = _banner(tmp_path, SHIPWAY_API_TOKEN=TOKEN)
    assert "authentication is off" not in protected, protected[-2000:]
    assert TOKEN not in protected
