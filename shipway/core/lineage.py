"""Lineage facts shared by every layer: data version (DVC md5) and git commit."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import yaml


def dvc_out_md5(root: Path, out_path: str) -> str | None:
    """md5 that dvc.lock records for an output path (``<md5>.dir`` for folders)."""
    lock = root / "dvc.lock"
    if not lock.is_file():
        return None
    data = yaml.safe_load(lock.read_text()) or {}
    for stage in (data.get("stages") or {}).values():
        for out in stage.get("outs", []) or []:
            if out.get("path") == out_path:
                md5 = out.get("md5")
                return str(md5) if md5 else None
    return None


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        yield from iter(lambda: fh.read(1 << 20), b"")


def file_md5(path: Path) -> str:
    """md5 of a file's bytes (DVC 3's ``md5`` of a file), read in chunks."""
    h = hashlib.md5()
    for chunk in _chunks(path):
        h.update(chunk)
    return h.hexdigest()


def _dir_listing(path: Path) -> bytes:
    """The ``.dir`` object DVC 3 stores for a folder: its files' md5s, sorted by path."""
    files = sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.parts)
    entries = [{"md5": file_md5(f), "relpath": f.relative_to(path).as_posix()} for f in files]
    return json.dumps(entries, sort_keys=True).encode()


def dvc_md5(path: Path) -> str:
    """The md5 DVC records for a file or folder (``<md5>.dir``), computed from its bytes.

    A version trained from the working tree records this, not what dvc.lock says the
    folder should hold: the two differ when the data changed outside ``dvc repro``, and
    lineage must name the bytes the model actually read.
    """
    if path.is_dir():
        return hashlib.md5(_dir_listing(path)).hexdigest() + ".dir"
    return file_md5(path)


def content_md5(path: Path) -> str:
    """md5 over a file or a folder's files (names and bytes), for data outside DVC."""
    h = hashlib.md5()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        for chunk in _chunks(f):
            h.update(chunk)
    return h.hexdigest()


def data_version(root: Path, data_dir: Path, usecase: str) -> str:
    """The version of a use case's feature data: DVC's md5 when the data is DVC-tracked.

    Falls back to ``content:<md5>`` of the folder when the data lives outside the
    repository's DVC pipeline (isolated tests, scratch runs), so lineage is never empty.
    """
    features = data_dir / usecase / "features"
    try:
        rel = features.resolve().relative_to(root.resolve())
    except ValueError:
        rel = None
    if rel is not None:
        md5 = dvc_out_md5(root, rel.as_posix())
        if md5:
            return md5
    if features.exists():
        return f"content:{content_md5(features)}"
    return "unknown"


def git_commit(root: Path) -> str:
    """Current git commit of the repository (``unknown`` outside git)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
