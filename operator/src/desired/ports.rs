//! The named port every rollout pod exposes, so Prometheus (the chart's PodMonitor, or a
//! `kubernetes_sd_configs` job keeping the port named `http`) finds the feed-server.
//!
//! The feed-server container is the first container of the template. When no container
//! declares a port named [`HTTP_PORT`], the operator names the feed-server's listening port
//! `http`: an unnamed declaration of that port gets the name, and without any declaration the
//! port is added. The listening port is the one of a `--listen` argument, else of a literal
//! `FEED_LISTEN` (`host:port`) in the container's environment, else feed-server's default 8080. A template that declares the
//! listening port under another name is left alone (renaming it would break probes that refer
//! to it): scrape that name instead (`feedServerMonitor.port` in the chart).

use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};

/// Name of the feed-server's HTTP port in every rollout pod.
pub const HTTP_PORT: &str = "http";
/// feed-server's port when `FEED_LISTEN` does not say otherwise.
pub const DEFAULT_PORT: i32 = 8080;
/// The environment variable feed-server reads its listen address from.
const ENV_LISTEN: &str = "FEED_LISTEN";

/// The port the container's feed-server listens on, as feed-server itself decides it: the
/// `--listen` argument (`--listen 0.0.0.0:9000` or `--listen=...`, in `command` or `args`),
/// else a literal `FEED_LISTEN` (`0.0.0.0:9000`, `[::]:9000`), else [`DEFAULT_PORT`] (also when
/// the value is unparsable or comes from a reference the operator cannot read).
pub fn listen_port(container: &Container) -> i32 {
    let env = || {
        container
            .env
            .iter()
            .flatten()
            .rev()
            .find(|e| e.name == ENV_LISTEN)
            .and_then(|e| e.value.as_deref())
    };
    listen_flag(container)
        .or_else(env)
        .and_then(port_of)
        .unwrap_or(DEFAULT_PORT)
}

/// The value of the last `--listen` flag in the container's command line.
fn listen_flag(container: &Container) -> Option<&str> {
    let words = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten());
    let mut found = None;
    let mut value_next = false;
    for word in words {
        if value_next {
            found = Some(word.as_str());
            value_next = false;
        } else if word == "--listen" {
            value_next = true;
        } else if let Some(v) = word.strip_prefix("--listen=") {
            found = Some(v);
        }
    }
    found
}

/// The port of a `host:port` listen address.
fn port_of(address: &str) -> Option<i32> {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .map(i32::from)
}

fn is_tcp(port: &ContainerPort) -> bool {
    port.protocol.as_deref().is_none_or(|p| p == "TCP")
}

