"""The Feast repository of Shipway: feature definitions built from the use-case specs.

Importing the package loads Feast once, without typeguard's per-process instrumentation
(``feature_repo.feastload`` says why), before any module here imports it.
"""

from feature_repo import feastload

feastload.load()
