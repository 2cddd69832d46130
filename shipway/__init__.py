"""Shipway: the shared core (use-case spec, settings, governance, lineage, CLI)."""

__version__ = "0.1.0"
