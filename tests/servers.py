"""Real Redis and PostgreSQL servers for integration tests, started on free ports.

.ci/run installs the Debian packages; locally a missing binary skips (CI=true: fails).
PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shipway.core.net import free_port


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextmanager
def redis_server(port: int | None = None) -> Iterator[str]:
    """A throwaway Redis (no persistence); yields 'host:port' (Feast connection string).

    ``port`` brings one up where a client was already pointed (a store coming back)."""
    binary = redis_binary()
    assert binary, "redis-server not installed"
    port = port or free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def postgres_server(password: str | None = None) -> Iterator[str]:
    """A throwaway PostgreSQL cluster; yields a postgresql:// URL with a `shipway` database.

    With ``password``, TCP logins need a password (scram-sha-256, as on a real server) and
    the superuser `shipway` has that one; without, every login is trusted."""
    bindir = pg_bindir()
    assert bindir, "PostgreSQL server binaries not installed"
    root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="shipway-pg-"))
    data = base / "data"
    port = free_port()

    def run(*args: str) -> None:
        cmd = list(args)
        if root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    if root:
        shutil.chown(base, "postgres", "postgres")
    auth = ["--auth=trust"]
    if password is not None:
        pwfile = base / "pwfile"
        pwfile.write_text(password)
        if root:
            shutil.chown(pwfile, "postgres", "postgres")
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
    run(str(bindir / "initdb"), "-D", str(data), "-U", "shipway", *auth, "-E", "UTF8")
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(base / "log"),
        "-w",
        "-o",
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
        "start",
    )
    try:
        run(str(bindir / "createdb"), "-h", str(base), "-p", str(port), "-U", "shipway", "shipway")
        login = "shipway" if password is None else f"shipway:{password}"
        yield f"postgresql://{login}@127.0.0.1:{port}/shipway"
    finally:
        try:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(base, ignore_errors=True)
