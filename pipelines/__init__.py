"""Kubeflow Pipelines v2: thin typed components over plain, unit-tested step functions."""
