"""The chart's Grafana dashboards (charts/feedroll/dashboards/*.json) against a real Prometheus
scraping two real feed-servers (a stable and a canary track of one rollout) on one real Redis,
as the chart runs them (the event pipeline's series exist only on the Redis store): every PromQL
expression of every panel, with Grafana's template variables substituted, must parse, and
every expression over feed-server metrics must return series once the servers have had some
traffic. The template variables' own queries (label_values) must offer the scraped namespace
and rollout.

Expressions over metrics no process exports here only have to parse (Prometheus answers 400 to
a query that does not):
- the operator's `feedroll_*` series: they need the operator reconciling a FeedRollout, which
  the operator's own tests cover (operator/tests, e2e);
- `feed_store_errors_total`: it only appears when the store fails a request, which a healthy
  Redis never does (the feed alerts' promtool tests cover its use).

The feed-server binary: $FEEDROLL_FEED_SERVER, else <target>/debug/feed-server of this
repository (built with `cargo build -p feed-server` when missing).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from chart_render import CHART, ROOT

DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
NAMESPACE = "feed"  # the namespace label Prometheus gives the targets (Kubernetes SD does it in a cluster)
ROLLOUT = "feed-server"
TRACKS = ("stable", "canary")
# Grafana's variables as a query would see them: one namespace, one rollout, a 1 s scrape.
VARIABLES = {
    "$namespace": NAMESPACE,
    "$rollout": ROLLOUT,
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
}
# Series that no process exports in this test (see the module doc): their expressions must parse.
PARSE_ONLY = re.compile(r"\bfeedroll_[a-z_]+|\bfeed_store_errors_total\b")
DEADLINE_S = 15


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def feed_server_binary() -> Path:
    if env := os.environ.get("FEEDROLL_FEED_SERVER"):
        return Path(env)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = (target if target.is_absolute() else ROOT / target) / "debug" / "feed-server"
    if not binary.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "feed-server"], cwd=ROOT, check=True)
    return binary


def http(url: str, body: object | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def wait_for(url: str, what: str, proc: subprocess.Popen, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            # Not listening yet (URLError, ConnectionError), or too slow to answer within the
            # second (TimeoutError: a debug build writing the demo data on a loaded machine).
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} not ready at {url} after {timeout_s}s")


def start_redis(tmp: Path) -> tuple[str, subprocess.Popen]:
    """A private redis-server on a free loopback port, nothing persisted; returns its URL."""
    assert shutil.which("redis-server"), "redis-server is missing: make deps (scripts/install-deps.sh)"
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp), "--save", "", "--appendonly", "no"],
        stdout=open(tmp / "redis.log", "wb"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + DEADLINE_S
    while True:
        assert proc.poll() is None, f"redis-server exited with {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}/", proc
        except OSError:
            pass
        assert time.monotonic() < deadline, f"redis-server not answering after {DEADLINE_S}s"
        time.sleep(0.1)


def send_traffic(base: str) -> None:
    """Feed pages (first pages twice for cache hits, cursor pages), a ranking, accepted and
    rejected events and a 400, so every feed-server series the dashboards read exists."""
    video = None
    for user in ("u1", "u2", "u3"):
        for _ in range(2):
            status, page = http(f"{base}/v1/feed?user_id={user}&limit=10")
            assert status == 200, page
        video = page["items"][0]["video_id"]
        status, _ = http(f"{base}/v1/feed?user_id={user}&limit=10&cursor={urllib.parse.quote(page['next_cursor'])}")
        assert status == 200
    assert http(f"{base}/v1/rank", {"user_id": "u1", "video_ids": [video]})[0] == 200
    status, answer = http(
        f"{base}/v1/events",
        {"events": [
            {"user_id": "u1", "video_id": video, "type": "view", "watch_ms": 3000},
            {"user_id": "u1", "video_id": video, "type": "like"},
            {"user_id": "u1", "video_id": video, "type": "teleport"},
        ]},
    )
    assert status == 200 and answer["accepted"] == 2 and len(answer["rejected"]) == 1, answer
    assert http(f"{base}/v1/feed?user_id=u1&limit=1000")[0] == 400


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """Prometheus (1 s scrapes) over a stable and a canary feed-server on one Redis, with
    traffic; yields its URL."""
    assert shutil.which("prometheus"), "prometheus is missing: make deps (scripts/install-deps.sh)"
    tmp = tmp_path_factory.mktemp("dashboards")
    binary = feed_server_binary()
    procs: list[subprocess.Popen] = []
    try:
        redis_url, redis = start_redis(tmp)
        procs.append(redis)
        servers = {}
        for track in TRACKS:
            port = free_port()
            log = open(tmp / f"feed-server-{track}.log", "wb")
            # The stable track writes the demo data; the canary reads what is there, as a canary
            # does. A debug build writes it slower than the default store timeout on a loaded
            # machine: the dashboards are not about the store's latency.
            demo = ["--demo"] if track == "stable" else []
            procs.append(subprocess.Popen(
                [str(binary), *demo, "--redis-url", redis_url, "--store-timeout-ms", "60000", "--warmup-users", "0",
                 "--listen", f"127.0.0.1:{port}", "--rollout", ROLLOUT, "--track", track],
                stdout=log, stderr=subprocess.STDOUT,
            ))
            url = f"http://127.0.0.1:{port}"
            wait_for(f"{url}/readyz", f"feed-server ({track})", procs[-1], timeout_s=90)
            servers[track] = (url, procs[-1])
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "feed-server",
                "static_configs": [{
                    "targets": [url.removeprefix("http://") for url, _ in servers.values()],
                    "labels": {"namespace": NAMESPACE},
                }],
            }],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        prom_port = free_port()
        procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=open(tmp / "prometheus.log", "wb"),
        ))
        prom = f"http://127.0.0.1:{prom_port}"
        for url, _ in servers.values():
            send_traffic(url)
        wait_for(f"{prom}/-/ready", "prometheus", procs[-1])
        yield prom
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def substitute(expr: str) -> str:
    # Longest names first: $__rate_interval before a hypothetical $__rate.
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace("${" + name[1:] + "}", VARIABLES[name]).replace(name, VARIABLES[name])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def panel_queries() -> list:
    """Every panel target's expression, named dashboard/panel/refId."""
    return [
        pytest.param(target["expr"], id=f"{path.stem}/{panel['title']}/{target['refId']}")
        for path in DASHBOARDS
        for panel in json.loads(path.read_text())["panels"]
        for target in panel["targets"]
    ]


