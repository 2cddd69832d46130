"""The cluster audit trail: the same append-only, hash-chained trail in MLflow's artifact
store (a real tracking store on PostgreSQL, as the chart configures it, with a file
artifact root), found by tampering; appends serialize on a PostgreSQL advisory lock, so a
cluster without a PostgreSQL store refuses to append (and still reads)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import pytest

from shipway.core import registry
from shipway.core.evidence import Criterion, GateRecord, verify
from shipway.core.settings import Settings
from shipway.governance.trail import AUDIT_RUN_TAG, AuditTrail, MlflowStore, trail_for
from shipway.governance.versions import GovernanceError, read_uri
from tests.conftest import ROOT
from tests.pgdb import create_database, sa_url

pytestmark = pytest.mark.integration


def _record(gate: str, value: float) -> GateRecord:
    return GateRecord(
        gate,
        {"usecase": "hotel_rates", "model": "hotel_rates", "version": "7"},
        [Criterion("quality_mae", value <= 30, value, 30.0, "<=")],
    )


@pytest.fixture(scope="module")
def cluster(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    create_database(postgres_url, "mlflow_trail")
    tmp = tmp_path_factory.mktemp("mlflow-trail")
    return Settings(
        root=ROOT,
        state_dir=tmp,
        environment="cluster",
        mlflow_tracking_uri=sa_url(postgres_url, "mlflow_trail"),
        mlflow_artifact_root=(tmp / "artifacts").as_uri(),
    )


def test_records_live_in_the_versions_run_and_tampering_is_found(cluster: Settings) -> None:
    client = registry.connect(cluster.tracking_uri)
    exp = registry.experiment(client, "hotel_rates", cluster.artifact_root)
    run_id = client.create_run(exp).info.run_id
    trail = trail_for(cluster, "hotel_rates", run_id=run_id, client=client)
    assert isinstance(trail.store, MlflowStore)
    uris = [trail.append(_record(g, 20.0 + i)) for i, g in enumerate(("a", "b", "c"))]
    assert all(u.startswith(f"runs:/{run_id}/audit/records/") for u in uris)
    assert trail.verify() == []
    assert verify(json.loads(read_uri(uris[1], client)))
    with pytest.raises(FileExistsError):
        trail.store.put(trail.entries()[0].record, b"{}")
    # edit the stored record where the artifact store keeps it
    art = Path(urlparse(client.get_run(run_id).info.artifact_uri).path)
    path = art / "audit" / trail.entries()[1].record
    data = json.loads(path.read_text())
    data["criteria"][0]["value"] = 1.0
    path.write_text(json.dumps(data))
    assert trail.verify() == [
        f"entry 2: record {trail.entries()[1].record} was modified (hash mismatch)"
    ]


def test_records_about_no_version_go_to_one_audit_run_per_use_case(cluster: Settings) -> None:
    client = registry.connect(cluster.tracking_uri)
    first = trail_for(cluster, "hotel_rates", client=client)
    first.append(_record("erasure", 0.0))
    second = AuditTrail(MlflowStore(client, first.store.run_id))  # type: ignore[attr-defined]
    again = trail_for(cluster, "hotel_rates", client=client)
    assert again.store.run_id == first.store.run_id  # type: ignore[attr-defined]
    assert [e.gate for e in second.entries()] == ["erasure"]
    run = client.get_run(first.store.run_id)  # type: ignore[attr-defined]
    assert run.data.tags[AUDIT_RUN_TAG] == "true"


def test_a_cluster_without_a_postgres_store_refuses_to_append(tmp_path: Path) -> None:
    """MLflow alone cannot refuse a second writer of an entry, and no other lock reaches
    every pod: appending is refused rather than risking a lost record; reading works."""
    s = Settings(
        root=ROOT,
        state_dir=tmp_path,
        environment="cluster",
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        mlflow_artifact_root=(tmp_path / "artifacts").as_uri(),
    )
    client = registry.connect(s.tracking_uri)
    trail = trail_for(s, "hotel_rates", client=client)
    with pytest.raises(GovernanceError, match="postgresql:// URI"):
        trail.append(_record("erasure", 0.0))
    assert trail.entries() == [] and trail.verify() == []
