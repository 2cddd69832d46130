"""The production-readiness gate's probes: each runs the real thing and reports a dict.

* ``build_bento``: ``bentoml build -f services/bentofile.yaml`` from the repository root,
  versioned by a digest of the sources it packs (an identical earlier build is reused);
  ``start_build`` runs it in the background while the caller does other work;
* ``smoke``: ``bentoml serve <that bento>`` with the *candidate* as champion of a scratch
  registry and a scratch prediction log (so the production registry's aliases never move
  and smoke traffic never reaches the real log or monitoring), real requests, the
  client-side latency, and proof that the answer came from the candidate: the served
  prediction equals the candidate's own prediction on the logged features; then the cost
  per prediction (``cost.CostMeter``: CPU-seconds per 1,000 answers and peak memory of
  the serving process tree) over a further run of requests;
* ``reference``: the version's monitoring reference artifact loads and has rows;
* ``alert_rules``: ``monitoring/prometheus/rules.yml`` parses and, when ``promtool`` is
  installed, ``promtool check rules`` accepts it;
* ``rollback``: which version rollback would restore if the candidate is promoted.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shipway.core import modelframe
from shipway.core.modelframe import model_frame
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.data.replay import future_bookings, probe_row, request_body
from shipway.governance.cost import CostMeter
from shipway.governance.versions import (
    champion,
    eligible,
    ever_champion,
    previous_champion,
    read_uri,
)

if TYPE_CHECKING:
    from concurrent.futures import Future

    import httpx

    from shipway.core.launch import ServiceHandle

BENTOFILE = "services/bentofile.yaml"
RULES = "monitoring/prometheus/rules.yml"


def _service_env(settings: Settings, spec: UseCaseSpec, **overrides: str) -> dict[str, str]:
    from shipway.core.launch import service_env

    return service_env(settings, spec.name, None, **overrides)


def serving_sources() -> Path:
    """Where the serving code and ``services/bentofile.yaml`` live: Shipway's own source
    tree, which is not the project root for a repository made by ``shipway init``."""
    import importlib.util

    spec = importlib.util.find_spec("services")
    if spec is None or spec.origin is None:
        raise RuntimeError("the Shipway 'services' package is not importable")
    return Path(spec.origin).resolve().parent.parent


def source_fingerprint(root: Path, usecase: str, bentofile: str = BENTOFILE) -> tuple[str, str]:
    """The Bento's name and a digest of everything ``bentoml build`` packs: the bentofile,
    the files its ``include`` patterns select (minus ``__pycache__``) and the lock file,
    and the use case it is built for (the service class is generated from the use case's
    spec at build time, so a Bento serves only the use case it was built for).

    Used as the Bento version, so a Bento of exactly these sources is built once per
    BentoML store and found again by name, instead of rebuilt for every candidate model
    (models are not in the Bento; the service loads the champion at start).
    """
    import hashlib

    import yaml

    conf = yaml.safe_load((root / bentofile).read_text())
    files = {root / bentofile, root / conf.get("python", {}).get("requirements_txt", "")}
    for pattern in conf.get("include", []):
        files.update(p for p in root.glob(pattern) if p.is_file() and "__pycache__" not in p.parts)
    h = hashlib.sha256(usecase.encode() + b"\0")
    for f in sorted(p for p in files if p.is_file()):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return str(conf["name"]), f"{usecase.replace('_', '-')}-{h.hexdigest()[:20]}"


def _bentoml(settings: Settings, spec: UseCaseSpec, args: list[str], timeout: float) -> Any:
    from shipway.core.launch import venv_bin

    return subprocess.run(
        [str(Path(venv_bin()) / "bentoml"), *args],
        cwd=serving_sources(),
        env=_service_env(settings, spec),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def build_bento(settings: Settings, spec: UseCaseSpec, timeout: float = 600) -> dict[str, Any]:
    """Build the Bento; ``tag`` is what ``bentoml serve`` and a container build take.

    The tag's version is the sources' fingerprint: when the BentoML store already holds
    the Bento of these exact sources, that build is reused (``reused: true`` in the
    record) — the criterion is that these sources build, and they did.
    """
    t0 = time.monotonic()
    name, version = source_fingerprint(serving_sources(), spec.name)
    tag = f"{name}:{version}"
    try:
        if _bentoml(settings, spec, ["get", tag, "-o", "json"], 120).returncode == 0:
            return {
                "ok": True,
                "tag": tag,
                "reused": True,
                "seconds": round(time.monotonic() - t0, 1),
                "detail": f"the Bento of these exact sources ({version}) is in the store",
            }
        proc = _bentoml(
            settings,
            spec,
            ["build", "-f", BENTOFILE, "--version", version, "-o", "tag", "."],
            timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"ok": False, "tag": None, "detail": f"bentoml build did not run: {exc}"}
    seconds = round(time.monotonic() - t0, 1)
    built = next(
        (ln.split("__tag__:", 1)[1].strip() for ln in proc.stdout.splitlines() if "__tag__:" in ln),
        None,
    )
    if proc.returncode != 0 and _bentoml(settings, spec, ["get", tag], 120).returncode == 0:
        built = tag  # a concurrent build of the same sources finished first
    elif proc.returncode != 0 or not built:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {
            "ok": False,
            "tag": None,
            "seconds": seconds,
            "detail": f"bentoml build failed ({proc.returncode}): {' | '.join(tail)}",
        }
    return {
        "ok": True,
        "tag": built,
        "reused": False,
        "seconds": seconds,
        "detail": f"built in {seconds}s",
    }


def start_build(settings: Settings, spec: UseCaseSpec) -> Future[dict[str, Any]]:
    """``build_bento`` in a background thread; ``result()`` is its record.

    The build is ``bentoml`` subprocesses (about 10 s) that the thread only waits for, so
    a caller with other work can do it meanwhile: the pipeline's production-readiness step
    is a fresh process that still has to import MLflow and open the registry (3-4 s)
    before the gate can start. The modules the thread needs are imported here, before it
    starts, so the two threads never import the same module at the same time.
    """
    from concurrent.futures import ThreadPoolExecutor

    import shipway.core.launch  # noqa: F401  (what _bentoml uses)

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bento-build")
    try:
        return pool.submit(build_bento, settings, spec)
    finally:
        pool.shutdown(wait=False)  # the build runs to its end; the pool takes no more


def _scratch_registry(client: Any, mv: Any, root: Path) -> str:
    """A throwaway registry whose champion is a copy of the candidate's model files."""
    import mlflow
    from mlflow import MlflowClient

    files = mlflow.artifacts.download_artifacts(
        f"models:/{mv.name}/{mv.version}", dst_path=str(root / "model")
    )
    uri = f"sqlite:///{root / 'mlflow.db'}"
    scratch = MlflowClient(tracking_uri=uri, registry_uri=uri)
    scratch.create_registered_model(mv.name)
    v = scratch.create_model_version(mv.name, source=files, tags={"candidate": str(mv.version)})
    scratch.set_registered_model_alias(mv.name, "champion", v.version)
    return uri


