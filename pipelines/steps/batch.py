"""The batch-scoring tasks: plan -> score one shard (many, in parallel) -> commit.

What each component of ``pipelines/batch.py`` does, as plain functions the tests call
directly. The plan pins the champion *once* (every shard loads that exact version, even
if the alias moves mid-run) and cuts the input into shards. A shard writes its Parquet
file under a staging folder named by the run id, at a path keyed by its index (a retried
shard overwrites its own file, it never adds a second one). The commit checks that every
shard is there, writes the manifest (row counts, content hashes, model, feature service,
data version) and only then moves the staging folder into place, so readers see either
the previous output or the whole new one, and a re-run after a failure commits exactly
one copy of each row. The plan and the commit report the run to OpenLineage (START with
the input files and the model version, COMPLETE with the committed dataset), tied by
the KFP run id.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from shipway.core import openlineage as ol
from shipway.core.settings import get_settings
from shipway.scoring import sources
from shipway.scoring.models import Pinned

MANIFEST = "_manifest.json"
PART = "part-0.parquet"


def shard_dir(index: int) -> str:
    """The Hive-style partition of a shard: ``shard=00003``."""
    return f"shard={index:05d}"


def staging_path(output: str, run_id: str) -> str:
    """Beside the output (the same filesystem, so the commit is a rename), named by run."""
    parent, _, name = output.rstrip("/").rpartition("/")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
    return f"{parent}/_{name}.staging-{safe}"


def plan_task(
    usecase: str,
    input_uri: str,
    output_uri: str,
    key_columns: str,
    shards: int,
    tracking_uri: str,
    run_id: str,
    plan_path: Path,
) -> list[int]:
    """List and cut the input, pin the champion, write the plan; the shard indices."""
    from shipway.core.usecases import load_usecase
    from shipway.scoring.models import pin_champion
    from shipway.scoring.tables import check_columns

    if not output_uri.strip():
        raise ValueError("output_uri is empty: name the folder the scored dataset goes to")
    settings = get_settings()
    spec = load_usecase(usecase, settings)
    keys = [k.strip() for k in key_columns.split(",") if k.strip()]
    pieces = sources.list_input(input_uri)
    in_fs, _ = sources.filesystem(input_uri)
    for piece in pieces:  # Parquet schemas are in the footers: fail before scoring anything
        if piece.fmt == "parquet":
            names = sources.parquet_columns(in_fs, piece.path)
            check_columns(spec, names, keys, f"batch input {piece.name!r}")
    pinned = pin_champion(tracking_uri or settings.tracking_uri, spec)
    _, out_path = sources.filesystem(output_uri)
    groups = sources.split(pieces, shards)
    plan = {
        "usecase": usecase,
        "input": input_uri,
        "output": output_uri,
        "staging": staging_path(out_path, run_id),
        "run_id": run_id,
        "keys": keys,
        "model": asdict(pinned),
        "shards": [[p.to_dict() for p in group] for group in groups],
    }
    plan_path.write_text(json.dumps(plan, indent=2))
    ol.start(settings, lineage_job(usecase), lineage_inputs(plan), run_key=run_id)
    return list(range(len(groups)))


def lineage_job(usecase: str) -> str:
    """The OpenLineage job name of a use case's batch scoring."""
    return f"{usecase}.batch_scoring"


def lineage_inputs(plan: dict[str, Any]) -> list[ol.DatasetRef]:
    """The input files (schema from Parquet footers) and the pinned model version."""
    fs, _ = sources.filesystem(plan["input"])
    base = plan["input"].rstrip("/")
    files: dict[str, ol.DatasetRef] = {}
    for group in plan["shards"]:
        for p in group:
            if p["name"] in files:  # a Parquet file cut into several pieces
                continue
            fields = []
            if p["fmt"] == "parquet":
                with fs.open_input_file(p["path"]) as fh:
                    fields = [(f.name, str(f.type)) for f in pq.read_schema(fh)]
            name = base if p["name"] in ("", ".") else f"{base}/{p['name']}"
            files[p["name"]] = ol.DatasetRef(name, None, fields)
    model = plan["model"]
    return [*files.values(), ol.model_dataset(model["name"], str(model["version"]), [])]


def load_plan(plan_path: Path) -> dict[str, Any]:
    return dict(json.loads(plan_path.read_text()))


