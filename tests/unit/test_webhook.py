"""The webhook's rules without a network: body framing, token settings, the bearer check,
the start-up policy, alert timestamps (the real server: tests/integration/test_webhook.py)."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta, timezone
from email.message import Message
from pathlib import Path

import pytest
from pydantic import SecretStr

from monitoring.alerts import PayloadError, parse_alerts, parse_time
from monitoring.httpbody import BodyError, declared_length, read_body
from monitoring.trigger import RetrainTrigger
from monitoring.webhook import TokenError, TriggerServer, bearer_matches, trigger_token
from shipway.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "a-token-of-enough-length-123"


def _headers(*pairs: tuple[str, str]) -> Message:
    m = Message()
    for name, value in pairs:
        m[name] = value
    return m


@pytest.mark.parametrize(
    ("pairs", "status"),
    [
        ((), 411),
        ((("Content-Length", "-1"),), 400),
        ((("Content-Length", "abc"),), 400),
        ((("Content-Length", "1e3"),), 400),
        ((("Content-Length", "٣"),), 400),  # a digit, but not ASCII
        ((("Content-Length", "5"), ("Content-Length", "6")), 400),
        ((("Content-Length", "5, 6"),), 400),
        ((("Content-Length", "5"), ("Transfer-Encoding", "chunked")), 400),
        ((("Transfer-Encoding", "gzip, chunked"),), 400),
        ((("Content-Length", "101"),), 413),
        ((("Content-Length", "9" * 40),), 400),
    ],
)
def test_bad_framing_is_refused_from_the_headers(
    pairs: tuple[tuple[str, str], ...], status: int
) -> None:
    with pytest.raises(BodyError) as err:
        declared_length(_headers(*pairs), 100)
    assert err.value.status == status


def test_good_framing() -> None:
    assert declared_length(_headers(("Content-Length", "100")), 100) == 100
    assert declared_length(_headers(("Content-Length", "7"), ("Content-Length", "7")), 100) == 7
    assert declared_length(_headers(("Transfer-Encoding", "Chunked")), 100) is None


def test_chunked_bodies() -> None:
    te = _headers(("Transfer-Encoding", "chunked"))
    ok = b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n"
    assert read_body(te, io.BytesIO(ok), 100) == b"abcde"
    # the chunk that would pass the limit is refused before it is read: no data follows
    stream = io.BytesIO(b"3\r\nabc\r\n62\r\n")
    with pytest.raises(BodyError) as err:
        read_body(te, stream, 100)
    assert err.value.status == 413
    for broken in (b"x\r\n", b"3\r\nabcd\r\n0\r\n\r\n", b"3\r\nab", b"", b"3\r\nabc\r\n"):
        with pytest.raises(BodyError) as err:
            read_body(te, io.BytesIO(broken), 100)
        assert err.value.status == 400, broken


def test_a_short_body_is_400() -> None:
    with pytest.raises(BodyError) as err:
        read_body(_headers(("Content-Length", "10")), io.BytesIO(b"abc"), 100)
    assert err.value.status == 400


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(root=ROOT, state_dir=tmp_path / "state", **kw)  # type: ignore[arg-type]


def test_token_from_the_setting_or_a_file(tmp_path: Path) -> None:
    assert trigger_token(_settings(tmp_path)) is None
    assert trigger_token(_settings(tmp_path, trigger_token=SecretStr(TOKEN))) == TOKEN
    f = tmp_path / "token"
    f.write_text(f"  {TOKEN}\n")
    assert trigger_token(_settings(tmp_path, trigger_token_file=f)) == TOKEN


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"trigger_token": SecretStr("short-secret")}, "at least 16"),
        ({"trigger_token": SecretStr("with spaces in the middle")}, "without spaces"),
        ({"trigger_token_file": Path("/nonexistent/token")}, "/nonexistent/token"),
        (
            {"trigger_token": SecretStr(TOKEN), "trigger_token_file": Path("/x")},
            "not both",
        ),
    ],
)
def test_bad_token_settings_name_the_setting_never_the_value(
    tmp_path: Path, kw: dict[str, object], says: str
) -> None:
    with pytest.raises(TokenError) as err:
        trigger_token(_settings(tmp_path, **kw))
    assert says in str(err.value) and "TRIGGER_TOKEN" in str(err.value)
    for secret in ("short-secret", "with spaces", TOKEN):
        assert secret not in str(err.value)


def test_bearer_check() -> None:
    assert bearer_matches([f"Bearer {TOKEN}"], TOKEN)
    assert bearer_matches([f"bearer  {TOKEN} "], TOKEN)
    for given in ([], [f"Basic {TOKEN}"], [TOKEN], [f"Bearer {TOKEN}x"], [f"Bearer {TOKEN}"] * 2):
        assert not bearer_matches(given, TOKEN), given


def test_no_token_no_server_unless_insecure_on_loopback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trigger = RetrainTrigger(_settings(tmp_path), runner=lambda *a, **k: {})
    with pytest.raises(TokenError, match="SHIPWAY_TRIGGER_TOKEN_FILE"):
        TriggerServer(trigger, "127.0.0.1", 0, token=None)
    with pytest.raises(TokenError, match="loopback"):
        TriggerServer(trigger, "0.0.0.0", 0, token=None, insecure=True)
    with caplog.at_level(logging.WARNING, logger="monitoring.webhook"):
        server = TriggerServer(trigger, "127.0.0.1", 0, token=None, insecure=True)
    server.server_close()
    assert "INSECURE" in caplog.text
    server = TriggerServer(trigger, token=TOKEN, port=0)
    assert server.server_address[0] == "127.0.0.1"  # loopback unless told otherwise
    server.server_close()


def test_rfc3339_times_as_prometheus_and_alertmanager_write_them() -> None:
    assert parse_time("2026-01-01T10:00:00.123456789Z") == datetime(
        2026, 1, 1, 10, 0, 0, 123456, UTC
    )
    assert parse_time("0001-01-01T00:00:00Z").year == 1  # Go's zero time: still firing
    assert parse_time("2026-06-30t23:59:60+02:00") == datetime(
        2026, 6, 30, 23, 59, 59, tzinfo=timezone(timedelta(hours=2))
    )
    for bad in (
        "2026-01-01",
        "2026-13-01T00:00:00Z",
        "2026-01-01T00:00:00",
        "2026-02-30T00:00:00Z",
    ):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_payload_errors_name_fields_not_values() -> None:
    with pytest.raises(PayloadError) as err:
        parse_alerts(
            b'{"alerts": [{"labels": {"usecase": "s3cr3t-value", "x": 5}}]}', "alertmanager"
        )
    assert "alerts.0.labels.x" in str(err.value) and "s3cr3t-value" not in str(err.value)
    with pytest.raises(PayloadError):
        parse_alerts(b'[{"labels": {}, "endsAt": "yesterday"}]', "prometheus")
