"""The layers hold (issue 19): imports point only downward, the three middle packages
do not import each other, and no module imports itself back through a cycle.

The contract lives in pyproject.toml (``[tool.importlinter]``) and ``make lint`` runs it
too; here it runs under ``make test`` so CI fails on a violation. grimp, which
import-linter uses, reads every import statement, function-local ones included.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shipway", "pipelines", "services", "monitoring", "feature_repo")
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def _lint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_the_layer_and_independence_contracts_are_kept() -> None:
    out = _lint()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 kept, 0 broken" in out.stdout


def test_a_function_local_import_counts(tmp_path: Path) -> None:
    """Negative control: ``shipway train`` imports the pipeline runner inside a function
    (kfp is heavy); a contract forbidding that import must see it and fail."""
    config = tmp_path / "contract.ini"
    config.write_text(
        "[importlinter]\nroot_packages =\n    shipway\n    pipelines\n\n"
        "[importlinter:contract:control]\nname = control\ntype = forbidden\n"
        "source_modules =\n    shipway.cli.train\nforbidden_modules =\n    pipelines.runner\n"
    )
    out = _lint("--config", str(config))
    assert out.returncode == 1, out.stdout
    assert "shipway.cli.train -> pipelines.runner" in out.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_no_import_cycles() -> None:
    assert _cycles(grimp.build_graph(*PACKAGES)) == []


def test_the_cycle_finder_finds_a_cycle(tmp_path: Path) -> None:
    """Negative control for the test above: two modules importing each other."""
    pkg = tmp_path / "cyclic"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from cyclic import b\n")
    (pkg / "b.py").write_text("from cyclic import a\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert _cycles(grimp.build_graph("cyclic", cache_dir=None)) == [["cyclic.a", "cyclic.b"]]
    finally:
        sys.path.remove(str(tmp_path))
