"""Materialise one data version: the DVC-tracked features plus the spec and params of that
git revision, pulled from the configured DVC remote, so a cluster run trains on the same
bytes as a local one."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from shipway.core.lineage import dvc_md5, dvc_out_md5
from shipway.core.spec import UseCaseSpec, load_spec


class RevisionError(ValueError):
    """A data revision that cannot be trained on; the message says what to run instead."""


def resolve_rev(repo: str, rev: str) -> str:
    """Full commit id of ``rev``, so lineage names a commit, not a moving branch.

    A local repo answers ``git rev-parse``; a git URL answers ``git ls-remote`` for a
    branch, tag or ``HEAD`` (a commit id is kept as given).
    """
    if Path(repo).is_dir():
        out = subprocess.run(
            ["git", "-C", repo, "rev-parse", rev], capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            raise RevisionError(f"unknown git revision {rev!r} in {repo}: {out.stderr.strip()}")
        return out.stdout.strip()
    out = subprocess.run(
        ["git", "ls-remote", repo, rev], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise ValueError(f"cannot read git repository {repo}: {out.stderr.strip()}")
    refs = [line.split("\t", 1)[0] for line in out.stdout.splitlines() if line.strip()]
    return refs[0] if refs else rev


WORKSPACE = "workspace"


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )


def _inputs(usecase: str) -> list[str]:
    """What a training run reads from git: the spec's folder, params.yaml and dvc.lock."""
    return [f"usecases/{usecase}", "params.yaml", "dvc.lock"]


def default_rev(repo: Path, usecase: str) -> tuple[str, str]:
    """The revision to train on when none is named, and why it is not HEAD ('' if it is).

    HEAD when the use case's spec, params.yaml and dvc.lock are committed: the version is
    then reproducible from its commit. Otherwise HEAD would train something else than the
    files in front of the user (or fail: a new spec is in no commit yet), so the working
    tree is trained, and the reason is said.
    """
    if _git(repo, "rev-parse", "--verify", "--quiet", "HEAD").returncode != 0:
        return WORKSPACE, f"{repo} has no git commit yet"
    status = _git(repo, "status", "--porcelain", "--untracked-files=all", "--", *_inputs(usecase))
    changed = sorted({line[3:].split(" -> ")[-1] for line in status.stdout.splitlines()})
    if not changed:
        return "HEAD", ""
    spec = f"usecases/{usecase}/usecase.yaml"
    what = (
        f"{spec} is not committed"
        if _git(repo, "cat-file", "-e", f"HEAD:{spec}").returncode != 0
        else f"uncommitted changes in {', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''}"
    )
    return WORKSPACE, what


def check_rev(repo: str, rev: str, usecase: str) -> None:
    """Fail with one line saying what to do when ``rev`` lacks the use case or its data.

    The working tree needs the features stage's output; a commit needs the spec and a
    ``features@<usecase>`` entry in its dvc.lock (the data version it names). A git URL
    (a cluster run) is not checked here: the fetch step reports what it could not read.
    """
    if rev == WORKSPACE:
        if not (Path(repo) / "data" / usecase / "features").is_dir():
            raise RevisionError(
                f"no feature data for {usecase} in the working tree: run `make data` "
                f"(or `dvc repro features@{usecase}`) first"
            )
        return
    if not Path(repo).is_dir():
        return
    commit = resolve_rev(repo, rev)
    where = f"{rev} ({commit[:8]})" if rev != commit else commit[:8]
    instead = "train the working tree with --data-rev workspace"
    spec = f"usecases/{usecase}/usecase.yaml"
    if _git(Path(repo), "cat-file", "-e", f"{commit}:{spec}").returncode != 0:
        raise RevisionError(f"{spec} is not in commit {where}: commit it, or {instead}")
    lock = _git(Path(repo), "show", f"{commit}:dvc.lock")
    stages = (yaml.safe_load(lock.stdout) or {}).get("stages", {}) if lock.returncode == 0 else {}
    if f"features@{usecase}" not in stages:
        raise RevisionError(
            f"commit {where} has no data version of {usecase} (no features@{usecase} in its "
            f"dvc.lock): run `make data` and commit dvc.lock, or {instead}"
        )


