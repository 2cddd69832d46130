"""Pipeline packages for the Kubeflow UI: a committed compiled pipeline of one kind
(training, batch scoring) with one use case's and one release's values as its parameter
defaults.

A run started from the Kubeflow UI with "Create run" takes the root parameters' defaults.
The committed packages are compiled once for every release and use case, so their defaults
cannot name this release's MLflow server, ConfigMap, Secrets, repository or DVC remote.
The chart's upload Job therefore bakes them in here, one package per use case and kind, and
uploads each as its own pipeline: the UI then trains or scores the right use case against
the right stores with nothing typed. Only the defaults (and, when asked, the steps' image:
the release's) change: the steps and their platform config stay the committed,
golden-tested ones.

Defaults are visible to anyone who can read the pipeline, so a URL carrying credentials
(``https://user:secret@host``, ``https://token@host``) is refused; credentials reach the steps from Secrets by env.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from google.protobuf import json_format, struct_pb2
from kfp.compiler import pipeline_spec_builder
from kfp.components import load_component_from_text
from kfp.pipeline_spec import pipeline_spec_pb2

from pipelines import batch, training


@dataclass(frozen=True)
class PipelineKind:
    """One kind of pipeline the chart publishes per use case."""

    name: str
    compiled: Path
    """The committed compiled package (golden-tested; the chart ships a byte copy)."""
    build: Callable[[str], Any]
    """The pipeline function for a component image (what ``compiled`` is compiled from)."""
    title: str
    """What the pipeline does, in the description the Kubeflow UI shows."""


KINDS: dict[str, PipelineKind] = {
    "training": PipelineKind(
        "training", training.COMPILED, training.build_pipeline, "training pipeline"
    ),
    "batch": PipelineKind(
        "batch", batch.COMPILED, batch.build_batch_pipeline, "batch-scoring pipeline"
    ),
}


class PackagingError(ValueError):
    """A package or a default that cannot be baked; the message names the parameter."""


_TYPES = pipeline_spec_pb2.ParameterType


def kind(name: str) -> PipelineKind:
    """The registered kind ``name``, or an error listing the kinds there are."""
    try:
        return KINDS[name]
    except KeyError:
        raise PackagingError(
            f"unknown pipeline kind {name!r}: one of {', '.join(sorted(KINDS))}"
        ) from None


def pipeline_name(prefix: str, usecase: str, kind_name: str) -> str:
    """The name a use case's pipeline of a kind has in Kubeflow: ``<prefix>-<uc>-<kind>``."""
    return f"{prefix}-{usecase}-{kind_name}"


def _spec(text: str, source: str) -> tuple[pipeline_spec_pb2.PipelineSpec, Any]:
    """(pipeline spec, platform spec) of a package, through the kfp SDK's own loader."""
    try:
        component = load_component_from_text(text)
        spec = component.pipeline_spec
    except Exception as exc:  # yaml, protobuf and kfp errors alike: say which file
        raise PackagingError(
            f"{source} is not a compiled KFP pipeline ({type(exc).__name__}: {exc})"
        ) from exc
    if not spec.root.HasField("dag"):
        raise PackagingError(f"{source} is a single component, not a compiled pipeline")
    return spec, component.platform_spec


def defaults(text: str, source: str = "the package") -> dict[str, Any]:
    """Root parameter -> its default (``None`` for a parameter without one)."""
    spec, _ = _spec(text, source)
    return {
        name: json_format.MessageToDict(p.default_value) if p.HasField("default_value") else None
        for name, p in spec.root.input_definitions.parameters.items()
    }


def _no_credentials(parameter: str, value: str) -> None:
    """Refuse a URL carrying credentials: a password anywhere, or any user on http(s),
    where a token often stands in the user part (the same rule as a submitted run's
    ``pipelines.runner.cluster_repo``). An ssh user (``ssh://git@host``) is no secret."""
    try:
        parts = urlsplit(value) if "://" in value else None
        secret = parts is not None and (
            parts.password is not None
            or (parts.scheme in ("http", "https") and parts.username is not None)
        )
    except ValueError:  # a malformed netloc (bad port, brackets): no credentials read
        secret = False
    if secret:
        raise PackagingError(
            f"default of {parameter!r} is a URL with credentials in it; parameter defaults are "
            "visible to everyone who can read the pipeline; give the URL without credentials "
            "(the steps read credentials from the release's Secrets)"
        )


