"""The Helm chart, proven with the real tools (no cluster here): helm lint, helm template +
Kubernetes JSON schemas (kubernetes-validate), checkov, values.schema.json rejections, the
restricted Pod Security Standard on every pod, the NetworkPolicy flows, the Secret wiring,
the helm-test script, and the files the chart carries (compiled pipeline, rules, dashboards)
equal to their sources.

The tools come from tools/install-tools.sh (a session fixture runs it; a no-op once done).
A missing tool skips these tests on a developer machine and fails them under CI=true.
"""

from __future__ import annotations

import base64
import configparser
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from conftest import chart_tools, free_port, globbed, nonempty, require

from shipway.core.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "shipway"
CI_VALUES = globbed(CHART / "ci", "*-values.yaml")
CI_IDS = [p.name.removesuffix("-values.yaml") for p in CI_VALUES]
NAMESPACE = "shipway"
RELEASE = "shipway"
FULLNAME = "shipway"  # the release name contains the chart name
# Where the training pipeline's pods run (values pipelines.namespace): defaults, production.
PIPELINES_NAMESPACES = {"kubeflow", "kubeflow-ml-team"}
K8S_VERSIONS = ["1.30.0", "1.34.0"]
# Custom resources of the prometheus-operator: no Kubernetes JSON schema exists for them, so
# kubernetes-validate cannot check them; they are checked structurally below instead.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "AlertmanagerConfig"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob", "Pod", "DaemonSet"}
# Every checkov skip the chart may carry; each is justified where it is set
# (templates/_helpers.tpl, templates/tests/test-prediction.yaml).
ALLOWED_SKIPS = {
    "CKV_K8S_43": "image by digest: pinned by exact tag unless a digest is set in values",
    "CKV_K8S_35": "MLflow / Feast / Shipway settings read credentials from env vars only",
    "CKV_K8S_8": "run-to-completion helm test Pod: no liveness probe",
    "CKV_K8S_9": "run-to-completion helm test Pod: no readiness probe",
}


@pytest.fixture(scope="session")
def tc():
    return chart_tools()


# --------------------------------------------------------------------------- helpers
def helm(tc, *args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tc.helm), *[a.replace("{chart}", str(chart)) for a in args]],
        capture_output=True,
        text=True,
        timeout=120,
        env=tc.env(),
        check=False,
    )


def template(
    tc,
    values: list[Path] | tuple[Path, ...] = (),
    sets: list[str] | tuple[str, ...] = (),
    extra: list[str] | tuple[str, ...] = (),
    chart: Path = CHART,
) -> subprocess.CompletedProcess[str]:
    args = ["template", RELEASE, "{chart}", "--namespace", NAMESPACE]
    for v in values:
        args += ["-f", str(v)]
    for s in sets:  # "json:key=[...]" is passed with --set-json
        args += ["--set-json", s[5:]] if s.startswith("json:") else ["--set", s]
    return helm(tc, *args, *extra, chart=chart)


def render(tc, *a: Any, **kw: Any) -> list[dict[str, Any]]:
    proc = template(tc, *a, **kw)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", f"helm template wrote to stderr: {proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The resource of the release (copies in the pipelines namespace left out)."""
    found = [
        d
        for d in docs
        if d["kind"] == kind
        and d["metadata"]["name"] == name
        and d["metadata"].get("namespace") not in PIPELINES_NAMESPACES
    ]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_template(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod (metadata + spec) a workload runs."""
    kind = doc["kind"]
    if kind == "Pod":
        return doc
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    return doc["spec"]["template"]


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in WORKLOAD_KINDS]


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def configmap_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    return one(docs, "ConfigMap", f"{FULLNAME}-env")["data"]


@pytest.fixture(scope="module")
def rendered(tc) -> dict[str, list[dict[str, Any]]]:
    """Every ci scenario plus the defaults, rendered once."""
    out = {"default": render(tc)}
    for path, ident in zip(CI_VALUES, CI_IDS, strict=True):
        out[ident] = render(tc, [path])
    return out


SCENARIOS = ["default", *CI_IDS]


# --------------------------------------------------------------------------- lint / schemas
def test_ci_scenarios_exist() -> None:
    assert {"minimal", "production", "prometheus-operator", "external-stores"} <= set(CI_IDS)


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=["default", *CI_IDS])
def test_helm_lint_strict_is_clean(tc, values: Path | None) -> None:
    args = ["lint", "{chart}", "--strict", "--namespace", NAMESPACE]
    if values:
        args += ["-f", str(values)]
    proc = helm(tc, *args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


@pytest.mark.parametrize("k8s", K8S_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rendered_manifests_validate_against_kubernetes_schemas(
    tc, rendered, scenario: str, k8s: str, tmp_path: Path
) -> None:
    docs = rendered[scenario]
    crds = [d for d in docs if d["kind"] in CRD_KINDS]
    assert all(d["apiVersion"].startswith("monitoring.coreos.com/") for d in crds)
    core = [d for d in docs if d["kind"] not in CRD_KINDS]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(core, sort_keys=False))
    proc = subprocess.run(
        [str(tc.kubernetes_validate), "--strict", "-k", k8s, str(manifest)],
        capture_output=True,
        text=True,
        timeout=300,
        env=tc.env(),
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert out.count(" passed for resource ") == len(core), out
    assert "ERROR" not in out and "WARN" not in out, out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_resource_is_namespaced_and_labelled(rendered, scenario: str) -> None:
    for doc in rendered[scenario]:
        meta = doc["metadata"]
        what = f"{doc['kind']}/{meta['name']}"
        assert len(meta["name"]) <= 63, what
        assert meta.get("namespace") in {NAMESPACE, "monitoring", *PIPELINES_NAMESPACES}, what
        if meta.get("namespace") in PIPELINES_NAMESPACES:  # only what the pipeline's pods read
            assert (doc["kind"], meta["labels"]["app.kubernetes.io/component"]) in {
                ("ConfigMap", "pipeline-env"),
                ("Secret", "pipeline-env"),
            }, what
        labels = meta["labels"]
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/component",
            "app.kubernetes.io/part-of",
            "helm.sh/chart",
        ):
            assert labels.get(key), f"{what} lacks label {key}"


# --------------------------------------------------------------------------- checkov
def _checkov(tc, values: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [
            str(tc.checkov),
            "--framework",
            "helm",
            "-d",
            str(CHART),
            "--var-file",
            str(values),
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        # checkov renders the chart with `helm template` (HELM_NAMESPACE sets the namespace
        # the manifests are checked in) and must not phone home.
        env=tc.env(
            HELM_NAMESPACE=NAMESPACE,
            BC_SKIP_MAPPING="TRUE",
            CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false",
        ),
        check=False,
    )
    assert proc.stdout.strip(), f"checkov printed nothing: {proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    if isinstance(report, list):
        (report,) = [r for r in report if r.get("check_type") == "helm"]
    return report


@pytest.fixture(scope="module")
def checkov_reports(tc) -> dict[str, dict[str, Any]]:
    """checkov is slow: once per ci values file, in parallel."""
    with ThreadPoolExecutor(max_workers=len(CI_VALUES)) as pool:
        reports = list(pool.map(lambda v: _checkov(tc, v), CI_VALUES))
    return dict(zip(CI_IDS, reports, strict=True))


@pytest.mark.parametrize("scenario", CI_IDS)
def test_checkov_reports_zero_failed_checks(checkov_reports, scenario: str) -> None:
    report = checkov_reports[scenario]
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)
    # Guard against a vacuous pass: checkov silently scans nothing when `helm template` fails
    # or writes to stderr.
    assert summary["resource_count"] >= 40, summary
    assert summary["passed"] >= 500, summary
    assert summary["parsing_errors"] == 0, summary
    print(f"\ncheckov {scenario}: {summary}")


@pytest.mark.parametrize("scenario", CI_IDS)
def test_checkov_skips_are_only_the_justified_ones(checkov_reports, scenario: str) -> None:
    skipped = checkov_reports[scenario]["results"]["skipped_checks"]
    unexpected = {c["check_id"] for c in skipped} - set(ALLOWED_SKIPS)
    assert not unexpected, f"unjustified checkov skips: {unexpected}"
    probe_skips = [c for c in skipped if c["check_id"] in {"CKV_K8S_8", "CKV_K8S_9"}]
    assert all(c["resource"].startswith("Pod.") and "-test-" in c["resource"] for c in probe_skips)


def test_checkov_skip_annotations_carry_a_reason() -> None:
    found = re.findall(r"checkov\.io/skip\d+: (CKV_K8S_\d+)=(.*)", _chart_sources())
    assert {cid for cid, _ in found} == set(ALLOWED_SKIPS)
    for cid, reason in found:
        assert len(reason.strip()) > 20 and "=" not in reason, (cid, reason)


def test_image_digest_removes_the_digest_skip(tc) -> None:
    docs = render(
        tc,
        sets=[
            f"image.digest=sha256:{'a' * 64}",
            f"postgresql.image.digest=sha256:{'b' * 64}",
            f"redis.image.digest=sha256:{'c' * 64}",
        ],
    )
    for doc in workloads(docs):
        annotations = doc["metadata"].get("annotations") or {}
        assert not any(str(v).startswith("CKV_K8S_43") for v in annotations.values()), doc[
            "metadata"
        ]["name"]
        for c in all_containers(pod_template(doc)["spec"]):
            assert "@sha256:" in c["image"]


def _chart_sources() -> str:
    return "\n".join(p.read_text() for p in sorted((CHART / "templates").rglob("*")) if p.is_file())


# --------------------------------------------------------------------------- values.schema.json
REJECTIONS = [
    pytest.param(
        ["openlineage.url=marquez:5000"],
        ["/openlineage/url", "pattern"],
        id="openlineage-url-without-scheme",
    ),
    pytest.param(
        ["prediction.replicaCount=-1"],
        ["/prediction/replicaCount", "minimum"],
        id="negative-replicas",
    ),
    pytest.param(
        ["mlflow.artifacts.type=ftp"],
        ["/mlflow/artifacts/type", "value must be one of 'pvc', 's3', 'gcs', 'azure'"],
        id="unknown-artifact-store",
    ),
    pytest.param(
        ["postgresql.bundled=false"],
        ["/postgresql/external/existingSecret", "minLength"],
        id="external-postgres-without-secret",
    ),
    pytest.param(
        ["redis.bundled=false"],
        ["/redis/external/existingSecret", "minLength"],
        id="external-redis-without-secret",
    ),
    pytest.param(
        ["mlflow.artifacts.type=s3"],
        ["/mlflow/artifacts/s3/bucket", "minLength"],
        id="s3-without-bucket",
    ),
    pytest.param(
        ["mlflow.artifacts.type=azure"],
        ["/mlflow/artifacts/azure/existingSecret", "/mlflow/artifacts/azure/container"],
        id="azure-without-secret",
    ),
    pytest.param(
        ["mlflow.enabled=false"],
        ["/mlflow/externalTrackingUri", "minLength"],
        id="no-mlflow-no-external-uri",
    ),
    pytest.param(
        ["usecase=hotel_rates"],
        ["additional properties 'usecase' not allowed"],
        id="typo-top-level-key",
    ),
    pytest.param(
        ["usecases={Hotel-Rates}"], ["/usecases/0", "does not match pattern"], id="bad-usecase-name"
    ),
    pytest.param(["usecases=null"], ["missing property 'usecases'"], id="no-usecases"),
    pytest.param(["json:usecases=[]"], ["/usecases", "minItems"], id="empty-usecases"),
    pytest.param(
        ["containerSecurityContext.allowPrivilegeEscalation=true"],
        ["/containerSecurityContext/allowPrivilegeEscalation", "value must be false"],
        id="privilege-escalation",
    ),
    pytest.param(
        ["podSecurityContext.runAsNonRoot=false"],
        ["/podSecurityContext/runAsNonRoot", "value must be true"],
        id="root-pods",
    ),
    pytest.param(
        ["containerSecurityContext.capabilities.drop={NET_RAW}"],
        ["/containerSecurityContext/capabilities/drop"],
        id="capabilities-not-dropped",
    ),
    pytest.param(
        ["prometheus.operator.mode=yes"],
        ["/prometheus/operator/mode", "value must be one of"],
        id="bad-mode",
    ),
    pytest.param(
        ["image.digest=sha256:abc"], ["/image/digest", "does not match pattern"], id="bad-digest"
    ),
    pytest.param(["prediction.resources.limits=null"], ["/prediction/resources"], id="no-limits"),
    pytest.param(
        ["feast.materialize.schedule=hourly"], ["/feast/materialize/schedule"], id="bad-cron"
    ),
    pytest.param(
        ["networkPolicy.external.cidrs={10.0.0.0}"],
        ["/networkPolicy/external/cidrs/0"],
        id="bad-cidr",
    ),
    pytest.param(
        ["kfp.host=ml-pipeline:8888"],
        ["/kfp/host", "does not match pattern"],
        id="kfp-host-not-url",
    ),
    pytest.param(
        ["prediction.port=70000"], ["/prediction/port", "maximum"], id="port-out-of-range"
    ),
    pytest.param(
        ["mlflow.auth.defaultPermission=ALL"],
        ["/mlflow/auth/defaultPermission"],
        id="bad-permission",
    ),
    pytest.param(
        ["pipelines.namespace=Kubeflow_Team"],
        ["/pipelines/namespace", "does not match pattern"],
        id="bad-pipelines-namespace",
    ),
    pytest.param(
        ["pipelines.gitRepo=our repo"],
        ["/pipelines/gitRepo", "does not match pattern"],
        id="git-repo-not-url",
    ),
    pytest.param(
        ["pipelines.dvcRemote=bucket/shipway"],
        ["/pipelines/dvcRemote", "does not match pattern"],
        id="dvc-remote-not-url",
    ),
    pytest.param(
        ["prediction.autoscaling.enabled=false", "prediction.replicaCount=0"],
        ["/prediction/replicaCount", "minimum: got 0, want 1"],
        id="no-replicas-beside-a-disruption-budget",
    ),
    pytest.param(
        ["trigger.auth.existingSecret=Not_A_Name"],
        ["/trigger/auth/existingSecret", "does not match pattern"],
        id="bad-trigger-token-secret",
    ),
    pytest.param(
        ["mlflow.auth.users.existingSecrets.trigger=x"],
        ["/mlflow/auth/users/existingSecrets", "additional properties 'trigger' not allowed"],
        id="mlflow-user-for-an-unknown-component",
    ),
    pytest.param(
        ["prediction.challenger.mode=canary"],
        ["/prediction/challenger/mode", "value must be one of 'off', 'split', 'shadow'"],
        id="bad-challenger-mode",
    ),
    pytest.param(
        ["batch.schedules[0].usecase=hotel_rates", "batch.schedules[0].input=s3://b/in"],
        ["/batch/schedules/0", "missing properties"],
        id="batch-schedule-without-cron-or-output",
    ),
    pytest.param(
        [
            "batch.schedules[0].usecase=hotel_rates",
            "batch.schedules[0].cron=daily",
            "batch.schedules[0].input=in",
            "batch.schedules[0].output=out",
        ],
        ["/batch/schedules/0/cron", "does not match pattern"],
        id="batch-schedule-bad-cron",
    ),
]


@pytest.mark.parametrize(("sets", "expected"), REJECTIONS)
def test_values_schema_rejects_bad_values(tc, sets: list[str], expected: list[str]) -> None:
    proc = template(tc, sets=sets)
    assert proc.returncode != 0, f"accepted {sets}"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    for fragment in expected:
        assert fragment in proc.stderr, f"{fragment!r} not in:\n{proc.stderr}"


TEMPLATE_REJECTIONS = [
    pytest.param(
        ["image.tag=latest"],
        "tag 'latest' is not allowed, pin an exact version tag",
        id="latest-tag",
    ),
    pytest.param(
        ["usecases={hotel_rates,credit_risk}"],
        "prediction.testRequests.credit_risk is missing",
        id="usecase-without-test-request",
    ),
    pytest.param(
        ["prediction.autoscaling.minReplicas=7", "prediction.autoscaling.maxReplicas=6"],
        "prediction.autoscaling.minReplicas (7) is above prediction.autoscaling.maxReplicas (6)",
        id="min-replicas-above-max",
    ),
    pytest.param(
        ["prediction.autoscaling.enabled=false", "prediction.replicaCount=1"],
        "prediction.replicaCount (1) must be above prediction.podDisruptionBudget.minAvailable "
        "(1): with no pod to spare the PodDisruptionBudget blocks every node drain",
        id="replicas-not-above-min-available",
    ),
    pytest.param(
        ["prediction.autoscaling.minReplicas=2", "prediction.podDisruptionBudget.minAvailable=2"],
        "prediction.autoscaling.minReplicas (2) must be above "
        "prediction.podDisruptionBudget.minAvailable (2)",
        id="autoscaled-min-not-above-min-available",
    ),
]


@pytest.mark.parametrize(("sets", "expected"), TEMPLATE_REJECTIONS)
def test_templates_reject_what_the_schema_cannot_express(
    tc, sets: list[str], expected: str
) -> None:
    proc = template(tc, sets=sets)
    assert proc.returncode != 0
    assert expected in proc.stderr, proc.stderr


def test_disruption_budget_checks_leave_valid_shapes_alone(tc) -> None:
    """What the checks must not refuse: maxUnavailable, a percentage, no budget."""
    for sets in (
        ["prediction.podDisruptionBudget.maxUnavailable=1", "prediction.autoscaling.minReplicas=1"],
        ["prediction.podDisruptionBudget.minAvailable=50%"],
        ["prediction.podDisruptionBudget.enabled=false", "prediction.autoscaling.enabled=false"],
    ):
        proc = template(tc, sets=sets)
        assert proc.returncode == 0, (sets, proc.stderr)


def test_values_schema_accepts_every_shipped_scenario(tc) -> None:
    for values in CI_VALUES:
        assert template(tc, [values]).returncode == 0, values


# --------------------------------------------------------------------------- pod security
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_pod_meets_the_restricted_pod_security_standard(rendered, scenario: str) -> None:
    docs = rendered[scenario]
    service_accounts = {d["metadata"]["name"]: d for d in by_kind(docs, "ServiceAccount")}
    pods = workloads(docs)
    assert len(pods) >= 6
    for doc in pods:
        what = f"{doc['kind']}/{doc['metadata']['name']}"
        spec = pod_template(doc)["spec"]
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True, what
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", what
        assert psc.get("runAsUser", 1) != 0, what
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), what
        assert spec["automountServiceAccountToken"] is False, what
        sa = spec["serviceAccountName"]
        assert sa != "default" and sa in service_accounts, what
        assert service_accounts[sa]["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        assert not any("hostPath" in v for v in volumes.values()), what
        assert volumes.get("tmp", {}).get("emptyDir") is not None, f"{what}: no /tmp emptyDir"
        for c in all_containers(spec):
            cwhat = f"{what}:{c['name']}"
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, cwhat
            assert sc["runAsNonRoot"] is True, cwhat
            assert sc.get("privileged", False) is False, cwhat
            assert sc["readOnlyRootFilesystem"] is True, cwhat
            assert sc["capabilities"]["drop"] == ["ALL"], cwhat
            assert not sc["capabilities"].get("add"), cwhat
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", cwhat
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][bound]), cwhat
            assert all("hostPort" not in p for p in c.get("ports", [])), cwhat
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert mounts.get("/tmp") == "tmp", f"{cwhat}: /tmp is not the scratch emptyDir"
            assert "@" in c["image"] or not c["image"].endswith(":latest"), cwhat


