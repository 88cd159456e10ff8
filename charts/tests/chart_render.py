"""Renders charts/feedroll with the real Helm engine (helm-python-sdk: Helm v4's Go SDK behind a
C ABI, no helm binary, no cluster, no network) for the default values and every optional
branch, and keeps the rendered objects as JSON snapshots under
charts/tests-rs/testdata/rendered/, which the Rust test crate (charts/tests-rs) checks against
the Kubernetes API types. test_chart.py fails when a snapshot is stale; refresh them with

    .venv/bin/python charts/tests/chart_render.py --update
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "feedroll"
RENDERED = ROOT / "charts" / "tests-rs" / "testdata" / "rendered"
RELEASE = "feedroll"
NAMESPACE = "feedroll-system"

# name -> values. "default" is the chart as `helm install` sees it; the others turn on each
# optional branch.
SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {
            "enabled": True,
            "labels": {"release": "kube-prometheus-stack"},
            "additionalAlertLabels": {"team": "platform"},
            "pausedTooLong": "1h30m",
        },
    },
    # The feed-server's alerts and the Grafana dashboards (label and namespace overridden).
    "feed-monitoring": {
        "feedAlerts": {
            "enabled": True,
            "labels": {"release": "kube-prometheus-stack"},
            "additionalAlertLabels": {"team": "feed"},
            "runbookBaseUrl": "https://runbooks.example.invalid/feed",
        },
        "dashboards": {"enabled": True, "namespace": "monitoring", "annotations": {"grafana_folder": "Feedroll"}},
    },
    "pod-monitor": {
        "feedServerMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    },
    "pod-monitor-one-namespace": {
        "watchNamespace": "feed",
        "feedServerMonitor": {"enabled": True, "port": "web", "interval": "30s", "scrapeTimeout": "20s"},
    },
    "network-policy": {
        "networkPolicy": {
            "enabled": True,
            "metricsFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ],
        }
    },
    "network-policy-open": {"networkPolicy": {"enabled": True, "prometheusPorts": []}},
    # The feed-server's NetworkPolicy with the chart's FeedRollout: callers, scrapers and Redis
    # named.
    "feed-server-network-policy": {
        "feedServer": {
            "enabled": True,
            "namespace": "feed",
            "redis": {"url": "rediss://feed:pw@redis.example.invalid:6380/0"},
            "networkPolicy": {
                "enabled": True,
                "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}],
                "redis": {"to": [{"ipBlock": {"cidr": "10.20.0.0/24"}}], "ports": [6380]},
            },
        }
    },
    # The policy alone, for a FeedRollout kept in Git: defaults otherwise (open API, any Redis).
    "feed-server-network-policy-standalone": {
        "feedServer": {"name": "ranking", "namespace": "feed", "networkPolicy": {"enabled": True}},
    },
    "namespaced": {"watchNamespace": "feed", "rbac": {"namespaced": True}},
    "single-replica": {
        "replicaCount": 1,
        "leaderElection": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
        "rbac": {"aggregateToDefaultRoles": False},
    },
    "feed-server": {
        "feedServer": {
            "enabled": True,
            "namespace": "feed",
            "redis": {"existingSecret": "feed-redis"},
            "strategy": {
                "steps": [{"setWeight": 20}, {"pause": {"duration": "10m"}}, {"setWeight": 100}],
                "traffic": {"replicaRatio": {}},
            },
            "analysis": {"prometheus": {"address": "http://prometheus.monitoring.svc:9090"}},
        }
    },
    "feed-server-tls": {
        "feedServer": {
            "enabled": True,
            "redis": {"existingSecret": "feed-redis", "caSecret": {"name": "feed-redis-ca", "key": "ca.pem"}},
        }
    },
    "feed-server-url": {"feedServer": {"enabled": True, "redis": {"url": "redis://redis.feedroll-system.svc:6379/0"}}},
    # Your own API-keys Secret (rotation: edit its file) and the per-user feed limit.
    "feed-server-keys-secret": {
        "feedServer": {
            "enabled": True,
            "redis": {"existingSecret": "feed-redis", "caSecret": {"name": "feed-redis-ca"}},
            "auth": {"existingSecret": "feed-api-keys", "secretKey": "keys.yaml", "userRateLimit": 2.5, "userRateBurst": 10},
        }
    },
    # Authentication off: the API open (development only).
    "feed-server-open": {"feedServer": {"enabled": True, "redis": {"existingSecret": "feed-redis"}, "auth": {"enabled": False}}},
    "custom": {
        "fullnameOverride": "fr-op",
        "image": {
            "repository": "registry.example.invalid/feedroll-operator",
            "digest": "sha256:" + "ab" * 32,
        },
        "imagePullSecrets": [{"name": "regcred"}],
        "serviceAccount": {"create": False, "name": "preexisting"},
        "podAnnotations": {"example.invalid/owner": "platform"},
        "podLabels": {"team": "platform"},
        "extraEnv": [{"name": "FEEDROLL_EXTRA", "value": "1"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}
                    ]
                }
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "feedroll"}},
            }
        ],
        "priorityClassName": "system-cluster-critical",
        "logFormat": "text",
        "logLevel": "debug",
        "metrics": {"port": 9443, "service": {"annotations": {"example.invalid/scrape": "true"}}},
    },
}


@cache
def chart_dir() -> Path:
    """The chart with its CRD symlink resolved (a copy, made once per process). Helm follows the
    symlink itself but logs an INFO line on stderr for every load; test_chart.py loads and
    packages the real directory where the symlink is the point."""
    tmp = Path(tempfile.mkdtemp(prefix="feedroll-chart-"))
    atexit.register(shutil.rmtree, tmp, True)
    shutil.copytree(CHART, tmp / "feedroll", symlinks=False)
    return tmp / "feedroll"


def render(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` / `helm install` would produce."""
    with helm.Chart.load(chart_dir()) as chart:
        return chart.render(values or {}, name=RELEASE, namespace=namespace, is_install=True)


