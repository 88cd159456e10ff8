"""scripts/ab-ratios.py, the comparison scripts/bench-ab.sh prints at its end: each phase's
pairs by CPU per request over the load generator's, their medians and how many rounds favoured
B, read from the runs' JSON as feedroll-loadgen writes it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ab-ratios.py"


def phase(name: str, rps: float, server: float, redis: float, loadgen: float, **extra) -> dict:
    return {
        "name": name,
        "summary": {"rps": rps},
        "server_cpu_us_per_req": server,
        "redis_cpu_us_per_req": redis,
        "loadgen_cpu_us_per_req": loadgen,
        **extra,
    }


def write(out: Path, name: str, phases: list[dict]) -> None:
    (out / name).write_text(json.dumps({"phases": phases}))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def test_pairs_are_compared_by_cpu_over_the_load_generators(tmp_path: Path) -> None:
    # Round 2 ran on a host twice as slow: its CPU per request doubled on both sides, and so did
    # the load generator's, so the ratios hold still.
    write(tmp_path, "1-A.json", [phase("events", 4000, 240, 160, 40)])
    write(tmp_path, "1-B.json", [phase("events", 4400, 216, 160, 40)])
    write(tmp_path, "2-A.json", [phase("events", 2000, 480, 320, 80)])
    write(tmp_path, "2-B.json", [phase("events", 2100, 456, 320, 80)])
    # Not a run of bench-ab.sh: ignored.
    write(tmp_path, "load.json", [phase("events", 1, 1, 1, 1)])
    done = run(str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "== events"
    assert lines[2].split() == "1 4000 4400 6.00 5.40 -10.0% 10.00 9.40 -6.0%".split()
    assert lines[3].split() == "2 2000 2100 6.00 5.70 -5.0% 10.00 9.70 -3.0%".split()
    assert lines[4] == (
        "median   server/loadgen 6.00 → 5.55 (-7.5%), (server+redis)/loadgen 10.00 → 9.55"
        " (-4.5%); B lower in 2 of 2 rounds"
    )


def test_the_baseline_counts_its_own_cpu_and_unpaired_or_unmeasured_phases_are_left_out(
    tmp_path: Path,
) -> None:
    baseline = {"server_cpu_us_per_req": 0.0, "baseline_cpu_us_per_req": 10.0}
    write(
        tmp_path,
        "1-A.json",
        [
            phase("static baseline", 90000, 0, 0.1, 10, **baseline),
            phase("only in A", 100, 100, 10, 10),
            phase("no load generator", 100, 100, 10, 0),
        ],
    )
    write(
        tmp_path,
        "1-B.json",
        [
            phase("static baseline", 91000, 0, 0.1, 10, **baseline),
            phase("no load generator", 100, 100, 10, 0),
        ],
    )
    done = run(str(tmp_path))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "== static baseline" in out and "B lower in 0 of 1 rounds" in out
    assert "1.00" in out.split("== static baseline")[1]
    assert "== only in A\n" in out and "no round with both sides" in out
    assert "no load generator" not in out


def test_a_directory_without_runs_is_refused_with_a_reason(tmp_path: Path) -> None:
    empty = run(str(tmp_path))
    assert empty.returncode == 1
    assert "no <round>-<A|B>.json" in empty.stderr
    missing = run(str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "is not a directory" in missing.stderr