def _bodies(settings: Settings, spec: UseCaseSpec, n: int) -> list[dict[str, Any]]:
    """Real events from after the training window; the spec's example row if none."""

    try:
        rows = future_bookings(settings, spec, n)
        return [request_body(spec, r) for _, r in rows.iterrows()]
    except (ValueError, OSError):
        # only then: services.engine loads the whole scoring stack (Feast, the learner)

        return [probe_row(spec)]


def _candidate_model(settings: Settings, mv: Any) -> Any:
    """The candidate's own model, from the registry the pipeline registered it in."""
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return mlflow.sklearn.load_model(f"models:/{mv.name}/{mv.version}")


def _served_equals_candidate(
    spec: UseCaseSpec, model: Any, log_uri: str, request_ids: list[str]
) -> tuple[bool, float]:
    """Recompute the candidate's prediction on the logged features of smoke requests."""
    import pandas as pd

    from shipway.core.predictionlog import PredictionLog

    plog = PredictionLog(log_uri)
    rows = [r for r in (plog.get(i) for i in request_ids[:20]) if r is not None]
    if not rows:
        return False, float("nan")
    frame = pd.DataFrame([r["features"] for r in rows])
    mine = modelframe.predict(spec, model, model_frame(spec, frame))
    served = np.array([r["prediction"] for r in rows])
    diff = float(np.max(np.abs(mine - served)))
    return diff <= 1e-6 * max(1.0, float(np.max(np.abs(served)))), diff


def _feature_service_missing(settings: Settings, spec: UseCaseSpec) -> str:
    """Why the Bento cannot serve this use case's features ('' when it can): its feature
    service must be registered in the Feast store the service reads."""
    from feature_repo.store import feature_store

    try:
        feature_store(settings).get_feature_service(spec.feature_service_name)
    except Exception as exc:  # FeatureServiceNotFoundException, unreachable registry...
        return (
            f"feature service {spec.feature_service_name} is not in the Feast store the "
            f"service reads ({type(exc).__name__}); run `shipway features apply` and "
            f"`shipway features materialize -u {spec.name}` first"
        )
    return ""


