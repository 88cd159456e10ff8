#!/usr/bin/env bash
# The Python suites of `make test`; they need the debug binaries that build leaves in
# target/debug (the ordinary feed-server, not the fault-injection one).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
$py -m pytest -q scripts/tests            # the images, from the debug binaries
$py -m pytest -q feed-server/tests/contract # /openapi.json fuzzed by schemathesis on both stores
$py -m pytest -q eval/tests charts/tests argocd/tests
