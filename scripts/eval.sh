#!/usr/bin/env bash
# Offline quality of feed-server on the real KuaiRand logs (issue 7): builds the release binary if
# needed, then replays the logs through its HTTP API and prints GAUC / NDCG@10 beside random and
# most-popular baselines. Arguments go to eval/kuairand_replay.py, e.g.
#   scripts/eval.sh --smoke                 tiny deterministic slice, seconds
#   scripts/eval.sh --json eval-out.json    full run, figures also as JSON
#   scripts/eval.sh --server http://127.0.0.1:8080   use a running (empty) feed-server
set -euo pipefail
cd "$(dirname "$0")/.."

# The Python venv (and the test dependencies): one recipe, in scripts/install-deps.sh.
scripts/install-deps.sh >&2

# Build the server unless the caller points at a running one or at another binary.
build=1
for arg in "$@"; do
  case "$arg" in
    --server|--server=*|--binary|--binary=*|-h|--help) build=0 ;;
  esac
done
if [ "$build" = 1 ]; then
  ${CARGO:-cargo} build --release -q -p feed-server
fi

exec .venv/bin/python eval/kuairand_replay.py "$@"