def smoke(
    settings: Settings,
    spec: UseCaseSpec,
    mv: Any,
    client: Any,
    bento_tag: str | None,
    port: int,
    requests: int = 30,
    cost_requests: int = 200,
) -> dict[str, Any]:
    """Serve the candidate from the Bento, send real requests, time them, check the answers,
    then measure what ``cost_requests`` more answers cost the serving processes (``cost``).

    The cost has a run of its own: CPU time is counted in clock ticks (10 ms), so the 30
    timed requests alone would measure it to within tens of percent; 200 bring that to a
    few percent in a second or two."""
    import httpx

    from shipway.core.launch import ServiceHandle, venv_bin, wait_ready

    if not bento_tag:
        return {"ok": False, "status": None, "detail": "no Bento to serve (build failed)"}
    missing = _feature_service_missing(settings, spec)
    if missing:  # the service would wait for it forever: say so now, not after a timeout
        return {"ok": False, "status": None, "detail": missing}
    root = Path(tempfile.mkdtemp(prefix="shipway-smoke-"))
    result: dict[str, Any] = {"ok": False, "status": None, "requests": 0, "bento": bento_tag}
    handle: ServiceHandle | None = None
    try:
        env = _service_env(
            settings,
            spec,
            SHIPWAY_MLFLOW_TRACKING_URI=_scratch_registry(client, mv, root),
            SHIPWAY_PREDICTION_LOG_URI=str(root / "predictions.db"),
            SHIPWAY_CHALLENGER_MODE="off",
        )
        log_path = root / "service.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [
                    str(Path(venv_bin()) / "bentoml"),
                    "serve",
                    bento_tag,
                    "--port",
                    str(port),
                    "--host",
                    "127.0.0.1",
                ],
                cwd=settings.root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        handle = ServiceHandle(proc, f"http://127.0.0.1:{port}", log_path)
        # The service takes 10-20 s to start, during which this process would only poll
        # it: the request bodies and the candidate's own model (for the comparison below)
        # are prepared meanwhile. In a fresh process (the pipeline's step) loading the
        # model first imports scikit-learn and skops, seconds that would otherwise be
        # spent after the wait.
        bodies = _bodies(settings, spec, requests)
        model = _candidate_model(settings, mv)
        wait_ready(handle, timeout=240)
        headers = {}
        if settings.api_token is not None:
            headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
        times, ids, statuses = [], [], []
        with httpx.Client(base_url=handle.url, timeout=30, headers=headers) as http:
            for body in bodies[:3]:  # warm-up: first calls load lazily
                http.post("/predict", json=body)
            for i in range(requests):
                t0 = time.perf_counter()
                resp = http.post("/predict", json=bodies[i % len(bodies)])
                times.append((time.perf_counter() - t0) * 1000)
                statuses.append(resp.status_code)
                if resp.status_code == 200:
                    ids.append(resp.json()["request_id"])
            cost = _cost(http, handle, bodies, cost_requests)
        bad = [s for s in statuses if s != 200]
        same, diff = _served_equals_candidate(spec, model, str(root / "predictions.db"), ids)
        result.update(
            requests=len(statuses),
            status=bad[0] if bad else 200,
            p99_ms=round(float(np.percentile(times, 99)), 3),
            median_ms=round(float(np.median(times)), 3),
            max_abs_diff=diff,
            cost=cost,
            ok=not bad and same,
            detail=(
                f"{len(statuses) - len(bad)}/{len(statuses)} answered 200; served predictions "
                + ("equal" if same else f"DIFFER from (max |diff| {diff:.3g})")
                + f" the candidate v{mv.version}'s own"
            ),
        )
    except Exception as exc:  # a service that never gets ready is exactly a failed smoke
        result["detail"] = f"{type(exc).__name__}: {str(exc)[-800:]}"
    finally:
        if handle is not None:
            handle.stop()
        shutil.rmtree(root, ignore_errors=True)
    return result


