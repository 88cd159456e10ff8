#!/usr/bin/env python3
"""How two builds compare in a scripts/bench-ab.sh run, by CPU per request over the load
generator's own CPU per request.

A shared host's speed drifts over minutes (BENCHMARKS.md), so a side's CPU per request is
divided by the load generator's in the same run: the load generator's work per request is the
same for both sides, and its CPU tracks the host's speed. For each phase, each round prints both
sides' ratios (feed-server's, and feed-server's plus Redis's) and the change from A to B; then
the medians over the rounds, and how many rounds favoured B.

    scripts/ab-ratios.py DIR      # DIR: bench-ab.sh's --out (reads DIR/<round>-<A|B>.json)
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

RUN = re.compile(r"^(\d+)-([AB])\.json$")


@dataclass(frozen=True)
class Run:
    """One phase of one side's run."""

    rps: float
    server: float
    redis: float
    loadgen: float

    @property
    def server_ratio(self) -> float:
        return self.server / self.loadgen

    @property
    def total_ratio(self) -> float:
        return (self.server + self.redis) / self.loadgen


def read_runs(out: Path) -> dict[str, dict[int, dict[str, Run]]]:
    """phase → round → side → run, from every `<round>-<side>.json` in `out`."""
    phases: dict[str, dict[int, dict[str, Run]]] = {}
    for path in sorted(out.iterdir()):
        m = RUN.match(path.name)
        if not m:
            continue
        rnd, side = int(m.group(1)), m.group(2)
        for p in json.loads(path.read_text())["phases"]:
            loadgen = p.get("loadgen_cpu_us_per_req") or 0.0
            if loadgen <= 0:
                continue  # nothing to divide by: the phase measured no load generator
            run = Run(
                rps=p["summary"]["rps"],
                # The static baseline's phase counts the baseline server's CPU, not feed-server's.
                server=p.get("server_cpu_us_per_req") or p.get("baseline_cpu_us_per_req") or 0.0,
                redis=p.get("redis_cpu_us_per_req") or 0.0,
                loadgen=loadgen,
            )
            phases.setdefault(p["name"], {}).setdefault(rnd, {})[side] = run
    return phases


def change(a: float, b: float) -> str:
    return f"{100 * (b - a) / a:+.1f}%" if a else "n/a"


def report(phases: dict[str, dict[int, dict[str, Run]]]) -> str:
    lines = []
    for phase, rounds in phases.items():
        lines.append(f"== {phase}")
        lines.append(
            "round  A req/s  B req/s  A srv/lg  B srv/lg  change"
            "  A (srv+redis)/lg  B (srv+redis)/lg  change"
        )
        pairs = []
        for rnd in sorted(rounds):
            sides = rounds[rnd]
            if "A" not in sides or "B" not in sides:
                continue
            a, b = sides["A"], sides["B"]
            pairs.append((a, b))
            lines.append(
                f"{rnd:5d}  {a.rps:7.0f}  {b.rps:7.0f}"
                f"  {a.server_ratio:8.2f}  {b.server_ratio:8.2f}"
                f"  {change(a.server_ratio, b.server_ratio):>6}  {a.total_ratio:16.2f}"
                f"  {b.total_ratio:16.2f}  {change(a.total_ratio, b.total_ratio):>6}"
            )
        if not pairs:
            lines.append("no round with both sides")
            continue
        med = {
            key: (
                statistics.median(getattr(a, key) for a, _ in pairs),
                statistics.median(getattr(b, key) for _, b in pairs),
            )
            for key in ("server_ratio", "total_ratio")
        }
        favoured = sum(b.server_ratio < a.server_ratio for a, b in pairs)
        lines.append(
            f"median   server/loadgen {med['server_ratio'][0]:.2f} → {med['server_ratio'][1]:.2f}"
            f" ({change(*med['server_ratio'])}), (server+redis)/loadgen"
            f" {med['total_ratio'][0]:.2f} → {med['total_ratio'][1]:.2f}"
            f" ({change(*med['total_ratio'])}); B lower in {favoured} of {len(pairs)} rounds"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the --out directory of scripts/bench-ab.sh")
    args = parser.parse_args()
    if not args.out.is_dir():
        print(f"ab-ratios: {args.out} is not a directory", file=sys.stderr)
        return 2
    phases = read_runs(args.out)
    if not phases:
        print(f"ab-ratios: no <round>-<A|B>.json with phases in {args.out}", file=sys.stderr)
        return 1
    sys.stdout.write(report(phases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
