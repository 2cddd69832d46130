"""One table of every benchmark's ratios against its goal (``make bench`` ends with it).

``python -m benchmarks.report --markdown`` prints the rows pasted into the README;
``python -m benchmarks.report serving`` only the named benchmarks' rows. Exits 1 when
any goal shown is missed (or nothing was recorded), so ``make bench`` and
``make bench-serving`` fail then; the benchmarks before it have already written their
results.
"""

from __future__ import annotations

import json
import sys

from benchmarks.common import RESULTS


def rows(only: list[str] | None = None) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        if only and data.get("benchmark") not in only:
            continue
        for c in data.get("comparisons", []):
            out.append(
                {"benchmark": data["benchmark"], **c, "at": data.get("machine", {}).get("at", "")}
            )
    return out


def _fmt(v: object, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3g} {unit}".strip() if abs(v) < 1000 else f"{v:,.0f} {unit}".strip()
    return str(v)


def main() -> int:
    data = rows([a for a in sys.argv[1:] if not a.startswith("-")])
    if not data:
        print("no results yet: run `make bench`")
        return 1
    md = "--markdown" in sys.argv
    if md:
        print("| benchmark | figure | measured | baseline (same run) | ratio | goal | met |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
    else:
        print(
            f"{'benchmark':10} {'figure':52} {'measured':>14} {'baseline':>14} {'ratio':>7}  goal"
        )
    missed = 0
    for r in data:
        unit = str(r.get("unit", ""))
        met = r.get("met")
        missed += met is False
        mark = "" if met is None else ("yes" if met else "**no**" if md else "MISSED")
        if md:
            print(
                f"| {r['benchmark']} | {str(r['name']).strip()} | {_fmt(r['value'], unit)} | "
                f"{_fmt(r.get('baseline'), unit)} | {_fmt(r.get('ratio'))} | "
                f"{r.get('goal', '')} | {mark} |"
            )
        else:
            print(
                f"{r['benchmark']:10} {str(r['name'])[:52]:52} {_fmt(r['value'], unit):>14} "
                f"{_fmt(r.get('baseline'), unit):>14} {_fmt(r.get('ratio')):>7}  "
                f"{r.get('goal', '')} {mark}"
            )
    print(f"\n{missed} goal(s) missed" if not md else "")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
