"""scripts/perf-shares.py, the summary scripts/bench-ab.sh --profile writes per run: shares
of samples by what their stacks hold, the kernel's, self time by function (offsets stripped,
inlined frames counted), and a part broken down by its callees, on `perf script` text as perf
prints it (a header line per sample, then frames leaf first)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "perf-shares.py"


def sample(thread: str, frames: list[tuple[str, str]]) -> str:
    lines = [f"{thread} 23698  1804.494855:    3344481 cpu-clock:ppp: "]
    # An inlined frame names no object: perf prints `(inlined)` in its place.
    lines += [f"\t          534c2c {symbol} ({dso or 'inlined'})" for symbol, dso in frames]
    return "\n".join(lines) + "\n\n"


BIN = "/work/bench-bin/s52a/feed-server"
# Four samples: two in the follower's fold (one in the B-tree, one hashing), one in the
# handler, one in the kernel under the handler's write.
TEXT = (
    sample(
        "tokio-rt-worker",
        [
            ("alloc::collections::btree::set::BTreeSet<T,A>::take+0x1c", BIN),
            ("feed_server::learning::scores::ScoreIndex<M>::set+0x51", ""),
            ("feed_server::learning::aggregates::SharedAggregates::apply+0x20", BIN),
            ("feed_server::store::redis_follower::Follower::poll::{{closure}}+0x5", BIN),
        ],
    )
    + sample(
        "tokio-rt-worker",
        [
            ("hashbrown::map::make_hash+0x9", BIN),
            ("feed_server::learning::scores::ScoreIndex<M>::set+0x11", BIN),
            ("feed_server::learning::aggregates::SharedAggregates::apply+0x20", BIN),
            ("feed_server::store::redis_follower::Follower::poll::{{closure}}+0x5", BIN),
        ],
    )
    + sample(
        "tokio-rt-worker",
        [
            ("feed_server::learning::Deltas::add+0x77", BIN),
            ("feed_server::ingest::ingest::{{closure}}+0x3", BIN),
        ],
    )
    + sample(
        "tokio-rt-worker",
        [
            ("tcp_sendmsg_locked+0x40", "[kernel.kallsyms]"),
            ("__GI___writev+0x1d", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            ("feed_server::ingest::ingest::{{closure}}+0x3", BIN),
        ],
    )
)


def summary(*args: str) -> list[str]:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), *args], input=TEXT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def share(lines: list[str], name: str) -> str:
    rows = [line.split(None, 1) for line in lines if line.strip()]
    found = [pct for pct, rest in (r for r in rows if len(r) == 2) if rest == name]
    assert found, f"{name} missing in {lines}"
    return found[0]


def test_parts_kernel_and_self_time_are_shares_of_every_sample():
    lines = summary(
        "--pattern", "Follower::poll", "--pattern", "ScoreIndex", "--pattern", "ingest::", "--top", "10"
    )
    assert lines[0] == "samples 4"
    assert share(lines, "Follower::poll") == "50.0%"
    assert share(lines, "ScoreIndex") == "50.0%", "an inlined frame counts"
    assert share(lines, "ingest::") == "50.0%"
    assert share(lines, "(kernel, self)") == "25.0%"
    # Self time by the leaf, its offset stripped.
    assert share(lines, "alloc::collections::btree::set::BTreeSet<T,A>::take") == "25.0%"
    assert share(lines, "tcp_sendmsg_locked") == "25.0%"


def test_a_part_is_broken_down_by_its_callees():
    lines = summary("--pattern", "ScoreIndex", "--under", "SharedAggregates::apply", "--depth", "1")
    below = lines[lines.index("under SharedAggregates::apply, 1 level(s) down:") + 1 :]
    assert below == ["  50.0%  feed_server::learning::scores::ScoreIndex<M>::set"]
    lines = summary("--pattern", "ScoreIndex", "--under", "Deltas::add", "--depth", "1")
    below = lines[lines.index("under Deltas::add, 1 level(s) down:") + 1 :]
    assert below == ["  25.0%  (self)"]


def test_no_samples_says_so():
    run = subprocess.run([sys.executable, str(SCRIPT)], input="", capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.splitlines() == ["samples 0"]
