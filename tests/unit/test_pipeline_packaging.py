"""One package per use case and kind with the release's values as parameter defaults
(pipelines/packaging.py): what the chart's upload Job runs, read back with the kfp SDK."""

# no `from __future__ import annotations`: kfp reads the component's annotations as types
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler, dsl
from kfp.components import load_component_from_text

from pipelines.packaging import KINDS, PackagingError, bake, defaults, kind, package
from pipelines.training import COMPILED

RELEASE = {  # what the chart renders for release "prod" in namespace "ml"
    "tracking_uri": "http://prod-shipway-mlflow.ml.svc:5000",
    "env_config_map": "prod-shipway-env",
    "postgresql_secret": "pg-uris",
    "redis_secret": "prod-shipway-redis",
    "mlflow_auth_secret": "prod-shipway-mlflow-auth",
    "repo": "https://git.example.com/ml/shipway.git",
    "dvc_remote": "s3://ml-data/shipway",
}


def sdk_defaults(text: str) -> dict[str, Any]:
    """Root parameter defaults as the kfp SDK's loader sees them (the upload path)."""
    component = load_component_from_text(text)
    return {name: spec.default for name, spec in component.component_spec.inputs.items()}


def test_every_kind_names_a_committed_pipeline_with_a_usecase_parameter() -> None:
    assert "training" in KINDS
    for name, k in KINDS.items():
        assert k.name == name and k.compiled.is_file(), name
        assert "usecase" in defaults(k.compiled.read_text()), name


def test_baking_nothing_gives_the_committed_package_back_byte_for_byte() -> None:
    assert bake(COMPILED.read_text(), {}) == COMPILED.read_text()


def test_baked_package_loads_with_the_sdk_and_its_defaults_are_the_values(
    tmp_path: Path,
) -> None:
    out = package("training", "credit_risk", RELEASE, tmp_path / "p.yaml")
    text = out.read_text()
    got = sdk_defaults(text)
    assert {k: got[k] for k in RELEASE} == RELEASE
    assert got["usecase"] == "credit_risk"
    # the other parameters keep the committed defaults
    committed = sdk_defaults(COMPILED.read_text())
    assert {k: v for k, v in got.items() if k not in {*RELEASE, "usecase"}} == {
        k: v for k, v in committed.items() if k not in {*RELEASE, "usecase"}
    }
    assert got["data_rev"] == "HEAD"
    # only the defaults changed: steps, images, platform config (ConfigMap/Secret by name
    # parameter) and the DAG are the committed, golden-tested ones
    (spec, platform), (base, base_platform) = (
        list(yaml.safe_load_all(t)) for t in (text, COMPILED.read_text())
    )
    assert platform == base_platform
    for doc in (spec, base):
        for p in doc["root"]["inputDefinitions"]["parameters"].values():
            p.pop("defaultValue")
    assert spec == base
    # the header the Kubeflow UI and readers see names the baked values too
    assert "#    repo: str [Default: 'https://git.example.com/ml/shipway.git']" in text


def test_unknown_parameter_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match=r"no parameter 'trackinguri'.*tracking_uri"):
        package("training", "hotel_rates", {"trackinguri": "http://m:5000"}, tmp_path / "p")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    "value",
    [
        "http://admin:s3cr3t-value@mlflow.ml.svc:5000",
        "https://deploy:s3cr3t-value@git.example.com/ml/shipway.git",
        "s3://key:s3cr3t-value@bucket/shipway",
        "https://s3cr3t-value@github.com/example/shipway.git",  # a token as the user
    ],
)
def test_a_url_with_credentials_is_refused_without_echoing_them(value: str) -> None:
    with pytest.raises(PackagingError, match="credentials") as err:
        bake(COMPILED.read_text(), {"repo": value})
    assert "s3cr3t-value" not in str(err.value)


def test_urls_without_passwords_are_kept() -> None:
    values = {
        "repo": "ssh://git@github.com/example/shipway.git",  # ssh: a user, no secret
        "tracking_uri": "http://[fd00::1]:5000",
        "dvc_remote": "",
    }
    assert {k: sdk_defaults(bake(COMPILED.read_text(), values))[k] for k in values} == values


def test_usecase_must_agree_with_the_package(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="'hotel_rates' but the package is for 'credit_risk'"):
        package("training", "credit_risk", {"usecase": "hotel_rates"}, tmp_path / "p")


