"""Spreading keep-alive connections over a service's workers.

BentoML's workers accept connections from one shared listening socket, and whichever
worker wakes first takes the connection. A client that opens its pool at once (a load
balancer, wrk's 64 connections) is therefore split unevenly and stays so: measured
under the load benchmark, 49/15, 48/16 and once 64/0 connections over two workers, so one
worker queued more than a core can answer while the other idled (issue 15).

:class:`Rebalancer` lets an overloaded worker hand connections back: while more than
``busy`` requests are in flight in this worker, at most one response per
``every_seconds`` carries ``Connection: close``. The client (HTTP/1.1 keep-alive, as
every pool does) reconnects, and the new connection goes to whichever worker accepts
first, more likely the idle one. The request itself is answered normally; only the
connection it came on ends after it, as gRPC's ``MAX_CONNECTION_AGE`` or Envoy's
``max_requests_per_connection`` do. With one worker there is nowhere to move a
connection, so the service turns it off (``busy`` 0).
"""

from __future__ import annotations

import time
from typing import Any

CLOSE = (b"connection", b"close")


class Rebalancer:
    """Counts this worker's requests in flight and says when to close a connection."""

    def __init__(self, busy: int, every_seconds: float = 0.1, quiet_seconds: float = 0.1) -> None:
        self.busy = busy
        """More requests in flight than this: the worker sheds a connection (0: never)."""
        self.every = every_seconds
        self.inflight = 0
        self.closed = 0
        """Connections handed back so far (observability and tests)."""
        self._last = float("-inf")
        self.quiet = quiet_seconds
        """How long a worker counts as crowded after it last saw two clients at once."""
        self._client: Any = None
        self._crowded_until = float("-inf")

    def start(self, client: Any = None) -> None:
        """A request begins; ``client`` is its connection's (host, port) when known."""
        self.inflight += 1
        if self.inflight > 1 or client != self._client:
            self._crowded_until = time.monotonic() + self.quiet
        self._client = client

    def alone(self) -> bool:
        """Whether the request asking is a lone client's: the only one in flight, from
        the connection the worker's previous request came on, and no other in the last
        ``quiet`` seconds.

        The count in flight alone cannot tell: a request scored on the event loop keeps
        the loop from reading the others, so under load each would see itself alone and
        every request would be served one at a time (measured: 2,206 -> 1,431 req/s at
        16 connections). Requests that keep coming from different connections show the
        crowd even then.
        """
        return self.inflight <= 1 and time.monotonic() >= self._crowded_until

    def finish(self) -> None:
        self.inflight -= 1

    def close_now(self, now: float | None = None) -> bool:
        """Whether the response being sent should end its connection."""
        if not self.busy or self.inflight <= self.busy:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last < self.every:
            return False
        self._last = now
        self.closed += 1
        return True
