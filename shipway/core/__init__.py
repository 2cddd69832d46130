"""The core every layer imports: the use-case spec, settings, the registry client,
evidence records, lineage records, the prediction log, the model frame. Small and
dependency-light; it imports nothing of Shipway above it."""
