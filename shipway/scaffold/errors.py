"""The one error ``shipway init`` raises for data it cannot turn into a use case."""

from __future__ import annotations


class ScaffoldError(ValueError):
    """The data cannot become a use case as given (the message says what to change)."""
