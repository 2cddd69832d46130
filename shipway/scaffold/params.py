"""params.yaml edits of ``shipway init``: list the use case for the DVC data stages and,
for small data, propose shallow trees. Text edits, so the file's comments survive."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

SMALL_DATA_ROWS = 5000
SMALL_DATA_LIGHTGBM: dict[str, float] = {
    "n_estimators": 300,
    "learning_rate": 0.03,
    "num_leaves": 7,
    "min_child_samples": 20,
}
"""LightGBM below SMALL_DATA_ROWS rows: shallow, slow-learning trees. The platform's
defaults (400 trees of 31 leaves) overfit a few thousand rows into a model whose
predictions jump under the gate's 1% perturbation."""
SMALL_DATA_RANDOM_FOREST: dict[str, float] = {
    "n_estimators": 100,
    "max_depth": 8,
    "min_samples_leaf": 10,
}
"""A random forest below SMALL_DATA_ROWS rows: half the platform's trees, shallower. Deep
trees on a few thousand rows memorise them, and a single-row prediction walks every
tree, so 200 of them cost the latency budget more than they add in accuracy."""
SMALL_DATA: dict[str, dict[str, float]] = {
    "lightgbm": SMALL_DATA_LIGHTGBM,
    "random_forest": SMALL_DATA_RANDOM_FOREST,
}
"""Small-data hyperparameters per algorithm (a linear model has nothing to shrink)."""


def propose_overrides(params: Path, name: str, rows: int) -> bool:
    """Add ``train.overrides.<name>`` for a small dataset to params.yaml, keeping comments.

    The overrides are nested per algorithm (``train.overrides.<name>.<algorithm>``, which
    the learner applies to that algorithm only), so the spec's ``model.algorithm`` can be
    switched later without a random forest receiving LightGBM's parameters. Returns False
    when nothing was added (enough rows, already present, or a layout of params.yaml this
    text edit does not recognise).
    """
    if rows >= SMALL_DATA_ROWS or not params.is_file():
        return False
    text = params.read_text()
    train = (yaml.safe_load(text) or {}).get("train") or {}
    if name in (train.get("overrides") or {}):
        return False
    block = [f"    {name}:  # proposed by shipway init: {rows} rows, small-data models\n"]
    for algo, hp in SMALL_DATA.items():
        block.append(f"      {algo}: {{{', '.join(f'{k}: {v}' for k, v in hp.items())}}}\n")
    lines = text.splitlines(keepends=True)
    for i, ln in enumerate(lines):
        m = re.match(r"^  overrides:\s*(\{\s*\})?\s*(#.*)?$", ln.rstrip("\n"))
        if m:
            comment = f"  {m.group(2)}" if m.group(2) else ""
            lines[i : i + 1] = [f"  overrides:{comment}\n", *block]
            params.write_text("".join(lines))
            return yaml.safe_load(params.read_text())["train"]["overrides"][name] == SMALL_DATA
    return False


def register_in_params(params: Path, name: str) -> bool:
    """Add ``name`` to params.yaml ``usecases:`` (the DVC stages' foreach), keeping comments.

    Returns False when it is already listed.
    """
    text = params.read_text() if params.is_file() else "usecases: []\n"
    data = yaml.safe_load(text) or {}
    listed = data.get("usecases") or []
    if name in listed:
        return False
    lines = text.splitlines(keepends=True)
    head = next((i for i, ln in enumerate(lines) if re.match(r"^usecases:", ln)), None)
    if head is None:
        params.write_text(f"usecases:\n  - {name}\n" + text)
        return True
    flow = re.match(r"^usecases:\s*\[(.*)\](.*)$", lines[head].rstrip("\n"))
    if flow:
        items = [s.strip() for s in flow.group(1).split(",") if s.strip()]
        lines[head] = f"usecases: [{', '.join([*items, name])}]{flow.group(2)}\n"
    else:
        last, indent = head, "  "
        for i in range(head + 1, len(lines)):
            m = re.match(r"^(\s+)-\s", lines[i])
            if m:
                last, indent = i, m.group(1)
            elif lines[i].strip() and not lines[i].lstrip().startswith("#"):
                break
        lines.insert(last + 1, f"{indent}- {name}\n")
    params.write_text("".join(lines))
    return True