def _sha256(fs: pafs.FileSystem, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def shard_task(plan_path: Path, index: int, chunk_rows: int, store: Any = None) -> dict[str, Any]:
    """Score shard ``index`` of the plan into ``<staging>/shard=<index>/part-0.parquet``
    (written beside, then moved over any earlier attempt's file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shipway.core.usecases import load_usecase
    from shipway.scoring.models import load_version
    from shipway.scoring.tables import check_columns, row_keys, score_table

    plan = load_plan(plan_path)
    if not 0 <= index < len(plan["shards"]):
        raise ValueError(f"shard {index} is not in the plan (0..{len(plan['shards']) - 1})")
    settings = get_settings()
    spec = load_usecase(plan["usecase"], settings)
    pinned = Pinned(**plan["model"])
    _, scorer = load_version(spec, pinned.name, pinned.version)
    if store is None:
        from feature_repo.store import feature_store

        store = feature_store(settings)
    in_fs, _ = sources.filesystem(plan["input"])
    out_fs, _ = sources.filesystem(plan["output"])
    keys: list[str] = plan["keys"]
    folder = f"{plan['staging']}/{shard_dir(index)}"
    out_fs.create_dir(folder, recursive=True)
    dest, tmp = f"{folder}/{PART}", f"{folder}/.{PART}.writing"
    rows, writer, sink = 0, None, None
    try:
        for raw in plan["shards"][index]:
            piece = sources.Piece(**raw)
            for first, batch in sources.read_piece(in_fs, piece, chunk_rows, spec.entity_columns):
                check_columns(spec, batch.schema.names, keys, f"batch input {piece.name!r}")
                ids = (
                    pa.table({k: batch.column(k) for k in keys})
                    if keys
                    else pa.table({"row_key": row_keys(piece.name, first, batch.num_rows)})
                )
                table = score_table(spec, store, scorer, pinned, batch, ids)
                if writer is None:
                    sink = out_fs.open_output_stream(tmp)
                    writer = pq.ParquetWriter(sink, table.schema)
                writer.write_table(table)
                rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
        if sink is not None:
            sink.close()
    if writer is None:  # nothing to score in this shard: no file, and the manifest says so
        return {"index": index, "rows": 0, "path": "", "sha256": "", "bytes": 0}
    out_fs.move(tmp, dest)
    size = out_fs.get_file_info(dest).size
    return {
        "index": index,
        "rows": rows,
        "path": f"{shard_dir(index)}/{PART}",
        "sha256": _sha256(out_fs, dest),
        "bytes": size,
    }


def commit_task(plan_path: Path, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Check every shard's file, write the manifest, move the staging folder into place."""
    plan = load_plan(plan_path)
    fs, output = sources.filesystem(plan["output"])
    staging = plan["staging"]
    by_index = {int(r["index"]): r for r in results}
    expected = set(range(len(plan["shards"])))
    if set(by_index) != expected or len(results) != len(expected):
        raise RuntimeError(
            f"commit expected shards {sorted(expected)}, got {sorted(int(r['index']) for r in results)}"
        )
    shards = [by_index[i] for i in sorted(by_index)]
    for r in shards:
        if r["path"]:
            info = fs.get_file_info(f"{staging}/{r['path']}")
            if info.type != pafs.FileType.File or info.size != r["bytes"]:
                raise RuntimeError(f"shard {r['index']}: {r['path']} is missing or changed")
    model = plan["model"]
    manifest = {
        "run_id": plan["run_id"],
        "usecase": plan["usecase"],
        "input": plan["input"],
        "rows": sum(int(r["rows"]) for r in shards),
        "keys": plan["keys"] or ["row_key"],
        "model_name": model["name"],
        "model_version": model["version"],
        "feature_service": model["feature_service"],
        "data_version": model["data_version"],
        "committed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "shards": shards,
    }
    fs.create_dir(staging, recursive=True)  # every shard may have been empty
    with fs.open_output_stream(f"{staging}/{MANIFEST}") as fh:
        fh.write(json.dumps(manifest, indent=2).encode())
    _replace(fs, staging, output, plan["run_id"])
    fields: list[tuple[str, str]] = []
    first = next((r["path"] for r in shards if r["path"]), None)
    if first is not None:
        with fs.open_input_file(f"{output}/{first}") as fh:
            fields = [(f.name, str(f.type)) for f in pq.read_schema(fh)]
    version = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    scored = ol.DatasetRef(plan["output"].rstrip("/"), version, fields)
    ol.complete(
        get_settings(),
        lineage_job(plan["usecase"]),
        lineage_inputs(plan),
        [scored],
        run_key=plan["run_id"],
    )
    return manifest


def _replace(fs: pafs.FileSystem, staging: str, output: str, run_id: str) -> None:
    """Move ``staging`` to ``output``; an earlier committed output (it has a manifest) is
    set aside first and removed after, anything else at ``output`` is never overwritten."""
    info = fs.get_file_info(output)
    aside = None
    if info.type != pafs.FileType.NotFound:
        if fs.get_file_info(f"{output}/{MANIFEST}").type != pafs.FileType.File:
            raise FileExistsError(
                f"batch output {output!r} exists and is not a committed batch output "
                f"(no {MANIFEST}): choose another output, nothing was overwritten"
            )
        aside = staging_path(output, run_id) + ".replaced"
        fs.move(output, aside)
    fs.move(staging, output)
    if aside is not None:
        fs.delete_dir(aside)


def read_output(output_uri: str) -> tuple[dict[str, Any], Any]:
    """The manifest and the rows of a committed batch output (a pyarrow Table)."""
    import pyarrow.parquet as pq

    fs, output = sources.filesystem(output_uri)
    with fs.open_input_stream(f"{output}/{MANIFEST}") as fh:
        manifest = json.loads(fh.read())
    parts = [f"{output}/{s['path']}" for s in manifest["shards"] if s["path"]]
    return manifest, pq.ParquetDataset(parts, filesystem=fs).read() if parts else None


__all__ = ["MANIFEST", "commit_task", "plan_task", "read_output", "shard_task"]