def _copy_workspace(repo: Path, usecase: str, out_dir: Path) -> str:
    """Copy the working tree's version (runs on uncommitted data)."""
    import shutil

    shutil.copy2(repo / "usecases" / usecase / "usecase.yaml", out_dir / "usecase.yaml")
    for name in ("params.yaml", "dvc.lock"):
        shutil.copy2(repo / name, out_dir / name)
    dst = out_dir / "data" / usecase / "features"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(repo / "data" / usecase / "features", dst)
    return WORKSPACE


def fetch(repo: str, rev: str, usecase: str, out_dir: Path, dvc_remote: str = "") -> dict[str, Any]:
    """Write ``data/<usecase>/features/``, the spec, params and ``version.json`` of a rev.

    ``rev`` is a git revision whose DVC outputs are pulled from the configured remote,
    or ``workspace`` for the working tree as it is. ``repo`` is a local path or a git URL;
    empty means ``settings.git_repo_url`` (the chart sets it for cluster runs), else the
    project root. ``dvc_remote`` (empty: ``settings.dvc_remote_url``) replaces the default
    remote's URL, so a run started from the Kubeflow UI pulls from the release's remote.
    """
    import dvc.api
    from dvc.repo import Repo

    from shipway.core.settings import get_settings

    settings = get_settings()
    if not repo:  # a run started from the Kubeflow UI: the chart's configured repository
        repo = settings.git_repo_url or str(settings.root)
    # the default remote of the repository, at the URL this environment reaches it by
    remote_url = dvc_remote or settings.dvc_remote_url
    remote = {"url": remote_url} if remote_url else None
    out_dir.mkdir(parents=True, exist_ok=True)
    if rev == WORKSPACE:
        check_rev(repo, rev, usecase)
        commit = _copy_workspace(Path(repo), usecase, out_dir)
        # the md5 of the bytes copied, not the one dvc.lock expects there: they differ when
        # the folder changed outside `dvc repro`, and lineage must name what was trained on
        md5 = dvc_md5(out_dir / "data" / usecase / "features")
        meta = {"usecase": usecase, "git_rev": commit, "data_version": md5, "repo": repo}
        (out_dir / "version.json").write_text(json.dumps(meta, indent=2))
        return meta
    check_rev(repo, rev, usecase)
    commit = resolve_rev(repo, rev)
    for rel, name in (
        (f"usecases/{usecase}/usecase.yaml", "usecase.yaml"),
        ("params.yaml", "params.yaml"),
        ("dvc.lock", "dvc.lock"),
    ):
        (out_dir / name).write_text(dvc.api.read(rel, repo=repo, rev=commit, remote_config=remote))
    try:
        Repo.get(
            repo,
            f"data/{usecase}/features",
            out=str(out_dir / "data" / usecase / "features"),
            rev=commit,
            remote_config=remote,
        )
    except Exception as exc:  # dvc's many error types: say which data and what to run
        raise RevisionError(
            f"the feature data of {usecase} at {commit[:8]} is in neither the DVC cache nor "
            f"the remote ({type(exc).__name__}: {exc}): run `dvc pull`, or `make data` and "
            "train the working tree with --data-rev workspace"
        ) from exc
    lock_root = out_dir / "_lock"
    lock_root.mkdir(exist_ok=True)
    (lock_root / "dvc.lock").write_text((out_dir / "dvc.lock").read_text())
    md5 = dvc_out_md5(lock_root, f"data/{usecase}/features") or "unknown"
    meta = {"usecase": usecase, "git_rev": commit, "data_version": md5, "repo": repo}
    (out_dir / "version.json").write_text(json.dumps(meta, indent=2))
    return meta


def load_fetched(out_dir: Path) -> tuple[UseCaseSpec, dict[str, Any], dict[str, Any]]:
    """Spec, params and version metadata of a fetched data version."""
    spec = load_spec(out_dir / "usecase.yaml")
    params = yaml.safe_load((out_dir / "params.yaml").read_text()) or {}
    meta = json.loads((out_dir / "version.json").read_text())
    return spec, params, meta
