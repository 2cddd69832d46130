"""The chart's PostgreSQL roles and grants, run against a real server with password logins.

The bundled PostgreSQL's init script and SQL files exactly as helm renders them
(templates/postgresql.yaml with files/postgresql-roles.psql and predictions-schema.psql),
run with psql on a throwaway cluster that checks passwords (scram-sha-256). Then each role is used the way its pods use it: the prediction service's
role writes and reads the log through the real PredictionLog but cannot reach MLflow's
databases nor drop, alter, empty or delete from the log; the MLflow server's role runs
MLflow's own migrations in its database and reaches no other.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import yaml
from conftest import chart_tools, require

from shipway.core.predictionlog import PredictionLog, PredictionRecord, schema_sql
from shipway.core.settings import Settings
from shipway.governance.locks import model_lock
from tests.records import prediction_record

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "charts" / "shipway" / "files"
DATABASES = ("mlflow", "mlflow_auth", "feast", "predictions")  # the chart's default names
PASSWORDS = {
    "mlflow": "Mlf0wPw-canary-1",
    "feast": "Fe4stPw-canary-2",
    "predictions": "Pr3dPw-canary-3",
    "governance": "G0vPw-canary-4",
}
ROLE = {
    "mlflow": "shipway_mlflow",
    "feast": "shipway_feast",
    "predictions": "shipway_predictions",
    "governance": "shipway_governance",
}


def initdb_files() -> dict[str, str]:
    """The bundled PostgreSQL's init files, rendered by helm from the chart."""
    tc = chart_tools()
    proc = subprocess.run(
        [
            str(tc.helm),
            "template",
            "shipway",
            str(ROOT / "charts" / "shipway"),
            "-n",
            "shipway",
            "--show-only",
            "templates/postgresql.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=tc.env(),
        check=True,
    )
    (cm,) = [
        d
        for d in yaml.safe_load_all(proc.stdout)
        if d and d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-initdb")
    ]
    return dict(cm["data"])


def apply_roles(
    superuser_url: str, files: dict[str, str], work: Path
) -> subprocess.CompletedProcess[str]:
    """Run the chart's init script as the official image's entrypoint does on first start:
    executable, as the superuser, the Secret's password files mounted beside each other."""
    from servers import pg_bindir

    bindir = pg_bindir()
    assert bindir is not None
    initdb, auth = work / "initdb", work / "auth"
    initdb.mkdir(exist_ok=True)
    auth.mkdir(exist_ok=True)
    for name, text in files.items():
        (initdb / name).write_text(text)
        (initdb / name).chmod(0o555)
    u = urlsplit(superuser_url)
    (auth / "password").write_text(str(u.password))
    for who, pw in PASSWORDS.items():
        (auth / f"{who}-password").write_text(pw)
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "POSTGRES_USER": str(u.username),
        "POSTGRES_DB": "shipway",
        "POSTGRES_PASSWORD_FILE": str(auth / "password"),
        "PGHOST": str(u.hostname),
        "PGPORT": str(u.port),
        "PGPASSWORD": str(u.password),
    }
    (script,) = [initdb / n for n in files if n.endswith(".sh")]
    return subprocess.run(
        [str(script)], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from servers import pg_bindir, postgres_server

    require(
        pg_bindir() is not None,
        "PostgreSQL server is not installed (apt-get install postgresql; .ci/run does)",
    )
    files = initdb_files()
    work = tmp_path_factory.mktemp("pg-roles")
    with postgres_server(password="SuperPw-canary-0") as url:
        first = apply_roles(url, files, work)
        assert first.returncode == 0, first.stderr
        again = apply_roles(url, files, work)  # idempotent: re-sets passwords and grants
        assert again.returncode == 0, again.stderr
        for out in (first, again):  # no password in what the init prints
            assert not any(pw in out.stdout + out.stderr for pw in PASSWORDS.values())
        yield url


def uri(server: str, who: str, db: str, password: str | None = None) -> str:
    u = urlsplit(server)
    pw = PASSWORDS[who] if password is None else password
    return f"postgresql://{ROLE[who]}:{pw}@{u.hostname}:{u.port}/{db}"


def connect(server: str, who: str, db: str, password: str | None = None) -> psycopg.Connection:
    return psycopg.connect(uri(server, who, db, password), autocommit=True, connect_timeout=10)


def assert_refused(server: str, who: str, db: str, statements: list[str]) -> None:
    """PostgreSQL refuses each statement to ``who`` in ``db`` for lack of privilege."""
    for sql in statements:
        with connect(server, who, db) as conn, pytest.raises(psycopg.Error) as err:
            conn.execute(sql)
        msg = str(err.value)
        assert "permission denied" in msg or "must be owner" in msg, (who, sql, msg)


def record(request_id: str, ts: datetime) -> PredictionRecord:
    return prediction_record(request_id, 101.5, ts, latency_ms=1.2)


def test_chart_schema_file_is_the_prediction_logs_own_ddl() -> None:
    assert (FILES / "predictions-schema.psql").read_text() == schema_sql(), (
        "regenerate: python -c 'from shipway.core.predictionlog import schema_sql; "
        'print(schema_sql(), end="")\' > charts/shipway/files/predictions-schema.psql'
    )


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("mlflow", {"mlflow", "mlflow_auth"}),
        ("feast", {"feast"}),
        ("predictions", {"predictions"}),
        ("governance", {"predictions"}),
    ],
)
def test_each_role_connects_to_its_own_databases_only(server: str, who: str, allowed) -> None:
    for db in DATABASES:
        if db in allowed:
            with connect(server, who, db) as conn:
                assert conn.execute("SELECT current_user").fetchone() == (ROLE[who],)
        else:
            with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
                connect(server, who, db)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(server, who, sorted(allowed)[0], password="wrong")


