"""Plain step functions the KFP components delegate to (unit-tested without KFP)."""
