//! A container's environment and command line, as the kubelet builds them: `env` in order
//! with `valueFrom` (fieldRef, configMapKeyRef, secretKeyRef), `envFrom`, `$(VAR)` expansion of
//! env values, command and args; then what the process needs here instead of a network and
//! mount namespace: listen addresses bound to the pod's IP and paths under a `mountPath`
//! rewritten to the pod's volume directory. Pure functions.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use base64::Engine;
use serde_json::Value;
use thiserror::Error;

use crate::net::services::{Resolver, service_of_host};

/// The two kinds of object an env var or a volume can come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A ConfigMap (`data`, `binaryData`).
    ConfigMap,
    /// A Secret (`data`, base64; `stringData`).
    Secret,
}

impl Source {
    fn noun(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmap",
            Self::Secret => "secret",
        }
    }
}

/// Why a container's configuration cannot be built: the container waits with
/// `CreateContainerConfigError` and this message.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A referenced ConfigMap or Secret is missing.
    #[error("{} \"{name}\" not found", .kind.noun())]
    Missing {
        /// Which kind.
        kind: Source,
        /// Its name.
        name: String,
    },
    /// The object exists without the key.
    #[error("couldn't find key {key} in {} {namespace}/{name}", match .kind { Source::ConfigMap => "ConfigMap", Source::Secret => "Secret" })]
    MissingKey {
        /// Which kind.
        kind: Source,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The key.
        key: String,
    },
    /// A fieldRef path the kubelet does not support.
    #[error("unsupported fieldRef fieldPath {0:?}")]
    UnsupportedField(String),
    /// An env entry without a name, or a `valueFrom` of no known kind.
    #[error("invalid env entry: {0}")]
    Invalid(String),
}

/// Reads ConfigMaps and Secrets of the pod's namespace.
pub trait Objects {
    /// The object's key → value map (Secret data decoded), `None` when it does not exist.
    fn data(&self, source: Source, name: &str) -> Option<BTreeMap<String, Vec<u8>>>;
}

/// The key → bytes map of a stored ConfigMap (`data`, `binaryData`) or Secret (`data` decoded
/// from base64, `stringData`). Undecodable values are skipped.
pub fn object_data(source: Source, obj: &Value) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    let (text, encoded) = match source {
        Source::ConfigMap => ("data", "binaryData"),
        Source::Secret => ("stringData", "data"),
    };
    if let Some(m) = obj[encoded].as_object() {
        for (k, v) in m {
            if let Some(bytes) = v.as_str().and_then(|s| b64.decode(s).ok()) {
                out.insert(k.clone(), bytes);
            }
        }
    }
    if let Some(m) = obj[text].as_object() {
        for (k, v) in m {
            if let Some(s) = v.as_str() {
                out.insert(k.clone(), s.as_bytes().to_vec());
            }
        }
    }
    out
}

/// Expands `$(NAME)` references with `vars` as Kubernetes does: a defined name is replaced, an
/// undefined one is left as written, `$$` is a literal `$` (so `$$(NAME)` gives `$(NAME)`).
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The value of a `fieldRef.fieldPath` of `pod` (metadata.name/namespace/uid, labels and
/// annotations by key, spec.nodeName/serviceAccountName, status.podIP/podIPs/hostIP/hostIPs).
pub fn field_value(pod: &Value, path: &str) -> Result<String, ConfigError> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let keyed = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_owned)
    };
    if let Some(k) = keyed("metadata.labels['") {
        return Ok(text(&pod["metadata"]["labels"][k]));
    }
    if let Some(k) = keyed("metadata.annotations['") {
        return Ok(text(&pod["metadata"]["annotations"][k]));
    }
    let ips = |field: &str| {
        pod["status"][field]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|ip| ip["ip"].as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    Ok(match path {
        "metadata.name" | "metadata.namespace" | "metadata.uid" => {
            text(&pod["metadata"][&path["metadata.".len()..]])
        }
        "spec.nodeName" | "spec.serviceAccountName" => text(&pod["spec"][&path["spec.".len()..]]),
        "status.podIP" | "status.hostIP" => text(&pod["status"][&path["status.".len()..]]),
        "status.podIPs" => ips("podIPs"),
        "status.hostIPs" => ips("hostIPs"),
        other => return Err(ConfigError::UnsupportedField(other.to_owned())),
    })
}

