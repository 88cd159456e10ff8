#!/usr/bin/env bash
# Two feed-server builds compared alternately on one world, by default on the uncached ranking
# path (BENCHMARKS.md: a shared host's speed drifts over minutes, so runs minutes apart cannot
# resolve a few percent; these runs are ~25 s apart).
#
#   scripts/bench-ab.sh [--rounds N] [--duration-secs S] [--phases P] [--out DIR] A_DIR B_DIR
#
# --phases: the `feedroll-loadgen run` phases of each run (default `uncached`; e.g.
# `baseline,cached` for cached pages beside the static baseline, measured in every run).
#
# A_DIR and B_DIR each hold release binaries: feed-server, feedroll-loadgen and
# feedroll-static-baseline (copy them from target/release after building each version). One
# private redis-server on a free loopback port; the bench world (defaults of
# `feedroll-loadgen load`) loaded once through A's feed-server; then N rounds (default 6) of
# both, A first in odd rounds and B first in even ones (on this host the second run of a pair
# tends to be the faster whichever build it is: BENCHMARKS.md, "Friends' lists: a full map keeps
# its usable lists"; give an even N): feed-server restarted on the same Redis, the cached heads
# dropped (every run ranks anew), and `feedroll-loadgen run --phases P` (3 s lead-in, S s
# measured, default 10, a fresh cold-user order each run). Prints one line per phase and run (requests/s, bytes per
# response, server (feed-server or baseline) and Redis CPU µs per request, loadgen CPU µs per
# request, CPU of bench / other processes) and writes each run's results to DIR (default
# bench-out/ab), where Redis's time went per phase included (`INFO commandstats`). Everything
# it starts is stopped on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

rounds=6 duration=10 phases=uncached out=bench-out/ab dirs=()
while (($#)); do
  case "$1" in
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --rounds) rounds="$2"; shift ;;
    --duration-secs) duration="$2"; shift ;;
    --phases) phases="$2"; shift ;;
    --out) out="$2"; shift ;;
    *) dirs+=("$1") ;;
  esac
  shift
done
((${#dirs[@]} == 2)) || { echo "bench-ab: give two binary directories (A_DIR B_DIR); --help" >&2; exit 2; }
for dir in "${dirs[@]}"; do
  for exe in feed-server feedroll-loadgen feedroll-static-baseline; do
    [ -x "$dir/$exe" ] || { echo "bench-ab: $dir has no executable $exe" >&2; exit 1; }
  done
done
require_redis bench-ab

tmp="$(mktemp -d -t feedroll-bench-ab.XXXXXX)"
mkdir -p "$out"
bench_traps

loadgen="${dirs[0]}/feedroll-loadgen"
mapfile -t ports < <("$loadgen" ports --count 3)
redis_port="${ports[0]}" server_port="${ports[1]}" baseline_port="${ports[2]}"
start_private_redis "$redis_port"
export RUST_LOG="${RUST_LOG:-warn}"

start_server() { # binary dir, extra flags...; sets server_pid
  "$1/feed-server" --listen "127.0.0.1:$server_port" --redis-url "redis://127.0.0.1:$redis_port/" \
    --log-format text "${@:2}" >>"$tmp/server.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  "$loadgen" wait-ready --url "127.0.0.1:$server_port" >/dev/null
}
stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid" || { echo "bench-ab: feed-server exited with an error" >&2; return 1; }
}

echo "bench-ab: loading the world through ${dirs[0]}/feed-server" >&2
start_server "${dirs[0]}" --warmup-users 0 --store-timeout-ms 10000
run "$loadgen" load --url "127.0.0.1:$server_port" >"$out/load.json"
run "$loadgen" capture --url "127.0.0.1:$server_port" --user u1 --out "$tmp/payload.json" >/dev/null
stop_server
"${dirs[0]}/feedroll-static-baseline" --listen "127.0.0.1:$baseline_port" --body "$tmp/payload.json" \
  >>"$tmp/baseline.log" 2>&1 &
baseline_pid=$!
pids+=("$baseline_pid")
"$loadgen" wait-ready --url "127.0.0.1:$baseline_port" >/dev/null

seed=1000
for ((round = 1; round <= rounds; round++)); do
  order="A B"
  ((round % 2 == 0)) && order="B A"
  for side in $order; do
    dir="${dirs[0]}"
    [ "$side" = B ] && dir="${dirs[1]}"
    for pattern in '*head:*' '*snap:*'; do
      redis-cli -p "$redis_port" --scan --pattern "$pattern" |
        xargs -r -n 1000 redis-cli -p "$redis_port" DEL >/dev/null
    done
    start_server "$dir" --warmup-users 0
    seed=$((seed + 1))
    name="$round-$side"
    redis_stats_flags "$dir/feedroll-loadgen" "$redis_port"
    run "$dir/feedroll-loadgen" run --url "127.0.0.1:$server_port" --baseline-url "127.0.0.1:$baseline_port" \
      --server-pid "$server_pid" --redis-pid "$redis_pid" --baseline-pid "$baseline_pid" "${redis_stats[@]}" \
      --warmed-users 0 --phases "$phases" \
      --duration-secs "$duration" --cold-seed "$seed" --load-json "$out/load.json" \
      --out "$out/$name.json" --markdown "$out/$name.md" >/dev/null 2>"$out/$name.log"
    stop_server
    # The rows of the phase table: name, load, req/s, ... bytes/resp, server, Redis, loadgen, CPU.
    awk -F'|' -v at="$(date -u +%H:%M:%S) round $round $side ($dir):" '
      /^\| phase \|/ { table = 1; next }
      table && /^\| ---/ { next }
      table && /^\|/ { print at $2 "|" $4 "|" $10 "|" $11 "|" $12 "|" $13 "|" $14; next }
      table { exit }' "$out/$name.md"
  done
done
echo "bench-ab: results in $out" >&2
