"""The feedroll Helm chart, rendered and linted by the real Helm engine (helm-python-sdk), its
values schema, its RBAC, its CRD copy, its alerts (with promtool) and the kubectl plugin."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import helm_python as helm
import pytest
import yaml

from chart_render import CHART, NAMESPACE, RENDERED, ROOT, SCENARIOS, chart_dir, objects, render, snapshot
from operator_facts import HTTP_PORT, ROLLOUT_LABEL, TRACK_LABEL, TRACKS

CRD_SOURCE = ROOT / "crds" / "feedroll.dev_feedrollouts.yaml"
CRD_CHART = CHART / "crds" / "feedroll.dev_feedrollouts.yaml"
PROMTOOL = shutil.which("promtool")


def by_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def one(objs, kind, name=None):
    found = [o for o in by_kind(objs, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


# ---------------------------------------------------------------- rendering and snapshots


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_rendered_snapshot_is_current(scenario):
    """The JSON the Rust schema test reads is exactly what Helm renders now."""
    path = RENDERED / f"{scenario}.json"
    assert path.exists(), "run: .venv/bin/python charts/tests/chart_render.py --update"
    assert path.read_text() == snapshot(scenario), (
        f"{path} is stale; run: .venv/bin/python charts/tests/chart_render.py --update"
    )


def test_no_orphan_snapshots():
    assert {p.stem for p in RENDERED.glob("*.json")} == set(SCENARIOS)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_object_is_labelled_and_namespaced(scenario):
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for o in objects(render(SCENARIOS[scenario])):
        meta = o["metadata"]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert meta["labels"]["app.kubernetes.io/part-of"] == "feedroll"
        if o["kind"] in cluster_scoped:
            assert "namespace" not in meta
        else:
            assert meta.get("namespace"), f"{o['kind']} {meta['name']} has no namespace"


def test_default_render_objects():
    objs = objects(render())
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == sorted(
        [
            "Deployment", "ServiceAccount", "Service", "PodDisruptionBudget",
            "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
            "ClusterRole", "ClusterRole",  # feedroll-view, feedroll-edit (aggregated)
        ]
    )
    assert not by_kind(objs, "ServiceMonitor") and not by_kind(objs, "PrometheusRule")
    assert not by_kind(objs, "PodMonitor")
    assert not by_kind(objs, "NetworkPolicy")


def test_deployment_defaults():
    d = one(objects(render()), "Deployment")
    spec = d["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["containers"]
    assert c["args"] == ["run", "--log-format", "json"]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    env = {e["name"]: e for e in c["env"]}
    assert env["FEEDROLL_LISTEN"]["value"] == "0.0.0.0:8080"
    assert env["FEEDROLL_LEADER_ELECTION"]["value"] == "true"
    assert env["FEEDROLL_LEASE_NAME"]["value"] == "feedroll-operator"
    assert env["FEEDROLL_LEASE_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["FEEDROLL_WATCH_NAMESPACE"]["value"] == ""
    assert c["image"] == "ghcr.io/feedroll/feedroll-operator:0.1.0"
    assert pod["serviceAccountName"] == "feedroll"


def test_metrics_service_selects_the_operator_pods():
    objs = objects(render())
    svc = one(objs, "Service")
    d = one(objs, "Deployment")
    labels = d["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in svc["spec"]["selector"].items())
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": d["spec"]["selector"]}


def test_custom_values_reach_the_pod():
    d = one(objects(render(SCENARIOS["custom"])), "Deployment")
    pod = d["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "registry.example.invalid/feedroll-operator@sha256:" + "ab" * 32
    assert c["args"] == ["run", "--log-format", "text"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["FEEDROLL_LISTEN"] == "0.0.0.0:9443" and env["RUST_LOG"] == "debug"
    assert env["FEEDROLL_EXTRA"] == "1"
    assert pod["serviceAccountName"] == "preexisting"
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert d["metadata"]["name"] == "fr-op"
    assert not by_kind(objects(render(SCENARIOS["custom"])), "ServiceAccount")


def test_single_replica_without_leader_election():
    objs = objects(render(SCENARIOS["single-replica"]))
    d = one(objs, "Deployment")
    env = {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert d["spec"]["replicas"] == 1 and env["FEEDROLL_LEADER_ELECTION"] == "false"
    assert not by_kind(objs, "PodDisruptionBudget")


# ---------------------------------------------------------------- RBAC: least privilege

# Exactly what the operator's code uses (operator/src/controller/rbac.rs; operator/tests/it/rbac.rs
# checks the same from the Rust side).
OPERATOR_RULES = [
    (("feedroll.dev",), ("feedrollouts",), ("get", "list", "watch", "patch")),
    (("feedroll.dev",), ("feedrollouts/status",), ("patch",)),
    (("feedroll.dev",), ("feedrollouts/finalizers",), ("update",)),
    (("apps",), ("deployments",), ("list", "watch", "create", "patch", "delete")),
    (("",), ("services", "configmaps"), ("list", "watch", "create", "patch", "delete")),
    (("",), ("pods",), ("list", "watch")),
    (("",), ("secrets",), ("get",)),
    (("gateway.networking.k8s.io",), ("httproutes",), ("list", "create", "patch", "delete")),
    (("events.k8s.io",), ("events",), ("create",)),
]
LEASE_RULES = [(("coordination.k8s.io",), ("leases",), ("get", "create", "patch"))]


def rules_of(role):
    return [(tuple(r["apiGroups"]), tuple(r["resources"]), tuple(r["verbs"])) for r in role["rules"]]


def test_cluster_role_is_exactly_the_contract():
    objs = objects(render())
    role = one(objs, "ClusterRole", "feedroll")
    assert rules_of(role) == OPERATOR_RULES
    binding = one(objs, "ClusterRoleBinding", "feedroll")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "feedroll"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "feedroll", "namespace": NAMESPACE}]
    lease = one(objs, "Role", "feedroll-leader-election")
    assert lease["metadata"]["namespace"] == NAMESPACE
    assert rules_of(lease) == LEASE_RULES


def test_no_wildcards_secret_listing_or_scale():
    for scenario in SCENARIOS:
        for o in objects(render(SCENARIOS[scenario])):
            if o["kind"] not in ("ClusterRole", "Role") or o["metadata"]["name"].endswith(("-view", "-edit")):
                continue
            for groups, resources, verbs in rules_of(o):
                assert "*" not in groups + resources + verbs
                # Secrets are read by name (spec.analysis.prometheus), never listed or watched.
                assert "secrets" not in resources or (resources, verbs) == (("secrets",), ("get",))
                assert "feedrollouts/scale" not in resources  # the HPA controller has its own
                assert "escalate" not in verbs and "bind" not in verbs and "impersonate" not in verbs


def test_every_rule_has_a_reason():
    """Each operator rule is written once, in _helpers.tpl, with a comment saying why."""
    text = (CHART / "templates" / "_helpers.tpl").read_text()
    block = text[text.index('define "feedroll.rules"'):]
    block = block[: block.index("{{- end -}}")]
    lines = [ln for ln in block.splitlines()[1:] if ln.strip()]
    for i, line in enumerate(lines):
        if line.startswith("- apiGroups:") and not lines[i - 1].startswith(("#", "  verbs")):
            pytest.fail(f"rule without a comment: {line}")
    assert sum(ln.startswith("- apiGroups:") for ln in lines) == len(OPERATOR_RULES)


def test_secrets_are_readable_only_in_the_watched_namespace():
    """With watchNamespace, the ClusterRole carries no Secret rule: a Role in that namespace does."""
    objs = objects(render({"watchNamespace": "feed"}))
    cluster = one(objs, "ClusterRole", "feedroll")
    assert rules_of(cluster) == [r for r in OPERATOR_RULES if r[1] != ("secrets",)]
    role = one(objs, "Role", "feedroll-secrets")
    assert role["metadata"]["namespace"] == "feed"
    assert rules_of(role) == [(("",), ("secrets",), ("get",))]
    binding = one(objs, "RoleBinding", "feedroll-secrets")
    assert binding["metadata"]["namespace"] == "feed"
    assert binding["roleRef"]["name"] == "feedroll-secrets"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "feedroll", "namespace": NAMESPACE}]
    # All namespaces: the ClusterRole holds it, and there is no extra Role.
    objs = objects(render())
    assert (("",), ("secrets",), ("get",)) in rules_of(one(objs, "ClusterRole", "feedroll"))
    assert not [o for o in by_kind(objs, "Role") if o["metadata"]["name"] == "feedroll-secrets"]


def test_namespaced_rbac():
    objs = objects(render(SCENARIOS["namespaced"]))
    assert not [o for o in by_kind(objs, "ClusterRole") if o["metadata"]["name"] == "feedroll"]
    assert not by_kind(objs, "ClusterRoleBinding")
    role = one(objs, "Role", "feedroll")
    assert role["metadata"]["namespace"] == "feed"
    assert rules_of(role) == OPERATOR_RULES
    binding = one(objs, "RoleBinding", "feedroll")
    assert binding["metadata"]["namespace"] == "feed"
    assert binding["subjects"][0]["namespace"] == NAMESPACE
    env = {e["name"]: e.get("value") for e in one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FEEDROLL_WATCH_NAMESPACE"] == "feed"


def test_aggregated_user_roles():
    objs = objects(render())
    view = one(objs, "ClusterRole", "feedroll-view")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in view["rules"])
    edit = one(objs, "ClusterRole", "feedroll-edit")
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in edit["metadata"]["labels"]
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert not [o for o in objects(render(SCENARIOS["single-replica"])) if o["metadata"]["name"].endswith("-view")]


# ---------------------------------------------------------------- optional branches


def test_service_monitor():
    sm = one(objects(render(SCENARIOS["monitoring"])), "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] == "metrics" and ep["path"] == "/metrics" and ep["honorLabels"] is True
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_pod_monitor_scrapes_every_rollout_pod_in_every_namespace():
    objs = objects(render(SCENARIOS["pod-monitor"]))
    pm = one(objs, "PodMonitor")
    assert pm["metadata"]["namespace"] == NAMESPACE
    assert pm["metadata"]["name"] == "feedroll-feed-servers"
    assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert pm["metadata"]["labels"]["app.kubernetes.io/component"] == "feed-server"
    spec = pm["spec"]
    # Every pod the operator runs, whatever the rollout: the label exists.
    assert spec["selector"] == {"matchExpressions": [{"key": ROLLOUT_LABEL, "operator": "Exists"}]}
    assert spec["namespaceSelector"] == {"any": True}
    (ep,) = spec["podMetricsEndpoints"]
    assert ep["port"] == HTTP_PORT
    assert ep["path"] == "/metrics"
    assert (ep["interval"], ep["scrapeTimeout"]) == ("15s", "10s")
    # rollout/track/variant come from the series; namespace and pod are target labels that
    # nothing may drop or rewrite.
    assert ep["honorLabels"] is True
    assert "relabelings" not in ep and "metricRelabelings" not in ep
    assert "podTargetLabels" not in spec and "jobLabel" not in spec
    # The operator's own ServiceMonitor is a separate switch.
    assert not by_kind(objs, "ServiceMonitor")


def test_pod_monitor_follows_watch_namespace_and_its_values():
    pm = one(objects(render(SCENARIOS["pod-monitor-one-namespace"])), "PodMonitor")
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["feed"]}
    (ep,) = pm["spec"]["podMetricsEndpoints"]
    assert (ep["port"], ep["interval"], ep["scrapeTimeout"]) == ("web", "30s", "20s")
    assert "release" not in pm["metadata"]["labels"]


def test_the_chart_feed_server_exposes_the_port_the_pod_monitor_scrapes():
    objs = objects(render({**SCENARIOS["feed-server"], "feedServerMonitor": {"enabled": True}}))
    pm = one(objs, "PodMonitor")
    fr = one(objs, "FeedRollout", "feed-server")
    (c,) = fr["spec"]["template"]["spec"]["containers"]
    (port,) = c["ports"]
    assert port["name"] == pm["spec"]["podMetricsEndpoints"][0]["port"] == HTTP_PORT
    # The operator adds the rollout label to the pods; the template needs none of its own.
    assert ROLLOUT_LABEL not in fr["spec"]["template"]["metadata"]["labels"]


def test_network_policy():
    np_ = one(objects(render(SCENARIOS["network-policy"])), "NetworkPolicy")
    assert np_["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = np_["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    egress_ports = sorted(p["port"] for e in np_["spec"]["egress"] for p in e["ports"])
    assert egress_ports == [53, 53, 443, 6443, 9090]
    open_ = one(objects(render(SCENARIOS["network-policy-open"])), "NetworkPolicy")
    assert "from" not in open_["spec"]["ingress"][0]
    assert len(open_["spec"]["egress"]) == 2


# ---------------------------------------------------------------- the feed-server's NetworkPolicy and security context


def feed_server_policies(objs):
    """NetworkPolicies of feed-server pods (the operator's own is component=operator)."""
    return [o for o in by_kind(objs, "NetworkPolicy") if o["metadata"]["labels"]["app.kubernetes.io/component"] == "feed-server"]


def selects(selector, labels):
    """Whether a LabelSelector with matchLabels only (what the chart renders) selects a pod."""
    assert set(selector) == {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def operator_pod_labels(fr, track):
    """The labels the operator gives the pods of `fr` on `track` (operator/src/desired/workloads.rs)."""
    return {**fr["spec"]["template"]["metadata"]["labels"], ROLLOUT_LABEL: fr["metadata"]["name"], TRACK_LABEL: track}


def test_feed_server_network_policy_is_off_by_default():
    for scenario in ("default", "feed-server", "feed-server-url", "network-policy"):
        assert not feed_server_policies(objects(render(SCENARIOS[scenario]))), scenario


def test_feed_server_network_policy_selects_the_operators_pods_and_nothing_else():
    objs = objects(render(SCENARIOS["feed-server-network-policy"]))
    (np_,) = feed_server_policies(objs)
    fr = one(objs, "FeedRollout", "feed-server")
    assert np_["metadata"]["namespace"] == fr["metadata"]["namespace"] == "feed"
    assert np_["spec"]["podSelector"] == {"matchLabels": {ROLLOUT_LABEL: "feed-server"}}
    for track in TRACKS:
        assert selects(np_["spec"]["podSelector"], operator_pod_labels(fr, track)), track
    # The template alone (no operator labels) and another rollout's pods are not selected.
    assert not selects(np_["spec"]["podSelector"], fr["spec"]["template"]["metadata"]["labels"])
    other = {**operator_pod_labels(fr, TRACKS[0]), ROLLOUT_LABEL: "another-rollout"}
    assert not selects(np_["spec"]["podSelector"], other)
    # The operator's own policy is untouched (off here) and selects none of these pods.
    assert len(by_kind(objs, "NetworkPolicy")) == 1


def test_feed_server_network_policy_ingress_is_the_http_port_from_the_peers_and_prometheus():
    objs = objects(render(SCENARIOS["feed-server-network-policy"]))
    (np_,) = feed_server_policies(objs)
    assert np_["spec"]["policyTypes"] == ["Ingress", "Egress"]
    api, scrapes = np_["spec"]["ingress"]
    # The port is the one the pods expose under the name the operator guarantees.
    (c,) = one(objs, "FeedRollout")["spec"]["template"]["spec"]["containers"]
    assert [p["name"] for p in c["ports"]] == [HTTP_PORT]
    assert api["ports"] == scrapes["ports"] == [{"port": HTTP_PORT, "protocol": "TCP"}]
    assert api["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}]
    assert scrapes["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_feed_server_network_policy_egress_is_dns_and_redis_only():
    (np_,) = feed_server_policies(objects(render(SCENARIOS["feed-server-network-policy"])))
    dns, redis = np_["spec"]["egress"]
    assert dns == {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    assert redis == {"ports": [{"port": 6380, "protocol": "TCP"}], "to": [{"ipBlock": {"cidr": "10.20.0.0/24"}}]}


def test_feed_server_network_policy_standalone_for_a_rollout_kept_in_git():
    """Without feedServer.enabled: the policy alone, for the FeedRollout feedServer.name in
    feedServer.namespace; no FeedRollout, no Secret, no Redis needed. Defaults: the API open to
    every source (so no separate scrape rule), Redis on 6379 at any address."""
    objs = objects(render(SCENARIOS["feed-server-network-policy-standalone"]))
    assert not by_kind(objs, "FeedRollout") and not by_kind(objs, "Secret")
    (np_,) = feed_server_policies(objs)
    assert (np_["metadata"]["name"], np_["metadata"]["namespace"]) == ("ranking", "feed")
    assert np_["spec"]["podSelector"] == {"matchLabels": {ROLLOUT_LABEL: "ranking"}}
    assert np_["spec"]["ingress"] == [{"ports": [{"port": HTTP_PORT, "protocol": "TCP"}]}]
    assert np_["spec"]["egress"][1] == {"ports": [{"port": 6379, "protocol": "TCP"}]}
    # Release namespace when feedServer.namespace is empty.
    (np_,) = feed_server_policies(objects(render({"feedServer": {"networkPolicy": {"enabled": True}}})))
    assert np_["metadata"]["namespace"] == NAMESPACE


def test_feed_server_network_policy_port_by_number_and_no_scrape_rule():
    values = {
        "feedServer": {
            "networkPolicy": {
                "enabled": True,
                "port": 9000,
                "from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                "metricsFrom": [],
                "redis": {"ports": [6379, 6380], "to": [{"podSelector": {"matchLabels": {"app": "redis"}}}]},
            }
        }
    }
    (np_,) = feed_server_policies(objects(render(values)))
    (api,) = np_["spec"]["ingress"]
    assert api == {"ports": [{"port": 9000, "protocol": "TCP"}], "from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}
    assert [p["port"] for p in np_["spec"]["egress"][1]["ports"]] == [6379, 6380]


@pytest.mark.parametrize(
    "url,ports",
    [
        ("redis://redis.feed.svc:6379/0", [6379]),
        ("redis://redis.feed.svc/0", [6379]),  # no port: 6379
        ("rediss://feed:pw@redis.example:6380/0", [6379, 6380]),
        ("rediss://feed:p%3A1@[fd00::5]:6390", [6390]),
        ("redis://:secret:1234@redis:7000/0?protocol=resp3", [7000]),
    ],
)
def test_feed_server_network_policy_allows_the_redis_url_port(url, ports):
    values = {"feedServer": {"enabled": True, "redis": {"url": url}, "networkPolicy": {"enabled": True, "redis": {"ports": ports}}}}
    (np_,) = feed_server_policies(objects(render(values)))
    assert [p["port"] for p in np_["spec"]["egress"][1]["ports"]] == ports


@pytest.mark.parametrize(
    "url,ports,port",
    [
        ("rediss://feed:pw@redis.example:6380/0", [6379], 6380),
        ("redis://redis.feed.svc/0", [6380], 6379),
        ("rediss://[fd00::5]:6390/1", [6379, 6380], 6390),
    ],
)
def test_feed_server_network_policy_refuses_to_cut_off_the_redis_url(url, ports, port):
    values = {"feedServer": {"enabled": True, "redis": {"url": url}, "networkPolicy": {"enabled": True, "redis": {"ports": ports}}}}
    message = (
        f"feedServer.networkPolicy.redis.ports {json.dumps(ports, separators=(',', ':'))} does not include {port}, "
        f"the port of feedServer.redis.url"
    )
    with helm.Chart.load(chart_dir()) as chart:
        with pytest.raises(helm.HelmRenderError) as err:
            chart.render(values, name="feedroll", namespace=NAMESPACE)
    assert message in str(err.value)
    assert f"Add {port} to feedServer.networkPolicy.redis.ports" in str(err.value)
    assert "pw" not in str(err.value)  # the URL (and its password) is not echoed


def feed_server_pod(objs):
    return one(objs, "FeedRollout")["spec"]["template"]["spec"]


def env_of(pod):
    return {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}


def test_feed_server_auth_is_on_by_default_with_a_generated_key_whose_digest_is_mounted():
    """Default: the chart generates a random key into `<name>-api-keys`; the file it mounts holds
    the key's SHA-256 digest (as feed-server's keys file format wants), never the key, and is
    passed as FEED_API_KEYS from a directory mount (which the kubelet updates, unlike subPath)."""
    objs = objects(render(SCENARIOS["feed-server"]))
    secret = one(objs, "Secret", "feed-server-api-keys")
    key = secret["stringData"]["api-key"]
    assert len(key) == 48 and key.isalnum()
    keys_file = yaml.safe_load(secret["stringData"]["api-keys.yaml"])
    (entry,) = keys_file["keys"]
    assert set(keys_file) == {"keys"}
    assert entry == {
        "name": "default",
        "sha256": hashlib.sha256(key.encode()).hexdigest(),
        "scopes": ["read", "events", "write"],
        "limit": {"requestsPerSecond": 1000, "burst": 2000},
    }
    assert key not in secret["stringData"]["api-keys.yaml"]
    pod = feed_server_pod(objs)
    (volume,) = [v for v in pod["volumes"] if v["name"] == "api-keys"]
    assert volume["secret"] == {
        "secretName": "feed-server-api-keys",
        "items": [{"key": "api-keys.yaml", "path": "api-keys.yaml"}],
    }, "only the digest file is mounted, never the key"
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "api-keys"]
    assert mount == {"name": "api-keys", "mountPath": "/etc/feedroll/api-keys", "readOnly": True}
    assert env_of(pod)["FEED_API_KEYS"] == "/etc/feedroll/api-keys/api-keys.yaml"
    assert "FEED_USER_RATE_LIMIT" not in env_of(pod)
    # Without a cluster to look the Secret up in, each render makes a new key (the reason
    # helm template / Argo CD users set auth.existingSecret).
    again = one(objects(render(SCENARIOS["feed-server"])), "Secret", "feed-server-api-keys")
    assert again["stringData"]["api-key"] != key


def test_feed_server_auth_from_an_existing_secret_and_the_per_user_limit():
    objs = objects(render(SCENARIOS["feed-server-keys-secret"]))
    assert not [o for o in by_kind(objs, "Secret") if o["metadata"]["name"].endswith("api-keys")]
    pod = feed_server_pod(objs)
    (volume,) = [v for v in pod["volumes"] if v["name"] == "api-keys"]
    assert volume["secret"] == {"secretName": "feed-api-keys", "items": [{"key": "keys.yaml", "path": "api-keys.yaml"}]}
    env = env_of(pod)
    assert env["FEED_API_KEYS"] == "/etc/feedroll/api-keys/api-keys.yaml"
    assert (env["FEED_USER_RATE_LIMIT"], env["FEED_USER_RATE_BURST"]) == ("2.5", "10")
    # The Redis CA mount is still there beside it.
    assert {m["name"] for m in pod["containers"][0]["volumeMounts"]} == {"redis-ca", "api-keys"}


def test_feed_server_auth_off_renders_no_keys():
    objs = objects(render(SCENARIOS["feed-server-open"]))
    assert not by_kind(objs, "Secret")
    pod = feed_server_pod(objs)
    assert "FEED_API_KEYS" not in env_of(pod)
    assert "volumes" not in pod and "volumeMounts" not in pod["containers"][0]


def restricted_violations(pod):
    """What the "restricted" Pod Security Standard refuses in a pod spec (the checks that
    apply to a pod without host namespaces, host paths or volumes other than the allowed kinds)."""
    out = []
    psc = pod.get("securityContext", {})
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{c['name']}: allowPrivilegeEscalation")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            out.append(f"{c['name']}: capabilities")
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            out.append(f"{c['name']}: runAsNonRoot")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{c['name']}: runAsUser 0")
        if sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type") not in ("RuntimeDefault", "Localhost"):
            out.append(f"{c['name']}: seccompProfile")
        if sc.get("privileged"):
            out.append(f"{c['name']}: privileged")
    return out


def test_feed_server_security_context_matches_the_operators():
    """The feed-server pods get the operator's pod and container security contexts (the chart's
    defaults): non-root 65532, read-only root filesystem, no privilege escalation, no
    capabilities, RuntimeDefault seccomp, set on the container itself too."""
    op = one(objects(render()), "Deployment")["spec"]["template"]["spec"]
    for scenario in ("feed-server", "feed-server-url", "feed-server-tls", "feed-server-network-policy"):
        pod = one(objects(render(SCENARIOS[scenario])), "FeedRollout")["spec"]["template"]["spec"]
        assert pod["securityContext"] == op["securityContext"], scenario
        (c,) = pod["containers"]
        assert c["securityContext"] == op["containers"][0]["securityContext"], scenario
        assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["runAsGroup"] == 65532
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["automountServiceAccountToken"] is False
        assert restricted_violations(pod) == [], scenario
    assert restricted_violations(op) == []


def test_restricted_check_is_not_a_no_op():
    pod = one(objects(render(SCENARIOS["feed-server"])), "FeedRollout")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    c["securityContext"]["allowPrivilegeEscalation"] = True
    c["securityContext"]["capabilities"] = {"drop": ["ALL"], "add": ["NET_ADMIN"]}
    del c["securityContext"]["seccompProfile"]
    del pod["securityContext"]["seccompProfile"]
    assert restricted_violations(pod) == [
        "feed-server: allowPrivilegeEscalation",
        "feed-server: capabilities",
        "feed-server: seccompProfile",
    ]


def test_notes_tell_the_next_command():
    notes = render()["feedroll/templates/NOTES.txt"]
    assert f"kubectl -n {NAMESPACE} rollout status deployment/feedroll" in notes
    assert "kubectl get feedrollouts -A -w" in notes
    assert "feedroll.dev/command=promote/$(date +%s) --overwrite" in notes
    assert "kubectl apply --server-side --force-conflicts -f" in notes
    # Nothing scrapes the feed-servers yet: the notes say how, and stop saying it once it does.
    assert "feedServerMonitor.enabled=true" in notes
    assert "feedServerMonitor.enabled=true" not in render(SCENARIOS["pod-monitor"])["feedroll/templates/NOTES.txt"]
    # With the chart's feed-server: how to read the generated key, or that auth is off.
    assert "API key" not in notes
    fs_notes = render(SCENARIOS["feed-server"])["feedroll/templates/NOTES.txt"]
    assert "kubectl -n feed get secret feed-server-api-keys -o jsonpath='{.data.api-key}' | base64 -d" in fs_notes
    own = render(SCENARIOS["feed-server-keys-secret"])["feedroll/templates/NOTES.txt"]
    assert "from the Secret feed-api-keys" in own and "jsonpath" not in own
    assert "WITHOUT authentication" in render(SCENARIOS["feed-server-open"])["feedroll/templates/NOTES.txt"]


# ---------------------------------------------------------------- lint and values schema


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_helm_lint_strict(scenario):
    report = helm.lint(chart_dir(), SCENARIOS[scenario], strict=True, namespace=NAMESPACE, kube_version="v1.33.0")
    assert report["total_charts_linted"] == 1
    assert report["errors"] == [] and report["messages"] == [], json.dumps(report, indent=2)


def test_helm_lint_is_not_a_no_op(tmp_path):
    broken = tmp_path / "feedroll"
    shutil.copytree(chart_dir(), broken)
    (broken / "templates" / "broken.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.nope.deeper }}\n")
    report = helm.lint(broken, strict=True)
    assert report["errors"], report


BAD_VALUES = [
    ({"replicas": 2}, "at '': additional properties 'replicas' not allowed"),
    ({"replicaCount": "two"}, "at '/replicaCount': got string, want integer"),
    ({"replicaCount": 0}, "at '/replicaCount': minimum: got 0, want 1"),
    ({"image": {"tag": 3}}, "at '/image/tag': got number, want string"),
    ({"image": {"digest": "latest"}}, "at '/image/digest': 'latest' does not match pattern"),
    ({"serviceMonitor": {"enabled": True, "intervl": "1m"}}, "at '/serviceMonitor': additional properties 'intervl' not allowed"),
    ({"serviceMonitor": {"enabled": "yes"}}, "at '/serviceMonitor/enabled': got string, want boolean"),
    ({"feedServerMonitor": {"enabled": True, "honorLabels": False}}, "at '/feedServerMonitor': additional properties 'honorLabels' not allowed"),
    ({"feedServerMonitor": {"port": 8080}}, "at '/feedServerMonitor/port': got number, want string"),
    ({"feedServerMonitor": {"port": "Http_Port"}}, "at '/feedServerMonitor/port': 'Http_Port' does not match pattern"),
    ({"feedServerMonitor": {"interval": "15"}}, "at '/feedServerMonitor/interval': '15' does not match pattern"),
    ({"feedServerMonitor": {"labels": {"release": 1}}}, "at '/feedServerMonitor/labels/release': got number, want string"),
    ({"prometheusRule": {"pausedTooLong": "2 hours"}}, "at '/prometheusRule/pausedTooLong': '2 hours' does not match pattern"),
    ({"logFormat": "xml"}, "at '/logFormat': value must be one of 'json', 'text'"),
    ({"securityContext": {"readOnlyRootFilesytem": True}}, "at '/securityContext': additional properties 'readOnlyRootFilesytem' not allowed"),
    ({"resources": {"limits": {"memry": "1Gi"}}}, "at '/resources/limits': additional properties 'memry' not allowed"),
    ({"watchNamespace": "Feed_NS"}, "at '/watchNamespace': 'Feed_NS' does not match pattern"),
    ({"networkPolicy": {"apiServerPorts": []}}, "at '/networkPolicy/apiServerPorts': minItems: got 0, want 1"),
    ({"feedServer": {"networkPolicy": {"enabled": True, "ingressFrom": []}}}, "at '/feedServer/networkPolicy': additional properties 'ingressFrom' not allowed"),
    ({"feedServer": {"networkPolicy": {"redis": {"port": 6380}}}}, "at '/feedServer/networkPolicy/redis': additional properties 'port' not allowed"),
    ({"feedServer": {"networkPolicy": {"redis": {"ports": []}}}}, "at '/feedServer/networkPolicy/redis/ports': minItems: got 0, want 1"),
    ({"feedServer": {"networkPolicy": {"redis": {"ports": [70000]}}}}, "at '/feedServer/networkPolicy/redis/ports/0': maximum: got 70,000, want 65,535"),
    ({"feedServer": {"networkPolicy": {"redis": {"ports": ["6379"]}}}}, "at '/feedServer/networkPolicy/redis/ports/0': got string, want integer"),
    ({"feedServer": {"networkPolicy": {"port": "HTTP_port"}}}, "at '/feedServer/networkPolicy/port': 'oneOf' failed, none matched"),
    ({"feedServer": {"networkPolicy": {"port": 0}}}, "at '/feedServer/networkPolicy/port': 'oneOf' failed, none matched"),
    ({"feedServer": {"networkPolicy": {"from": {"namespaceSelector": {}}}}}, "at '/feedServer/networkPolicy/from': got object, want array"),
    ({"feedServer": {"networkPolicy": {"metricsFrom": ["monitoring"]}}}, "at '/feedServer/networkPolicy/metricsFrom/0': got string, want object"),
    ({"feedServer": {"networkPolicy": {"enabled": "true"}}}, "at '/feedServer/networkPolicy/enabled': got string, want boolean"),
    ({"extraEnv": [{"value": "x"}]}, "at '/extraEnv/0': missing property 'name'"),
    ({"feedServer": {"redis": {"url": "http://redis:6379"}}}, "at '/feedServer/redis/url': 'http://redis:6379' does not match pattern"),
    ({"feedServer": {"replicas": -1}}, "at '/feedServer/replicas': minimum: got -1, want 0"),
    ({"feedServer": {"redis": {"caSecret": {"name": "Redis_CA"}}}}, "at '/feedServer/redis/caSecret/name': 'Redis_CA' does not match pattern"),
    ({"feedServer": {"redis": {"caSecret": {"file": "ca.crt"}}}}, "at '/feedServer/redis/caSecret': additional properties 'file' not allowed"),
    ({"feedServer": {"auth": {"generated": {"scopes": ["root"]}}}}, "at '/feedServer/auth/generated/scopes/0': value must be one of"),
    ({"feedServer": {"auth": {"generated": {"scopes": []}}}}, "at '/feedServer/auth/generated/scopes': minItems: got 0, want 1"),
    ({"feedServer": {"auth": {"generated": {"name": "Default Key"}}}}, "at '/feedServer/auth/generated/name': 'Default Key' does not match pattern"),
    ({"feedServer": {"auth": {"generated": {"limit": {"requestsPerSecond": 0, "burst": 1}}}}}, "at '/feedServer/auth/generated/limit/requestsPerSecond'"),
    ({"feedServer": {"auth": {"generated": {"limit": {"rps": 5, "requestsPerSecond": 5, "burst": 1}}}}}, "additional properties 'rps' not allowed"),
    ({"feedServer": {"auth": {"userRateLimit": 0}}}, "at '/feedServer/auth/userRateLimit'"),
    # Below the server's 0.001/s floor (slower rates used to panic its limiter).
    ({"feedServer": {"auth": {"userRateLimit": 0.0001}}}, "at '/feedServer/auth/userRateLimit'"),
    ({"feedServer": {"auth": {"generated": {"limit": {"requestsPerSecond": 1e-12, "burst": 1}}}}}, "at '/feedServer/auth/generated/limit/requestsPerSecond'"),
    ({"feedServer": {"auth": {"apiKey": "plaintext"}}}, "at '/feedServer/auth': additional properties 'apiKey' not allowed"),
    # Not a bucket bound of the latency histogram: the latency alert would never fire.
    ({"feedAlerts": {"latency": {"thresholdSeconds": "0.25"}}}, "at '/feedAlerts/latency/thresholdSeconds'"),
    ({"feedAlerts": {"availability": {"objective": 1}}}, "at '/feedAlerts/availability/objective'"),  # no budget
    ({"feedAlerts": {"cacheHitRatio": {"for": "15 minutes"}}}, "at '/feedAlerts/cacheHitRatio/for'"),
    ({"feedAlerts": {"eventBacklog": {"maxRatio": 1.5}}}, "at '/feedAlerts/eventBacklog/maxRatio'"),
    ({"feedAlerts": {"eventBacklog": {"maxRatio": 0}}}, "at '/feedAlerts/eventBacklog/maxRatio'"),
    ({"feedAlerts": {"eventBacklog": {"ratio": 0.5}}}, "at '/feedAlerts/eventBacklog'"),
    ({"feedAlerts": {"eventApplyLag": {"maxSeconds": -1}}}, "at '/feedAlerts/eventApplyLag/maxSeconds'"),
    ({"feedAlerts": {"eventApplyLag": {"for": "soon"}}}, "at '/feedAlerts/eventApplyLag/for'"),
    ({"feedAlerts": {"sharedStateStaleFor": "5 minutes"}}, "at '/feedAlerts/sharedStateStaleFor'"),
    ({"feedAlerts": {"peerWritesNotHeardFor": "soon"}}, "at '/feedAlerts/peerWritesNotHeardFor'"),
    ({"dashboards": {"label": ""}}, "at '/dashboards/label'"),
]


@pytest.mark.parametrize("values,message", BAD_VALUES, ids=[json.dumps(v) for v, _ in BAD_VALUES])
def test_schema_rejects_bad_values(values, message):
    with helm.Chart.load(chart_dir()) as chart:
        with pytest.raises(helm.HelmValuesError) as err:
            chart.validate_schema(values)
        assert message in str(err.value)
        # And an install (render) refuses them the same way.
        with pytest.raises(helm.HelmValuesError) as err:
            chart.render(values, name="feedroll", namespace=NAMESPACE)
        assert "values don't meet the specifications of the schema" in str(err.value)
        assert message in str(err.value)


def test_schema_accepts_every_scenario_and_the_defaults():
    with helm.Chart.load(chart_dir()) as chart:
        for values in SCENARIOS.values():
            chart.validate_schema(values)
        chart.validate_schema(yaml.safe_load((CHART / "values.yaml").read_text()))


def test_schema_forbids_unknown_keys_everywhere():
    """additionalProperties: false on every object the chart defines (Kubernetes structures
    passed through as-is, e.g. affinity.nodeAffinity, are described as such)."""
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node, path):
        if node.get("type") == "object":
            if "properties" in node:
                assert node.get("additionalProperties") is False, path
            elif "patternProperties" in node:
                assert node.get("additionalProperties") is False, path
            else:
                assert "additionalProperties" in node or "Kubernetes structure" in node.get("description", "") or path == "/global", path
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}/{key}")
        for child in node.get("patternProperties", {}).values():
            for alt in child.get("oneOf", [child]):
                walk(alt, path + "/*")
        if isinstance(node.get("items"), dict):
            walk(node["items"], path + "[]")

    walk(schema, "")


@pytest.mark.parametrize(
    "values,message",
    [
        ({"replicaCount": 2, "leaderElection": {"enabled": False}}, "replicaCount is 2 but leaderElection.enabled is false"),
        ({"rbac": {"namespaced": True}}, "rbac.namespaced is true but watchNamespace is empty"),
        ({"feedServer": {"enabled": True}}, "feedServer.enabled needs Redis"),
        (
            {"feedServer": {"enabled": True, "redis": {"url": "redis://redis:6379/0", "caSecret": {"name": "ca"}}}},
            "feedServer.redis.caSecret needs a TLS URL",
        ),
    ],
)
def test_cross_field_checks_fail_with_a_clear_message(values, message):
    with helm.Chart.load(chart_dir()) as chart:
        with pytest.raises(helm.HelmRenderError, match=message.replace(".", r"\.")):
            chart.render(values, name="feedroll", namespace=NAMESPACE)


# ---------------------------------------------------------------- CRD


def test_chart_crd_is_byte_identical_to_the_generated_one():
    """In the repository the chart's CRD is a symlink to the generated file, so it cannot drift;
    this also holds if someone replaces the link with a copy."""
    assert CRD_CHART.read_bytes() == CRD_SOURCE.read_bytes(), (
        "charts/feedroll/crds/ differs from crds/: ln -sf ../../../crds/feedroll.dev_feedrollouts.yaml "
        "charts/feedroll/crds/feedroll.dev_feedrollouts.yaml"
    )
    if CRD_CHART.is_symlink():
        assert os.readlink(CRD_CHART) == "../../../crds/feedroll.dev_feedrollouts.yaml"


def test_packaged_chart_carries_the_crd_as_a_real_file(tmp_path):
    # The chart as it sits in the repository (with the symlink) lints clean too.
    report = helm.lint(CHART, strict=True, namespace=NAMESPACE)
    assert report["errors"] == [] and report["messages"] == [], report
    archive = helm.package(CHART, destination=tmp_path)
    with tarfile.open(archive) as tar:
        member = tar.getmember("feedroll/crds/feedroll.dev_feedrollouts.yaml")
        assert member.isfile()
        assert tar.extractfile(member).read() == CRD_SOURCE.read_bytes()
        names = tar.getnames()
    # The chart's tests and snapshots are not part of the package; the example is. The kubectl
    # plugin is its own binary now (kubectl-feedroll/, installed with krew or cargo), not a file.
    assert "feedroll/examples/feed-server-redis.yaml" in names
    assert not any(n.startswith("feedroll/files/") for n in names)


def test_helm_sees_the_crd_in_crds_dir():
    with helm.Chart.load(CHART) as chart:
        (crd,) = chart.crds
        assert crd["filename"] == "feedroll/crds/feedroll.dev_feedrollouts.yaml"
        doc = yaml.safe_load(crd["data"])
        assert doc["metadata"]["name"] == "feedrollouts.feedroll.dev"
        assert doc["spec"]["versions"][0]["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
        # Not templated: `helm template` output (without --include-crds) has no CRD.
        assert not any("CustomResourceDefinition" in t for t in render().values())


def test_crd_upgrades_use_server_side_apply():
    """Client-side apply keeps the whole object in an annotation capped at 256 KiB; the docs,
    the NOTES and the Argo CD Application all use server-side apply for the CRD."""
    app = yaml.safe_load((ROOT / "argocd" / "applications" / "feedroll-operator.yaml").read_text())
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]
    command = "kubectl apply --server-side --force-conflicts -f charts/feedroll/crds/feedroll.dev_feedrollouts.yaml"
    assert command in render()["feedroll/templates/NOTES.txt"]
    assert command in (ROOT / "docs" / "platform-guide.md").read_text()
    assert command in (CHART / "README.md").read_text()


# ---------------------------------------------------------------- alerts, with promtool


def rules_file(tmp_path: Path, values=None) -> Path:
    rule = one(objects(render(values or SCENARIOS["monitoring"])), "PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    return path


def test_promtool_accepts_the_rules(tmp_path):
    assert PROMTOOL, "promtool is missing: it comes with Debian's prometheus package (scripts/install-deps.sh)"
    proc = subprocess.run([PROMTOOL, "check", "rules", str(rules_file(tmp_path))], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 6 rules found" in proc.stdout


def test_promtool_unit_tests_of_the_alerts(tmp_path):
    assert PROMTOOL, "promtool is missing: it comes with Debian's prometheus package (scripts/install-deps.sh)"
    rules_file(tmp_path)
    source = (Path(__file__).parent / "alerts_test.yaml").read_text()
    (tmp_path / "alerts_test.yaml").write_text(source)
    proc = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts_test.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_feed_server_from_an_existing_secret():
    objs = objects(render(SCENARIOS["feed-server"]))
    # No Redis Secret: the existing one is used (the API-keys Secret is generated by default).
    assert [o["metadata"]["name"] for o in by_kind(objs, "Secret")] == ["feed-server-api-keys"]
    fr = one(objs, "FeedRollout", "feed-server")
    assert fr["metadata"]["namespace"] == "feed"
    assert fr["metadata"]["labels"]["app.kubernetes.io/component"] == "feed-server"
    (c,) = fr["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["FEED_REDIS_URL"]["valueFrom"] == {"secretKeyRef": {"name": "feed-redis", "key": "url"}}
    assert fr["spec"]["strategy"]["steps"][0] == {"setWeight": 20}
    assert fr["spec"]["analysis"]["prometheus"]["address"] == "http://prometheus.monitoring.svc:9090"
    labels = fr["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in fr["spec"]["selector"]["matchLabels"].items())


def test_feed_server_with_a_chart_made_secret():
    objs = objects(render(SCENARIOS["feed-server-url"]))
    secret = one(objs, "Secret", "feed-server-redis")
    assert secret["stringData"] == {"url": "redis://redis.feedroll-system.svc:6379/0"}
    fr = one(objs, "FeedRollout", "feed-server")
    env = {e["name"]: e for e in fr["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FEED_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "feed-server-redis", "key": "url"}
    assert "strategy" not in fr["spec"] and "analysis" not in fr["spec"]


def test_feed_server_redis_ca_from_a_secret():
    """The CA Secret is mounted read-only and named by FEED_REDIS_CA_FILE; without it, neither."""
    fr = one(objects(render(SCENARIOS["feed-server-tls"])), "FeedRollout", "feed-server")
    pod = fr["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["FEED_REDIS_CA_FILE"] == {"name": "FEED_REDIS_CA_FILE", "value": "/etc/feedroll/redis-ca/ca.crt"}
    assert c["volumeMounts"][0] == {"name": "redis-ca", "mountPath": "/etc/feedroll/redis-ca", "readOnly": True}
    assert pod["volumes"][0] == (
        {"name": "redis-ca", "secret": {"secretName": "feed-redis-ca", "items": [{"key": "ca.pem", "path": "ca.crt"}]}}
    )
    assert c["securityContext"]["readOnlyRootFilesystem"] is True

    plain = one(objects(render(SCENARIOS["feed-server"])), "FeedRollout", "feed-server")["spec"]["template"]["spec"]
    assert [v["name"] for v in plain["volumes"]] == ["api-keys"], "no CA volume without caSecret"
    assert "FEED_REDIS_CA_FILE" not in {e["name"] for e in plain["containers"][0]["env"]}

    made = {"feedServer": {"enabled": True, "redis": {"url": "rediss://feed:pw@redis.example:6380/0", "caSecret": {"name": "ca"}}}}
    pod = one(objects(render(made)), "FeedRollout", "feed-server")["spec"]["template"]["spec"]
    assert pod["volumes"][0]["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]


def test_feed_server_redis_cluster_nodes_replace_the_url():
    """feedServer.redis.cluster: the Secret's value goes to FEED_REDIS_CLUSTER_NODES, not
    FEED_REDIS_URL (feed-server refuses both), and the network policy must allow every node."""
    nodes = "redis://feed:pw@r-0.redis:7000,redis://feed:pw@r-1.redis:7001"
    values = {"feedServer": {"enabled": True, "redis": {"url": nodes, "cluster": True}}}
    fr = one(objects(render(values)), "FeedRollout", "feed-server")
    env = {e["name"]: e for e in fr["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FEED_REDIS_CLUSTER_NODES"]["valueFrom"] == {"secretKeyRef": {"name": "feed-server-redis", "key": "url"}}
    assert "FEED_REDIS_URL" not in env
    plain = one(objects(render(SCENARIOS["feed-server"])), "FeedRollout", "feed-server")
    assert "FEED_REDIS_CLUSTER_NODES" not in {e["name"] for e in plain["spec"]["template"]["spec"]["containers"][0]["env"]}

    allowed = {**values["feedServer"], "networkPolicy": {"enabled": True, "redis": {"ports": [7000, 7001]}}}
    (np_,) = feed_server_policies(objects(render({"feedServer": allowed})))
    assert [p["port"] for p in np_["spec"]["egress"][1]["ports"]] == [7000, 7001]
    cut = {**values["feedServer"], "networkPolicy": {"enabled": True, "redis": {"ports": [7000]}}}
    with helm.Chart.load(chart_dir()) as chart:
        with pytest.raises(helm.HelmRenderError) as err:
            chart.render({"feedServer": cut}, name="feedroll", namespace=NAMESPACE)
    assert "does not include 7001" in str(err.value)
    assert "pw" not in str(err.value)


# ---------------------------------------------------------------- image tags


def app_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])


def test_default_images_are_the_ones_make_images_tags():
    """`make images` tags both images with the chart's appVersion (scripts/build-images.sh); the
    chart's defaults pull exactly those tags."""
    version = app_version()
    (c,) = one(objects(render()), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert c["image"] == f"ghcr.io/feedroll/feedroll-operator:{version}"
    fr = one(objects(render(SCENARIOS["feed-server"])), "FeedRollout", "feed-server")
    (c,) = fr["spec"]["template"]["spec"]["containers"]
    assert c["image"] == f"ghcr.io/feedroll/feed-server:{version}"


def test_feed_server_image_tag_can_be_pinned():
    values = {**SCENARIOS["feed-server"]}
    values["feedServer"] = {**values["feedServer"], "image": {"tag": "0.2.0"}}
    fr = one(objects(render(values)), "FeedRollout", "feed-server")
    assert fr["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/feedroll/feed-server:0.2.0"


def test_examples_use_the_images_make_images_tags():
    """A new team runs `make images` and applies an example: every feed-server image the
    examples name must be one that build exists."""
    version = app_version()
    files = sorted((ROOT / "examples").glob("*.yaml")) + sorted((CHART / "examples").glob("*.yaml"))
    images = {
        (f.name, c["image"])
        for f in files
        for d in yaml.safe_load_all(f.read_text())
        if d and d.get("kind") == "FeedRollout"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert len({f for f, _ in images}) >= 2, images
    wrong = {(f, i) for f, i in images if i != f"ghcr.io/feedroll/feed-server:{version}"}
    assert not wrong, f"examples not on appVersion {version}: {sorted(wrong)}"


# ---------------------------------------------------------------- the example FeedRollout


def test_example_takes_redis_from_a_secret():
    (doc,) = [d for d in yaml.safe_load_all((CHART / "examples" / "feed-server-redis.yaml").read_text()) if d]
    assert doc["kind"] == "FeedRollout" and doc["apiVersion"] == "feedroll.dev/v1alpha1"
    (c,) = doc["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["FEED_REDIS_URL"]["valueFrom"] == {"secretKeyRef": {"name": "feed-redis", "key": "url"}}
    assert "value" not in env["FEED_REDIS_URL"]
    assert env["FEED_LISTEN"]["value"] == "0.0.0.0:8080"
    # The operator injects these; setting them by hand would mislabel the metrics.
    assert "FEED_ROLLOUT" not in env and "FEED_TRACK" not in env
    labels = doc["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in doc["spec"]["selector"]["matchLabels"].items())


# ---------------------------------------------------------------- feed alerts and dashboards

FEED_ALERTS = {
    "FeedErrorBudgetBurn", "FeedLatencyBudgetBurn", "FeedCacheHitRatioLow", "FeedStoreErrors", "FeedProfileReloadFailed",
    "FeedEventBacklogHigh", "FeedEventApplyLagHigh", "FeedEventsUnreadable", "FeedSharedStateStale",
    "FeedPeerWritesNotHeard",
}


def feed_rule(values):
    rules = [o for o in by_kind(objects(render(values)), "PrometheusRule") if o["metadata"]["name"].endswith("-feed")]
    assert len(rules) == 1
    return rules[0]


def test_feed_alerts_are_off_by_default_and_separate_from_the_operators():
    operator_only = by_kind(objects(render({"prometheusRule": {"enabled": True}})), "PrometheusRule")
    assert [o["metadata"]["name"] for o in operator_only] == ["feedroll"]
    rule = feed_rule(SCENARIOS["feed-monitoring"])
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert set(alerts) == FEED_ALERTS
    for r in (r for g in rule["spec"]["groups"] for r in g["rules"]):
        assert r["annotations"]["runbook_url"] == f"https://runbooks.example.invalid/feed#{r['alert'].lower()}"


def test_feed_alert_thresholds_follow_the_values():
    rule = feed_rule({"feedAlerts": {
        "enabled": True, "availability": {"objective": 0.99}, "latency": {"objective": 0.95, "thresholdSeconds": "1"},
        "cacheHitRatio": {"floor": 0.7, "for": "30m"}, "eventBacklog": {"maxRatio": 0.8, "for": "1m"},
        "eventApplyLag": {"maxSeconds": 2.5, "for": "10m"}, "sharedStateStaleFor": "15m",
        "peerWritesNotHeardFor": "20m",
    }})
    rules = {(r["alert"], r["labels"].get("window")): r for g in rule["spec"]["groups"] for r in g["rules"]}
    exprs = {key: r["expr"] for key, r in rules.items()}
    assert exprs[("FeedErrorBudgetBurn", "1h")].count("> 0.144") == 2
    assert exprs[("FeedErrorBudgetBurn", "6h")].count("> 0.06") == 2
    assert exprs[("FeedLatencyBudgetBurn", "1h")].count("> 0.72") == 2
    assert exprs[("FeedLatencyBudgetBurn", "1h")].count('le="1"') == 2
    assert "< 0.7" in exprs[("FeedCacheHitRatioLow", None)] and "[30m]" in exprs[("FeedCacheHitRatioLow", None)]
    assert exprs[("FeedEventBacklogHigh", None)].rstrip().endswith("> 0.8") and rules[("FeedEventBacklogHigh", None)]["for"] == "1m"
    assert "80% of the limit" in rules[("FeedEventBacklogHigh", None)]["annotations"]["description"]
    assert exprs[("FeedEventApplyLagHigh", None)].rstrip().endswith("> 2.5") and rules[("FeedEventApplyLagHigh", None)]["for"] == "10m"
    assert rules[("FeedSharedStateStale", None)]["for"] == "15m"
    assert rules[("FeedPeerWritesNotHeard", None)]["for"] == "20m"
    assert "for 20m" in rules[("FeedPeerWritesNotHeard", None)]["annotations"]["description"]


def test_promtool_unit_tests_of_the_feed_alerts(tmp_path):
    assert PROMTOOL, "promtool is missing: it comes with Debian's prometheus package (scripts/install-deps.sh)"
    (tmp_path / "feed-rules.yaml").write_text(yaml.safe_dump(feed_rule(SCENARIOS["feed-monitoring"])["spec"], sort_keys=False))
    check = subprocess.run([PROMTOOL, "check", "rules", "feed-rules.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 12 rules found" in check.stdout
    (tmp_path / "feed_alerts_test.yaml").write_text((Path(__file__).parent / "feed_alerts_test.yaml").read_text())
    proc = subprocess.run([PROMTOOL, "test", "rules", "feed_alerts_test.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboards_ship_as_sidecar_config_maps():
    assert not by_kind(objects(render()), "ConfigMap")
    maps = by_kind(objects(render(SCENARIOS["feed-monitoring"])), "ConfigMap")
    assert sorted(m["metadata"]["name"] for m in maps) == ["feedroll-dashboard-feed-service", "feedroll-dashboard-rollouts"]
    for m in maps:
        assert m["metadata"]["namespace"] == "monitoring"
        assert m["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert m["metadata"]["annotations"] == {"grafana_folder": "Feedroll"}
        ((name, text),) = m["data"].items()
        assert text == (CHART / "dashboards" / name).read_text().rstrip("\n")
    custom = by_kind(objects(render({"dashboards": {"enabled": True, "label": "dash", "labelValue": "feed"}})), "ConfigMap")
    assert {m["metadata"]["namespace"] for m in custom} == {NAMESPACE}
    assert {m["metadata"]["labels"]["dash"] for m in custom} == {"feed"}
