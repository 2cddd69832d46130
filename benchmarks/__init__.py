"""Benchmarks: each measures Shipway against a baseline in the same run and reports ratios."""
