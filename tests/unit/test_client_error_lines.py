"""A refused request is one WARNING line without the request's values; a 5xx keeps its
traceback. The records go through BentoML's own ``log_exception`` (the function its
HTTP app calls for every failed request) with the filter the service installs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from bentoml._internal.server.http_app import log_exception
from bentoml.exceptions import InvalidArgument, ServiceUnavailable
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from services import clienterrors

CANARY = "canary-7f3a9-value"


class Row(BaseModel):
    lead_time: int
    agent: str


def _request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/predict", "headers": []})


def _raised(exc: BaseException) -> None:
    """Log ``exc`` from an except block, as BentoML's endpoint wrapper does."""
    try:
        raise exc
    except BaseException:
        log_exception(_request())


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    clienterrors.install()
    clienterrors.install()  # idempotent
    logger = logging.getLogger(clienterrors.BENTOML_HTTP_LOGGER)
    assert sum(isinstance(f, clienterrors.ClientErrorLines) for f in logger.filters) == 1
    with caplog.at_level(logging.INFO, logger=clienterrors.BENTOML_HTTP_LOGGER):
        yield caplog


def _text(records: list[logging.LogRecord], caplog: pytest.LogCaptureFixture) -> str:
    return caplog.text + "".join(r.exc_text or "" for r in records)


def test_validation_error_is_one_warning_without_values(
    captured: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(ValidationError) as err:
        Row.model_validate_json(f'{{"lead_time": "{CANARY}", "agent": {{"x": "{CANARY}"}}}}')
    _raised(err.value)
    records, caplog = captured.records, captured
    assert len(records) == 1
    (rec,) = records
    assert rec.levelno == logging.WARNING and rec.exc_info is None
    line = rec.getMessage()
    assert line.startswith("client error 400 on POST /predict: 2 validation errors")
    assert "int_parsing" in line and "string_type" in line
    assert CANARY not in _text(records, caplog) and "Traceback" not in caplog.text


def test_bentoml_4xx_is_a_warning_and_5xx_keeps_its_traceback(
    captured: pytest.LogCaptureFixture,
) -> None:
    _raised(InvalidArgument(f"bad value {CANARY}"))
    _raised(ServiceUnavailable("store down"))
    _raised(RuntimeError("scoring broke"))
    records, caplog = captured.records, captured
    assert [r.levelno for r in records] == [logging.WARNING, logging.ERROR, logging.ERROR]
    assert records[0].getMessage() == "client error 400 on POST /predict: InvalidArgument"
    assert CANARY not in _text(records, caplog)
    assert all(r.exc_info is not None for r in records[1:])
    assert caplog.text.count("Traceback") == 2
