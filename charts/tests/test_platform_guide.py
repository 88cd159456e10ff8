"""The plain-Prometheus scrape job in docs/platform-guide.md, so the guide cannot rot silently:

- `promtool check config` accepts it;
- a real Prometheus running it keeps exactly the targets it should — the feed-server port of
  every FeedRollout pod, with `namespace` and `pod` target labels and the series' own `rollout`
  and `track` — and drops sidecar ports, other apps' pods and pods with no address;
- it selects what the operator guarantees (the rollout label and the port name, read from the
  operator's sources).

Debian's prometheus and promtool are built without Kubernetes service discovery (the
`kubernetes_sd_configs` key is unknown to them). Where that is so, the tests swap the job's
`kubernetes_sd_configs` for a `file_sd_configs` whose targets carry the meta labels the pod role
sets (`__meta_kubernetes_namespace`, `__meta_kubernetes_pod_*`), so everything else in the job
— the relabelling — is still checked and run as written. A promtool with Kubernetes discovery
checks the block unchanged.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from chart_render import ROOT
from operator_facts import HTTP_PORT, ROLLOUT_LABEL

GUIDE = ROOT / "docs" / "platform-guide.md"
MARKER = "<!-- promtool-checked: scrape-config -->"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
NO_K8S_SD = "field kubernetes_sd_configs not found"


def sanitized(label: str) -> str:
    """How Kubernetes service discovery spells a label name inside meta label names."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


def block() -> str:
    """The one ```yaml block that follows the marker comment."""
    blocks = re.findall(re.escape(MARKER) + r"\s*```yaml\n(.*?)\n```", GUIDE.read_text(), re.S)
    assert len(blocks) == 1, f"want one checked block after {MARKER}, found {len(blocks)}"
    return blocks[0]


def job() -> dict:
    (j,) = yaml.safe_load(block())["scrape_configs"]
    return j


def with_file_sd(j: dict, targets_file: Path, **overrides) -> dict:
    """The job with its Kubernetes discovery replaced by a file of targets."""
    out = {k: v for k, v in j.items() if k != "kubernetes_sd_configs"}
    out["file_sd_configs"] = [{"files": [str(targets_file)]}]
    out.update(overrides)
    return out


def promtool_check(config: Path) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is missing: it comes with Debian's prometheus package (scripts/install-deps.sh)"
    return subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True)


# ---------------------------------------------------------------- promtool


def test_the_guide_has_exactly_one_checked_block():
    assert GUIDE.read_text().count(MARKER) == 1
    block()


def test_promtool_accepts_the_scrape_job(tmp_path):
    config = tmp_path / "prometheus.yml"
    config.write_text(block() + "\n")
    proc = promtool_check(config)
    if proc.returncode != 0 and NO_K8S_SD in proc.stdout + proc.stderr:
        # This promtool has no Kubernetes discovery: check the rest of the job as written.
        targets = tmp_path / "targets.json"
        targets.write_text("[]")
        config.write_text(yaml.safe_dump({"scrape_configs": [with_file_sd(job(), targets)]}))
        proc = promtool_check(config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_promtool_rejects_a_broken_copy(tmp_path):
    """The check above can fail: a misspelt relabel action is refused."""
    targets = tmp_path / "targets.json"
    targets.write_text("[]")
    j = with_file_sd(job(), targets)
    j["relabel_configs"][0]["action"] = "kepp"
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"scrape_configs": [j]}))
    proc = promtool_check(config)
    assert proc.returncode != 0, proc.stdout


def test_the_job_uses_pod_discovery_and_selects_what_the_operator_guarantees():
    j = job()
    (sd,) = j["kubernetes_sd_configs"]
    assert sd["role"] == "pod"
    assert j["metrics_path"] == "/metrics"
    assert j["honor_labels"] is True, "rollout/track/variant come from the series"
    rules = j["relabel_configs"]
    keep = {tuple(r["source_labels"]): r["regex"] for r in rules if r.get("action") == "keep"}
    assert keep == {
        (f"__meta_kubernetes_pod_labelpresent_{sanitized(ROLLOUT_LABEL)}",): "true",
        ("__meta_kubernetes_pod_container_port_name",): HTTP_PORT,
    }
    for rule in rules:
        assert rule.get("target_label") not in {"rollout", "track", "variant", "route", "status"}, rule
    assert "metric_relabel_configs" not in j