def test_no_rbac_is_granted(rendered) -> None:
    """No workload calls the Kubernetes API: least privilege is no Role at all."""
    for docs in rendered.values():
        kinds = {d["kind"] for d in docs}
        assert not kinds & {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}


# --------------------------------------------------------------------------- services
def test_prediction_probes_are_distinct(rendered) -> None:
    dep = one(rendered["default"], "Deployment", f"{FULLNAME}-predict-hotel-rates")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["startupProbe"]["httpGet"]["path"] == "/livez"
    assert c["args"] == ["serve", "--usecase", "hotel_rates", "--port", "3000"]
    assert c["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    e = env_of(c)
    assert (e["SHIPWAY_CHALLENGER_MODE"], e["SHIPWAY_CHALLENGER_PERCENT"]) == ("off", "10")
    assert e["SHIPWAY_MAX_BODY_BYTES"] == "1048576" and e["SHIPWAY_SERVICE_WORKERS"] == "1"


def test_each_usecase_gets_its_own_services(rendered) -> None:
    docs = rendered["production"]
    for usecase in ("hotel_rates", "credit_risk"):
        slug = usecase.replace("_", "-")
        name = f"{FULLNAME}-predict-{slug}"
        dep = one(docs, "Deployment", name)
        assert "replicas" not in dep["spec"], "the HPA owns the replica count"
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        assert c["args"][:3] == ["serve", "--usecase", usecase]
        assert env_of(c)["SHIPWAY_USECASE"] == usecase
        svc = one(docs, "Service", name)
        assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
        hpa = one(docs, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
        pdb = one(docs, "PodDisruptionBudget", name)
        assert pdb["spec"]["minAvailable"] == 2
        assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
        mon = one(docs, "Deployment", f"{FULLNAME}-monitor-{slug}")
        (m,) = mon["spec"]["template"]["spec"]["containers"]
        assert m["args"] == [
            "monitor",
            "run",
            "--usecase",
            usecase,
            "--loop",
            "--interval",
            "300",
            "--metrics-port",
            "9108",
        ]
        cron = one(docs, "CronJob", f"{FULLNAME}-materialize-{slug}")
        (j,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert j["args"] == ["features", "materialize", "--usecase", usecase]
        assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    # selectors of two use cases never overlap
    sels = [
        d["spec"]["selector"]["matchLabels"]
        for d in by_kind(docs, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "prediction"
    ]
    assert len(sels) == 2 and sels[0] != sels[1]


def test_minimal_scenario_runs_single_replicas_without_autoscaling(rendered) -> None:
    docs = rendered["minimal"]
    dep = one(docs, "Deployment", f"{FULLNAME}-predict-hotel-rates")
    assert dep["spec"]["replicas"] == 1
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    assert not by_kind(docs, "PodDisruptionBudget")


def test_environment_contract_of_the_application_pods(rendered) -> None:
    docs = rendered["default"]
    env = configmap_env(docs)
    assert env["SHIPWAY_ENVIRONMENT"] == "cluster"
    assert env["SHIPWAY_STATE_DIR"] == "/tmp/shipway"
    # namespace-qualified: the pipeline's pods, in another namespace, use it too
    assert env["SHIPWAY_MLFLOW_TRACKING_URI"] == f"http://{FULLNAME}-mlflow.{NAMESPACE}.svc:5000"
    assert env["SHIPWAY_KFP_HOST"] == "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
    assert env["MLFLOW_TRACKING_USERNAME"] == "shipway-pipeline", "the pipeline pods' user"
    assert env["SHIPWAY_IMAGE"] == "ghcr.io/shipway/shipway:0.1.0"
    dep = one(docs, "Deployment", f"{FULLNAME}-predict-hotel-rates")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    e = env_of(c)
    refs = {
        k: (v["secretKeyRef"]["name"], v["secretKeyRef"]["key"])
        for k, v in e.items()
        if isinstance(v, dict)
    }
    assert refs == {
        "SHIPWAY_PREDICTION_LOG_URI": (f"{FULLNAME}-postgresql", "prediction-log-uri"),
        "SHIPWAY_FEAST_REGISTRY_PATH": (f"{FULLNAME}-postgresql", "feast-registry-uri"),
        "SHIPWAY_FEAST_REDIS_CONNECTION": (f"{FULLNAME}-redis", "connection"),
        "MLFLOW_TRACKING_PASSWORD": (f"{FULLNAME}-mlflow-user-prediction", "password"),
        "SHIPWAY_API_TOKEN": (f"{FULLNAME}-api-token", "token"),
    }
    # The API token reaches the prediction service only.
    for doc in workloads(docs):
        if doc["metadata"]["labels"]["app.kubernetes.io/component"] == "prediction":
            continue
        for c in all_containers(pod_template(doc)["spec"]):
            assert "SHIPWAY_API_TOKEN" not in env_of(c), doc["metadata"]["name"]


def _secret_data(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    secret = one(docs, "Secret", name)
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_generated_secrets_are_consistent_and_random(tc, rendered) -> None:
    docs = rendered["default"]
    pg = _secret_data(docs, f"{FULLNAME}-postgresql")
    passwords = [pg[f"{who}password"] for who in PG_ROLES.values()]
    assert all(len(pw) == 32 and pw.isalnum() for pw in passwords)
    assert len(set(passwords)) == len(passwords), "one password per role"
    host = f"{FULLNAME}-postgresql.{NAMESPACE}.svc:5432"
    # each URI logs in as the role of the pods that read it (files/postgresql-roles.psql)
    assert pg["prediction-log-uri"] == (
        f"postgresql://shipway_predictions:{pg['predictions-password']}@{host}/predictions"
    )
    assert pg["governance-prediction-log-uri"] == (
        f"postgresql://shipway_governance:{pg['governance-password']}@{host}/predictions"
    )
    assert pg["feast-registry-uri"] == (
        f"postgresql+psycopg://shipway_feast:{pg['feast-password']}@{host}/feast"
    )
    mlflow = f"postgresql+psycopg://shipway_mlflow:{pg['mlflow-password']}@{host}"
    assert pg["mlflow-backend-store-uri"] == f"{mlflow}/mlflow"
    assert pg["mlflow-auth-database-uri"] == f"{mlflow}/mlflow_auth"
    assert pg["password"] not in "".join(v for k, v in pg.items() if k != "password")
    redis = _secret_data(docs, f"{FULLNAME}-redis")
    assert (
        redis["connection"] == f"{FULLNAME}-redis.{NAMESPACE}.svc:6379,password={redis['password']}"
    )
    assert redis["auth.conf"] == f"requirepass {redis['password']}\n"
    token = _secret_data(docs, f"{FULLNAME}-api-token")["token"]
    assert len(token) == 48
    again = render(tc)
    assert _secret_data(again, f"{FULLNAME}-api-token")["token"] != token, "tokens must be random"
    for secret in by_kind(docs, "Secret"):
        if secret["metadata"]["namespace"] != NAMESPACE:
            continue  # the pipeline pods' copies, re-rendered from the originals
        # Generated once, kept on uninstall with the data volumes they unlock.
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


EXTERNAL = {"production", "external-stores"}
"""Scenarios naming Secrets that exist outside the chart (existingSecret)."""


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_secret_value_outside_secrets(rendered, scenario: str) -> None:
    docs = rendered[scenario]
    secret_values = {
        v
        for s in by_kind(docs, "Secret")
        for v in _secret_data(docs, s["metadata"]["name"]).values()
        if len(v) >= 16
    }
    secret_values |= {
        line.split()[-1] for v in list(secret_values) for line in v.splitlines() if " " in line
    }
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for value in secret_values:
            assert value not in text, (
                f"a Secret value appears in {doc['kind']}/{doc['metadata']['name']}"
            )
    # Every Secret a pod references is rendered here or named in values as an existing one.
    rendered_secrets = {s["metadata"]["name"] for s in by_kind(docs, "Secret")}
    for doc in workloads(docs):
        spec = pod_template(doc)["spec"]
        for c in all_containers(spec):
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in rendered_secrets or scenario in EXTERNAL, ref
        for v in spec.get("volumes", []):
            if "secret" in v:
                assert v["secret"]["secretName"] in rendered_secrets or scenario in EXTERNAL, v


def test_values_defaults_hold_no_secret_values() -> None:
    suspicious = re.compile(r"(password|passwd|token|secret|apikey|api_key|connection)", re.I)
    naming = re.compile(r"(Key|existingSecret|secretName|tlsSecretName|Secret)$")

    def walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, f"{path}.{k}" if path else str(k))
        elif not isinstance(node, list):
            yield path, node

    for source in [CHART / "values.yaml", *CI_VALUES]:
        values = yaml.safe_load(source.read_text())
        for path, value in walk(values, ""):
            leaf = path.rsplit(".", 1)[-1]
            if suspicious.search(leaf) and not naming.search(leaf) and isinstance(value, str):
                assert value == "", f"{source.name}: {path} holds a literal secret value"


PG_ROLES = {
    "shipway": "",
    "shipway_mlflow": "mlflow-",
    "shipway_feast": "feast-",
    "shipway_predictions": "predictions-",
    "shipway_governance": "governance-",
}
"""PostgreSQL login role -> prefix of its password's key in the bundled Secret."""


def _pg_logins(docs: list[dict[str, Any]], namespace: str = NAMESPACE) -> dict[str, set[str]]:
    """Component -> the PostgreSQL roles its pods log in as (from the Secret keys they read)."""
    secret = f"{FULLNAME}-postgresql"
    data = {
        k: base64.b64decode(v).decode()
        for d in by_kind(docs, "Secret")
        if d["metadata"]["name"] == secret and d["metadata"]["namespace"] == namespace
        for k, v in d["data"].items()
    }
    out: dict[str, set[str]] = {}
    for doc in workloads(docs):
        component = pod_template(doc)["metadata"]["labels"]["app.kubernetes.io/component"]
        spec = pod_template(doc)["spec"]
        keys = [
            ref["key"]
            for c in all_containers(spec)
            for e in c.get("env", [])
            if (ref := (e.get("valueFrom") or {}).get("secretKeyRef")) and ref["name"] == secret
        ]
        keys += [
            item["key"]
            for v in spec.get("volumes", [])
            if v.get("secret", {}).get("secretName") == secret
            for item in v["secret"]["items"]
        ]
        roles = out.setdefault(component, set())
        for key in keys:
            value = data[key]
            if "://" in value:
                roles.add(value.split("://", 1)[1].split(":", 1)[0])
            else:  # a password file: the role whose password it is
                roles |= {r for r, prefix in PG_ROLES.items() if key == f"{prefix}password"}
    return {c: r for c, r in out.items() if r}


def test_each_pod_logs_in_to_postgresql_as_its_own_least_role(rendered) -> None:
    """Only the MLflow server holds a URI of MLflow's databases; the internet-facing
    prediction service's role appends to the log but owns nothing; the superuser's password
    stays with the PostgreSQL pod, which runs the roles file at first start."""
    assert _pg_logins(rendered["default"]) == {
        "postgresql": set(PG_ROLES),
        "mlflow": {"shipway_mlflow"},
        "prediction": {"shipway_predictions", "shipway_feast"},
        "monitor": {"shipway_governance", "shipway_feast"},
        "feast-apply": {"shipway_feast"},
        "feast-materialize": {"shipway_feast"},
    }  # the trigger, the access Job and the helm test hold no PostgreSQL credential
    # external PostgreSQL: the same split by Secret key (values postgresql.external.*Key)
    for scenario in ("production", "external-stores"):
        keys = {}
        for doc in workloads(rendered[scenario]):
            component = pod_template(doc)["metadata"]["labels"]["app.kubernetes.io/component"]
            for c in all_containers(pod_template(doc)["spec"]):
                ref = env_of(c).get("SHIPWAY_PREDICTION_LOG_URI")
                if isinstance(ref, dict):
                    keys.setdefault(component, set()).add(ref["secretKeyRef"]["key"])
        assert keys == {
            "prediction": {"prediction-log-uri"},
            "monitor": {"governance-prediction-log-uri"},
        }, scenario
    pipeline = _in(rendered["default"], "kubeflow")[("Secret", f"{FULLNAME}-postgresql")]
    uris = {k: base64.b64decode(v).decode() for k, v in pipeline["data"].items()}
    assert {k: v.split("://", 1)[1].split(":", 1)[0] for k, v in uris.items()} == {
        "feast-registry-uri": "shipway_feast",
        "prediction-log-uri": "shipway_governance",  # the promotion lock, no writes
    }


def test_bundled_stores_read_passwords_from_files_not_env(rendered) -> None:
    docs = rendered["default"]
    pg = one(docs, "StatefulSet", f"{FULLNAME}-postgresql")
    (c,) = pg["spec"]["template"]["spec"]["containers"]
    e = env_of(c)
    assert e["POSTGRES_PASSWORD_FILE"] == "/etc/postgresql-auth/password"
    assert not any(isinstance(v, dict) for v in e.values())
    assert e["PGDATA"].startswith("/var/lib/postgresql/data/")
    assert c["image"] == "docker.io/library/postgres:16.9-bookworm"
    redis = one(docs, "StatefulSet", f"{FULLNAME}-redis")
    (r,) = redis["spec"]["template"]["spec"]["containers"]
    assert "env" not in r
    assert r["command"] == ["redis-server", "/etc/redis/redis.conf"]
    conf = one(docs, "ConfigMap", f"{FULLNAME}-redis-config")["data"]["redis.conf"]
    assert "include /etc/redis-auth/auth.conf" in conf and "requirepass" not in conf
    initdb = one(docs, "ConfigMap", f"{FULLNAME}-postgresql-initdb")["data"]
    script = initdb["10-shipway-roles.sh"]
    for var, db in (("feast_db", "feast"), ("predictions_db", "predictions")):
        assert f'-v {var}="{db}"' in script
    # the SQL is the chart's file byte for byte (tests/integration/test_postgres_roles.py
    # runs this rendered script against a real server)
    for name in ("postgresql-roles.psql", "predictions-schema.psql"):
        assert initdb[name] == (CHART / "files" / name).read_text(), name
    mounted = {
        i["key"]
        for v in pg["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
        for i in v["secret"]["items"]
    }
    assert mounted == {f"{prefix}password" for prefix in PG_ROLES.values()}


# --------------------------------------------------------------------------- MLflow
def _mlflow(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    dep = one(docs, "Deployment", f"{FULLNAME}-mlflow")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return dep, c


def _arg(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def test_mlflow_server_command_auth_and_backend(rendered) -> None:
    dep, c = _mlflow(rendered["default"])
    cmd = c["command"]
    assert cmd[:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in cmd
    assert _arg(cmd, "--app-name") == "basic-auth"
    assert _arg(cmd, "--host") == "0.0.0.0" and _arg(cmd, "--port") == "5000"
    assert _arg(cmd, "--artifacts-destination") == "/mlartifacts"
    hosts = _arg(cmd, "--allowed-hosts").split(",")
    assert f"{FULLNAME}-mlflow:*" in hosts and f"{FULLNAME}-mlflow.{NAMESPACE}.svc*" in hosts
    e = env_of(c)
    assert e["MLFLOW_BACKEND_STORE_URI"]["secretKeyRef"]["key"] == "mlflow-backend-store-uri"
    assert e["MLFLOW_AUTH_ADMIN_PASSWORD"]["secretKeyRef"] == {
        "name": f"{FULLNAME}-mlflow-auth",
        "key": "admin-password",
    }
    assert e["MLFLOW_AUTH_CONFIG_PATH"] == "/tmp/mlflow-auth/basic_auth.ini"
    assert not any("postgresql" in a for a in cmd), "no connection string in argv"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    (init,) = dep["spec"]["template"]["spec"]["initContainers"]
    assert init["command"][-1] == "/tmp/mlflow-auth/basic_auth.ini"
    tmpl = one(rendered["default"], "ConfigMap", f"{FULLNAME}-mlflow-auth-template")["data"]
    assert "database_uri = ${MLFLOW_AUTH_DATABASE_URI}" in tmpl["basic_auth.ini.tmpl"]
    assert "admin_password" not in tmpl["basic_auth.ini.tmpl"]
    assert dep["spec"]["strategy"]["type"] == "Recreate"  # ReadWriteOnce artifacts volume


def test_mlflow_auth_ini_render_script(tmp_path: Path) -> None:
    """The init container's script fills the template from the environment, safely."""
    tmpl = tmp_path / "basic_auth.ini.tmpl"
    tmpl.write_text(
        "[mlflow]\ndatabase_uri = ${MLFLOW_AUTH_DATABASE_URI}\nadmin_username = admin\n"
    )
    dest = tmp_path / "out" / "basic_auth.ini"
    uri = "postgresql+psycopg://u:p%40ss@db:5432/mlflow_auth"
    proc = subprocess.run(
        [sys.executable, str(CHART / "files" / "render-mlflow-auth.py"), str(tmpl), str(dest)],
        env={**os.environ, "MLFLOW_AUTH_DATABASE_URI": uri},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    parser = configparser.ConfigParser()  # what MLflow uses, with % interpolation
    parser.read(dest)
    assert parser["mlflow"]["database_uri"] == uri
    assert dest.stat().st_mode & 0o077 == 0, "the rendered file is private"
    missing = subprocess.run(
        [sys.executable, str(CHART / "files" / "render-mlflow-auth.py"), str(tmpl), str(dest)],
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_AUTH_DATABASE_URI"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode != 0 and "MLFLOW_AUTH_DATABASE_URI" in missing.stderr


def _status(url: str, host: str | None = None, auth: tuple[str, str] | None = None) -> int:
    headers = {"Host": host} if host else {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def test_mlflow_server_runs_with_the_chart_command_line(rendered, tmp_path: Path) -> None:
    """The chart's exact `mlflow server` arguments, auth template and env, run for real
    (SQLite stands in for PostgreSQL): auth on, Service host names accepted, others not."""
    require(
        importlib.util.find_spec("flask_wtf") is not None,
        "MLflow basic auth needs Flask-WTF: install the project's dev extra (mlflow[auth])",
    )
    docs = rendered["default"]
    _, c = _mlflow(docs)
    port = free_port()
    cmd = list(c["command"])
    overrides = {
        "--host": "127.0.0.1",
        "--port": str(port),
        "--workers": "1",
        "--artifacts-destination": str(tmp_path / "artifacts"),
    }
    for flag, value in overrides.items():
        cmd[cmd.index(flag) + 1] = value
    template = tmp_path / "basic_auth.ini.tmpl"
    template.write_text(
        one(docs, "ConfigMap", f"{FULLNAME}-mlflow-auth-template")["data"]["basic_auth.ini.tmpl"]
    )
    ini = tmp_path / "auth" / "basic_auth.ini"
    subprocess.run(
        [sys.executable, str(CHART / "files" / "render-mlflow-auth.py"), str(template), str(ini)],
        env={**os.environ, "MLFLOW_AUTH_DATABASE_URI": f"sqlite:///{tmp_path / 'auth.db'}"},
        check=True,
        capture_output=True,
    )
    e = env_of(c)
    password = "chart-test-" + os.urandom(8).hex()
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_USERNAME": e["MLFLOW_AUTH_ADMIN_USERNAME"],
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex(),
    }
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [str(mlflow_bin), *cmd[1:]], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if _status(f"{base}/health") == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        api = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
        admin = (e["MLFLOW_AUTH_ADMIN_USERNAME"], password)
        svc_host = f"{FULLNAME}-mlflow:5000"
        assert _status(api, host=svc_host) == 401, "anonymous calls are refused"
        assert _status(api, host=svc_host, auth=(admin[0], "wrong")) == 401
        assert _status(api, host=svc_host, auth=admin) == 200
        assert (
            _status(api, host=f"{FULLNAME}-mlflow.{NAMESPACE}.svc.cluster.local:5000", auth=admin)
            == 200
        )
        assert _status(api, host="evil.example:5000", auth=admin) == 403, "DNS rebinding guard"
        assert _status(f"{base}/health", host="10.1.2.3:5000") == 200, "kubelet probes by pod IP"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


ARTIFACT_STORES = [
    pytest.param(["mlflow.artifacts.type=pvc"], "/mlartifacts", set(), id="pvc"),
    pytest.param(
        [
            "mlflow.artifacts.type=s3",
            "mlflow.artifacts.s3.bucket=b",
            "mlflow.artifacts.s3.existingSecret=aws",
            "mlflow.artifacts.s3.endpointUrl=http://minio:9000",
        ],
        "s3://b/mlflow",
        {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"},
        id="s3",
    ),
    pytest.param(
        [
            "mlflow.artifacts.type=gcs",
            "mlflow.artifacts.gcs.bucket=g",
            "mlflow.artifacts.gcs.existingSecret=gcp",
        ],
        "gs://g/mlflow",
        {"GOOGLE_APPLICATION_CREDENTIALS"},
        id="gcs",
    ),
    pytest.param(
        [
            "mlflow.artifacts.type=azure",
            "mlflow.artifacts.azure.container=c",
            "mlflow.artifacts.azure.storageAccount=acct",
            "mlflow.artifacts.azure.existingSecret=az",
        ],
        "wasbs://c@acct.blob.core.windows.net/mlflow",
        {"AZURE_STORAGE_CONNECTION_STRING"},
        id="azure",
    ),
]


@pytest.mark.parametrize(("sets", "destination", "cred_env"), ARTIFACT_STORES)
def test_mlflow_artifact_stores(tc, sets: list[str], destination: str, cred_env: set[str]) -> None:
    docs = render(tc, sets=sets)
    dep, c = _mlflow(docs)
    assert _arg(c["command"], "--artifacts-destination") == destination
    e = env_of(c)
    assert cred_env <= set(e)
    cloud = {
        "AWS_ACCESS_KEY_ID",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AZURE_STORAGE_CONNECTION_STRING",
    }
    assert not (cloud - cred_env) & set(e)
    pvcs = by_kind(docs, "PersistentVolumeClaim")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    if destination.startswith("/"):
        assert [p["metadata"]["name"] for p in pvcs] == [f"{FULLNAME}-mlflow-artifacts"]
        assert "shipway.io/object-storage" not in labels
    else:
        assert not pvcs
        assert labels["shipway.io/object-storage"] == "true"
        assert one(docs, "NetworkPolicy", f"{FULLNAME}-np-egress-object-storage")
    if "GOOGLE_APPLICATION_CREDENTIALS" in cred_env:
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert "/var/secrets/gcp" in mounts


def test_production_uses_external_stores_only(rendered) -> None:
    docs = rendered["production"]
    assert not by_kind(docs, "StatefulSet")
    names = {s["metadata"]["name"] for s in by_kind(docs, "Secret")}
    assert names == set(), "production names existing Secrets; the chart generates none"
    _, c = _mlflow(docs)
    assert _arg(c["command"], "--artifacts-destination") == "s3://acme-shipway-artifacts/mlflow"
    sa = one(docs, "ServiceAccount", f"{FULLNAME}-mlflow")
    assert "eks.amazonaws.com/role-arn" in sa["metadata"]["annotations"]
    e = env_of(c)
    assert e["MLFLOW_BACKEND_STORE_URI"]["secretKeyRef"]["name"] == "shipway-postgresql-uris"
    assert "AWS_ACCESS_KEY_ID" not in e, "workload identity, no static keys"
    assert "mlflow.ml.example.com" in _arg(c["command"], "--allowed-hosts").split(",")


# --------------------------------------------------------------------------- network policies
def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _port_matches(
    rule_ports: list[dict[str, Any]] | None, port: int, named: dict[str, int]
) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        want = p.get("port")
        if want is None or want == port or (isinstance(want, str) and named.get(want) == port):
            return True
    return False


def _peer_matches(peers: list[dict[str, Any]] | None, labels: dict[str, str]) -> bool:
    """Same-namespace evaluation: a peer with only a podSelector selects pods here."""
    if peers is None:
        return True
    return any(set(p) == {"podSelector"} and _selects(p["podSelector"], labels) for p in peers)


def _allowed(
    policies: list[dict[str, Any]], src: dict[str, Any], dst: dict[str, Any], port: int
) -> bool:
    def direction(pod, kind, rules_key, peer_key, peer, named):
        selecting = [
            p
            for p in policies
            if kind in p["spec"]["policyTypes"]
            and _selects(p["spec"]["podSelector"], pod["labels"])
        ]
        if not selecting:
            return True
        return any(
            _port_matches(r.get("ports"), port, named)
            and _peer_matches(r.get(peer_key), peer["labels"])
            for p in selecting
            for r in p["spec"].get(rules_key, [])
        )

    return direction(src, "Egress", "egress", "to", dst, dst["ports"]) and direction(
        dst, "Ingress", "ingress", "from", src, dst["ports"]
    )


def _pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    pods = {}
    for doc in workloads(docs):
        tmpl = pod_template(doc)
        named = {
            p["name"]: p["containerPort"]
            for c in tmpl["spec"]["containers"]
            for p in c.get("ports", [])
            if "name" in p
        }
        pods[doc["metadata"]["name"].removeprefix(f"{FULLNAME}-")] = {
            "labels": tmpl["metadata"]["labels"],
            "ports": named,
        }
    return pods


def test_network_policies_open_only_the_needed_flows(rendered) -> None:
    docs = rendered["default"]
    policies = by_kind(docs, "NetworkPolicy")
    pods = _pods(docs)
    deny = one(docs, "NetworkPolicy", f"{FULLNAME}-np-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    for name, pod in pods.items():
        assert _selects(deny["spec"]["podSelector"], pod["labels"]), f"{name} escapes default deny"
    allowed = [
        ("predict-hotel-rates", "postgresql", 5432),
        ("predict-hotel-rates", "redis", 6379),
        ("predict-hotel-rates", "mlflow", 5000),
        ("monitor-hotel-rates", "postgresql", 5432),
        ("monitor-hotel-rates", "mlflow", 5000),
        ("mlflow-access", "mlflow", 5000),
        ("mlflow", "postgresql", 5432),
        ("feast-apply", "postgresql", 5432),
        ("feast-apply", "redis", 6379),
        ("materialize-hotel-rates", "redis", 6379),
        ("test-hotel-rates", "predict-hotel-rates", 3000),
    ]
    denied = [
        ("mlflow", "redis", 6379),
        ("test-hotel-rates", "postgresql", 5432),
        ("test-hotel-rates", "mlflow", 5000),
        ("predict-hotel-rates", "predict-hotel-rates", 9999),
        ("postgresql", "redis", 6379),
        ("redis", "postgresql", 5432),
        ("predict-hotel-rates", "monitor-hotel-rates", 9108),
        ("mlflow", "predict-hotel-rates", 3000),
        # the trigger only submits runs; Feast jobs never call MLflow
        ("trigger", "mlflow", 5000),
        ("trigger", "postgresql", 5432),
        ("trigger", "redis", 6379),
        ("feast-apply", "mlflow", 5000),
        ("materialize-hotel-rates", "mlflow", 5000),
        ("mlflow-access", "postgresql", 5432),
    ]
    for src, dst, port in allowed:
        assert _allowed(policies, pods[src], pods[dst], port), (
            f"{src} -> {dst}:{port} should be allowed"
        )
    for src, dst, port in denied:
        assert not _allowed(policies, pods[src], pods[dst], port), (
            f"{src} -> {dst}:{port} should be denied"
        )


def _admits_from(
    policies: list[dict[str, Any]], dst: dict[str, Any], port: int, ns: str, labels: dict[str, str]
) -> bool:
    """Does an ingress rule of a policy selecting ``dst`` admit a pod of namespace ``ns``
    with ``labels`` (namespaces labelled by name, as Kubernetes does)?"""
    ns_labels = {"kubernetes.io/metadata.name": ns}
    for p in policies:
        if "Ingress" not in p["spec"]["policyTypes"] or not _selects(
            p["spec"]["podSelector"], dst["labels"]
        ):
            continue
        for rule in p["spec"].get("ingress", []):
            if not _port_matches(rule.get("ports"), port, dst["ports"]):
                continue
            for peer in rule.get("from", []):
                in_ns = (
                    _selects(peer["namespaceSelector"], ns_labels)
                    if "namespaceSelector" in peer
                    else ns == NAMESPACE
                )
                if in_ns and _selects(peer.get("podSelector", {}), labels):
                    return True
    return False


def test_network_policies_admit_only_the_pipeline_run_pods_of_kubeflow(rendered) -> None:
    """The pipeline's pods reach the stores they hold credentials for; the rest of the
    kubeflow namespace (the KFP API server, the UI, any pod of a user) reaches none."""
    docs = rendered["default"]
    policies = by_kind(docs, "NetworkPolicy")
    pods = _pods(docs)
    run_pod = {"pipelines.kubeflow.org/v2_component": "true", "workflows.argoproj.io/workflow": "x"}
    for dst, port in (("mlflow", 5000), ("postgresql", 5432), ("redis", 6379)):
        assert _admits_from(policies, pods[dst], port, "kubeflow", run_pod), dst
        assert not _admits_from(policies, pods[dst], port, "kubeflow", {"app": "ml-pipeline"}), dst
        assert not _admits_from(policies, pods[dst], port, "kubeflow", {}), dst
        assert not _admits_from(policies, pods[dst], port, "other-team", run_pod), dst
    for dst, port in (("predict-hotel-rates", 3000), ("trigger", 9109)):
        assert not _admits_from(policies, pods[dst], port, "kubeflow", run_pod), dst


def test_network_policies_for_external_stores(rendered) -> None:
    docs = rendered["production"]
    pg = one(docs, "NetworkPolicy", f"{FULLNAME}-np-egress-postgresql")
    (rule,) = pg["spec"]["egress"]
    assert rule["ports"] == [{"port": 5432, "protocol": "TCP"}]
    assert rule["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    kfp = one(docs, "NetworkPolicy", f"{FULLNAME}-np-egress-kfp")
    assert kfp["spec"]["egress"][0]["ports"] == [{"port": 8888, "protocol": "TCP"}]
    default = one(rendered["default"], "NetworkPolicy", f"{FULLNAME}-np-egress-postgresql")
    assert "ipBlock" not in json.dumps(default), "bundled stores need no egress outside the cluster"


# --------------------------------------------------------------------------- Prometheus / Grafana
def test_scrape_annotations_without_the_operator(rendered) -> None:
    docs = rendered["default"]
    assert not [d for d in docs if d["kind"] in CRD_KINDS]
    for name, port in (
        (f"{FULLNAME}-predict-hotel-rates", "3000"),
        (f"{FULLNAME}-monitor-hotel-rates", "9108"),
        (f"{FULLNAME}-trigger", "9109"),
    ):
        ann = one(docs, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == port
        assert ann["prometheus.io/path"] == "/metrics"
    rules = one(docs, "ConfigMap", f"{FULLNAME}-rules")["data"]["shipway-rules.yml"]
    assert rules == (CHART / "files" / "rules.yml").read_text()


def test_operator_is_detected_from_the_api_versions(tc) -> None:
    docs = render(tc, extra=["--api-versions", "monitoring.coreos.com/v1"])
    monitors = by_kind(docs, "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {
        f"{FULLNAME}-{c}" for c in ("prediction", "monitor", "trigger")
    }
    ann = one(docs, "Deployment", f"{FULLNAME}-predict-hotel-rates")["spec"]["template"][
        "metadata"
    ]["annotations"]
    assert "prometheus.io/scrape" not in ann
    forced_off = render(
        tc,
        sets=["prometheus.operator.mode=disabled"],
        extra=["--api-versions", "monitoring.coreos.com/v1"],
    )
    assert not by_kind(forced_off, "ServiceMonitor")


def test_service_monitors_select_the_metrics_services(rendered) -> None:
    docs = rendered["prometheus-operator"]
    services = by_kind(docs, "Service")
    for sm in by_kind(docs, "ServiceMonitor"):
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        targets = [s for s in services if _selects(sm["spec"]["selector"], s["metadata"]["labels"])]
        assert targets, sm["metadata"]["name"]
        (endpoint,) = sm["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics" and endpoint["interval"] == "15s"
        for svc in targets:
            assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}


def test_prometheus_rule_equals_the_rules_file(rendered) -> None:
    source = ROOT / "monitoring" / "prometheus" / "rules.yml"
    assert (CHART / "files" / "rules.yml").read_bytes() == source.read_bytes(), (
        "charts/shipway/files/rules.yml is stale: run `make chart-sync`"
    )
    (rule,) = by_kind(rendered["prometheus-operator"], "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(source.read_text())["groups"]
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert alerts and all("runbook" in json.dumps(a.get("annotations", {})).lower() for a in alerts)


def test_alertmanager_config_routes_retraining_alerts_to_the_trigger(rendered) -> None:
    (amc,) = by_kind(rendered["prometheus-operator"], "AlertmanagerConfig")
    route = amc["spec"]["route"]
    assert route["matchers"] == [{"name": "shipway_action", "value": "retrain", "matchType": "="}]
    (receiver,) = amc["spec"]["receivers"]
    assert (
        receiver["webhookConfigs"][0]["url"]
        == f"http://{FULLNAME}-trigger.{NAMESPACE}.svc:9109/alertmanager"
    )
    rules = (CHART / "files" / "rules.yml").read_text()
    assert "shipway_action: retrain" in rules, (
        "the rules no longer carry the label the route matches"
    )


def test_grafana_dashboards_equal_their_sources(rendered) -> None:
    sources = globbed(ROOT / "monitoring" / "grafana", "*.json")
    copies = sorted((CHART / "files" / "dashboards").glob("*.json"))
    assert [p.name for p in copies] == [p.name for p in sources], "run `make chart-sync`"
    for src, copy in zip(sources, copies, strict=True):
        assert copy.read_bytes() == src.read_bytes(), f"{copy.name} is stale: run `make chart-sync`"
    maps = [
        d
        for d in rendered["prometheus-operator"]
        if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]
    ]
    assert len(maps) == len(sources)
    for cm in maps:
        assert cm["metadata"]["namespace"] == "monitoring"
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((fname, body),) = cm["data"].items()
        assert body == (ROOT / "monitoring" / "grafana" / fname).read_text()
        assert json.loads(body)["uid"]


def test_chart_renders_without_optional_files(tc, tmp_path: Path) -> None:
    chart = tmp_path / "shipway"
    shutil.copytree(
        CHART, chart, ignore=shutil.ignore_patterns("*_pipeline.yaml", "rules.yml", "*.json")
    )
    (chart / "values.schema.json").write_bytes((CHART / "values.schema.json").read_bytes())
    docs = render(tc, values=[CHART / "ci" / "prometheus-operator-values.yaml"], chart=chart)
    assert not by_kind(docs, "PrometheusRule")
    assert not [
        d for d in docs if d["kind"] == "Job" and "pipeline-upload" in d["metadata"]["name"]
    ]
    assert not [d for d in by_kind(docs, "ConfigMap") if "dashboard" in d["metadata"]["name"]]


# --------------------------------------------------------------------------- pipeline upload
def _upload_jobs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d
        for d in by_kind(docs, "Job")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "pipeline-upload"
    ]


def test_pipeline_package_in_the_chart_equals_the_compiled_pipeline(tc, rendered) -> None:
    source = ROOT / "pipelines" / "compiled" / "training_pipeline.yaml"
    copy = CHART / "files" / "training_pipeline.yaml"
    assert copy.exists(), (
        "charts/shipway/files/training_pipeline.yaml missing: run `make chart-sync`"
    )
    assert copy.read_bytes() == source.read_bytes(), (
        "the chart's pipeline package is stale: run `make chart-sync`"
    )
    docs = rendered["default"]
    cm = one(docs, "ConfigMap", f"{FULLNAME}-pipeline-package")
    assert cm["data"]["training_pipeline.yaml"] == source.read_text()
    batch = ROOT / "pipelines" / "compiled" / "batch_pipeline.yaml"
    assert cm["data"]["batch_pipeline.yaml"] == batch.read_text()
    size = len(source.read_bytes()) + len(batch.read_bytes())
    assert size < 1_000_000, "a ConfigMap holds at most 1 MiB"
    jobs = _upload_jobs(docs)
    assert sorted(j["metadata"]["labels"]["shipway.io/pipeline-kind"] for j in jobs) == [
        "batch",
        "training",
    ]


def test_pipeline_upload_job_sends_the_package_byte_for_byte(tc, tmp_path: Path) -> None:
    """The Job template, exercised with a package full of YAML-hostile bytes."""
    chart = tmp_path / "shipway"
    shutil.copytree(CHART, chart)
    package = "\n".join(
        [
            "# PIPELINE DEFINITION",
            "# Name: training",
            "components:",
            "  comp-train:",
            "    executorLabel: exec-train",
            "deploymentSpec:",
            "  executors:",
            "    exec-train:",
            "      container:",
            "        image: ghcr.io/shipway/shipway:0.1.0",
            "        command: ['sh', '-c', \"echo 'a: b' # {{ not a template }}\\t\"]",
            "trailing spaces:   ",
            "\ttab-indented",
            "unicode: é✓",
            "",
        ]
    )
    (chart / "files" / "training_pipeline.yaml").write_text(package)
    docs = render(tc, values=[CHART / "ci" / "production-values.yaml"], chart=chart)
    cm = one(docs, "ConfigMap", f"{FULLNAME}-pipeline-package")
    assert cm["data"]["training_pipeline.yaml"] == package
    jobs = [
        j
        for j in _upload_jobs(docs)
        if j["metadata"]["labels"]["shipway.io/pipeline-kind"] == "training"
    ]
    assert {j["metadata"]["labels"]["shipway.io/usecase"] for j in jobs} == {
        "hotel_rates",
        "credit_risk",
    }
    for job in jobs:
        usecase = job["metadata"]["labels"]["shipway.io/usecase"]
        assert job["metadata"]["labels"]["shipway.io/pipeline-kind"] == "training"
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
        spec = job["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        args = c["args"]
        assert args[:14] == [
            "pipeline",
            "upload",
            "--host",
            "http://ml-pipeline.kubeflow.svc.cluster.local:8888",
            "--kind",
            "training",
            "--package",
            "/pipelines/training_pipeline.yaml",
            "--usecase",
            usecase,
            "--name",
            f"{FULLNAME}-{usecase}-training",
            "--image",
            c["image"],  # the steps run in the release's image, like every other pod
        ]
        assert set(args[14::2]) == {"--default"}  # then only defaults (tested below)
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes[mounts["/pipelines"]]["configMap"]["name"] == f"{FULLNAME}-pipeline-package"
        token = volumes[mounts["/var/run/secrets/kubeflow/pipelines"]]["projected"]["sources"][0]
        assert token["serviceAccountToken"]["audience"] == "pipelines.kubeflow.org"
        assert not [e for e in c.get("env", []) if "valueFrom" in e], (
            "the upload Job needs no secret"
        )


def _compiled_pipeline() -> tuple[dict[str, Any], dict[str, Any]]:
    source = ROOT / "pipelines" / "compiled" / "training_pipeline.yaml"
    spec, platform = yaml.safe_load_all(source.read_text())
    return spec, platform


def _pipeline_reads(platform: dict[str, Any]) -> dict[str, dict[str, set[str]]]:
    """name parameter -> {"required" | "optional": keys} over every step of the pipeline."""
    out: dict[str, dict[str, set[str]]] = {}
    for cfg in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
        for kind, key in (("configMapAsEnv", "configMapKey"), ("secretAsEnv", "secretKey")):
            for entry in cfg.get(kind, []):
                name_param = entry[kind.removesuffix("AsEnv") + "NameParameter"]
                param = name_param["componentInputParameter"]
                which = "optional" if entry["optional"] else "required"
                keys = out.setdefault(param, {"required": set(), "optional": set()})[which]
                keys |= {m[key] for m in entry["keyToEnv"]}
    return out


def test_pipeline_defaults_name_what_the_chart_renders(rendered) -> None:
    """A run started from the Kubeflow UI with the defaults finds, in the namespace its pods
    run in, the ConfigMap and Secrets the chart renders with default values (release
    "shipway" in namespace "shipway"), with every key it reads."""
    spec, platform = _compiled_pipeline()
    defaults = {
        k: v["defaultValue"] for k, v in spec["root"]["inputDefinitions"]["parameters"].items()
    }
    docs = rendered["default"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    pns = values["pipelines"]["namespace"]
    assert pns == "kubeflow" and pns != NAMESPACE
    env = configmap_env(docs)
    assert defaults["tracking_uri"] == env["SHIPWAY_MLFLOW_TRACKING_URI"]
    reads = _pipeline_reads(platform)
    assert set(reads) == {
        "env_config_map",
        "postgresql_secret",
        "redis_secret",
        "mlflow_auth_secret",
    }
    for param, keys in reads.items():
        kind = "ConfigMap" if param == "env_config_map" else "Secret"
        name = defaults[param]
        # the names the trigger / `shipway pipeline submit` pass are the same ones
        assert env[f"SHIPWAY_PIPELINE_{param.upper()}"] == name, param
        found = [
            d
            for d in docs
            if d["kind"] == kind
            and d["metadata"]["name"] == name
            and d["metadata"]["namespace"] == pns
        ]
        assert len(found) == 1, f"{kind}/{name} not rendered in {pns}"
        data = set(found[0]["data"])
        # with default values even the optional keys (MLflow basic auth) are there, but
        # the lineage server's URL, which has no default (tested on its own)
        optional = keys["optional"] - {"SHIPWAY_OPENLINEAGE_URL"}
        assert keys["required"] | optional <= data, (param, data)
    # The pipeline maps every ConfigMap key except the KFP token path (nothing mounts it in a
    # step) and the names meant for whoever submits a run.
    mapped = reads["env_config_map"]["required"] | reads["env_config_map"]["optional"]
    chart_keys = set(configmap_env(rendered["production"]))
    assert chart_keys - mapped == {
        "KF_PIPELINES_SA_TOKEN_PATH",
        *(f"SHIPWAY_PIPELINE_{p.upper()}" for p in reads),
    }
    assert mapped <= chart_keys


def _publish(
    tc, tmp_path: Path, release: str, namespace: str, *flags: str
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """Render the chart for ``release`` in ``namespace`` and run each upload Job's command
    line through the real CLI, with ``package`` in place of ``upload`` (no Kubeflow API
    here): (documents, (use case, kind) -> the package's defaults as the kfp SDK loads them)."""
    from kfp.components import load_component_from_text
    from typer.testing import CliRunner

    from shipway.cli import app

    proc = helm(tc, "template", release, "{chart}", "--namespace", namespace, *flags)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    published: dict[tuple[str, str], dict[str, Any]] = {}
    for job in _upload_jobs(docs):
        (c,) = job["spec"]["template"]["spec"]["containers"]
        assert c["args"][:2] == ["pipeline", "upload"]
        pairs = list(zip(c["args"][2::2], c["args"][3::2], strict=True))
        opts = dict(pairs)
        assert opts["--name"] == f"{opts['--usecase']}".join(
            (f"{_fullname(release)}-", f"-{opts['--kind']}")
        )
        out = tmp_path / f"{release}-{opts['--usecase']}-{opts['--kind']}.yaml"
        args = ["pipeline", "package", "--output", str(out)]
        for flag, value in pairs:
            if flag == "--package":  # the mounted ConfigMap key is the chart's file
                value = str(CHART / "files" / Path(value).name)
            if flag not in ("--host", "--name"):
                args += [flag, value]
        run = CliRunner().invoke(app, args)
        assert run.exit_code == 0, run.output
        baked = load_component_from_text(out.read_text())
        images = {
            e["container"]["image"]
            for e in next(yaml.safe_load_all(out.read_text()))["deploymentSpec"][
                "executors"
            ].values()
        }
        assert images == {c["image"]}, "the steps run in the release's image"
        inputs = baked.component_spec.inputs
        key = (opts["--usecase"], opts["--kind"])
        assert key not in published, f"{key} published twice"
        published[key] = {name: spec.default for name, spec in inputs.items()}
    return docs, published


def _fullname(release: str) -> str:
    return release if "shipway" in release else f"{release}-shipway"


@pytest.mark.parametrize(
    ("release", "namespace", "usecases", "flags"),
    [
        (
            "prod",
            "ml",
            {"hotel_rates", "credit_risk"},  # also one it does not serve
            [
                "--set-json",
                'pipelineUpload.usecases=["hotel_rates","credit_risk"]',
                "--set",
                "pipelines.gitRepo=https://git.example.com/ml/shipway.git",
                "--set",
                "pipelines.dvcRemote=gs://ml-data/shipway",
                "--set",
                "pipelineUpload.batch.inputUri=s3://ml-data/{usecase}/incoming/",
                "--set",
                "pipelineUpload.batch.outputUri=s3://ml-data/{usecase}/scored/",
            ],
        ),
        (
            RELEASE,
            NAMESPACE,
            {"hotel_rates", "credit_risk"},
            ["-f", str(CHART / "ci" / "production-values.yaml")],
        ),
        (
            "risk",
            "shipway",
            {"hotel_rates"},
            ["-f", str(CHART / "ci" / "external-stores-values.yaml")],
        ),
    ],
    ids=["other-release", "production", "external-stores"],
)
def test_published_pipelines_default_to_what_the_chart_renders(
    tc,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    release: str,
    namespace: str,
    usecases: set[str],
    flags: list[str],
) -> None:
    """One pipeline per use case and kind, whose defaults are the release's: "Create run"
    with nothing typed trains that use case against the stores the chart renders (the names
    `shipway pipeline submit` and the trigger pass, found in the pipelines namespace)."""
    from shipway.core.settings import get_settings

    monkeypatch.setenv("SHIPWAY_STATE_DIR", str(tmp_path / "state"))  # the CLI's log file
    get_settings.cache_clear()
    docs, published = _publish(tc, tmp_path, release, namespace, *flags)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(published) == {(u, k) for u in usecases for k in values["pipelineUpload"]["kinds"]}
    fullname = _fullname(release)
    env = next(
        d["data"]
        for d in by_kind(docs, "ConfigMap")
        if d["metadata"]["name"] == f"{fullname}-env" and d["metadata"]["namespace"] == namespace
    )
    copies = [
        d
        for d in by_kind(docs, "ConfigMap")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "pipeline-env"
    ]
    pns = copies[0]["metadata"]["namespace"] if copies else namespace
    _, platform = _compiled_pipeline()
    reads = _pipeline_reads(platform)
    for (usecase, kind_), got in published.items():
        assert got["usecase"] == usecase
        assert got["tracking_uri"] == env["SHIPWAY_MLFLOW_TRACKING_URI"]
        assert "@" not in got["tracking_uri"], "no credentials in a parameter"
        if kind_ == "training":
            assert got["repo"] == env["SHIPWAY_GIT_REPO_URL"]
            assert got["dvc_remote"] == env["SHIPWAY_DVC_REMOTE_URL"]
            assert got["data_rev"] == "HEAD" and got["as_of"] == ""
        else:  # batch scoring: its data from pipelineUpload.batch, per use case
            assert kind_ == "batch", kind_
            if release == "prod":
                assert got["input_uri"] == f"s3://ml-data/{usecase}/incoming/"
                assert got["output_uri"] == f"s3://ml-data/{usecase}/scored/"
            else:
                assert got["input_uri"] == got["output_uri"] == ""
        for param, keys in reads.items():
            assert got[param] == env[f"SHIPWAY_PIPELINE_{param.upper()}"], param
            kind = "ConfigMap" if param == "env_config_map" else "Secret"
            found = [
                d
                for d in docs
                if (d["kind"], d["metadata"]["name"], d["metadata"]["namespace"])
                == (kind, got[param], pns)
            ]
            if found:  # the chart renders it there with every key the steps need
                assert keys["required"] <= set(found[0]["data"]), (param, usecase)
            else:  # an external Secret, which NOTES says to create in that namespace
                assert kind == "Secret", f"{kind}/{got[param]} not rendered in {pns}"
    if release == "prod":  # not the committed defaults, which fit release "shipway"
        assert published[("credit_risk", "training")]["env_config_map"] == "prod-shipway-env"
        assert env["SHIPWAY_MLFLOW_TRACKING_URI"] == "http://prod-shipway-mlflow.ml.svc:5000"
        assert pns == "kubeflow"


def test_chart_publishes_the_kinds_the_packaging_registry_has() -> None:
    """pipelineUpload.kinds accepts exactly pipelines/packaging.py KINDS, and the chart
    carries each kind's committed package under the same file name (make chart-sync)."""
    from pipelines.packaging import KINDS

    schema = json.loads((CHART / "values.schema.json").read_text())
    kinds = schema["properties"]["pipelineUpload"]["properties"]["kinds"]["items"]["enum"]
    assert sorted(kinds) == sorted(KINDS)
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    for name, k in KINDS.items():
        assert f"  file: files/{k.compiled.name}" in helpers, name
        assert (CHART / "files" / k.compiled.name).read_bytes() == k.compiled.read_bytes(), name


def test_published_use_cases_and_kinds_follow_the_values(tc) -> None:
    docs = render(
        tc,
        values=[CHART / "ci" / "production-values.yaml"],
        sets=['json:pipelineUpload.usecases=["credit_risk"]'],
    )
    assert {j["metadata"]["name"] for j in _upload_jobs(docs)} == {
        f"{FULLNAME}-pipeline-upload-training-credit-risk",
        f"{FULLNAME}-pipeline-upload-batch-credit-risk",
    }
    docs = render(tc, sets=['json:pipelineUpload.kinds=["batch"]'])
    assert {j["metadata"]["labels"]["shipway.io/pipeline-kind"] for j in _upload_jobs(docs)} == {
        "batch"
    }
    docs = render(tc, sets=["json:pipelineUpload.kinds=[]"])
    assert not _upload_jobs(docs)
    assert not [d for d in docs if d["metadata"]["name"] == f"{FULLNAME}-pipeline-package"]
    proc = template(tc, sets=['json:pipelineUpload.kinds=["scoring"]'])
    assert proc.returncode != 0 and "/pipelineUpload/kinds/0" in proc.stderr


def _in(docs: list[dict[str, Any]], namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (d["kind"], d["metadata"]["name"]): d
        for d in docs
        if d["metadata"].get("namespace") == namespace
    }


def test_pipeline_namespace_gets_the_env_and_copies_of_the_generated_secrets(rendered) -> None:
    docs = rendered["default"]
    copies = _in(docs, "kubeflow")
    assert set(copies) == {
        ("ConfigMap", f"{FULLNAME}-env"),
        ("Secret", f"{FULLNAME}-postgresql"),
        ("Secret", f"{FULLNAME}-redis"),
        ("Secret", f"{FULLNAME}-mlflow-auth"),
    }, "no API token, no other resource in the pipelines namespace"
    home = _in(docs, NAMESPACE)
    assert copies[("ConfigMap", f"{FULLNAME}-env")]["data"] == configmap_env(docs)
    # same values as the originals, only the keys the pipeline reads
    for name, keys in (
        (
            f"{FULLNAME}-postgresql",
            {
                "feast-registry-uri": "feast-registry-uri",
                "prediction-log-uri": "governance-prediction-log-uri",
            },
        ),
        (f"{FULLNAME}-redis", {"connection": "connection"}),
    ):
        copy = copies[("Secret", name)]
        assert set(copy["data"]) == set(keys), name
        for k, original in keys.items():
            assert copy["data"][k] == home[("Secret", name)]["data"][original], (name, k)
        assert "annotations" not in copy["metadata"], "copies go with the release"
    # The MLflow Secret there, under the name the compiled pipeline's default names, holds
    # the pipeline user's password (key admin-password, what the pipeline maps), never the
    # admin's nor another component's.
    mlflow = copies[("Secret", f"{FULLNAME}-mlflow-auth")]["data"]
    assert set(mlflow) == {"admin-password"}
    pipeline = home[("Secret", f"{FULLNAME}-mlflow-user-pipeline")]["data"]
    assert mlflow["admin-password"] == pipeline["password"] == pipeline["admin-password"]
    assert (
        mlflow["admin-password"]
        != home[("Secret", f"{FULLNAME}-mlflow-auth")]["data"]["admin-password"]
    )
    assert copies[("ConfigMap", f"{FULLNAME}-env")]["data"]["MLFLOW_TRACKING_USERNAME"] == (
        "shipway-pipeline"
    )


def test_pipeline_namespace_with_external_secrets_gets_the_env_only(rendered) -> None:
    docs = rendered["production"]
    copies = _in(docs, "kubeflow-ml-team")
    assert set(copies) == {("ConfigMap", f"{FULLNAME}-env")}
    env = copies[("ConfigMap", f"{FULLNAME}-env")]["data"]
    assert env == configmap_env(docs)
    # the external Secrets the pipeline expects there, under the names the release uses
    assert env["SHIPWAY_PIPELINE_POSTGRESQL_SECRET"] == "shipway-postgresql-uris"
    assert env["SHIPWAY_PIPELINE_REDIS_SECRET"] == "shipway-redis"
    assert env["SHIPWAY_PIPELINE_MLFLOW_AUTH_SECRET"] == "shipway-mlflow-pipeline"


def test_openlineage_server_reaches_every_pod_and_the_pipeline(tc) -> None:
    """openlineage.url goes into the shared env ConfigMap (and its copy the pipeline
    steps map, OPTIONAL_ENV_KEYS); unset, no key is rendered and events stay local."""
    from pipelines.training import OPTIONAL_ENV_KEYS

    assert "SHIPWAY_OPENLINEAGE_URL" not in configmap_env(render(tc))
    docs = render(
        tc, sets=["openlineage.url=http://marquez.lineage:5000", "openlineage.namespace=prod"]
    )
    env = configmap_env(docs)
    assert env["SHIPWAY_OPENLINEAGE_URL"] == "http://marquez.lineage:5000"
    assert env["SHIPWAY_OPENLINEAGE_NAMESPACE"] == "prod"
    assert "SHIPWAY_OPENLINEAGE_URL" in OPTIONAL_ENV_KEYS


def test_pipeline_runs_fetch_from_the_configured_repository_and_remote(
    rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart's env is what `shipway pipeline submit` / the trigger and the fetch step
    read: a run names the project's git URL (the image has no history) and the remote."""
    from pipelines.runner import pipeline_arguments
    from shipway.core.settings import Settings

    env = configmap_env(rendered["production"])
    assert env["SHIPWAY_GIT_REPO_URL"] == "https://git.example.com/ml-team/shipway.git"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(root=ROOT)
    assert settings.dvc_remote_url == "s3://ml-team-data/shipway"
    args = pipeline_arguments(settings, "hotel_rates", "HEAD", cluster=True)
    assert args["repo"] == "https://git.example.com/ml-team/shipway.git"
    # without a repository the run is refused before it starts, naming the setting
    monkeypatch.setenv(
        "SHIPWAY_GIT_REPO_URL", configmap_env(rendered["default"])["SHIPWAY_GIT_REPO_URL"]
    )
    with pytest.raises(ValueError, match="SHIPWAY_GIT_REPO_URL"):
        pipeline_arguments(Settings(root=ROOT), "hotel_rates", "HEAD", cluster=True)


def test_pipelines_in_the_release_namespace_need_no_copies(tc) -> None:
    for ns in ("", NAMESPACE):
        docs = render(tc, sets=[f"pipelines.namespace={ns}"])
        assert {d["metadata"]["namespace"] for d in docs} == {NAMESPACE}, ns
        names = [(d["kind"], d["metadata"]["name"]) for d in docs]
        assert len(names) == len(set(names)), ns
        assert not [
            d
            for d in docs
            if d["metadata"]["labels"]["app.kubernetes.io/component"] == "pipeline-env"
        ]


def test_compiled_pipeline_runs_in_the_chart_image() -> None:
    source = ROOT / "pipelines" / "compiled" / "training_pipeline.yaml"
    images = set(re.findall(r"^\s*image:\s*['\"]?([^'\"\s]+)", source.read_text(), re.M))
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert images == {f"{values['image']['repository']}:{chart['appVersion']}"}


def test_chart_image_is_the_settings_default() -> None:
    """The field's default as pydantic sees it (no regex on the source to go stale)."""
    default = Settings.model_fields["image"].default
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert default == f"{values['image']['repository']}:{chart['appVersion']}"


# --------------------------------------------------------------------------- helm test hook
def test_helm_test_pods_call_each_prediction_service(rendered) -> None:
    docs = rendered["production"]
    values = yaml.safe_load((CHART / "ci" / "production-values.yaml").read_text())
    cm = one(docs, "ConfigMap", f"{FULLNAME}-test")
    assert cm["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert cm["data"]["helm_test.py"] == (CHART / "files" / "helm-test.py").read_text()
    for usecase in ("hotel_rates", "credit_risk"):
        pod = one(docs, "Pod", f"{FULLNAME}-test-{usecase.replace('_', '-')}")
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        (c,) = pod["spec"]["containers"]
        e = env_of(c)
        assert (
            e["SHIPWAY_TEST_URL"] == f"http://{FULLNAME}-predict-{usecase.replace('_', '-')}:3000"
        )
        assert e["SHIPWAY_TEST_TOKEN_FILE"] == "/var/run/secrets/shipway/token"
        assert (
            e["SHIPWAY_TEST_EXPECT_KEYS"]
            == "request_id,prediction,model_name,model_version,variant"
        )
        assert not any(isinstance(v, dict) for v in e.values()), (
            "the token is a file, not an env var"
        )
        body = json.loads(cm["data"][f"{usecase}.json"])
        expected = values["prediction"]["testRequests"].get(usecase)
        if expected is None:
            expected = yaml.safe_load((CHART / "values.yaml").read_text())["prediction"][
                "testRequests"
            ][usecase]
        assert body == expected
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["api-token"]["secret"]["secretName"] == "shipway-api-token"


def _usecase_examples() -> dict[str, dict[str, Any]]:
    examples: dict[str, dict[str, Any]] = {}
    for source in [CHART / "values.yaml", *CI_VALUES]:
        values = yaml.safe_load(source.read_text())
        examples.update(((values.get("prediction") or {}).get("testRequests")) or {})
    return examples


@pytest.mark.parametrize("usecase", nonempty(sorted(_usecase_examples()), "testRequests"))
def test_test_requests_match_the_usecase_spec(usecase: str) -> None:
    """An example body carries every request field of the spec, within its bounds."""
    spec_path = ROOT / "usecases" / usecase / "usecase.yaml"
    assert spec_path.exists(), f"the chart has a test request for an unknown use case {usecase}"
    spec = yaml.safe_load(spec_path.read_text())
    body = _usecase_examples()[usecase]
    entities = [e["name"] for e in spec.get("entities", [])]
    fields = [f["name"] for f in spec["request_fields"]]
    unknown = set(body) - set(entities) - set(fields)
    assert not unknown, f"the service refuses unknown fields: {unknown}"
    for entity in entities:
        assert entity in body, f"entity key {entity} missing"
    for field in spec["request_fields"]:
        name = field["name"]
        assert name in body, f"request field {name} missing"
        value = body[name]
        if "allowed" in field:
            assert value in field["allowed"], (name, value)
        if "min" in field:
            assert field["min"] <= value <= field["max"], (name, value)


class _FakeService(http.server.BaseHTTPRequestHandler):
    """A prediction service: /readyz 503 twice then 200; /predict needs the bearer token."""

    token = "s3cret-token"
    readyz_calls = 0
    require_token = True
    seen_bodies: ClassVar[list[bytes]] = []

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/readyz":
            type(self).readyz_calls += 1
            self._send(200 if type(self).readyz_calls > 2 else 503, {})
        else:
            self._send(404, {})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen_bodies.append(body)
        if self.require_token and self.headers.get("Authorization") != f"Bearer {self.token}":
            self._send(401, {"detail": "unauthorized"})
        else:
            self._send(200, {"request_id": "r-1", "prediction": 101.5, "model_version": "3"})


@pytest.fixture
def fake_service() -> Iterator[tuple[str, type[_FakeService]]]:
    handler = type("Handler", (_FakeService,), {"readyz_calls": 0, "seen_bodies": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _run_helm_test(url: str, tmp_path: Path, token: str | None, expect: str = "request_id"):
    request = tmp_path / "req.json"
    request.write_text(json.dumps(_usecase_examples()["hotel_rates"]))
    env = {
        **os.environ,
        "SHIPWAY_TEST_URL": url,
        "SHIPWAY_TEST_REQUEST": str(request),
        "SHIPWAY_TEST_READY_TIMEOUT": "20",
        "SHIPWAY_TEST_POLL_SECONDS": "0.05",
        "SHIPWAY_TEST_EXPECT_KEYS": expect,
    }
    if token is not None:
        (tmp_path / "token").write_text(token + "\n")
        env["SHIPWAY_TEST_TOKEN_FILE"] = str(tmp_path / "token")
    return subprocess.run(
        [sys.executable, str(CHART / "files" / "helm-test.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_helm_test_script_passes_against_a_ready_protected_service(
    fake_service, tmp_path: Path
) -> None:
    url, handler = fake_service
    proc = _run_helm_test(url, tmp_path, handler.token)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert handler.readyz_calls == 3, "waited through the 503s"
    assert "refused (401)" in proc.stdout and "/predict 200" in proc.stdout
    assert json.loads(handler.seen_bodies[-1]) == _usecase_examples()["hotel_rates"]


def test_helm_test_script_fails_when_the_service_is_unprotected(
    fake_service, tmp_path: Path
) -> None:
    url, handler = fake_service
    handler.require_token = False
    proc = _run_helm_test(url, tmp_path, handler.token)
    assert proc.returncode == 1
    assert "without a token answered 200" in proc.stdout


def test_helm_test_script_fails_on_a_wrong_token_or_missing_key(
    fake_service, tmp_path: Path
) -> None:
    url, handler = fake_service
    proc = _run_helm_test(url, tmp_path, "wrong")
    assert proc.returncode == 1 and "/predict answered 401" in proc.stdout
    proc = _run_helm_test(url, tmp_path, handler.token, expect="request_id,variant")
    assert proc.returncode == 1 and "lacks ['variant']" in proc.stdout


# --------------------------------------------------------------------------- ingress / NOTES
def test_ingress_routes_each_usecase_and_mlflow(rendered) -> None:
    (ing,) = by_kind(rendered["production"], "Ingress")
    hosts = {
        r["host"]: r["http"]["paths"][0]["backend"]["service"]["name"] for r in ing["spec"]["rules"]
    }
    assert hosts == {
        "hotel-rates.ml.example.com": f"{FULLNAME}-predict-hotel-rates",
        "credit-risk.ml.example.com": f"{FULLNAME}-predict-credit-risk",
        "mlflow.ml.example.com": f"{FULLNAME}-mlflow",
    }
    assert ing["spec"]["tls"][0]["secretName"] == "shipway-example-com-tls"
    assert set(ing["spec"]["tls"][0]["hosts"]) == set(hosts)


def test_notes_say_how_to_reach_each_endpoint(tc) -> None:
    proc = helm(
        tc,
        "install",
        RELEASE,
        "{chart}",
        "--namespace",
        NAMESPACE,
        "--dry-run=client",
        "-f",
        str(CHART / "ci" / "production-values.yaml"),
    )
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    for expected in (
        f"http://{FULLNAME}-predict-hotel-rates.{NAMESPACE}.svc:3000",
        f"http://{FULLNAME}-predict-credit-risk.{NAMESPACE}.svc:3000",
        "https://hotel-rates.ml.example.com",
        "Authorization: Bearer",
        "get secret shipway-api-token",
        f"http://{FULLNAME}-mlflow.{NAMESPACE}.svc:5000",
        f"http://{FULLNAME}-trigger.{NAMESPACE}.svc:9109/alertmanager",
        f"http://{FULLNAME}-feature-server.{NAMESPACE}.svc:6566",
        f"helm test {RELEASE}",
        # where the pipeline's steps read their configuration, and what to create there
        'The steps run in namespace "kubeflow-ml-team"',
        # one pipeline per use case and kind in the Kubeflow UI, nothing to type
        f"    {FULLNAME}-hotel_rates-training\n    {FULLNAME}-credit_risk-training\n",
        '"Create run" in the Kubeflow UI needs nothing typed',
        "dvc_remote:          s3://ml-team-data/shipway",
        "postgresql_secret:   shipway-postgresql-uris",
        "Create the external Secret(s) shipway-postgresql-uris, shipway-redis, "
        "shipway-mlflow-pipeline in namespace",
    ):
        assert expected in notes, f"{expected!r} not in NOTES"


# --------------------------------------------------------------------------- documentation
_OPAQUE = (
    "testRequests",
    "Probe",
    "resources",
    "jobResources",
    "annotations",
    "labels",
    "Selector",
    "kfpApi.to",
)


def _value_paths(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, dict) and node and not path.endswith(_OPAQUE):
        for key, child in node.items():
            yield from _value_paths(child, f"{path}.{key}" if path else key)
    else:
        yield path


def test_readme_documents_every_value() -> None:
    documented = set(re.findall(r"`([A-Za-z][\w.*]*)`", (CHART / "README.md").read_text()))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    undocumented = []
    for path in _value_paths(values):
        parts = path.split(".")
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        if not (prefixes & documented or {f"{p}.*" for p in prefixes} & documented):
            undocumented.append(path)
    assert undocumented == [], f"not in charts/shipway/README.md: {undocumented}"


def test_schema_describes_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[-1]]
        return node

    missing = []
    for path in _value_paths(values):
        node = schema
        for part in path.split("."):
            node = resolve(node)
            props = node.get("properties", {})
            if part not in props:
                if node.get("additionalProperties") is False:
                    missing.append(path)
                break
            node = props[part]
    assert missing == [], f"values.yaml keys the schema would reject: {missing}"


# --------------------------------------------------------------------------- MLflow users
MLFLOW_PASSWORD_REFS = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD")


def _mlflow_logins(docs: list[dict[str, Any]]) -> dict[str, set[tuple[str, str, str]]]:
    """workload -> {(env var, Secret, key)} of every MLflow credential its containers get."""
    out: dict[str, set[tuple[str, str, str]]] = {}
    for doc in workloads(docs):
        for c in all_containers(pod_template(doc)["spec"]):
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and (e["name"] in MLFLOW_PASSWORD_REFS or "MLFLOW_PASSWORD" in e["name"]):
                    out.setdefault(doc["metadata"]["name"], set()).add(
                        (e["name"], ref["name"], ref["key"])
                    )
    return out


def test_each_component_logs_in_to_mlflow_as_its_own_user(rendered) -> None:
    """The prediction and monitor pods hold only their own user's password; the trigger
    and the Feast jobs none; the admin password only MLflow and the access Job."""
    from shipway.governance import access

    docs = rendered["default"]
    logins = _mlflow_logins(docs)
    user = f"{FULLNAME}-mlflow-user"
    assert logins[f"{FULLNAME}-predict-hotel-rates"] == {
        ("MLFLOW_TRACKING_PASSWORD", f"{user}-prediction", "password")
    }
    assert logins[f"{FULLNAME}-monitor-hotel-rates"] == {
        ("MLFLOW_TRACKING_PASSWORD", f"{user}-monitor", "password")
    }
    for name in (
        "trigger",
        "feast-apply",
        "materialize-hotel-rates",
        "pipeline-upload-training-hotel-rates",
    ):
        assert f"{FULLNAME}-{name}" not in logins, f"{name} gets MLflow credentials"
    admin = {
        w for w, refs in logins.items() if any(s == f"{FULLNAME}-mlflow-auth" for _, s, _ in refs)
    }
    assert admin == {f"{FULLNAME}-mlflow", f"{FULLNAME}-mlflow-access"}
    for name, component in (
        ("predict-hotel-rates", "prediction"),
        ("monitor-hotel-rates", "monitor"),
    ):
        (c,) = one(docs, "Deployment", f"{FULLNAME}-{name}")["spec"]["template"]["spec"][
            "containers"
        ]
        assert env_of(c)["MLFLOW_TRACKING_USERNAME"] == access.role(component).username
    # every generated user Secret holds one user's credentials
    for component in access.COMPONENTS:
        data = _secret_data(docs, f"{user}-{component}")  # (the user name is no secret)
        assert len(data["password"]) == 32
        assert set(data) == {"password"} | (
            {"admin-password"} if component == "pipeline" else set()
        )


def test_mlflow_access_job_runs_the_tested_provisioning(rendered) -> None:
    """The hook Job runs `shipway access provision` with exactly the passwords the CLI reads
    (shipway.cli.access), each from its component's Secret, as the admin."""
    from shipway.cli.access import PASSWORD_ENV
    from shipway.governance import access

    docs = rendered["production"]
    job = one(docs, "Job", f"{FULLNAME}-mlflow-access")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert int(job["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0, "before the others"
    spec = job["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["args"] == [
        "access",
        "provision",
        "--usecase",
        "hotel_rates",
        "--usecase",
        "credit_risk",
    ]
    e = env_of(c)
    assert e["MLFLOW_TRACKING_USERNAME"] == "admin"
    assert e["MLFLOW_TRACKING_PASSWORD"]["secretKeyRef"]["name"] == "shipway-mlflow-admin"
    values = yaml.safe_load((CHART / "ci" / "production-values.yaml").read_text())
    existing = values["mlflow"]["auth"]["users"]["existingSecrets"]
    for component in access.COMPONENTS:
        ref = e[PASSWORD_ENV.format(component.upper())]["secretKeyRef"]
        assert ref == {"name": existing[component], "key": "password"}
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["shipway.io/mlflow-client"] == "true" and "shipway.io/db-client" not in labels


def test_pipeline_runs_reach_mlflow_and_postgresql_only_from_kfp_component_pods(rendered) -> None:
    for name in ("mlflow", "postgresql"):
        policy = one(rendered["default"], "NetworkPolicy", f"{FULLNAME}-np-{name}")
        (rule,) = policy["spec"]["ingress"]
        runs = [p for p in rule["from"] if "namespaceSelector" in p]
        assert runs == [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}},
                "podSelector": {"matchLabels": {"pipelines.kubeflow.org/v2_component": "true"}},
            }
        ], "not the whole kubeflow namespace"


# --------------------------------------------------------------------------- trigger token
def test_trigger_requires_a_token_that_alertmanager_sends(rendered) -> None:
    docs = rendered["prometheus-operator"]
    dep = one(docs, "Deployment", f"{FULLNAME}-trigger")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["args"][:4] == ["trigger", "serve", "--host", "0.0.0.0"], "pods bind all addresses"
    ref = env_of(c)["SHIPWAY_TRIGGER_TOKEN"]["secretKeyRef"]
    assert ref == {"name": f"{FULLNAME}-trigger-token", "key": "token"}
    assert len(_secret_data(docs, f"{FULLNAME}-trigger-token")["token"]) == 48
    (amc,) = by_kind(docs, "AlertmanagerConfig")
    (hook,) = amc["spec"]["receivers"][0]["webhookConfigs"]
    assert hook["httpConfig"]["authorization"] == {"type": "Bearer", "credentials": ref}
    labels = dep["spec"]["template"]["metadata"]["labels"]
    roles = {k for k, v in labels.items() if k.startswith("shipway.io/") and v == "true"}
    assert roles == {"shipway.io/kfp-client"}, "the trigger reaches no store"
    assert not [e for e in env_of(c) if e.startswith(("SHIPWAY_FEAST", "SHIPWAY_PREDICTION"))]
    prod = one(rendered["production"], "Deployment", f"{FULLNAME}-trigger")
    (pc,) = prod["spec"]["template"]["spec"]["containers"]
    assert env_of(pc)["SHIPWAY_TRIGGER_TOKEN"]["secretKeyRef"]["name"] == "shipway-trigger-token"


# --------------------------------------------------------------------------- stable secrets
def test_every_generated_credential_is_looked_up_before_it_is_made() -> None:
    """`helm upgrade` keeps generated credentials: each random value in the templates is
    the fallback of a lookup of the live Secret (there is no cluster here to upgrade on;
    the existingSecret path of every credential is documented in docs/chart.md)."""
    sources = {p.name: p.read_text() for p in (CHART / "templates").rglob("*") if p.is_file()}
    helpers = sources.pop("_helpers.tpl")
    kept = helpers.split('{{- define "shipway.keptSecret" -}}', 1)[1].split(
        "{{- end }}\n{{- end }}"
    )[0]
    assert "lookup" in kept and "randAlphaNum" in kept
    assert "randAlphaNum" not in helpers.replace(kept, "")
    secrets_tpl = sources.pop("secrets.yaml")
    assert not [n for n, text in sources.items() if "randAlphaNum" in text]
    blocks = re.split(r"\napiVersion: v1\nkind: Secret", secrets_tpl)
    for block in blocks:
        if "randAlphaNum" in block:
            assert "lookup" in block, block[:400]
    docs = (ROOT / "docs" / "chart.md").read_text()
    for path in (
        "auth.apiToken.existingSecret",
        "trigger.auth.existingSecret",
        "mlflow.auth.existingSecret",
        "mlflow.auth.users.existingSecrets",
        "postgresql.external.existingSecret",
        "redis.external.existingSecret",
    ):
        assert path in docs, f"docs/chart.md does not document {path}"


def test_batch_schedules_become_one_recurring_run_job_each(rendered) -> None:
    """Each batch.schedules entry of the production scenario is a hook Job that runs
    `shipway batch schedule --host <kfp.host>` with that entry's values (issue 18)."""
    values = yaml.safe_load((CHART / "ci" / "production-values.yaml").read_text())
    schedules = values["batch"]["schedules"]
    jobs = [
        d for d in by_kind(rendered["production"], "Job")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "batch-schedule"
    ]  # fmt: skip
    assert len(jobs) == len(schedules) >= 2
    for job, entry in zip(jobs, schedules, strict=True):
        (container,) = pod_template(job)["spec"]["containers"]
        args = container["args"]
        assert args[:2] == ["batch", "schedule"]
        assert _arg(args, "--host") == values["kfp"]["host"]
        for flag, key in (("--usecase", "usecase"), ("--cron", "cron"), ("--input", "input"),
                          ("--output", "output")):  # fmt: skip
            assert _arg(args, flag) == str(entry[key]), flag
        assert _arg(args, "--name") == entry.get("name", "scoring")
        assert ("--shards" in args) == ("shards" in entry)
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
        labels = pod_template(job)["metadata"]["labels"]
        assert labels.get("shipway.io/kfp-client") == "true"  # egress to the KFP API only
    assert not [
        d for d in by_kind(rendered["default"], "Job")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "batch-schedule"
    ], "no schedules by default"  # fmt: skip