/// One `*KeyRef` (`{name, key, optional}`) resolved: `Ok(None)` when optional and missing.
fn key_ref(
    source: Source,
    r: &Value,
    namespace: &str,
    objects: &dyn Objects,
) -> Result<Option<String>, ConfigError> {
    let name = r["name"].as_str().unwrap_or_default();
    let key = r["key"].as_str().unwrap_or_default();
    let optional = r["optional"].as_bool().unwrap_or(false);
    let Some(data) = objects.data(source, name) else {
        return if optional {
            Ok(None)
        } else {
            Err(ConfigError::Missing {
                kind: source,
                name: name.to_owned(),
            })
        };
    };
    match data.get(key) {
        Some(bytes) => Ok(Some(String::from_utf8_lossy(bytes).into_owned())),
        None if optional => Ok(None),
        None => Err(ConfigError::MissingKey {
            kind: source,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
        }),
    }
}

/// The container's environment, in order: `envFrom` sources (prefixed), then `env` entries,
/// each value expanded against the variables defined before it; a later entry replaces an
/// earlier one of the same name.
pub fn container_env(
    pod: &Value,
    container: &Value,
    objects: &dyn Objects,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut vars = BTreeMap::new();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or_default();
        let (source, r) = if from["configMapRef"].is_object() {
            (Source::ConfigMap, &from["configMapRef"])
        } else if from["secretRef"].is_object() {
            (Source::Secret, &from["secretRef"])
        } else {
            return Err(ConfigError::Invalid(format!("envFrom {from}")));
        };
        let name = r["name"].as_str().unwrap_or_default();
        match objects.data(source, name) {
            Some(data) => {
                for (k, v) in data {
                    vars.insert(
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(&v).into_owned(),
                    );
                }
            }
            None if r["optional"].as_bool().unwrap_or(false) => {}
            None => {
                return Err(ConfigError::Missing {
                    kind: source,
                    name: name.to_owned(),
                });
            }
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str().filter(|n| !n.is_empty()) else {
            return Err(ConfigError::Invalid(format!(
                "env entry without a name: {e}"
            )));
        };
        let from = &e["valueFrom"];
        let value = if from.is_null() {
            Some(expand(e["value"].as_str().unwrap_or_default(), &vars))
        } else if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
            Some(field_value(pod, path)?)
        } else if from["configMapKeyRef"].is_object() {
            key_ref(
                Source::ConfigMap,
                &from["configMapKeyRef"],
                namespace,
                objects,
            )?
        } else if from["secretKeyRef"].is_object() {
            key_ref(Source::Secret, &from["secretKeyRef"], namespace, objects)?
        } else {
            return Err(ConfigError::Invalid(format!("valueFrom of {name}: {from}")));
        };
        if let Some(v) = value {
            vars.insert(name.to_owned(), v);
        }
    }
    Ok(vars)
}

/// The container's arguments after the entrypoint: `command[1..]` then `args` (the image is
/// one binary, so `command[0]` names it and the image's binary runs), each `$(VAR)`-expanded.
pub fn command_line(container: &Value, vars: &BTreeMap<String, String>) -> Vec<String> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|s| expand(s, vars))
            .collect()
    };
    let mut out: Vec<String> = strings(&container["command"]).into_iter().skip(1).collect();
    out.extend(strings(&container["args"]));
    out
}

