"""Fixtures several integration modules serve from: the hotel champion and its service.

Module-scoped: each module gets its own copy of the session registry with the session's
trained version as champion, so a module that moves aliases or swaps models there never
disturbs another (the training itself is shared: ``session_champion``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from shipway.core.launch import ServiceHandle, start_service, wait_ready
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from tests.conftest import free_port, registry_copy, require, session_champion, tool_env


@pytest.fixture(scope="module")
def champion(
    request: pytest.FixtureRequest,
    settings: Settings,
    feast_store: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """The registry and version to serve: ``trained``'s version, made champion in a copy
    of the session registry (serving tests never move the shared aliases).

    Only the gate's documented latency criterion may have failed (conftest's
    ``session_champion``): any other failure of training fails every test that serves.
    """
    version = session_champion(request)
    served = registry_copy(settings, tmp_path_factory.mktemp("served-registry"), version)
    return {"uri": served.tracking_uri, "version": version}


@pytest.fixture(scope="module")
def server(settings: Settings, hotel: UseCaseSpec, champion: dict) -> Iterator[ServiceHandle]:
    """``bentoml serve`` of the champion, ready, for the module's tests."""
    require(shutil.which("bentoml", path=tool_env()["PATH"]) is not None, "bentoml CLI missing")
    env = {"SHIPWAY_MLFLOW_TRACKING_URI": champion["uri"]}
    handle = start_service(settings, hotel, free_port(), env=env, base_env=tool_env())
    try:
        wait_ready(handle)
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def champion_model(settings: Settings, champion: dict) -> Any:
    """The champion's registered pipeline, loaded from the module's registry copy."""
    from shipway.core import registry

    registry.connect(champion["uri"])
    model = registry.load(f"models:/hotel_rates/{champion['version']}")
    registry.connect(settings.tracking_uri)
    return model