def test_unknown_kind_lists_the_kinds(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match=r"unknown pipeline kind 'scoring': one of .*training"):
        kind("scoring")
    with pytest.raises(PackagingError, match="unknown pipeline kind"):
        package("scoring", "hotel_rates", {}, tmp_path / "p", COMPILED)


@pytest.mark.parametrize("text", ["x: 1\n", "a: [\n", ""])
def test_a_file_that_is_no_pipeline_is_named(tmp_path: Path, text: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(PackagingError, match=f"{re.escape(str(bad))} is not a compiled KFP"):
        package("training", "hotel_rates", {}, tmp_path / "p", bad)
    with pytest.raises(PackagingError, match="not found"):
        package("training", "hotel_rates", {}, tmp_path / "p", tmp_path / "missing.yaml")


@dsl.component(base_image="python:3.11")
def _echo(n: int, ratio: float, flag: bool, name: str) -> str:
    return f"{n} {ratio} {flag} {name}"


@dsl.pipeline(name="typed")
def _typed(n: int = 1, ratio: float = 0.5, flag: bool = False, name: str = "a") -> None:
    _echo(n=n, ratio=ratio, flag=flag, name=name)


def test_typed_parameters_get_typed_defaults(tmp_path: Path) -> None:
    """A pipeline kind may have numbers and flags (e.g. a batch parallelism): a command-line
    value becomes the parameter's type, or is refused naming the parameter."""
    compiler.Compiler().compile(_typed, package_path=str(tmp_path / "t.yaml"))
    text = (tmp_path / "t.yaml").read_text()
    got = sdk_defaults(bake(text, {"n": "8", "ratio": "0.25", "flag": "true", "name": "b"}))
    assert got == {"n": 8, "ratio": 0.25, "flag": True, "name": "b"}
    for name, raw in (("n", "eight"), ("ratio", "x"), ("flag", "yes")):
        with pytest.raises(PackagingError, match=f"default of '{name}' must be a"):
            bake(text, {name: raw})


def test_the_release_image_replaces_every_step_image_and_nothing_else(tmp_path: Path) -> None:
    image = "registry.example.com/ml/shipway@sha256:" + "ab" * 32
    out = package("training", "hotel_rates", {}, tmp_path / "p.yaml", image=image)
    (spec, platform), (base, base_platform) = (
        list(yaml.safe_load_all(t)) for t in (out.read_text(), COMPILED.read_text())
    )
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {image}
    for e in (*executors.values(), *base["deploymentSpec"]["executors"].values()):
        e["container"].pop("image")
    assert (spec, platform) == (base, base_platform)
    with pytest.raises(PackagingError, match="image must be an image reference"):
        package("training", "hotel_rates", {}, tmp_path / "q.yaml", image="a b")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-D", "repo"], "--default expects NAME=VALUE, got 'repo'"),
        (["-D", "repo=a", "-D", "repo=b"], "--default repo given twice"),
        (["-D", "nope=1"], "has no parameter 'nope'"),
        (["--kind", "scoring"], "unknown pipeline kind 'scoring'"),
    ],
)
def test_cli_refuses_bad_defaults_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], expected: str
) -> None:
    from typer.testing import CliRunner

    from shipway.cli import app
    from shipway.core.settings import get_settings

    monkeypatch.setenv("SHIPWAY_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    out = tmp_path / "p.yaml"
    run = CliRunner().invoke(
        app, ["pipeline", "package", "-u", "hotel_rates", "-o", str(out), *args]
    )
    get_settings.cache_clear()
    assert run.exit_code != 0
    assert expected in " ".join(run.output.split()), run.output
    assert "Traceback" not in run.output and not out.exists()


def test_cli_writes_the_package_with_an_empty_and_an_equals_sign_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from shipway.cli import app
    from shipway.core.settings import get_settings

    monkeypatch.setenv("SHIPWAY_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    out = tmp_path / "p.yaml"
    args = ["-D", "repo=", "-D", "dvc_remote=s3://b/p?region=eu-west-1"]
    run = CliRunner().invoke(
        app, ["pipeline", "package", "-u", "credit_risk", "-o", str(out), *args]
    )
    get_settings.cache_clear()
    assert run.exit_code == 0, run.output
    got = sdk_defaults(out.read_text())
    assert (got["usecase"], got["repo"], got["dvc_remote"]) == (
        "credit_risk",
        "",
        "s3://b/p?region=eu-west-1",
    )
