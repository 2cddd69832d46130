"""Where a command's records go: the terminal (what the user can act on) and a log file
(everything, full-length, with credentials masked).

:func:`configure` sets up both for one command: every log record, every warning (as a
``py.warnings`` record that knows whether it came from this project or a library) and
any line handed to :func:`to_log` reach ``<state_dir>/logs/<command>-<timestamp>.log``;
the terminal gets errors, Shipway's own INFO and first-party warnings, or everything
with ``--verbose``. ``shipway.cli.output`` builds the user-facing lines on top.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings
from datetime import datetime
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.logging import RichHandler

from shipway.core.redaction import Redactor

OURS = ("shipway", "pipelines", "services", "monitoring", "feature_repo", "benchmarks")
"""Loggers whose INFO records are meant for the user (the rest goes to the log file)."""
STEP_DETAIL = ("pipelines.steps", "shipway.core.registry")
"""The pipeline components' own progress and the registry client's (their INFO goes to
the log file): kfp.local runs them in processes whose output is captured, and an
in-process run says no more."""
NOISY = ("feast", "urllib3", "alembic", "dvc", "httpx", "httpcore", "git")
"""Held at WARNING even in the file: per-request and per-call chatter (and httpcore's
request lines, which must not land in a log)."""
MLFLOW_LOGGERS = ("mlflow", "sqlalchemy.engine", "alembic", "huey")
"""The loggers MLflow gives a stderr handler of its own (and no propagation) on import."""
KEEP_LOGS = 50
"""Log files kept per state directory; older ones are removed when a new one starts."""


# ---------------------------------------------------------------- redaction
# the masking itself lives in the core (shipway.core.redaction), so banners, errors and
# every layer's messages use the same one; here it is applied to every record


class _Redacting(logging.Filter):
    """Rewrites each record's message redacted, before any handler formats it."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        return True


class _RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted record, tracebacks included."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


# ---------------------------------------------------------------- terminal or file
def first_party(filename: str) -> bool:
    """Whether a warning was raised in this project's code (the user's to act on), not
    in an installed library or the standard library."""
    path = Path(filename)
    if not path.is_absolute() or {"site-packages", "dist-packages"} & set(path.parts):
        return False
    root = Path(__file__).resolve().parents[2]
    return path.resolve().is_relative_to(root)


def _showwarning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` as a log record that knows where the warning came from.

    The message comes first and the place after it, on one line: the standard layout
    (``/long/path.py:9: UserWarning: message`` plus the source line) puts the message at
    the end of a line a narrow terminal cuts off."""
    ours = first_party(filename)
    where = Path(filename)
    if ours:
        where = where.resolve().relative_to(Path(__file__).resolve().parents[2])
    logging.getLogger("py.warnings").warning(
        "%s: %s (%s:%d)", category.__name__, message, where, lineno, extra={"first_party": ours}
    )


class _TerminalFilter(logging.Filter):
    """By default: errors, Shipway's own INFO and first-party warnings. Verbose: all."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose or record.levelno >= logging.ERROR:
            return True
        if record.name == "py.warnings":
            return bool(getattr(record, "first_party", False))
        if record.name.startswith(STEP_DETAIL) and record.levelno < logging.WARNING:
            return False
        return record.name.split(".")[0] in OURS


# ---------------------------------------------------------------- the log file
def log_file_name(command: str, now: datetime | None = None) -> str:
    """``<command>-<YYYYmmdd-HHMMSS>.log`` (the command's words joined by '-')."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^\w.-]+", "-", command).strip("-.") or "shipway"
    return f"{safe}-{stamp}.log"


def prune_logs(log_dir: Path, keep: int = KEEP_LOGS) -> None:
    """Remove all but the newest ``keep`` log files, so the folder stays small."""
    logs = sorted(log_dir.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in logs[keep:]:
        with contextlib.suppress(OSError):
            old.unlink()


_file: logging.Handler | None = None
_path: Path | None = None


def configure(
    command: str, *, verbose: bool, log_dir: Path | None, terminal: Console
) -> Path | None:
    """Route logging and warnings for one command; returns the log file's path.

    The file is opened on the first record, so a command that has nothing to say leaves
    none behind; without a usable ``log_dir`` there is no file and the terminal still
    works.
    """
    global _file, _path
    redact = Redactor.from_env()
    to_terminal = RichHandler(
        console=terminal, show_path=False, show_time=verbose, rich_tracebacks=True
    )
    to_terminal.setFormatter(logging.Formatter("%(message)s"))
    to_terminal.addFilter(_Redacting(redact))
    to_terminal.addFilter(_TerminalFilter(verbose))
    handlers: list[logging.Handler] = [to_terminal]
    _file, _path = None, None
    if log_dir is not None:
        with contextlib.suppress(OSError):
            log_dir.mkdir(parents=True, exist_ok=True)
            prune_logs(log_dir, KEEP_LOGS - 1)
            path = log_dir / log_file_name(command)
            if path.exists():
                path = path.with_name(f"{path.stem}-{os.getpid()}.log")
            to_file = logging.FileHandler(path, delay=True, encoding="utf-8")
            to_file.addFilter(_Redacting(redact))
            to_file.setFormatter(_RedactingFormatter(redact))
            handlers.append(to_file)
            _file, _path = to_file, path
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, handlers=handlers, force=True
    )
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.simplefilter("default")  # each distinct warning once, into the log
    warnings.showwarning = _showwarning
    # MLflow's loggers write to stderr past any handler unless told not to configure
    # themselves: this way their records take the same route as every other library's
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    if "mlflow" in sys.modules:  # configured already (imported earlier in this process)
        for name in MLFLOW_LOGGERS:
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = [], True
    if not verbose:  # MLflow's per-download tqdm bars (also in the pipeline's steps)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return _path


def close() -> None:
    """Close the log file (a record logged later opens it again, appending)."""
    if _file is not None:
        _file.close()


def log_path() -> Path | None:
    """This command's log file (it exists once anything was logged)."""
    return _path


def to_log(text: str, source: str = "shipway") -> None:
    """A line for the log file only.

    It goes straight to the file's handler, not through the logging tree: kfp.local
    swaps the root handlers for one that writes to ``sys.stdout`` while a component
    runs, and that stream is the capture calling here (a loop otherwise)."""
    if _file is not None:
        name = f"shipway.out.{source}"
        _file.handle(logging.LogRecord(name, logging.INFO, __file__, 0, text, None, None))


def log_exception(message: str, exc: BaseException) -> None:
    """A failure with its traceback, for the log file only (the terminal gets the
    command's own one-line error, or Python's traceback when it is not expected)."""
    if _file is not None:
        info = (type(exc), exc, exc.__traceback__)
        _file.handle(
            logging.LogRecord("shipway.cli", logging.ERROR, __file__, 0, message, None, info)
        )