# ---------------------------------------------------------------- a real Prometheus running the job

EXPOSITION = (
    "# TYPE feed_http_requests_total counter\n"
    'feed_http_requests_total{rollout="feed-server",track="canary",route="/v1/feed",method="GET",status="200",variant=""} 7\n'
)


class Exporter(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = EXPOSITION.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pod_target(address: str, namespace: str, pod: str, *, rollout: str | None, container: str,
               port_name: str, phase: str = "Running") -> dict:
    """A target as the pod role describes one container port of a pod."""
    labels = {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_phase": phase,
        "__meta_kubernetes_pod_container_name": container,
        "__meta_kubernetes_pod_container_port_name": port_name,
        "__meta_kubernetes_pod_container_port_protocol": "TCP",
        "__meta_kubernetes_pod_ready": "true" if phase == "Running" else "false",
        "__meta_kubernetes_pod_label_app": "feed",
        "__meta_kubernetes_pod_labelpresent_app": "true",
    }
    if rollout is not None:
        labels[f"__meta_kubernetes_pod_label_{sanitized(ROLLOUT_LABEL)}"] = rollout
        labels[f"__meta_kubernetes_pod_labelpresent_{sanitized(ROLLOUT_LABEL)}"] = "true"
    return {"targets": [address], "labels": labels}


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


@pytest.fixture
def exporter():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_real_prometheus_keeps_the_feed_server_ports_of_rollout_pods(tmp_path, exporter):
    assert PROMETHEUS, "prometheus is missing (scripts/install-deps.sh)"
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps([
        # Kept: the feed-server port of rollout pods, in two namespaces.
        pod_target(exporter, "feed", "feed-server-canary-7d9f", rollout="feed-server",
                   container="feed-server", port_name=HTTP_PORT),
        pod_target(exporter, "team-b", "feed-b-stable-1a2b", rollout="feed-b",
                   container="feed-server", port_name=HTTP_PORT),
        # Dropped: a sidecar's port of a rollout pod, another app's pod with an `http` port,
        # a rollout pod still Pending (no address yet), one that has Failed.
        pod_target(exporter, "feed", "feed-server-canary-7d9f", rollout="feed-server",
                   container="envoy", port_name="admin"),
        pod_target(exporter, "feed", "redis-0", rollout=None, container="redis", port_name=HTTP_PORT),
        pod_target(exporter, "feed", "feed-server-canary-pend", rollout="feed-server",
                   container="feed-server", port_name=HTTP_PORT, phase="Pending"),
        pod_target(exporter, "feed", "feed-server-stable-gone", rollout="feed-server",
                   container="feed-server", port_name=HTTP_PORT, phase="Failed"),
    ]))
    j = with_file_sd(job(), targets, scrape_interval="1s", scrape_timeout="1s")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"scrape_configs": [j]}))
    port = free_port()
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        samples = []
        while time.monotonic() < deadline:
            try:
                q = urllib.parse.quote("feed_http_requests_total")
                samples = get_json(f"{base}/api/v1/query?query={q}")["data"]["result"]
            except OSError:
                samples = []
            if len(samples) >= 2:
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
            time.sleep(0.25)
        active = get_json(f"{base}/api/v1/targets?state=active")["data"]["activeTargets"]
        kept = sorted((t["labels"]["namespace"], t["labels"]["pod"]) for t in active)
        assert kept == [("feed", "feed-server-canary-7d9f"), ("team-b", "feed-b-stable-1a2b")], active
        assert all(t["labels"]["container"] == "feed-server" for t in active)
        assert all(t["labels"]["job"] == j["job_name"] for t in active)
        dropped = get_json(f"{base}/api/v1/targets?state=dropped")["data"]["droppedTargets"]
        assert len(dropped) == 4, dropped
        # The scraped series: namespace and pod from the target, rollout and track their own.
        got = sorted(
            (s["metric"]["namespace"], s["metric"]["pod"], s["metric"]["rollout"], s["metric"]["track"])
            for s in samples
        )
        assert got == [
            ("feed", "feed-server-canary-7d9f", "feed-server", "canary"),
            ("team-b", "feed-b-stable-1a2b", "feed-server", "canary"),
        ], samples
        assert all(s["metric"]["route"] == "/v1/feed" for s in samples)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
