"""scripts/redis-write-forms.py, the isolated comparison of the event writes' command forms
(BENCHMARKS.md), on a tiny workload: every form replays without a Redis error (a refused
command, even inside a transaction or a script, would be timed as work, so the script exits on
one) and gets a CPU figure per alternation, and the private redis-server it started (on a Unix
socket of its own, so no other test's Redis can answer) is stopped and its directory removed.

redis-server is installed by scripts/install-deps.sh: without it this test fails, it never skips.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "redis-write-forms.py"
FORMS = ["multi", "plain", "nover", "script", "fixed", "noaff", "notaste", "notrim", "sumslog", "amulti", "ascript"]


def test_every_form_replays_and_the_private_redis_is_stopped():
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--posts", "50", "--rounds-per-form", "2", "--repeats", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr + run.stdout
    rows = {line.split()[0]: line for line in run.stdout.splitlines() if line.strip()}
    assert sorted(rows) == sorted(FORMS), run.stdout
    for line in rows.values():
        figures = re.findall(r"\d+\.\d", line.split("µs per")[1])
        assert len(figures) == 3, f"two alternations and their mean: {line}"
    pid, workdir = re.search(r"redis-server, pid (\d+), in (\S+)", run.stderr).groups()
    assert not Path(f"/proc/{pid}").exists(), f"the private redis-server (pid {pid}) was left running"
    assert not Path(workdir).exists(), f"{workdir} was left behind"
