"""Prediction services (BentoML)."""
