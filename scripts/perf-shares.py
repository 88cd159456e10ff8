#!/usr/bin/env python3
"""Where a process's CPU went, from `perf script` text of a `perf record --call-graph` profile.

    perf script -i perf.data | scripts/perf-shares.py [--top N] [--pattern P ...]
                                                      [--under P [--depth N]]

Prints, as shares of all samples:
- each pattern's share: samples whose stack holds a frame containing it (inclusive time; the
  default patterns are feed-server's parts named in BENCHMARKS.md's profiles);
- the kernel's share (samples whose leaf frame is in the kernel);
- the top functions by self time (the leaf frame), offsets stripped;
- with --under P: the frames N levels below the outermost frame holding P (`(self)` when the
  sample ends there), i.e. what P's time is made of.

scripts/bench-ab.sh --profile writes one such summary per run beside its results.
"""

import argparse
import collections
import sys

# Feed-server's parts as BENCHMARKS.md's profiles name them (a frame holding the text).
DEFAULT_PATTERNS = [
    "feed_server::http::feed::get_feed",
    "feed_server::feed::head",
    "feed_server::ingest::",
    "feed_server::learning::Deltas::add",
    "feed_server::store::Store>::apply",
    "feed_server::store::redis_follower::Follower::poll",
    "SharedAggregates::apply",
    "ScoreIndex",
    "SharedDeltas::decode",
    "SharedDeltas::encode",
    "run_checkpoints",
    "redis_peers",
    "redis::parser",
    "hyper::",
]

KERNEL = "[kernel.kallsyms]"


def samples(lines):
    """The stacks of a `perf script` output: per sample, (leaf first) [(function, in_kernel)]."""
    stack, in_sample = [], False
    for line in lines:
        if not line.strip():
            if stack:
                yield stack
            stack, in_sample = [], False
            continue
        if line[0] in " \t":
            if not in_sample:
                continue
            parts = line.strip().split(None, 1)
            if len(parts) < 2:
                continue
            symbol, _, dso = parts[1].rpartition(" (")
            symbol = symbol or parts[1]
            stack.append((symbol.rsplit("+0x", 1)[0], dso.startswith(KERNEL)))
        else:
            if stack:
                yield stack
            stack, in_sample = [], True
    if stack:
        yield stack


def summarise(stacks, patterns, top, under=None, depth=1):
    """The summary's lines (see the module docs)."""
    n = len(stacks)
    out = [f"samples {n}"]
    if n == 0:
        return out

    def share(k):
        return f"{100.0 * k / n:6.1f}%"

    out.append("")
    for p in patterns:
        hits = sum(1 for s in stacks if any(p in f for f, _ in s))
        out.append(f"{share(hits)}  {p}")
    kernel = sum(1 for s in stacks if s[0][1])
    out.append(f"{share(kernel)}  (kernel, self)")
    out.append("")
    leaves = collections.Counter(s[0][0] for s in stacks)
    for f, k in leaves.most_common(top):
        out.append(f"{share(k)}  {f}")
    if under:
        out.append("")
        out.append(f"under {under}, {depth} level(s) down:")
        below = collections.Counter()
        for s in stacks:
            at = [i for i, (f, _) in enumerate(s) if under in f]
            if not at:
                continue
            i = at[-1] - depth
            below[s[i][0] if i >= 0 else "(self)"] += 1
        for f, k in below.most_common(top):
            out.append(f"{share(k)}  {f}")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=25, help="functions listed (default 25)")
    parser.add_argument("--pattern", action="append", help="a part to share out (repeatable; default: feed-server's parts)")
    parser.add_argument("--under", help="break this part down by its callees")
    parser.add_argument("--depth", type=int, default=1, help="levels below --under (default 1)")
    args = parser.parse_args(argv)
    stacks = list(samples(sys.stdin))
    for line in summarise(stacks, args.pattern or DEFAULT_PATTERNS, args.top, args.under, args.depth):
        print(line)


if __name__ == "__main__":
    main()
