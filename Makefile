# Feedroll developer loop. `make run` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
CARGO ?= cargo
CRD_FILE := crds/feedroll.dev_feedrollouts.yaml

.PHONY: help deps run test test-python lint fmt bench eval e2e crds images cluster

help: ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

deps: ## Install what the tests need (redis-server, prometheus, buildah, Python venv), if missing
	@scripts/install-deps.sh

run: ## feed-server with demo data on the embedded store
	$(CARGO) run --release -p feed-server -- --demo

# The fault-injection feed-server (for the e2e scenarios) is built first, with the workspace's own
# feature set, so it shares every dependency build with the test build that follows; a copy is
# kept because that build puts the ordinary feed-server back in target/debug.
# The test binaries run under cargo-nextest when it is installed (it is on the project's machine
# image): every test in its own process, tests of different binaries side by side, which keeps a
# slow binary (the e2e scenarios) from holding up the rest (.config/nextest.toml). Benchmarks are
# left out there (clippy --all-targets still compiles them); plain `cargo test` is the fallback.
# The local-cluster scenarios (e2e/tests/local_cluster.rs: the real operator binary, kubectl and
# kubectl feedroll) replace here their brain-driven twins in e2e/tests/scenarios.rs (s1 healthy,
# s2 errors, s5 Prometheus down, s6 crash loop, s8 no traffic), which prove the same outcomes with
# less of the real path; `make e2e` still runs every scenario. All of them run one at a time in
# the `rollout-scenarios` test group of .config/nextest.toml.
E2E_TWINS := binary(scenarios) & test(/^s[12568]_/)
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
FAULTY_FEED_SERVER := $(abspath $(TARGET_DIR))/fault-injection/feed-server
NEXTEST_SET := --workspace --lib --bins --tests --examples
PYTHON_LOG := $(abspath $(TARGET_DIR))/test-python.log
# Under nextest the Python suites (which need only the debug binaries of the build above) run
# beside the Rust tests, most of which wait on real time (windows, scrapes); their output is
# printed after the Rust tests, each line prefixed `test-python:`.

test: deps ## Install test dependencies, then run every test
	$(CARGO) test --workspace --features feed-server/fault-injection --test faults_injection --test shedding
	mkdir -p $(dir $(FAULTY_FEED_SERVER)) && cp $(TARGET_DIR)/debug/feed-server $(FAULTY_FEED_SERVER)
	export FEEDROLL_FAULTY_FEED_SERVER=$(FAULTY_FEED_SERVER); \
	if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run $(NEXTEST_SET) --no-run || exit 1; \
	  scripts/test-python.sh >$(PYTHON_LOG) 2>&1 & python=$$!; \
	  $(CARGO) nextest run $(NEXTEST_SET) --no-fail-fast -E 'not ($(E2E_TWINS))'; rust=$$?; \
	  wait $$python; python_rc=$$?; sed 's/^/test-python: /' $(PYTHON_LOG); \
	  [ $$rust -eq 0 ] && [ $$python_rc -eq 0 ] || { echo "failed: Rust tests $$rust, Python tests $$python_rc"; exit 1; }; \
	else \
	  echo "cargo-nextest not found: cargo test runs the test binaries one after another (slower)"; \
	  $(CARGO) test --workspace --all-targets && scripts/test-python.sh; \
	fi
	$(CARGO) test --workspace --doc
	scripts/eval.sh --smoke --binary $(TARGET_DIR)/debug/feed-server
	scripts/bench.sh --smoke --bin-dir $(TARGET_DIR)/debug

test-python: ## The Python suites of make test (needs the debug binaries it builds)
	scripts/test-python.sh

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace --all-targets --features feed-server/fault-injection -- -D warnings # the workspace's feature set: no dependency is checked twice

fmt: ## Format the code
	$(CARGO) fmt --all

eval: deps ## Offline quality on the real KuaiRand logs (eval/README.md)
	scripts/eval.sh

bench: deps ## Benchmarks against a static baseline; numbers go to BENCHMARKS.md (ARGS=... passes options)
	scripts/bench.sh $(ARGS)

e2e: deps ## End-to-end rollout scenarios on one machine, with their timelines (brain-driven, then on the local cluster with the real operator, kubectl and kubectl-feedroll)
	$(CARGO) test -p feedroll-e2e --test scenarios -- --nocapture --test-threads 2
	$(CARGO) build -p feedroll-operator -p kubectl-feedroll # the local-cluster scenarios run these binaries
	$(CARGO) test -p feedroll-e2e --test local_cluster -- --nocapture --test-threads 2
	$(CARGO) test -p feedroll-e2e --test cluster -- --nocapture # a real cluster; SKIPPED without a kubeconfig

cluster: ## The local cluster (localkube --cluster: API server, Services, Redis, Prometheus, traffic, the operator) in the foreground; kubeconfig and env in .localkube/ (Ctrl-C stops it)
	scripts/local-cluster.sh up --foreground

images: deps ## Container images, offline with buildah: target/images/{feed-server,feedroll-operator}.oci.tar tagged with the chart's appVersion
	$(CARGO) build --release --locked -p feed-server -p feedroll-operator
	scripts/build-images.sh --profile release

crds: ## Regenerate the FeedRollout CRD YAML from the Rust types
	$(CARGO) run -q -p feedroll-operator -- crd > $(CRD_FILE)