def test_no_application_role_is_privileged(server: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolcanlogin "
            "FROM pg_roles WHERE rolname LIKE 'shipway\\_%' ORDER BY rolname"
        ).fetchall()
    assert {r[0]: r[1:] for r in rows} == {
        "shipway_feast": (False, False, False, False, True),
        "shipway_governance": (False, False, False, False, True),
        "shipway_mlflow": (False, False, False, False, True),
        "shipway_predictions": (False, False, False, False, True),
        "shipway_predictions_owner": (False, False, False, False, False),
    }


def test_prediction_service_role_writes_the_log_but_cannot_drop_or_alter_it(server: str) -> None:
    log = PredictionLog(uri(server, "predictions", "predictions"))  # create_all finds the tables
    now = datetime.now(UTC)
    log.append([record("r-1", now), record("r-2", now)])
    assert log.count("hotel_rates") == 2
    assert log.add_feedback("hotel_rates", "r-1", 100.0).status == "recorded"
    assert log.add_feedback("hotel_rates", "r-1", 99.0, correction=True).revision == 2
    assert log.get("r-1")["prediction"] == pytest.approx(101.5)  # type: ignore[index]
    log.close()
    statements = [
        "DROP TABLE predictions",
        "ALTER TABLE predictions ADD COLUMN x int",
        "ALTER TABLE feedback DROP COLUMN actual",
        "TRUNCATE predictions",
        "DELETE FROM predictions",
        "DELETE FROM feedback_history",
        "UPDATE predictions SET prediction = 0",
        "UPDATE feedback_history SET actual = 0",
        "CREATE TABLE predictions_copy (x int)",
        "DROP INDEX ix_predictions_ts",
    ]
    assert_refused(server, "predictions", "predictions", statements)
    with connect(server, "predictions", "predictions") as conn:
        assert conn.execute("SELECT count(*) FROM predictions").fetchone() == (2,)


def test_governance_role_reads_deletes_and_locks_but_cannot_write_or_drop(server: str) -> None:
    writer = PredictionLog(uri(server, "predictions", "predictions"))
    old = datetime.now(UTC) - timedelta(days=400)
    writer.append([record("old-1", old)])
    writer.close()
    gov = PredictionLog(uri(server, "governance", "predictions"))
    assert gov.get("old-1") is not None
    deleted = gov.delete("hotel_rates", before=datetime.now(UTC) - timedelta(days=365))
    assert deleted["predictions"] == 1 and gov.get("old-1") is None
    gov.close()
    settings = Settings(prediction_log_uri=uri(server, "governance", "predictions"))
    with model_lock(settings, "hotel_rates") as backend:  # the promotion lock of the pipeline
        assert backend == "postgresql-advisory"
    statements = [
        "INSERT INTO feedback VALUES ('x', now(), 'u', 1.0)",
        "UPDATE feedback SET actual = 0",
        "DROP TABLE feedback",
        "TRUNCATE feedback_history",
        "ALTER TABLE predictions RENAME TO p",
    ]
    assert_refused(server, "governance", "predictions", statements)


def test_mlflow_role_runs_mlflows_migrations_in_its_own_database(server: str) -> None:
    from mlflow.tracking import MlflowClient

    tracking = uri(server, "mlflow", "mlflow").replace("postgresql://", "postgresql+psycopg://")
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    client.create_registered_model("least_privilege_probe")
    assert client.get_registered_model("least_privilege_probe").name == "least_privilege_probe"
    # the MLflow tables are the MLflow role's, out of reach of the other roles' databases
    with connect(server, "mlflow", "mlflow") as conn:
        owners = {
            r[0]
            for r in conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
        }
    assert owners == {"shipway_mlflow"}
    for other in ("feast", "predictions"):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            connect(server, "mlflow", other)


def test_feast_role_owns_the_registry_database_only(server: str) -> None:
    with connect(server, "feast", "feast") as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS probe (x int)")
        conn.execute("DROP TABLE probe")  # Feast's SQL registry creates its own tables


def test_a_log_the_service_role_cannot_migrate_still_serves_and_refuses_explanations(
    server: str,
) -> None:
    """A log created before explanations (the column dropped here by the superuser) opened
    by the service role, which may not ALTER it: predictions are still logged and read,
    an explained one is refused naming the column; once the owner runs the chart's schema
    file (its ALTER ... ADD COLUMN IF NOT EXISTS), explanations are stored."""
    from shipway.core.predictionlog import ColumnMissing

    owner = server.rsplit("/", 1)[0] + "/predictions"
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("ALTER TABLE predictions DROP COLUMN IF EXISTS explanation")
    log = PredictionLog(uri(server, "predictions", "predictions"))
    now = datetime.now(UTC)
    log.append([record("old-role-1", now)])
    assert log.get("old-role-1")["prediction"] == pytest.approx(101.5)  # type: ignore[index]
    explained = record("old-role-2", now)
    explained.explanation = {"method": "linear_exact", "contributions": {"lead_time": 1.0}}
    with pytest.raises(ColumnMissing, match="explanation"):
        log.append([explained])
    assert log.get("old-role-2") is None  # nothing of the refused append was written
    log.close()
    with psycopg.connect(owner, autocommit=True) as conn:
        for statement in schema_sql().split(";\n"):
            if statement.strip().startswith("ALTER TABLE"):
                conn.execute(statement)
    again = PredictionLog(uri(server, "predictions", "predictions"))
    again.append([explained])
    assert again.get("old-role-2")["explanation"] == explained.explanation  # type: ignore[index]
    again.close()