/// `value` with a path under one of `mounts` (`mountPath` → host directory; the longest match
/// wins) rewritten to the host directory — the whole value, or what follows a `=` (as in
/// `--profile=/etc/feed/profile.json`). Other values are returned unchanged.
pub fn rewrite_path(value: &str, mounts: &[(String, &Path)]) -> String {
    let (head, path) = match value.split_once('=') {
        Some((h, p)) if p.starts_with('/') && !value.starts_with('/') => (Some(h), p),
        _ => (None, value),
    };
    let best = mounts
        .iter()
        .filter(|(mount, _)| {
            let m = mount.trim_end_matches('/');
            !m.is_empty()
                && path
                    .strip_prefix(m)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .max_by_key(|(mount, _)| mount.trim_end_matches('/').len());
    let Some((mount, dir)) = best else {
        return value.to_owned();
    };
    let rest = &path[mount.trim_end_matches('/').len()..];
    let rewritten = format!("{}{rest}", dir.display());
    match head {
        Some(h) => format!("{h}={rewritten}"),
        None => rewritten,
    }
}

/// `value` with a wildcard or loopback listen address (`0.0.0.0:P`, `[::]:P`, `:P`,
/// `127.0.0.1:P`, `localhost:P`) moved to `ip:P`, as a pod's network namespace makes them
/// mean the pod's address; anything else unchanged.
pub fn bind_to_pod(value: &str, ip: &str) -> String {
    let Some((host, port)) = value.rsplit_once(':') else {
        return value.to_owned();
    };
    let wildcard = matches!(
        host,
        "" | "0.0.0.0" | "[::]" | "::" | "127.0.0.1" | "localhost" | "[::1]"
    );
    if wildcard && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        format!("{ip}:{port}")
    } else {
        value.to_owned()
    }
}

/// `value` with every cluster DNS name of a Service in it (`NAME.NAMESPACE.svc`,
/// `NAME.NAMESPACE.svc.cluster.local`, as in `redis://redis.feed.svc:6379`) replaced by the
/// address `resolve` gives it, as a pod's resolver would answer; names it does not know, and
/// everything else, unchanged. (Short names such as `redis`, which a pod's DNS search path
/// would complete, are not rewritten: they are ordinary words too often.)
pub fn resolve_service_names(value: &str, resolve: impl Fn(&str) -> Option<Ipv4Addr>) -> String {
    let is_dns = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find(is_dns) {
        out.push_str(&rest[..start]);
        let token_len = rest[start..]
            .find(|c| !is_dns(c))
            .unwrap_or(rest.len() - start);
        let token = &rest[start..start + token_len];
        match service_of_host(token).and_then(|_| resolve(token)) {
            Some(ip) => out.push_str(&ip.to_string()),
            None => out.push_str(token),
        }
        rest = &rest[start + token_len..];
    }
    out.push_str(rest);
    out
}

/// Where a container's process runs: what its network and mount namespaces would give it.
#[derive(Clone, Copy, Debug)]
pub struct Pod<'a> {
    /// The pod's IP.
    pub ip: &'a str,
    /// Cluster DNS for Services' names in args and env ([`resolve_service_names`]); `None`:
    /// names stay as they are.
    pub dns: Option<&'a Resolver>,
    /// Its `HOSTNAME` (the pod's name).
    pub hostname: &'a str,
    /// `mountPath` → host directory of the container's volume mounts.
    pub mounts: &'a [(String, &'a Path)],
}

