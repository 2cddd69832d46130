"""Local networking helpers shared by the CLI, benchmarks and tests."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, for a server this process starts next.

    The OS picks it (bind to port 0), so parallel runs do not collide on fixed ports; the
    small window before the server binds it is acceptable for local processes.
    """
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
