"""KFP v2 components: thin, typed wrappers over ``pipelines.steps.tasks``.

The components are built for a given container image (``components(image)``): on a
cluster they run in the Shipway image, locally kfp.local runs the same code in the
project's virtualenv. Imports live inside the functions because KFP ships each
function's source to its container.
"""

from dataclasses import dataclass
from typing import Any

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output


def fetch_data(
    usecase: str, data_rev: str, repo: str, dvc_remote: str, data: Output[Dataset]
) -> str:
    """Materialise the DVC-tracked features, spec and params of a git revision."""
    from pathlib import Path

    from pipelines.steps.tasks import fetch_task

    meta = fetch_task(repo, data_rev, usecase, Path(data.path), dvc_remote)
    data.metadata.update(meta)
    return str(meta["data_version"])


def build_training_set(data: Input[Dataset], as_of: str, sets: Output[Dataset]) -> None:
    """Historical retrieval through the feature service, time-split train/validation/test
    (moved so the test window ends on ``as_of`` when given)."""
    from pathlib import Path

    from pipelines.steps.tasks import training_set_task

    sets.metadata.update(training_set_task(Path(data.path), Path(sets.path), as_of))


def train_model(data: Input[Dataset], sets: Input[Dataset], model: Output[Model]) -> None:
    """Fit the learner the spec chooses with the hyperparameters of params.yaml."""
    from pathlib import Path

    from pipelines.steps.tasks import train_task

    hp = train_task(Path(data.path), Path(sets.path), Path(model.path))
    model.metadata.update({f"hp_{k}": v for k, v in hp.items()})


def evaluate_model(
    data: Input[Dataset],
    sets: Input[Dataset],
    model: Input[Model],
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
) -> None:
    """Metrics per split, slices, plots, ONNX export and parity."""
    from pathlib import Path

    from pipelines.steps.tasks import evaluate_task

    summary = evaluate_task(
        Path(data.path), Path(sets.path), Path(model.path), Path(evaluation.path)
    )
    for split in ("train", "validation", "test"):
        for k, v in summary[split].items():
            metrics.log_metric(f"{split}_{k}", float(v))
    if "onnx_max_abs_diff" in summary:
        metrics.log_metric("onnx_max_abs_diff", float(summary["onnx_max_abs_diff"]))


def validation_gate(
    data: Input[Dataset],
    sets: Input[Dataset],
    model: Input[Model],
    evaluation: Input[Artifact],
    tracking_uri: str,
    gate: Output[Artifact],
    report: Output[Markdown],
) -> bool:
    """The model-validation gate; its evidence is rendered in the Kubeflow UI."""
    from pathlib import Path

    from pipelines.steps.tasks import gate_task
    from shipway.core.settings import get_settings

    record = gate_task(
        Path(data.path),
        Path(sets.path),
        Path(model.path),
        Path(evaluation.path),
        tracking_uri or get_settings().tracking_uri,
        Path(gate.path),
    )
    Path(report.path).write_text(record.to_markdown())
    gate.metadata.update({"passed": record.passed, "failures": record.explain()})
    return record.passed


def register_model(
    data: Input[Dataset],
    sets: Input[Dataset],
    model: Input[Model],
    evaluation: Input[Artifact],
    gate: Input[Artifact],
    tracking_uri: str,
    artifact_root: str,
    git_commit: str,
    kfp_run_id: str,
    result: Output[Artifact],
    summary: Output[HTML],
) -> str:
    """Register the version (challenger when its governance gates pass); champion is
    decided by the production-readiness and promotion steps."""
    import tempfile
    from pathlib import Path

    from pipelines.steps.tasks import register_task, write_result
    from shipway.core.settings import get_settings

    s = get_settings()
    res = register_task(
        Path(data.path),
        Path(sets.path),
        Path(model.path),
        Path(evaluation.path),
        Path(gate.path),
        tracking_uri or s.tracking_uri,
        artifact_root or s.artifact_root,
        kfp_run_id,
        git_commit,
        Path(tempfile.mkdtemp(prefix="shipway-register-")),
    )
    write_result(res, Path(result.path), Path(summary.path), "Registered model")
    result.metadata.update({k: v for k, v in res.items() if k != "failures"})
    return f"{res['model']}@{res['version']}"


def production_readiness(
    data: Input[Dataset],
    registered: Input[Artifact],
    tracking_uri: str,
    readiness: Output[Artifact],
) -> bool:
    """The production-readiness gate (Bento build + serve smoke) when the pipeline could
    promote the version; skipped with the reason otherwise."""
    import json
    from pathlib import Path

    from pipelines.steps.tasks import readiness_task
    from shipway.core.settings import get_settings

    res = readiness_task(
        Path(data.path),
        json.loads(Path(registered.path).read_text()),
        tracking_uri or get_settings().tracking_uri,
    )
    Path(readiness.path).write_text(json.dumps(res, indent=2, default=str))
    readiness.metadata.update({k: v for k, v in res.items() if k != "failures"})
    return bool(res["passed"])


def promote_model(
    data: Input[Dataset],
    registered: Input[Artifact],
    readiness: Input[Artifact],
    tracking_uri: str,
    kfp_run_id: str,
    result: Output[Artifact],
    summary: Output[HTML],
) -> str:
    """Champion only by the rule of `shipway promote` (production readiness included)
    where the spec lets the pipeline promote without a human; recorded either way."""
    import json
    from pathlib import Path

    from pipelines.steps.tasks import promote_task, write_result
    from shipway.core.settings import get_settings

    res = promote_task(
        Path(data.path),
        json.loads(Path(registered.path).read_text()),
        json.loads(Path(readiness.path).read_text()),
        tracking_uri or get_settings().tracking_uri,
        kfp_run_id,
    )
    write_result(res, Path(result.path), Path(summary.path), "Promotion")
    result.metadata.update({k: v for k, v in res.items() if k != "failures"})
    return f"{res['model']}@{res['version']}"


@dataclass(frozen=True)
class Components:
    fetch_data: Any
    build_training_set: Any
    train_model: Any
    evaluate_model: Any
    validation_gate: Any
    register_model: Any
    production_readiness: Any
    promote_model: Any


def components(image: str) -> Components:
    """The components, each running in ``image`` (which has Shipway and kfp installed)."""

    def make(fn: Any) -> Any:
        return dsl.component(fn, base_image=image, install_kfp_package=False)

    return Components(
        make(fetch_data),
        make(build_training_set),
        make(train_model),
        make(evaluate_model),
        make(validation_gate),
        make(register_model),
        make(production_readiness),
        make(promote_model),
    )
