"""Feast CLI entry point: ``feast -c feature_repo apply`` discovers these objects.

They are generated from every use-case spec (see objects.py), the same way the
``shipway features apply`` command builds them, so there is one definition of each.
"""

from feature_repo.objects import build_objects
from shipway.core.settings import get_settings
from shipway.core.usecases import load_all

_settings = get_settings()
for _spec in load_all(_settings):
    for _obj in build_objects(_spec, _settings.data):
        globals()[f"{type(_obj).__name__}__{_obj.name}"] = _obj
