"""The Shipway image's Dockerfile: hadolint-clean, non-root, pinned, and consistent with the
chart that runs it. No container engine exists here, so the image is never built: these
tests check the recipe (with the real hadolint from tools/install-tools.sh) and that every
file it copies is in the repository and passes the build-context filter.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import chart_tools, globbed

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [p for p in globbed(ROOT / "docker", "Dockerfile*") if p.suffix != ".dockerignore"]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / "docker" / "Dockerfile.dockerignore"
CHART = ROOT / "charts" / "shipway"


@pytest.fixture(scope="session")
def hadolint() -> Path:
    return Path(chart_tools().hadolint)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(path: Path) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(path):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def test_dockerfiles_exist() -> None:
    assert DOCKERFILE.exists()
    assert DOCKERIGNORE.exists()


def lint(hadolint: Path, dockerfile: Path) -> list[dict]:
    """hadolint's findings (JSON) for one Dockerfile."""
    proc = subprocess.run(
        [str(hadolint), "--no-color", "--format", "json", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_is_clean(hadolint: Path, dockerfile: Path) -> None:
    findings = lint(hadolint, dockerfile)
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_really_lints(hadolint: Path, tmp_path: Path) -> None:
    """Guard against a vacuous pass: an unpinned, root, latest image is flagged."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nRUN pip install requests\n")
    codes = {f["code"] for f in lint(hadolint, bad)}
    assert {"DL3007", "DL3008", "DL3013"} <= codes, codes


def test_base_image_is_pinned() -> None:
    args = dict(a.split("=", 1) for w, a in instructions(DOCKERFILE) if w == "ARG" and "=" in a)
    bases = [a.split()[0] for w, a in instructions(DOCKERFILE) if w == "FROM"]
    assert len(bases) == 2, "a build stage and a runtime stage"
    for base in bases:
        image = args.get(base.strip("${}"), base) if base.startswith("$") else base
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image


def test_runtime_stage_runs_as_the_chart_user() -> None:
    runtime = stages(DOCKERFILE)[-1]
    users = [a for w, a in runtime if w == "USER"]
    assert users == ["10001:10001"], "numeric non-root user, so runAsNonRoot can verify it"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == 10001
    assert values["podSecurityContext"]["runAsGroup"] == 10001
    assert [w for w, _ in runtime][-3:] == ["USER", "ENTRYPOINT", "CMD"], (
        "nothing runs as root after USER"
    )
    assert json.loads(dict(runtime)["ENTRYPOINT"]) == ["shipway"]


def test_project_is_installed_from_the_repo_with_the_lock() -> None:
    build = stages(DOCKERFILE)[0]
    runs = " ".join(a for w, a in build if w == "RUN")
    assert re.search(r"pip install -c requirements\.lock \"\.", runs), runs
    assert "pip check" in runs
    env = " ".join(a for w, a in build if w == "ENV")
    assert "PIP_NO_CACHE_DIR=1" in env


def test_runtime_carries_the_project_assets() -> None:
    runtime = stages(DOCKERFILE)[-1]
    copied = set()
    for word, args in runtime:
        if word == "COPY" and "--from" not in args:
            parts = shlex.split(args)
            copied |= {p.rstrip("/") for p in parts[:-1]}
    assert {
        "usecases",
        "feature_repo",
        "pipelines",
        "monitoring",
        "services",
        "dvc.yaml",
        "params.yaml",
        ".dvc",
    } <= copied
    assert dict(runtime)["WORKDIR"] == "/app"


def _copy_sources(path: Path) -> list[str]:
    sources = []
    for word, args in instructions(path):
        if word == "COPY" and "--from" not in args:
            sources += [p.rstrip("/") for p in shlex.split(args)[:-1] if not p.startswith("--")]
    return sorted(set(sources))


def _ignored(rel: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; '!' re-includes."""
    ignored = False
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat[1:] if negate else pat
        pat = pat.rstrip("/")
        if pat == "**" or fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(rel, pat + "/*"):
            ignored = not negate
    return ignored


def test_every_copied_path_passes_the_context_filter() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in _copy_sources(DOCKERFILE):
        assert not _ignored(source, patterns), f"{source} is excluded by {DOCKERIGNORE.name}"
    for never in ("data", ".venv", ".tools", ".git", ".shipway", ".dvc/cache", "dvc-remote"):
        assert _ignored(never, patterns), f"{never} must stay out of the build context"


def test_every_copied_path_exists_in_the_repository() -> None:
    sources = _copy_sources(DOCKERFILE)
    assert sources, "no COPY source found: the Dockerfile parser is broken"
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing, f"the image build would fail: COPY of {', '.join(missing)}"


def test_exposed_ports_match_the_chart() -> None:
    exposed = {int(p) for w, a in instructions(DOCKERFILE) if w == "EXPOSE" for p in a.split()}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart_ports = {
        values["prediction"]["port"],
        values["mlflow"]["port"],
        values["feast"]["featureServer"]["port"],
        values["monitor"]["metricsPort"],
        values["trigger"]["port"],
    }
    assert exposed == chart_ports


def test_image_environment_matches_the_chart_scratch_layout() -> None:
    env = " ".join(a for w, a in stages(DOCKERFILE)[-1] if w == "ENV")
    for expected in (
        "HOME=/tmp/home",
        "BENTOML_HOME=/tmp/bentoml",
        "SHIPWAY_STATE_DIR=/tmp/shipway",
        "PYTHONDONTWRITEBYTECODE=1",
        "SHIPWAY_ENVIRONMENT=cluster",
    ):
        assert expected in env, expected
    # The chart mounts an emptyDir at /tmp on a read-only root filesystem: every writable
    # path of the image must live under it.
    for path in re.findall(r"=(/\S+)", env):
        if not path.startswith("/opt/venv"):
            assert path.startswith("/tmp/"), path