/// Makes the feed-server container (the first) expose its listening port as [`HTTP_PORT`],
/// unless some container already has a port of that name (see the module docs).
pub fn ensure_http_port(pod: &mut PodSpec) {
    let named = pod
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .any(|p| p.name.as_deref() == Some(HTTP_PORT));
    let Some(feed) = pod.containers.first_mut() else {
        return;
    };
    if named {
        return;
    }
    let listen = listen_port(feed);
    let ports = feed.ports.get_or_insert_with(Vec::new);
    match ports
        .iter_mut()
        .find(|p| p.container_port == listen && is_tcp(p))
    {
        Some(p) if p.name.is_none() => p.name = Some(HTTP_PORT.to_owned()),
        Some(_) => {}
        None => ports.push(ContainerPort {
            name: Some(HTTP_PORT.to_owned()),
            container_port: listen,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::EnvVar;

    fn port(name: Option<&str>, number: i32, protocol: Option<&str>) -> ContainerPort {
        ContainerPort {
            name: name.map(str::to_owned),
            container_port: number,
            protocol: protocol.map(str::to_owned),
            ..ContainerPort::default()
        }
    }

    fn container(name: &str, ports: Vec<ContainerPort>, listen: Option<&str>) -> Container {
        Container {
            name: name.to_owned(),
            ports: (!ports.is_empty()).then_some(ports),
            env: listen.map(|l| {
                vec![EnvVar {
                    name: ENV_LISTEN.to_owned(),
                    value: Some(l.to_owned()),
                    value_from: None,
                }]
            }),
            ..Container::default()
        }
    }

    fn ensured(containers: Vec<Container>) -> Vec<Container> {
        let mut pod = PodSpec {
            containers,
            ..PodSpec::default()
        };
        ensure_http_port(&mut pod);
        pod.containers
    }

    fn ports_of(c: &Container) -> Vec<(Option<&str>, i32)> {
        c.ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref(), p.container_port))
            .collect()
    }

    #[test]
    fn listen_port_reads_a_literal_feed_listen_or_defaults() {
        let cases = [
            (None, 8080),
            (Some("0.0.0.0:9000"), 9000),
            (Some("[::]:9100"), 9100),
            (Some("0.0.0.0"), 8080),
            (Some("0.0.0.0:http"), 8080),
            (Some("0.0.0.0:0"), 8080),
            (Some("0.0.0.0:70000"), 8080),
            (Some(""), 8080),
        ];
        for (listen, want) in cases {
            assert_eq!(
                listen_port(&container("f", vec![], listen)),
                want,
                "{listen:?}"
            );
        }
        let from_ref = Container {
            env: Some(vec![EnvVar {
                name: ENV_LISTEN.to_owned(),
                value: None,
                value_from: Some(Default::default()),
            }]),
            ..Container::default()
        };
        assert_eq!(listen_port(&from_ref), 8080);
    }

    #[test]
    fn the_listen_argument_wins_over_the_environment() {
        let with_args = |command: &[&str], args: &[&str], env: Option<&str>| Container {
            command: Some(command.iter().map(|s| (*s).to_owned()).collect()),
            args: Some(args.iter().map(|s| (*s).to_owned()).collect()),
            ..container("f", vec![], env)
        };
        let cases = [
            (with_args(&[], &["--listen", "0.0.0.0:9000"], None), 9000),
            (
                with_args(&[], &["--listen=0.0.0.0:9001"], Some("0.0.0.0:7000")),
                9001,
            ),
            (
                with_args(&["feed-server", "--listen", "[::]:9002"], &[], None),
                9002,
            ),
            (with_args(&[], &["--demo"], Some("0.0.0.0:7000")), 7000),
            (with_args(&[], &["--listen"], None), 8080),
            (
                with_args(&[], &["--listen", "nowhere"], Some("0.0.0.0:7000")),
                8080,
            ),
        ];
        for (c, want) in cases {
            assert_eq!(listen_port(&c), want, "{:?} {:?}", c.command, c.args);
        }
        // The port added for such a template is the one the server really listens on.
        let c = ensured(vec![with_args(&[], &["--listen", "0.0.0.0:9000"], None)]);
        assert_eq!(ports_of(&c[0]), [(Some("http"), 9000)]);
    }

    #[test]
    fn no_declared_port_gets_http_on_the_listen_port() {
        let c = ensured(vec![container("f", vec![], None)]);
        assert_eq!(ports_of(&c[0]), [(Some("http"), 8080)]);
        assert_eq!(
            c[0].ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
        let c = ensured(vec![container("f", vec![], Some("0.0.0.0:9000"))]);
        assert_eq!(ports_of(&c[0]), [(Some("http"), 9000)]);
    }

    #[test]
    fn an_unnamed_listen_port_is_named_http() {
        let c = ensured(vec![container(
            "f",
            vec![port(None, 9000, None)],
            Some("0.0.0.0:9000"),
        )]);
        assert_eq!(ports_of(&c[0]), [(Some("http"), 9000)]);
    }

    #[test]
    fn other_ports_are_kept_and_http_is_added_beside_them() {
        let c = ensured(vec![container(
            "f",
            vec![
                port(Some("debug"), 6060, None),
                port(None, 8080, Some("UDP")),
            ],
            None,
        )]);
        assert_eq!(
            ports_of(&c[0]),
            [(Some("debug"), 6060), (None, 8080), (Some("http"), 8080)]
        );
    }

    #[test]
    fn an_existing_http_port_anywhere_or_another_name_for_the_listen_port_is_left_alone() {
        let declared = vec![
            container("f", vec![port(Some("web"), 8080, None)], None),
            container("sidecar", vec![], None),
        ];
        assert_eq!(ensured(declared.clone()), declared);
        let sidecar_http = vec![
            container("f", vec![], None),
            container("proxy", vec![port(Some("http"), 8081, None)], None),
        ];
        assert_eq!(ensured(sidecar_http.clone()), sidecar_http);
        assert!(ensured(vec![]).is_empty());
    }

    #[test]
    fn only_the_first_container_gets_the_port() {
        let c = ensured(vec![
            container("f", vec![], None),
            container("sidecar", vec![], None),
        ]);
        assert_eq!(ports_of(&c[0]), [(Some("http"), 8080)]);
        assert!(c[1].ports.is_none());
    }

    #[test]
    fn ensuring_twice_changes_nothing_more() {
        let once = ensured(vec![container("f", vec![port(None, 8080, None)], None)]);
        assert_eq!(ensured(once.clone()), once);
    }
}
