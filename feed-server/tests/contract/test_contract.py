"""The OpenAPI contract of feed-server, against a live server on both stores.

The debug binary (`target/debug/feed-server`, built by `cargo test` earlier in `make test`; set
FEED_SERVER_BIN to use another) is started with `--demo` on a free loopback port, once on the
embedded store and once on a private `redis-server`. Its own `/openapi.json` must be valid OpenAPI
3.1, and schemathesis fuzzes every operation against it: all checks (no 5xx, status codes,
content types and response bodies conform to the document, valid data accepted, invalid data
rejected), all phases including the stateful one (sequences following the document's links),
with a fixed seed and a bounded number of examples. Any failure fails the test.

Both servers run with authentication ON (`--api-keys`): schemathesis sends a key holding every
scope (with a limit no run reaches) on every request, and its `ignored_auth` check sends requests
without it and expects the documented 401. So the security scheme, the scopes and the 401/403/429
responses are part of the contract fuzzed here.

The coverage phase (the schema's boundaries: 5000-video bodies, 128-character ids, …) runs on the
embedded store only: it is deterministic, derived from the document alone, and takes most of the
run's time; the store-dependent behaviour (store errors, stateful sequences) is exercised by the
examples, fuzzing and stateful phases on both stores.
"""

import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SEED = "14"
PHASES = {
    "memory": "examples,coverage,fuzzing,stateful",
    "redis": "examples,fuzzing,stateful",
}
MAX_EXAMPLES = "10"
# The API key of the run: every scope, a limit no run reaches.
API_KEY = f"contract-{secrets.token_urlsafe(24)}"
KEYS_FILE = f"""keys:
  - name: contract
    sha256: {hashlib.sha256(API_KEY.encode()).hexdigest()}
    scopes: [read, events, write, admin]
    limit: {{requestsPerSecond: 100000, burst: 100000}}
"""


def binary() -> Path:
    explicit = os.environ.get("FEED_SERVER_BIN")
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    path = Path(explicit) if explicit else target / "debug" / "feed-server"
    if not path.is_file():
        pytest.fail(f"{path} is missing: build it first (cargo build -p feed-server)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, ready, proc: subprocess.Popen, log: Path, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if ready():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} not ready after {timeout} s:\n{log.read_text()[-3000:]}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def stop(proc: subprocess.Popen):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request):
    """(store, base URL) of a `--demo` feed-server on the given store."""
    tmp = Path(tempfile.mkdtemp(prefix=f"contract-{request.param}-"))
    procs = []
    try:
        keys = tmp / "api-keys.yaml"
        keys.write_text(KEYS_FILE)
        args = [str(binary()), "--demo", "--log-format", "text", "--api-keys", str(keys),
                # A generated window often covers the demo's whole history: a tune then replays
                # and fits for real, which a debug build does slowly; the newest 2,000 events keep
                # each such call near a second (the bound is what --tune-max-events is for).
                "--tune-max-events", "2000"]
        if request.param == "redis":
            if shutil.which("redis-server") is None:
                pytest.fail("redis-server is missing: run scripts/install-deps.sh")
            port = free_port()
            log = tmp / "redis.log"
            redis = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp),
                 "--save", "", "--appendonly", "no"],
                stdout=log.open("w"), stderr=subprocess.STDOUT)
            procs.append(redis)

            def pong():
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                        s.sendall(b"PING\r\n")
                        return s.recv(16).startswith(b"+PONG")
                except OSError:
                    return False

            wait_until("redis-server", pong, redis, log)
            # The debug build writes the demo data in large pipelines, slower than the default
            # 500 ms store timeout; on a loaded machine one takes over 10 s. The contract is not
            # about the store's latency, so the bound only has to catch a hung Redis.
            args += ["--redis-url", f"redis://127.0.0.1:{port}/", "--store-timeout-ms", "60000"]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = tmp / "feed-server.log"
        env = {**os.environ, "RUST_LOG": "warn"}
        feed = subprocess.Popen(args + ["--listen", f"127.0.0.1:{port}"], env=env,
                                stdout=log.open("w"), stderr=subprocess.STDOUT)
        procs.append(feed)
        wait_until("feed-server", lambda: http_ok(f"{base}/readyz"), feed, log, timeout=60)
        yield request.param, base
        assert feed.poll() is None, f"feed-server died during the run:\n{log.read_text()[-3000:]}"
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_document(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/openapi.json", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/json")
        return json.load(r)


def test_document_is_valid_openapi_3_1(server):
    doc = fetch_document(server[1])
    assert doc["openapi"].startswith("3.1.")
    try:
        validate(doc)
    except OpenAPIValidationError as e:
        pytest.fail(f"/openapi.json is not valid OpenAPI 3.1: {e}")


def test_error_code_is_an_enum_every_error_response_uses(server):
    doc = fetch_document(server[1])
    schemas = doc["components"]["schemas"]
    codes = schemas["ErrorCode"]["enum"]
    assert {"invalid_id", "unknown_type", "store_unavailable", "cursor_expired"} <= set(codes)
    assert schemas["ErrorDetail"]["properties"]["code"]["$ref"] == "#/components/schemas/ErrorCode"
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    body = response["content"]["application/json"]["schema"]
                    assert body == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)


def test_auth_is_on(server):
    req = urllib.request.Request(f"{server[1]}/v1/feed?user_id=user-1")
    try:
        urllib.request.urlopen(req, timeout=5)
        pytest.fail("/v1/feed answered without an API key")
    except urllib.error.HTTPError as e:
        assert e.code == 401
        assert e.headers["WWW-Authenticate"].startswith("Bearer")
        assert json.load(e)["error"]["code"] == "unauthenticated"
    req.add_header("Authorization", f"Bearer {API_KEY}")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200


def test_schemathesis_finds_no_violation(server):
    store, base = server
    st = Path(sys.executable).parent / "st"
    cmd = [str(st), "--config-file", str(HERE / "schemathesis.toml"), "run",
           f"{base}/openapi.json", "--checks", "all", "--phases", PHASES[store], "--seed", SEED,
           "--max-examples", MAX_EXAMPLES, "--workers", "1", "--no-color",
           "--header", f"Authorization: Bearer {API_KEY}",
           # No example database in the working tree: every run is the seed's, nothing replayed.
           "--generation-database", "none"]
    # schemathesis keeps a crash cache under its working directory: a temporary one, not the tree.
    with tempfile.TemporaryDirectory(prefix="schemathesis-") as cwd:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd)
    out = run.stdout + run.stderr
    # Generated bodies can be huge: cut long lines so the report stays readable.
    report = "\n".join(line[:400] for line in out.splitlines())
    assert run.returncode == 0, f"schemathesis found contract violations:\n{report[-15000:]}"
    # The stateful phase ran (sequences along the links between operations) and passed.
    assert "✅ Stateful" in out, report[-3000:]
