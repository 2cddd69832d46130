"""Client errors are one WARNING line in the log, without the request's values.

BentoML logs every request it refuses (a pydantic ``ValidationError`` answered 400, a
``BentoMLException`` with a 4xx code) at ERROR, with the full traceback, whose frames
and message carry the values the client sent: an outside fuzzing run left 1,237 ERROR
tracebacks and 3.8 MB of log for 3,002 requests (issue 16). A refused request is not a
fault of the service; its values may be personal data. :class:`ClientErrorLines`
rewrites such a record into one line naming the route, the status and the kinds of
error (pydantic's error types, never its inputs or messages); records of 5xx keep their
traceback.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

BENTOML_HTTP_LOGGER = "bentoml._internal.server.http_app"
"""Where BentoML's ``log_exception`` writes (``_bentoml_impl.server.app`` calls it)."""


def client_status(exc: BaseException) -> int | None:
    """The 4xx status BentoML answers ``exc`` with, or None (a server error)."""
    if isinstance(exc, ValidationError):
        return 400
    from bentoml.exceptions import BentoMLException

    if isinstance(exc, BentoMLException):
        code = int(exc.error_code.value)
        return code if 400 <= code < 500 else None
    return None


def summary(exc: BaseException) -> str:
    """What went wrong, without a value the client sent."""
    if isinstance(exc, ValidationError):
        kinds = sorted({str(e.get("type", "?")) for e in exc.errors(include_input=False)})
        n = exc.error_count()
        return f"{n} validation error{'s' if n != 1 else ''} ({', '.join(kinds)})"
    return type(exc).__name__


class ClientErrorLines(logging.Filter):
    """Turns BentoML's ERROR-with-traceback for a 4xx into one WARNING line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        status = client_status(exc) if exc is not None else None
        if exc is None or status is None:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        path = str(args[0]) if args else "?"
        method = str(args[1]) if len(args) > 1 else "?"
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = "client error %d on %s %s: %s"
        record.args = (status, method, path, summary(exc))
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def install() -> None:
    """Put the filter on BentoML's HTTP logger once (idempotent; called per worker)."""
    logger = logging.getLogger(BENTOML_HTTP_LOGGER)
    if not any(isinstance(f, ClientErrorLines) for f in logger.filters):
        logger.addFilter(ClientErrorLines())
