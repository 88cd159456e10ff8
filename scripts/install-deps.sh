#!/usr/bin/env bash
# Installs what the tests need, idempotently: Debian packages (redis-server, prometheus, lua5.1,
# buildah for the container-image test)
# and the project's Python venv (.venv) for the offline evaluation and the chart tests. Safe to run again: it only installs
# what is missing. Fails with a clear message when something cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# promtool (alert rules, the platform guide's scrape job) ships in the same package.
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || need_apt+=(prometheus)
command -v python3      >/dev/null 2>&1 || need_apt+=(python3)
# Debian's python3 makes virtual environments only with python3-venv (ensurepip).
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v lua5.1       >/dev/null 2>&1 || need_apt+=(lua5.1)
# buildah builds the images offline (scripts/build-images.sh, vfs storage, chroot isolation).
command -v buildah      >/dev/null 2>&1 || need_apt+=(buildah)
# The Prometheus auth/TLS tests make their CA and server certificate with the openssl CLI.
command -v openssl      >/dev/null 2>&1 || need_apt+=(openssl)

if ((${#need_apt[@]})); then
  echo "install-deps: installing Debian packages: ${need_apt[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! $sudo apt-get update -qq; then
    echo "install-deps: ERROR: 'apt-get update' failed; cannot install ${need_apt[*]}." >&2
    echo "install-deps: install them by hand (Debian packages) and run again." >&2
    exit 1
  fi
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null; then
    echo "install-deps: ERROR: 'apt-get install ${need_apt[*]}' failed." >&2
    exit 1
  fi
  # Debian starts the packaged services; the tests start their own on free ports instead.
  for svc in redis-server prometheus; do
    (command -v systemctl >/dev/null && systemctl stop "$svc" 2>/dev/null) || true
    (command -v service >/dev/null && service "$svc" stop >/dev/null 2>&1) || true
  done
fi

for bin in redis-server prometheus promtool python3 lua5.1 buildah openssl; do
  command -v "$bin" >/dev/null 2>&1 || { echo "install-deps: ERROR: $bin still missing after install" >&2; exit 1; }
done

# kubectl: the local API server's tests (localkube/tests/it/kubectl.rs, operator/tests/it/localkube.rs)
# run the real client. It is part of the machine image; Debian does not package it, and it is not
# fetched from elsewhere here: fail clearly instead of letting those tests fail later.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "install-deps: ERROR: kubectl is missing (the localkube tests run it). Install it from" >&2
  echo "install-deps: https://kubernetes.io/docs/tasks/tools/ (any version >= 1.29) and run again." >&2
  exit 1
fi

# Python venv for the evaluation harness, the chart/Argo CD tests and feed-server's contract tests
# (schemathesis): every requirements file below, pinned. Rebuilt when any of them changes.
reqs=$(ls eval/requirements.txt charts/requirements.txt feed-server/requirements.txt 2>/dev/null || true)
if [ -n "$reqs" ]; then
  cat $reqs > .venv.requirements.wanted
  if [ ! -x .venv/bin/python ] || ! cmp -s .venv.requirements.wanted .venv/.requirements 2>/dev/null; then
    echo "install-deps: creating Python venv .venv from: $reqs"
    python3 -m venv .venv || { echo "install-deps: ERROR: python3 -m venv failed (install python3-venv)" >&2; exit 1; }
    .venv/bin/pip install -q --upgrade pip >/dev/null
    for r in $reqs; do
      .venv/bin/pip install -q -r "$r" || { echo "install-deps: ERROR: pip install -r $r failed" >&2; exit 1; }
    done
    cp .venv.requirements.wanted .venv/.requirements
  fi
  rm -f .venv.requirements.wanted
fi
echo "install-deps: ok (redis-server, prometheus, lua5.1, buildah, openssl, kubectl, python venv)"
