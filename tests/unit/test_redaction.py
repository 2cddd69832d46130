"""One mask for credentials in whatever a person or a log reads (shipway.core.redaction)."""

from __future__ import annotations

import pytest
import typer

from shipway.cli.app import UserError, friendly
from shipway.core.redaction import Redactor, redact


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("registry http://admin:S3cretPW9@mlflow:5000", "registry http://admin:***@mlflow:5000"),
        (
            "postgresql+psycopg://u:p%40ss@db:5432/x?sslmode=require",
            "postgresql+psycopg://u:***@db:5432/x?sslmode=require",
        ),
        ("redis://:hunter2hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("http://admin:p@ss@word@host/a", "http://admin:***@host/a"),  # unencoded '@'
        ("cache:6379,password=hunter2hunter2,ssl=true", "cache:6379,password=***,ssl=true"),
        ("Authorization: Bearer tok-4f9a8c7e1b", "Authorization: Bearer ***"),
        (
            "clone https://ghp_16C7e42F292c6912E7710c838347Ae178B4a@github.com/o/r.git",
            "clone https://***@github.com/o/r.git",
        ),
        ("s3://AKIAIOSFODNN7EXAMPLE12@bucket/x", "s3://***@bucket/x"),
        # nothing secret: unchanged
        ("postgresql://shipway@db:5432/x", "postgresql://shipway@db:5432/x"),
        ("postgresql://mlflow_reader_readonly@db/x", "postgresql://mlflow_reader_readonly@db/x"),
        ("sqlite:////root/.shipway/mlflow.db", "sqlite:////root/.shipway/mlflow.db"),
        ("https://host:3000/docs and a@b.c", "https://host:3000/docs and a@b.c"),
        ("http://mlflow:5000/path@v1", "http://mlflow:5000/path@v1"),
    ],
)
def test_redact(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_secret_environment_values_are_masked_but_not_file_paths() -> None:
    r = Redactor.from_env(
        {
            "SHIPWAY_TRIGGER_TOKEN": "trigger-token-0123456789",
            "SHIPWAY_TRIGGER_TOKEN_FILE": "/run/secrets/trigger-token",
            "HOME": "/root/x1234567",
        }
    )
    assert r("sent trigger-token-0123456789 from /run/secrets/trigger-token in /root/x1234567") == (
        "sent *** from /run/secrets/trigger-token in /root/x1234567"
    )


def test_a_failing_command_says_its_error_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @friendly
    def cmd() -> None:
        raise UserError("hotel_rates has no champion in http://admin:S3cretPW9@mlflow:5000")

    with pytest.raises(typer.Exit):
        cmd()
    err = capsys.readouterr().err
    assert "http://admin:***@mlflow:5000" in err and "S3cretPW9" not in err


def test_the_demo_banner_masks_the_registry_password() -> None:
    from shipway.cli.demo import registry_line
    from shipway.core.settings import Settings

    line = registry_line(Settings(mlflow_tracking_uri="https://admin:S3cretPW9@mlflow.example"))
    assert "S3cretPW9" not in line and "https://admin:***@mlflow.example" in line


def test_the_webhook_s_own_errors_survive_the_mask() -> None:
    """Its messages name settings after 'token': the mask must not eat the advice."""
    from monitoring.webhook import TokenError, TriggerServer

    with pytest.raises(TokenError) as err:
        TriggerServer(None, token=None)  # type: ignore[arg-type]
    assert redact(str(err.value)) == str(err.value)
