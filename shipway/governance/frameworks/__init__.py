"""Regulatory frameworks as data: one YAML file per framework, read by ``compliance``.

Each file says, per requirement, which recorded evidence satisfies it (gate records and
their criteria, card sections, lineage fields, bundle files). The files are versioned
and reviewed like code; ``shipway.governance.compliance.load_framework`` validates them.
"""