def _cost(
    http: httpx.Client, handle: ServiceHandle, bodies: list[dict[str, Any]], n: int
) -> dict[str, Any]:
    """Send ``n`` more /predict requests under a ``CostMeter`` on the serving process tree
    (read every 20 requests for the memory peak); the cost's facts, with the answers that
    were not 200 counted (they cost CPU too, but are no predictions)."""
    meter = CostMeter(handle.proc.pid)
    meter.start()
    answered = 0
    for i in range(n):
        answered += http.post("/predict", json=bodies[i % len(bodies)]).status_code == 200
        if i % 20 == 19:
            meter.sample()
    return {**meter.stop(answered).to_dict(), "requests": n}


def reference(client: Any, mv: Any) -> dict[str, Any]:
    """The monitoring reference the version logged (``reference`` tag or the run's file)."""
    import io

    import pandas as pd

    uri = (mv.tags or {}).get("reference") or f"runs:/{mv.run_id}/reference/reference.parquet"
    try:
        frame = pd.read_parquet(io.BytesIO(read_uri(uri, client)))
    except Exception as exc:
        return {"ok": False, "uri": uri, "rows": 0, "detail": f"not loadable: {exc}"}
    need = {"prediction", "actual"}
    ok = len(frame) > 0 and need <= set(frame.columns)
    return {
        "ok": ok,
        "uri": uri,
        "rows": len(frame),
        "detail": f"{len(frame)} rows at {uri}"
        + ("" if ok else f"; needs rows and columns {sorted(need)}"),
    }


def alert_rules(settings: Settings) -> dict[str, Any]:
    """Alert rules exist, parse, and pass ``promtool check rules`` when it is installed."""
    import yaml

    path = settings.root / RULES
    if not path.is_file():  # a project made by `shipway init` uses Shipway's own rules
        path = serving_sources() / RULES
    if not path.is_file():
        return {"ok": False, "rules": 0, "detail": f"{RULES} not found"}
    try:
        groups = (yaml.safe_load(path.read_text()) or {}).get("groups") or []
    except yaml.YAMLError as exc:
        return {"ok": False, "rules": 0, "detail": f"{RULES} is not YAML: {exc}"}
    rules = [r for g in groups for r in g.get("rules", [])]
    alerts = sum(1 for r in rules if "alert" in r)
    info: dict[str, Any] = {"rules": len(rules), "alerts": alerts, "path": RULES}
    promtool = shutil.which("promtool")
    if promtool is None:
        info.update(ok=alerts > 0, promtool="not installed", detail=f"{alerts} alerts; YAML only")
        return info
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    ok = proc.returncode == 0 and alerts > 0
    info.update(
        ok=ok,
        promtool="passed" if proc.returncode == 0 else "failed",
        detail=f"{alerts} alerts; promtool check rules "
        + ("passed" if proc.returncode == 0 else f"failed: {proc.stderr.strip()[-400:]}"),
    )
    return info


def rollback(client: Any, spec: UseCaseSpec, mv: Any) -> dict[str, Any]:
    """The version rollback would restore once the candidate is champion.

    The current champion if it is another eligible version; else the newest eligible
    former champion. For the very first model of a use case there is none: that is
    recorded as a fact (``first_model``) rather than failing the gate forever. The same
    holds for the first champion made through Shipway when the current one was set by
    hand (no ``champion_at`` history) and is not eligible: replacing it must stay possible.
    """
    current = champion(client, mv.name)
    if (
        current is not None
        and str(current.version) != str(mv.version)
        and eligible(current, spec)[0]
    ):
        return {
            "target": str(current.version),
            "first_model": False,
            "detail": f"current champion v{current.version} stays available",
        }
    target = previous_champion(client, spec, mv)
    if target is not None:
        return {
            "target": str(target.version),
            "first_model": False,
            "detail": f"former champion v{target.version}",
        }
    former = ever_champion(client, mv.name, exclude=str(mv.version))
    if not former and (current is None or str(current.version) == str(mv.version)):
        return {
            "target": None,
            "first_model": True,
            "detail": "first model of this use case: no earlier champion exists, so rollback "
            "would mean taking the service down; recorded as a fact",
        }
    if not former and current is not None:  # set by hand, never through Shipway
        return {
            "target": None,
            "first_model": True,
            "detail": f"first governed champion: the current champion v{current.version} was "
            "set outside Shipway and is no rollback target "
            f"({eligible(current, spec)[1] or 'no champion_at history'}); recorded as a fact",
        }
    return {
        "target": None,
        "first_model": False,
        "detail": f"earlier champions {former or [current.version if current else '?']} "
        "exist but none is eligible (rolled back, failed a gate or lacks a required approval)",
    }
