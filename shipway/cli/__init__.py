"""The ``shipway`` command line: the front door to every stage of the platform."""

from __future__ import annotations

from shipway.cli import access as _access  # noqa: F401  (registers commands)
from shipway.cli import assess as _assess  # noqa: F401
from shipway.cli import batch as _batch  # noqa: F401
from shipway.cli import data as _data  # noqa: F401
from shipway.cli import demo as _demo  # noqa: F401
from shipway.cli import features as _features  # noqa: F401
from shipway.cli import governance as _governance  # noqa: F401
from shipway.cli import monitor as _monitor  # noqa: F401
from shipway.cli import portfolio as _portfolio  # noqa: F401
from shipway.cli import serve as _serve  # noqa: F401
from shipway.cli import train as _train  # noqa: F401
from shipway.cli import usecase as _usecase  # noqa: F401
from shipway.cli.app import app

__all__ = ["app"]
