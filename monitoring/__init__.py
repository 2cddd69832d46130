"""Monitoring: drift and performance monitor, Prometheus rules, dashboards, retraining."""
