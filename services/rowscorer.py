"""The exact fast scorer of a registered pipeline, shared with the batch pipeline: it lives
in :mod:`shipway.scoring.rowscorer`; the service's modules keep importing it from here."""

from shipway.scoring.rowscorer import Columns, Predict, TreeRows, native, predictor, probe_columns

__all__ = ["Columns", "Predict", "TreeRows", "native", "predictor", "probe_columns"]