/// The process's arguments and environment for `container` with resolved env `vars` in `pod`:
/// [`command_line`], then in every argument and env value a path under a mount rewritten
/// ([`rewrite_path`]), a wildcard listen address bound to the pod ([`bind_to_pod`]) and
/// Services' DNS names resolved ([`resolve_service_names`]);
/// `listen_env` (the image's listen variable) set to `ip:firstContainerPort` (8080 without
/// ports) unless the container sets it; `PATH` and `HOSTNAME` unless set.
pub fn process_command(
    container: &Value,
    vars: &BTreeMap<String, String>,
    pod: &Pod<'_>,
    listen_env: Option<&str>,
) -> (Vec<String>, BTreeMap<String, String>) {
    let adapt = |v: &str| {
        let v = bind_to_pod(&rewrite_path(v, pod.mounts), pod.ip);
        match pod.dns {
            Some(dns) => resolve_service_names(&v, |host| dns.resolve(host)),
            None => v,
        }
    };
    let args = command_line(container, vars)
        .iter()
        .map(|a| adapt(a))
        .collect();
    let mut env: BTreeMap<String, String> =
        vars.iter().map(|(k, v)| (k.clone(), adapt(v))).collect();
    if let Some(listen) = listen_env {
        let port = container["ports"][0]["containerPort"]
            .as_u64()
            .unwrap_or(8080);
        env.entry(listen.to_owned())
            .or_insert_with(|| format!("{}:{port}", pod.ip));
    }
    env.entry("PATH".into())
        .or_insert_with(|| "/usr/local/bin:/usr/bin:/bin".into());
    env.entry("HOSTNAME".into())
        .or_insert_with(|| pod.hostname.to_owned());
    (args, env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixed(BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>);

    impl Objects for Fixed {
        fn data(&self, source: Source, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
            self.0
                .get(&(source.noun().to_owned(), name.to_owned()))
                .cloned()
        }
    }

    fn objects() -> Fixed {
        let cm = object_data(
            Source::ConfigMap,
            &json!({"data": {"mode": "fast", "profile.json": "{}"}, "binaryData": {"bin": "AAE="}}),
        );
        let secret = object_data(
            Source::Secret,
            &json!({"data": {"token": "czNjcjN0"}, "stringData": {"plain": "p"}}),
        );
        Fixed(BTreeMap::from([
            (("configmap".into(), "cfg".into()), cm),
            (("secret".into(), "sec".into()), secret),
        ]))
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn expansion_follows_the_kubernetes_rules() {
        let v = vars(&[("A", "x"), ("B", "$(A)")]);
        let cases = [
            ("$(A)", "x"),
            ("pre-$(A)-post", "pre-x-post"),
            ("$(B)", "$(A)"),
            ("$(MISSING)", "$(MISSING)"),
            ("$$(A)", "$(A)"),
            ("$$", "$"),
            ("$A", "$A"),
            ("$(A", "$(A"),
            ("a$", "a$"),
            ("$(A)$(A)", "xx"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &v), want, "{input}");
        }
    }

    fn pod() -> Value {
        json!({"metadata": {"name": "p", "namespace": "feed", "uid": "u1",
                            "labels": {"app": "feed", "a.b/c": "d"}, "annotations": {"n": "1"}},
               "spec": {"nodeName": "localkube", "serviceAccountName": "sa"},
               "status": {"podIP": "127.10.0.1", "podIPs": [{"ip": "127.10.0.1"}],
                          "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}]}})
    }

    #[test]
    fn field_refs_read_the_pod() {
        let p = pod();
        let cases = [
            ("metadata.name", "p"),
            ("metadata.namespace", "feed"),
            ("metadata.uid", "u1"),
            ("metadata.labels['app']", "feed"),
            ("metadata.labels['a.b/c']", "d"),
            ("metadata.labels['none']", ""),
            ("metadata.annotations['n']", "1"),
            ("spec.nodeName", "localkube"),
            ("spec.serviceAccountName", "sa"),
            ("status.podIP", "127.10.0.1"),
            ("status.podIPs", "127.10.0.1"),
            ("status.hostIP", "127.0.0.1"),
            ("status.hostIPs", "127.0.0.1"),
        ];
        for (path, want) in cases {
            assert_eq!(field_value(&p, path).as_deref(), Ok(want), "{path}");
        }
        assert_eq!(
            field_value(&p, "spec.containers"),
            Err(ConfigError::UnsupportedField("spec.containers".into()))
        );
    }

    #[test]
    fn env_resolves_refs_in_order_and_expands_earlier_vars() {
        let c = json!({
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CM_"},
                    {"secretRef": {"name": "gone", "optional": true}}],
        "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "ADDR", "value": "$(IP):8080/$(POD)/$(LATER)"},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
            {"name": "PLAIN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "plain"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "x", "optional": true}}},
            {"name": "OPT2", "valueFrom": {"secretKeyRef": {"name": "none", "key": "x", "optional": true}}},
            {"name": "LATER", "value": "l"},
            {"name": "MODE", "value": "$(MODE)-again"},
        ]});
        let env = container_env(&pod(), &c, &objects()).expect("resolves");
        assert_eq!(env["POD"], "p");
        assert_eq!(env["ADDR"], "127.10.0.1:8080/p/$(LATER)");
        assert_eq!(env["MODE"], "fast-again");
        assert_eq!(env["TOKEN"], "s3cr3t");
        assert_eq!(env["PLAIN"], "p");
        assert_eq!(env["CM_mode"], "fast");
        assert_eq!(env["CM_bin"], "\u{0}\u{1}");
        assert!(!env.contains_key("OPT") && !env.contains_key("OPT2"));
    }

    #[test]
    fn missing_refs_are_config_errors_with_the_kubelets_wording() {
        let cases = [
            (
                json!({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "none", "key": "k"}}}]}),
                "configmap \"none\" not found",
            ),
            (
                json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "none", "key": "k"}}}]}),
                "secret \"none\" not found",
            ),
            (
                json!({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]}),
                "couldn't find key k in ConfigMap feed/cfg",
            ),
            (
                json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k"}}}]}),
                "couldn't find key k in Secret feed/sec",
            ),
            (
                json!({"envFrom": [{"configMapRef": {"name": "none"}}]}),
                "configmap \"none\" not found",
            ),
            (
                json!({"envFrom": [{"secretRef": {"name": "none"}}]}),
                "secret \"none\" not found",
            ),
            (json!({"envFrom": [{}]}), "invalid env entry: envFrom {}"),
            (
                json!({"env": [{"value": "v"}]}),
                "invalid env entry: env entry without a name: {\"value\":\"v\"}",
            ),
            (
                json!({"env": [{"name": "X", "valueFrom": {"resourceFieldRef": {}}}]}),
                "invalid env entry: valueFrom of X: {\"resourceFieldRef\":{}}",
            ),
            (
                json!({"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.x"}}}]}),
                "unsupported fieldRef fieldPath \"spec.x\"",
            ),
        ];
        for (c, want) in cases {
            let err = container_env(&pod(), &c, &objects()).expect_err("fails");
            assert_eq!(err.to_string(), want, "{c}");
        }
    }

    #[test]
    fn the_command_line_is_command_tail_then_args_expanded() {
        let v = vars(&[("P", "8080")]);
        let c = json!({"command": ["/feed-server", "--x"], "args": ["--listen", "0.0.0.0:$(P)"]});
        assert_eq!(command_line(&c, &v), ["--x", "--listen", "0.0.0.0:8080"]);
        assert!(command_line(&json!({}), &v).is_empty());
    }

    #[test]
    fn services_dns_names_become_their_cluster_ips() {
        let resolve = |host: &str| match host {
            "redis.feed.svc" | "redis.feed.svc.cluster.local" => Some(Ipv4Addr::new(127, 20, 0, 7)),
            _ => None,
        };
        let cases = [
            ("redis://redis.feed.svc:6379", "redis://127.20.0.7:6379"),
            (
                "--redis-url=redis://redis.feed.svc.cluster.local:6379/0",
                "--redis-url=redis://127.20.0.7:6379/0",
            ),
            ("redis.feed.svc", "127.20.0.7"),
            // Unknown Services, short names and ordinary words stay as they are.
            ("redis://other.feed.svc:6379", "redis://other.feed.svc:6379"),
            ("redis://redis:6379", "redis://redis:6379"),
            ("feed.svc", "feed.svc"),
            ("0.0.0.0:8080", "0.0.0.0:8080"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(resolve_service_names(input, resolve), want, "{input}");
        }
    }

    #[test]
    fn paths_under_a_mount_move_to_the_pods_directory() {
        let a = Path::new("/pods/p/volumes/profile");
        let b = Path::new("/pods/p/volumes/nested");
        let mounts = [
            ("/etc/feed/".to_owned(), a),
            ("/etc/feed/nested".to_owned(), b),
        ];
        let cases = [
            (
                "/etc/feed/profile.json",
                "/pods/p/volumes/profile/profile.json",
            ),
            ("/etc/feed", "/pods/p/volumes/profile"),
            ("/etc/feed/nested/x", "/pods/p/volumes/nested/x"),
            (
                "--profile=/etc/feed/p.json",
                "--profile=/pods/p/volumes/profile/p.json",
            ),
            ("/etc/feedx/p.json", "/etc/feedx/p.json"),
            ("/etc/other", "/etc/other"),
            ("etc/feed/p", "etc/feed/p"),
            ("/a=/etc/feed/p", "/a=/etc/feed/p"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(rewrite_path(input, &mounts), want, "{input}");
        }
        assert_eq!(
            rewrite_path("/x", &[("/".to_owned(), a)]),
            "/x",
            "a root mount is ignored"
        );
    }

    #[test]
    fn the_process_gets_the_pods_address_and_paths() {
        let dir = Path::new("/pods/p/volumes/profile");
        let mounts = [("/etc/feed".to_owned(), dir)];
        let pod = Pod {
            ip: "127.10.0.9",
            hostname: "web-1",
            mounts: &mounts,
            dns: None,
        };
        let c = json!({"args": ["--listen", "0.0.0.0:8080", "--profile=/etc/feed/p.json", "$(X)"],
                       "ports": [{"containerPort": 9090}]});
        let (args, env) = process_command(
            &c,
            &vars(&[("X", "x"), ("P", "/etc/feed/q")]),
            &pod,
            Some("FEED_LISTEN"),
        );
        assert_eq!(
            args,
            [
                "--listen",
                "127.10.0.9:8080",
                "--profile=/pods/p/volumes/profile/p.json",
                "x"
            ]
        );
        assert_eq!(env["P"], "/pods/p/volumes/profile/q");
        assert_eq!(
            env["FEED_LISTEN"], "127.10.0.9:9090",
            "the first containerPort"
        );
        assert_eq!(
            (env["HOSTNAME"].as_str(), env.contains_key("PATH")),
            ("web-1", true)
        );

        let set = vars(&[("FEED_LISTEN", ":7000"), ("HOSTNAME", "h"), ("PATH", "/x")]);
        let (_, env) = process_command(&json!({}), &set, &pod, Some("FEED_LISTEN"));
        assert_eq!(
            env["FEED_LISTEN"], "127.10.0.9:7000",
            "kept, bound to the pod"
        );
        assert_eq!(
            (env["HOSTNAME"].as_str(), env["PATH"].as_str()),
            ("h", "/x")
        );
        let (_, env) = process_command(&json!({}), &vars(&[]), &pod, Some("FEED_LISTEN"));
        assert_eq!(env["FEED_LISTEN"], "127.10.0.9:8080", "8080 without ports");
        let (_, env) = process_command(&json!({}), &vars(&[]), &pod, None);
        assert!(!env.contains_key("FEED_LISTEN"));
    }

    #[test]
    fn wildcard_and_loopback_listen_addresses_bind_to_the_pod() {
        let cases = [
            ("0.0.0.0:8080", "127.10.0.7:8080"),
            (":8080", "127.10.0.7:8080"),
            ("[::]:8080", "127.10.0.7:8080"),
            ("127.0.0.1:9", "127.10.0.7:9"),
            ("localhost:9", "127.10.0.7:9"),
            ("10.0.0.1:8080", "10.0.0.1:8080"),
            ("redis://redis:6379", "redis://redis:6379"),
            ("0.0.0.0:", "0.0.0.0:"),
            ("0.0.0.0:http", "0.0.0.0:http"),
            ("8080", "8080"),
        ];
        for (input, want) in cases {
            assert_eq!(bind_to_pod(input, "127.10.0.7"), want, "{input}");
        }
    }
}