def query(prom: str, expr: str) -> tuple[int, dict]:
    return http(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))


def test_both_dashboards_are_there_with_the_variables():
    assert [p.name for p in DASHBOARDS] == ["feed-service.json", "rollouts.json"]
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        names = [v["name"] for v in dashboard["templating"]["list"]]
        assert {"namespace", "rollout"} <= set(names), path.name
        assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"]), f"{path.name}: duplicate panel ids"


@pytest.mark.parametrize("expr", panel_queries())
def test_panel_query_parses_and_returns_series(prometheus, expr):
    """Parses; over feed-server metrics, returns series, for both tracks where split by track."""
    promql = substitute(expr)
    parse_only = PARSE_ONLY.search(promql) is not None
    deadline = time.monotonic() + DEADLINE_S
    while True:
        status, answer = query(prometheus, promql)
        assert status == 200 and answer["status"] == "success", f"{promql}: {answer}"
        tracks = {s["metric"].get("track") for s in answer["data"]["result"]}
        if parse_only or (tracks == set(TRACKS) if "track" in promql else tracks):
            break
        # Rates need two scrapes of a series: wait for them (1 s apart).
        assert time.monotonic() < deadline, f"after {DEADLINE_S}s: {promql} returns tracks {tracks}"
        time.sleep(0.5)


def test_a_broken_expression_is_caught(prometheus):
    """The check above is not a no-op: Prometheus refuses what does not parse, and a misspelt
    metric returns nothing."""
    assert query(prometheus, "sum by (track) (rate(feed_http_requests_total[1m])")[0] == 400
    status, answer = query(prometheus, substitute('sum(rate(feed_http_request_total{namespace=~"$namespace"}[$__rate_interval]))'))
    assert status == 200 and answer["data"]["result"] == []


def test_template_variables_offer_the_scraped_namespace_and_rollout(prometheus):
    for path in DASHBOARDS:
        for var in json.loads(path.read_text())["templating"]["list"]:
            if var["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"]["query"])
            assert m, var["query"]
            selector, label = substitute(m.group(1)), m.group(2)
            if PARSE_ONLY.search(selector):
                continue  # operator series: none here (module doc)
            status, answer = http(f"{prometheus}/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": selector}))
            assert status == 200, answer
            assert {"namespace": NAMESPACE, "rollout": ROLLOUT}[label] in answer["data"], (path.name, var["name"], answer)
