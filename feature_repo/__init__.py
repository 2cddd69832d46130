"""The Feast repository of Shipway: feature definitions built from the use-case specs."""
