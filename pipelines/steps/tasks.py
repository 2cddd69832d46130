"""The training tasks on directories: what each KFP component does, callable in-process.

Each task reads the directories of the tasks before it and writes its own, so the KFP
components are one-line wrappers and the same sequence runs in-process for tests and
for the benchmark baseline.
"""

from __future__ import annotations

import atexit
import functools
import gc
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.steps.fetch import fetch, load_fetched
from shipway.core.evidence import Criterion, GateRecord

if TYPE_CHECKING:
    import pandas as pd

# Each KFP component is a fresh process that imports only what its task needs: heavy
# libraries (pandas, Feast, MLflow, scikit-learn, LightGBM, skl2onnx) are imported inside
# the task that uses them, so fetch never loads pandas and promote never loads sklearn.
# Importing everything in every component would dominate the pipeline's wall time.

log = logging.getLogger(__name__)


@functools.cache
def _step_process() -> None:
    """Let this process end without a last garbage collection of the libraries it loaded.

    A step process ends with a heap of pandas, scikit-learn, MLflow and SQLAlchemy
    objects, and interpreter finalization runs full cyclic collections over all of them
    just before the OS frees the memory anyway: 0.3 s after pandas alone, about 1 s after
    MLflow, paid again by every KFP component (each is a fresh process). ``gc.freeze()`` as
    an exit handler moves that heap out of the collector's reach, so finalization only
    releases what reference counting frees (files are still flushed and closed), and the
    exit handlers of the libraries still run (logging closes its handlers, MLflow ends its
    runs); only garbage cycles are left to the OS. Registered once per process, by the
    first task that runs, never at import.
    """
    atexit.register(gc.freeze)


def fetch_task(
    repo: str, rev: str, usecase: str, out: Path, dvc_remote: str = ""
) -> dict[str, Any]:
    _step_process()
    return fetch(repo, rev, usecase, out, dvc_remote)


def training_set_task(fetched: Path, out: Path, as_of: str = "") -> dict[str, int]:
    from pipelines.steps import dataset

    _step_process()
    spec, _, _ = load_fetched(fetched)
    frame = dataset.training_frame(spec, fetched / "data")
    parts = dataset.split(spec, frame, as_of)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in parts.items():
        part.to_parquet(out / f"{name}.parquet", index=False)
    counts = {k: len(v) for k, v in parts.items()}
    (out / "counts.json").write_text(json.dumps(counts))
    bounds = dataset.bounds(spec, frame[dataset.EVENT_TS], as_of)
    windows = dataset.describe(parts, bounds, as_of)
    (out / WINDOWS_FILE).write_text(json.dumps(windows, indent=2))
    return counts


WINDOWS_FILE = "windows.json"
"""The training set's record of which rows each split holds (``dataset.describe``)."""
TRAIN_BEFORE_TAG = "train_before"
"""Version tag: end (exclusive, ISO time) of the rows the version trained on; the next
candidate is compared with it only on rows from there on (``gate.beats_champion``)."""
WINDOWS_TAG = "windows"
"""Version tag: JSON of every split's window, rows and first/last event (the evidence of
what the version trained and was judged on)."""


def champion_trained_before(mv: Any) -> Any:
    """The end of the champion's training window (a UTC Timestamp), None when unrecorded."""
    import pandas as pd

    raw = (getattr(mv, "tags", None) or {}).get(TRAIN_BEFORE_TAG)
    return pd.Timestamp(raw) if raw else None


