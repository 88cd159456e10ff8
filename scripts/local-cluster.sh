#!/usr/bin/env bash
# A local Kubernetes for Feedroll, on loopback (issue 11): `localkube --cluster` starts the API
# server (HTTPS, FeedRollout and HTTPRoute CRDs, the chart's ServiceAccount and RBAC), the
# kubelet and Deployment controller (pods of `feed-server:*` images run the fault-injection
# feed-server as real processes, each on its own loopback IP 127.10.x.y, logs and ConfigMap
# volumes under DIR/pods/), the Services network (a ClusterIP 127.20.x.y per Service,
# EndpointSlices, a TCP proxy per port), a gateway for HTTPRoutes (127.30.x.y), Redis,
# Prometheus (file_sd from the pods, 1 s scrapes), a traffic generator (50 req/s per
# FeedRollout) and the operator (`feedroll-operator run`, two replicas, leader election, the
# chart's flags).
#
#   scripts/local-cluster.sh up [--dir DIR] [--foreground] [-- LOCALKUBE-FLAGS...]
#   scripts/local-cluster.sh down [--dir DIR]                stop what `up` started in DIR
#
# DIR defaults to .localkube. `up` writes DIR/kubeconfig (contexts `admin`, current, and
# `operator`, the chart's ServiceAccount feedroll-system:feedroll; also alone in
# DIR/operator.kubeconfig), DIR/env (KUBECONFIG=, PROMETHEUS=, REDIS=; for `source`),
# DIR/localkube.pid, DIR/localkube.log and one log per process it runs (DIR/*.log).
# --foreground stays attached with the logs on the terminal and stops everything on Ctrl-C
# (`make cluster`); stopping it stops every pod's process. Flags after `--` go to localkube
# (`--traffic-rate 0`, `--no-operator`, `--traffic-api-key KEY`; `localkube --help`).
# LOCALKUBE_BIN overrides the binary (default: target/debug/localkube, built first with the
# operator binary beside it, and the fault-injection feed-server copied to
# target/fault-injection/feed-server unless FEEDROLL_FAULTY_FEED_SERVER names one).
set -euo pipefail

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

cmd=${1:-}
[[ -n $cmd ]] || usage
shift
dir=.localkube
foreground=0
extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --dir) [[ $# -ge 2 ]] || usage; dir=$2; shift 2 ;;
    --foreground) foreground=1; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "local-cluster.sh: unknown option $1" >&2; usage ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pidfile=$dir/localkube.pid

# Whether pid $1 is a localkube process (not a recycled pid now owned by something else).
is_localkube() {
  local exe=
  [[ $1 =~ ^[0-9]+$ && -r /proc/$1/cmdline ]] || return 1
  IFS= read -r -d '' exe <"/proc/$1/cmdline" 2>/dev/null || [[ -n $exe ]] || return 1
  [[ ${exe##*/} == localkube ]]
}
running() { [[ -f $pidfile ]] && is_localkube "$(cat "$pidfile")"; }
# Stops pid $1 (TERM, then KILL after 40 s: localkube gives its pods' processes their grace
# period, 30 s by default, before it exits); a process that already exited is fine.
stop() {
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 400); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  echo "local-cluster.sh: pid $pid still running after 40 s, sending SIGKILL" >&2
  kill -9 "$pid" 2>/dev/null || true
}

case $cmd in
  up)
    if running; then
      echo "local-cluster.sh: already running in $dir (pid $(cat "$pidfile")); run 'down' first" >&2
      exit 1
    fi
    bin=${LOCALKUBE_BIN:-}
    if [[ -z $bin ]]; then
      target=${CARGO_TARGET_DIR:-$root/target}
      if [[ -z ${FEEDROLL_FAULTY_FEED_SERVER:-} ]]; then
        # The pods' feed-server, with the fault-injection feature (as make test builds it).
        cargo build -q -p feed-server --features fault-injection --manifest-path "$root/Cargo.toml"
        mkdir -p "$target/fault-injection"
        cp "$target/debug/feed-server" "$target/fault-injection/feed-server"
      fi
      cargo build -q -p feedroll-localkube -p feedroll-operator --manifest-path "$root/Cargo.toml"
      bin=$target/debug/localkube
    fi
    [[ -x $bin ]] || { echo "local-cluster.sh: $bin is not an executable" >&2; exit 1; }
    rm -f "$dir/kubeconfig" "$dir/env"
    if [[ $foreground == 1 ]]; then
      "$bin" --cluster --dir "$dir" --namespace feed "${extra[@]}" &
    else
      "$bin" --cluster --dir "$dir" --namespace feed "${extra[@]}" >"$dir/localkube.log" 2>&1 &
    fi
    pid=$!
    echo "$pid" >"$pidfile"
    # Installed before the readiness wait: Ctrl-C during start-up stops localkube too (and,
    # with --foreground, at any time).
    trap 'stop "$pid"; rm -f "$pidfile" "$dir/env"' INT TERM EXIT
    for _ in $(seq 600); do
      [[ -f $dir/kubeconfig ]] && break
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "local-cluster.sh: localkube exited before it was ready" >&2
        [[ -f $dir/localkube.log ]] && cat "$dir/localkube.log" >&2
        rm -f "$pidfile"
        exit 1
      fi
      sleep 0.1
    done
    if [[ ! -f $dir/kubeconfig ]]; then
      echo "local-cluster.sh: localkube wrote no kubeconfig within 60 s" >&2
      stop "$pid"
      rm -f "$pidfile"
      exit 1
    fi
    [[ $foreground == 1 ]] || trap - INT TERM EXIT
    cat <<MSG
local cluster up: API server $(grep -m1 'server:' "$dir/kubeconfig" | awk '{print $2}') (pid $pid)
  source $dir/env          # KUBECONFIG, PROMETHEUS, REDIS
  kubectl apply -f examples/default-plan.yaml
  kubectl -n feed get feedrollouts -w
  kubectl get svc,endpointslices -A
  kubectl -n feed get pods -w        # pods run as processes; logs in $dir/pods/
Logs of the other processes: $dir/*.log
MSG
    if [[ $foreground == 1 ]]; then
      wait "$pid" || true
    fi
    ;;
  down)
    if ! running; then
      # No pid file, or its pid is gone or now another program's: never signal that one.
      echo "local-cluster.sh: nothing running in $dir" >&2
      rm -f "$pidfile" "$dir/env"
      exit 0
    fi
    stop "$(cat "$pidfile")"
    rm -f "$pidfile" "$dir/env" "$dir/kubeconfig" "$dir/operator.kubeconfig"
    echo "local cluster in $dir stopped"
    ;;
  *) usage ;;
esac