def objects(manifests: dict[str, str]) -> list[dict[str, Any]]:
    """Every rendered Kubernetes object (NOTES.txt and empty documents left out), in a stable
    order: by template path, then document order."""
    out = []
    for path in sorted(manifests):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(manifests[path]):
            if doc:
                out.append(doc)
    return out


GENERATED_KEY = "feedroll.dev/generated-api-key"


def without_generated_key(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects with the chart's generated API key (random in every render without a cluster
    to look the Secret up in) and its digest replaced by placeholders, so snapshots are stable.
    test_chart.py checks the real values (the digest is the key's)."""
    for o in objs:
        if o["kind"] == "Secret" and GENERATED_KEY in o["metadata"].get("annotations", {}):
            data = o["stringData"]
            data["api-key"] = "<generated>"
            data["api-keys.yaml"] = re.sub(r"sha256: [0-9a-f]{64}", "sha256: <sha256 of api-key>",
                                           data["api-keys.yaml"])
    return objs


def snapshot(name: str) -> str:
    objs = without_generated_key(objects(render(SCENARIOS[name])))
    return json.dumps(objs, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    update = "--update" in argv
    stale = []
    RENDERED.mkdir(parents=True, exist_ok=True)
    for name in SCENARIOS:
        path = RENDERED / f"{name}.json"
        text = snapshot(name)
        if not path.exists() or path.read_text() != text:
            stale.append(name)
            if update:
                path.write_text(text)
    for extra in sorted(set(p.stem for p in RENDERED.glob("*.json")) - set(SCENARIOS)):
        stale.append(extra + " (no such scenario)")
        if update:
            (RENDERED / f"{extra}.json").unlink()
    if stale:
        print(("updated: " if update else "stale: ") + ", ".join(stale))
    return 0 if update or not stale else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
