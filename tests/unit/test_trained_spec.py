"""The audit bundle's spec is the one the version trained on, found by its recorded
content hash for a workspace run, never today's edited file."""

from __future__ import annotations

import subprocess
from pathlib import Path

from shipway.core.spec import load_spec
from shipway.governance.lineage import trained_spec_text
from shipway.governance.provenance import WORKSPACE

ROOT = Path(__file__).resolve().parents[2]


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def test_a_workspace_version_keeps_the_spec_it_trained_on(tmp_path: Path) -> None:
    src = ROOT / "usecases" / "hotel_rates" / "usecase.yaml"
    spec_file = tmp_path / "usecases" / "hotel_rates" / "usecase.yaml"
    spec_file.parent.mkdir(parents=True)
    trained = src.read_text()
    spec_file.write_text(trained)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "spec")
    spec_hash = load_spec(spec_file).content_hash()
    assert trained_spec_text(tmp_path, WORKSPACE, "hotel_rates", spec_hash) == trained
    # later, the working tree's spec is edited: the committed one still matches the hash
    spec_file.write_text(trained.replace("min_rows_per_group: 100", "min_rows_per_group: 7"))
    assert trained_spec_text(tmp_path, WORKSPACE, "hotel_rates", spec_hash) == trained
    # a hash nobody recorded: not found, rather than today's file
    assert trained_spec_text(tmp_path, WORKSPACE, "hotel_rates", "0" * 16) is None