def _value(parameter: str, raw: str, ptype: int) -> struct_pb2.Value:
    """``raw`` (as given on a command line) as the IR value of a parameter of ``ptype``."""
    value = struct_pb2.Value()
    if ptype == _TYPES.STRING:
        _no_credentials(parameter, raw)
    try:
        if ptype == _TYPES.STRING:
            value.string_value = raw
        elif ptype == _TYPES.NUMBER_INTEGER:
            value.number_value = int(raw)
        elif ptype == _TYPES.NUMBER_DOUBLE:
            value.number_value = float(raw)
        elif ptype == _TYPES.BOOLEAN and raw.lower() in ("true", "false"):
            value.bool_value = raw.lower() == "true"
        else:
            raise ValueError(raw)
    except ValueError:
        raise PackagingError(
            f"default of {parameter!r} must be a {_TYPES.ParameterTypeEnum.Name(ptype).lower()}, "
            f"got {raw!r}"
        ) from None
    return value


def _set_image(spec: pipeline_spec_pb2.PipelineSpec, image: str) -> None:
    """Run every container step in ``image`` (the release's, e.g. pinned by digest in a
    private registry) instead of the image the package was compiled for."""
    if not image or any(c.isspace() for c in image):
        raise PackagingError(f"image must be an image reference, got {image!r}")
    for executor in spec.deployment_spec.fields["executors"].struct_value.fields.values():
        container = executor.struct_value.fields.get("container")
        if container is not None:
            container.struct_value.fields["image"].string_value = image


def bake(
    text: str,
    values: Mapping[str, str],
    source: str = "the package",
    image: str | None = None,
) -> str:
    """``text`` (a compiled pipeline) with ``values`` as the defaults of those root
    parameters, and its steps' container image replaced when ``image`` is given, written
    by the kfp SDK's own writer; everything else unchanged.

    Raises :class:`PackagingError` for a parameter the pipeline does not have, a value of
    the wrong type or a URL with a password, before anything is written.
    """
    spec, platform = _spec(text, source)
    params = spec.root.input_definitions.parameters
    unknown = sorted(set(values) - set(params))
    if unknown:
        raise PackagingError(
            f"{source} has no parameter {', '.join(map(repr, unknown))}; its parameters: "
            f"{', '.join(sorted(params))}"
        )
    for name, raw in values.items():
        params[name].default_value.CopyFrom(_value(name, raw, params[name].parameter_type))
    if image is not None:
        _set_image(spec, image)
    with tempfile.TemporaryDirectory(prefix="shipway-package-") as tmp:
        out = Path(tmp) / "pipeline.yaml"
        pipeline_spec_builder.write_pipeline_spec_to_file(
            spec, spec.pipeline_info.description or None, platform, str(out)
        )
        baked = out.read_text()
    # what the Kubeflow UI and kfp.local read back must be what was asked for
    got = defaults(baked, source)
    expected = {n: json_format.MessageToDict(params[n].default_value) for n in values}
    if {n: got[n] for n in values} != expected:
        raise PackagingError(f"{source}: the written package lost a default")
    return baked


def package(
    kind_name: str,
    usecase: str,
    values: Mapping[str, str],
    out: Path,
    source: Path | None = None,
    image: str | None = None,
) -> Path:
    """Write the ``kind_name`` package for ``usecase`` with ``values`` baked in to ``out``.

    ``source`` is the compiled package to start from (the chart mounts its copy); default:
    the kind's committed one. A ``usecase`` default in ``values`` must agree with ``usecase``.
    ``image``: the steps' container image (default: the one the package was compiled for).
    """
    path = source or kind(kind_name).compiled  # an unknown kind fails either way
    kind(kind_name)
    if not path.is_file():
        raise PackagingError(f"pipeline package not found: {path}")
    if values.get("usecase", usecase) != usecase:
        raise PackagingError(
            f"default of 'usecase' is {values['usecase']!r} but the package is for {usecase!r}"
        )
    baked = bake(path.read_text(), {"usecase": usecase, **values}, str(path), image)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(baked)
    return out
