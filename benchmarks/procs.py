"""What a server under test costs the machine: CPU seconds, memory, and the load around it.

A server here is a process tree (``bentoml serve`` and its workers, or uvicorn and its
workers); its CPU is the user + system time of every process in the tree, read with
psutil before and after a load run, so ``CPU per request`` is exact whatever else runs
on the machine. The load average is recorded beside every figure, not used in any: some
sandboxes report 0.0 while both cores are busy, others count every tenant's work.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psutil


def tree(pid: int) -> list[psutil.Process]:
    """A live process and all its descendants (empty when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process and all its descendants."""
    total = 0.0
    for proc in tree(pid):
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:  # a worker that exited: its time is gone with it
            continue
        total += t.user + t.system
    return total


def children_cpu_seconds() -> float:
    """CPU seconds of this process's children that have been waited for (the load tool)."""
    t = psutil.Process().cpu_times()
    return t.children_user + t.children_system


def workers(pid: int, marker: str | None) -> list[psutil.Process]:
    """The processes of a tree that answer requests: those whose command line holds
    ``marker`` (BentoML's worker module), else the leaves of the tree (uvicorn's workers,
    or the single uvicorn process itself)."""
    procs = tree(pid)
    if marker:
        return [p for p in procs if marker in " ".join(_cmdline(p))]
    parents = {p.ppid() for p in procs}
    return [
        p for p in procs if p.pid not in parents and "resource_tracker" not in " ".join(_cmdline(p))
    ]


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def rss_mb(procs: list[psutil.Process]) -> list[float]:
    """Resident set size of each process, MB (shared pages counted in each)."""
    out = []
    for p in procs:
        try:
            out.append(p.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            continue
    return out


def load_average() -> dict[str, Any]:
    """``os.getloadavg()`` and the raw ``/proc/loadavg`` line, as the machine reports them."""
    raw = Path("/proc/loadavg")
    return {
        "getloadavg": [round(x, 2) for x in os.getloadavg()],
        "proc_loadavg": raw.read_text().strip() if raw.exists() else "",
    }


def machine_cpu_seconds() -> dict[str, float]:
    """The whole machine's CPU seconds so far, from ``/proc/stat`` (all cores summed).

    ``busy`` is every process's user + system + interrupt time; ``steal`` is time a
    virtual machine's cores were ready but the hypervisor ran someone else. Read before
    and after a run, the busy time no server or load generator accounts for, and the
    stolen time, say whether a slow run was the code or the machine."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return {"busy": busy, "steal": getattr(t, "steal", 0.0), "iowait": getattr(t, "iowait", 0.0)}