def _xy(spec: Any, sets: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    import pandas as pd

    from shipway.core.modelframe import model_frame, target_vector

    frame = pd.read_parquet(sets / f"{name}.parquet")
    return frame, model_frame(spec, frame), target_vector(spec, frame)


def train_task(fetched: Path, sets: Path, out: Path) -> dict[str, Any]:
    import joblib

    from pipelines.steps import learner

    _step_process()
    spec, params, _ = load_fetched(fetched)
    hp = learner.hyperparameters(spec, params)
    _, x, y = _xy(spec, sets, "train")
    model = learner.fit(spec, hp, x, y)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib")
    (out / "hyperparameters.json").write_text(json.dumps(hp))
    return hp


def evaluate_task(fetched: Path, sets: Path, model_dir: Path, out: Path) -> dict[str, Any]:
    """Metrics per split, slices, plots, ONNX export and its parity on the test split."""
    import joblib

    from pipelines.steps import dataset, onnx_export, plots
    from shipway.core import metrics
    from shipway.core.modelframe import predict

    _step_process()
    spec, _, _ = load_fetched(fetched)
    model = joblib.load(model_dir / "model.joblib")
    parts = {}
    for name in dataset.SPLITS:
        frame, x, y = _xy(spec, sets, name)
        parts[name] = (frame, y, predict(spec, model, x))
    summary = metrics.summary(spec, parts)
    out.mkdir(parents=True, exist_ok=True)
    plots.diagnostics(spec, parts["test"][1], parts["test"][2], out / "plots")
    try:
        onnx_bytes = onnx_export.to_onnx(spec, model)
        (out / "model.onnx").write_bytes(onnx_bytes)
        _, x_test, _ = _xy(spec, sets, "test")
        parity = onnx_export.compare(spec, model, onnx_bytes, x_test)
        summary["onnx_max_abs_diff"] = parity.max_error  # the gate's figure
        summary["onnx_parity"] = parity.as_dict()
    except Exception as exc:  # recorded; the gate fails on a missing parity figure
        log.warning("ONNX export failed: %s", exc)
        summary["onnx_error"] = f"{type(exc).__name__}: {exc}"
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def gate_task(
    fetched: Path, sets: Path, model_dir: Path, eval_dir: Path, tracking_uri: str, out: Path
) -> GateRecord:
    import joblib

    from pipelines.steps import gate
    from shipway.core import registry

    _step_process()
    spec, _, meta = load_fetched(fetched)
    model = joblib.load(model_dir / "model.joblib")
    test, x_test, y_test = _xy(spec, sets, "test")
    summary = json.loads((eval_dir / "summary.json").read_text())
    client = registry.connect(tracking_uri)
    champ, champ_mv = registry.champion_model(client, spec.registered_model_name)
    subject = {
        "usecase": spec.name,
        "data_version": meta["data_version"],
        "git_rev": meta["git_rev"],
        "champion_version": champ_mv.version if champ_mv else None,
    }
    record = gate.evaluate_gate(
        spec,
        model,
        test,
        x_test,
        y_test,
        champ,
        summary.get("onnx_max_abs_diff"),
        subject,
        champion_before=champion_trained_before(champ_mv) if champ_mv else None,
    )
    record.facts["windows"] = json.loads((sets / WINDOWS_FILE).read_text())
    if "onnx_error" in summary:
        record.criteria.append(Criterion("onnx_export", False, summary["onnx_error"]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "record.json").write_text(json.dumps(record.to_dict(), indent=2, default=str))
    return record


def load_record(gate_dir: Path) -> GateRecord:
    d = json.loads((gate_dir / "record.json").read_text())
    crit = [Criterion(**c) for c in d["criteria"]]
    return GateRecord(
        gate=d["gate"],
        subject=d["subject"],
        criteria=crit,
        facts=d["facts"],
        created_at=d["created_at"],
        schema_version=d["schema_version"],
    )


def reference_frame(spec: Any, model: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """The monitoring reference: validation rows as the model saw them, with the target
    and the model's prediction, so drift and performance compare like with like."""
    from shipway.core.modelframe import model_frame, predict, target_vector

    x = model_frame(spec, frame)
    ref = x.copy()
    ref["prediction"] = predict(spec, model, x)
    ref["actual"] = target_vector(spec, frame)
    ref["event_timestamp"] = frame["event_timestamp"].to_numpy()
    for k in spec.entity_columns:
        ref[k] = frame[k].astype(str).to_numpy()
    return ref


def register_task(
    fetched: Path,
    sets: Path,
    model_dir: Path,
    eval_dir: Path,
    gate_dir: Path,
    tracking_uri: str,
    artifact_root: str,
    kfp_run_id: str,
    git_commit: str,
    workdir: Path,
) -> dict[str, Any]:
    """:func:`register`, reported as the OpenLineage run of the training job: the feature
    tables of the data version in, the registered model version out (FAIL when no
    version was registered). The run id comes from the KFP run id."""
    from shipway.core import openlineage as ol
    from shipway.core.lineage import file_md5
    from shipway.core.settings import Settings

    spec, _, _ = load_fetched(fetched)
    features = fetched / "data" / spec.name / "features"
    inputs = [
        ol.DatasetRef(f"data/{spec.name}/features/{f.name}", file_md5(f), ol.parquet_fields(f))
        for f in sorted(features.glob("*.parquet"))
    ]
    with ol.lineage_run(Settings(), f"{spec.name}.training", inputs, run_key=kfp_run_id) as run:
        res = register(
            fetched,
            sets,
            model_dir,
            eval_dir,
            gate_dir,
            tracking_uri,
            artifact_root,
            kfp_run_id,
            git_commit,
            workdir,
        )
        wanted = set(spec.model_feature_names)
        fields = [f for f in ol.parquet_fields(sets / "train.parquet") if f[0] in wanted]
        run.datasets.append(ol.model_dataset(res["model"], str(res["version"]), fields))
    return res


def register(
    fetched: Path,
    sets: Path,
    model_dir: Path,
    eval_dir: Path,
    gate_dir: Path,
    tracking_uri: str,
    artifact_root: str,
    kfp_run_id: str,
    git_commit: str,
    workdir: Path,
) -> dict[str, Any]:
    """Log the run, register the version as challenger (an unapproved use case trains, is
    evaluated and registered for experimentation, but never reaches production).

    Governance (``shipway.governance.registration``) runs the use-case-approval and
    data-readiness gates on this run's splits first: a version failing them gets no alias
    at all. Champion is decided later, by ``readiness_task`` and ``promote_task``."""
    import joblib
    import pandas as pd

    from shipway.core import registry
    from shipway.core.modelframe import model_frame
    from shipway.scoring import servingform

    _step_process()
    spec, _, meta = load_fetched(fetched)
    model = joblib.load(model_dir / "model.joblib")
    record = load_record(gate_dir)
    summary = json.loads((eval_dir / "summary.json").read_text())
    train = pd.read_parquet(sets / "train.parquet")
    hp = json.loads((model_dir / "hyperparameters.json").read_text())
    onnx_path = eval_dir / "model.onnx"
    lineage = {
        "git_commit": git_commit or meta["git_rev"],
        "data_version": meta["data_version"],
        "data_rev": meta["git_rev"],
        "feature_service": spec.feature_service_name,
        "kfp_run_id": kfp_run_id,
        "spec_hash": spec.content_hash(),
        "usecase": spec.name,
    }
    reference = reference_frame(spec, model, pd.read_parquet(sets / "validation.parquet"))
    ref_dir = workdir / "reference"
    ref_dir.mkdir(parents=True, exist_ok=True)
    reference.to_parquet(ref_dir / "reference.parquet", index=False)
    client = registry.connect(tracking_uri)
    before = registry.alias_targets(client, spec.registered_model_name)
    try:
        run_id, mv = registry.log_run(
            client,
            spec,
            artifact_root=artifact_root or None,
            model=model,
            onnx_bytes=onnx_path.read_bytes() if onnx_path.exists() else None,
            serving_files=servingform.export(spec, model),
            x_example=model_frame(spec, train.head(5)),
            train_frame=train,
            hyperparameters=hp,
            summary=summary,
            record=record,
            plots=sorted((eval_dir / "plots").glob("*.png")),
            lineage=lineage,
            workdir=workdir,
            dataset_source=str((sets / "train.parquet").resolve()),
        )
    except Exception as exc:  # MLflow marks the run FAILED; no version, no alias moved
        raise registry.RegistrationFailed(
            f"register step failed before a version of {spec.registered_model_name} was "
            f"created (its MLflow run is marked FAILED; champion and challenger unchanged): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    try:
        return _govern(client, spec, meta, sets, mv, record, run_id, lineage, kfp_run_id)
    except Exception as exc:  # no half-registered version is left behind
        raise registry.withdraw(client, mv, before, exc) from exc


def _govern(
    client: Any,
    spec: Any,
    meta: dict[str, Any],
    sets: Path,
    mv: Any,
    record: GateRecord,
    run_id: str,
    lineage: dict[str, str],
    kfp_run_id: str,
) -> dict[str, Any]:
    """Governance, aliases and the result of a freshly registered version; a failure in
    here makes :func:`register_task` withdraw the version (``registry.withdraw``)."""
    from shipway.core import registry
    from shipway.governance.registration import govern_registration

    # governance: use-case approval + data readiness on this run's splits, trail, cards
    name = spec.registered_model_name
    windows = json.loads((sets / WINDOWS_FILE).read_text())
    client.set_model_version_tag(name, mv.version, TRAIN_BEFORE_TAG, windows["train"]["before"])
    client.set_model_version_tag(name, mv.version, WINDOWS_TAG, json.dumps(windows))
    gov = govern_registration(client, spec, meta, sets, mv, record)
    if gov.gates_passed:  # a challenger can answer live traffic: governed versions only
        registry.set_alias(client, name, registry.CHALLENGER, mv.version)
    # champion is decided after production readiness (readiness_task, promote_task)
    blocked = promotion_blocked(spec, record) or _governance_block(gov, record)
    result = {
        "model": name,
        "version": mv.version,
        "run_id": run_id,
        "promoted": False,
        "gate_passed": record.passed,
        "failures": [c.summary() for c in record.failures] + gov.failures,
        "promotion_blocked": blocked,
        "governance": {g: r.passed for g, r in gov.records.items()},
        "windows": windows,
        "champion_comparison": {
            k: record.facts[k]
            for k in (
                "champion_trained_before",
                "comparison_rows",
                "candidate_metric_on_comparison_rows",
                "champion_metric",
            )
            if k in record.facts
        },
        **lineage,
    }
    log.info(
        "registered %s v%s (%s)",
        name,
        mv.version,
        "gate passed, production readiness next"
        if record.passed and not blocked
        else (blocked or "gate FAILED") + ", champion unchanged",
    )
    return result


def _governance_block(gov: Any, record: GateRecord) -> str:
    """Why governance keeps a version that passed its gate from the pipeline's promotion
    ('' when only production readiness and the promotion rule remain to decide)."""
    if not record.passed:
        return ""
    if not gov.gates_passed:
        return "not promoted and given no alias: " + "; ".join(gov.failures)
    g = gov.spec.governance
    if g.pipeline_promotes(gov.spec.risk_level):
        return ""
    return (
        f"not promoted by the pipeline (risk level {gov.spec.risk_level.value}, auto_promote "
        f"{g.auto_promote}): run `shipway gate production-readiness`, then `shipway approve` "
        "if required, then `shipway promote`"
    )


def promotion_blocked(spec: Any, record: GateRecord) -> str:
    """Why a version that passed its gate may still not become champion ('' if it may)."""
    if record.passed and not spec.objective.approval.approved:
        return (
            "not promoted: the use case's objective is not approved "
            "(objective.approval.approved is false in its spec)"
        )
    return ""


def readiness_task(fetched: Path, registered: dict[str, Any], tracking_uri: str) -> dict[str, Any]:
    """The production-readiness gate of the registered version (a real Bento build and
    ``bentoml serve`` smoke test), run only when the pipeline could promote it.

    The Bento build (a subprocess) starts first; MLflow is imported and the registry
    opened while it runs (``governance.readiness.start``)."""
    from shipway.core.settings import Settings
    from shipway.governance import readiness

    _step_process()
    spec, _, _ = load_fetched(fetched)
    settings = Settings()
    started = readiness.start(settings, spec, registered)
    from shipway.core import registry  # MLflow: imported while the Bento builds

    client = registry.connect(tracking_uri)
    mv = client.get_model_version(registered["model"], str(registered["version"]))
    res = readiness.pipeline_readiness(settings, client, spec, mv, registered, started)
    log.info("production readiness of %s v%s: %s", mv.name, mv.version, res["summary"])
    return res


def promote_task(
    fetched: Path,
    registered: dict[str, Any],
    readiness: dict[str, Any],
    tracking_uri: str,
    kfp_run_id: str,
) -> dict[str, Any]:
    """The pipeline's promotion (``governance.promotion.auto_promote``: the rule of
    ``shipway promote``, under the model's lock), then the cards; the pipeline's result."""
    from shipway.core import registry
    from shipway.core.settings import Settings
    from shipway.governance.promotion import auto_promote
    from shipway.governance.registration import publish_cards

    _step_process()
    spec, _, _ = load_fetched(fetched)
    settings = Settings()
    client = registry.connect(tracking_uri)
    mv = client.get_model_version(registered["model"], str(registered["version"]))
    record, _ = auto_promote(settings, client, spec, mv, kfp_run_id, readiness["summary"])
    publish_cards(settings, client, spec, mv)
    blocked = registered["promotion_blocked"]
    if not record.passed and registered["gate_passed"] and not blocked:
        blocked = "not promoted: " + "; ".join(c.summary() for c in record.failures)
    result = {
        **registered,
        "promoted": record.passed,
        "promotion_blocked": "" if record.passed else blocked,
        "production_readiness": readiness,
        "previous_champion": record.facts["previous_champion"],
    }
    log.info(
        "%s v%s: %s",
        mv.name,
        mv.version,
        "champion" if record.passed else (blocked or "gate FAILED") + ", champion unchanged",
    )
    return result


def write_result(res: dict[str, Any], path: Path, summary: Path, title: str) -> None:
    """A step's result as JSON (the next step's input) and an HTML table (the KFP UI)."""
    import html

    path.write_text(json.dumps(res, indent=2, default=str))
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in res.items()
    )
    summary.write_text(f"<h2>{html.escape(title)}</h2><table>{rows}</table>")
