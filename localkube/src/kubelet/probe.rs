//! Startup, readiness and liveness probes: their settings from the container spec (defaults as
//! Kubernetes documents them) and the bookkeeping of consecutive results against the
//! thresholds. The check itself (an HTTP GET, a TCP connect) is in the pod worker.

use std::time::Duration;

use serde_json::Value;

use super::backoff::TimeScale;

/// What a probe does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `httpGet`: success is a status in 200..400.
    Http {
        /// Port number (a named port resolved against the container's ports).
        port: u16,
        /// Request path.
        path: String,
    },
    /// `tcpSocket`: success is an accepted connection.
    Tcp {
        /// Port number.
        port: u16,
    },
    /// A probe this kubelet cannot run (`exec`, `grpc`, a port it cannot resolve): counted as a
    /// success, so such containers are not held back or restarted.
    Unsupported(String),
}

/// A probe's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// The check.
    pub action: Action,
    /// Before the first check (`initialDelaySeconds`, scaled).
    pub initial_delay: Duration,
    /// Between checks (`periodSeconds`, default 10, scaled).
    pub period: Duration,
    /// Per check (`timeoutSeconds`, default 1, not scaled).
    pub timeout: Duration,
    /// Consecutive successes to become ready again (`successThreshold`, default 1).
    pub success_threshold: u32,
    /// Consecutive failures to fail (`failureThreshold`, default 3).
    pub failure_threshold: u32,
}

/// The port a probe's `port` means: a number, or the name of one of the container's ports.
fn resolve_port(port: &Value, container: &Value) -> Option<u16> {
    if let Some(n) = port.as_u64() {
        return u16::try_from(n).ok();
    }
    let name = port.as_str()?;
    if let Ok(n) = name.parse::<u16>() {
        return Some(n);
    }
    container["ports"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
}

impl Probe {
    /// The probe `spec` (a container's `startupProbe`, `readinessProbe` or `livenessProbe`) of
    /// `container`; `None` when absent.
    pub fn parse(spec: &Value, container: &Value, scale: TimeScale) -> Option<Self> {
        if !spec.is_object() {
            return None;
        }
        let num = |k: &str, default: u64, min: u64| spec[k].as_u64().unwrap_or(default).max(min);
        let action = if spec["httpGet"].is_object() {
            match resolve_port(&spec["httpGet"]["port"], container) {
                Some(port) => Action::Http {
                    port,
                    path: spec["httpGet"]["path"].as_str().unwrap_or("/").to_owned(),
                },
                None => Action::Unsupported(format!("httpGet port {}", spec["httpGet"]["port"])),
            }
        } else if spec["tcpSocket"].is_object() {
            match resolve_port(&spec["tcpSocket"]["port"], container) {
                Some(port) => Action::Tcp { port },
                None => {
                    Action::Unsupported(format!("tcpSocket port {}", spec["tcpSocket"]["port"]))
                }
            }
        } else {
            Action::Unsupported(
                spec.as_object()
                    .and_then(|m| m.keys().find(|k| matches!(k.as_str(), "exec" | "grpc")))
                    .cloned()
                    .unwrap_or_else(|| "no handler".into()),
            )
        };
        Some(Self {
            action,
            initial_delay: scale.secs(num("initialDelaySeconds", 0, 0) as f64),
            period: scale.secs(num("periodSeconds", 10, 1) as f64),
            timeout: Duration::from_secs(num("timeoutSeconds", 1, 1)),
            success_threshold: u32::try_from(num("successThreshold", 1, 1)).unwrap_or(u32::MAX),
            failure_threshold: u32::try_from(num("failureThreshold", 3, 1)).unwrap_or(u32::MAX),
        })
    }
}

/// A probe's result so far: consecutive successes and failures, and the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally {
    successes: u32,
    failures: u32,
    passing: bool,
}

impl Tally {
    /// Before any check: a readiness probe starts failing (the container is not ready until
    /// it passes), a liveness probe passing (the container is alive until it fails).
    pub fn new(passing: bool) -> Self {
        Self {
            successes: 0,
            failures: 0,
            passing,
        }
    }

    /// The verdict: ready, or alive.
    pub fn passing(self) -> bool {
        self.passing
    }

    /// Whether the last `failure_threshold` checks all failed: a startup probe's end (the
    /// container is restarted), where a readiness or liveness probe flips its verdict.
    pub fn failures_reached(self, probe: &Probe) -> bool {
        self.failures >= probe.failure_threshold
    }

    /// Records one check's outcome; the verdict flips after `success_threshold` consecutive
    /// successes or `failure_threshold` consecutive failures.
    pub fn record(&mut self, ok: bool, probe: &Probe) {
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if self.successes >= probe.success_threshold {
                self.passing = true;
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.failures >= probe.failure_threshold {
                self.passing = false;
            }
        }
    }
}

/// Whether an HTTP status is a probe success.
pub fn http_success(status: u16) -> bool {
    (200..400).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container() -> Value {
        json!({"ports": [{"name": "http", "containerPort": 8080}, {"name": "big", "containerPort": 70000}]})
    }

    #[test]
    fn settings_default_as_kubernetes_documents_and_scale() {
        let scale = TimeScale::new(0.1).expect("valid");
        let p = Probe::parse(&json!({"httpGet": {"port": "http"}}), &container(), scale)
            .expect("probe");
        assert_eq!(
            p,
            Probe {
                action: Action::Http {
                    port: 8080,
                    path: "/".into()
                },
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
        let p = Probe::parse(
            &json!({"httpGet": {"port": 9000, "path": "/readyz"}, "initialDelaySeconds": 5,
                    "periodSeconds": 2, "timeoutSeconds": 3, "successThreshold": 2, "failureThreshold": 1}),
            &container(),
            scale,
        )
        .expect("probe");
        assert_eq!(
            p.action,
            Action::Http {
                port: 9000,
                path: "/readyz".into()
            }
        );
        assert_eq!(
            (
                p.initial_delay,
                p.period,
                p.timeout,
                p.success_threshold,
                p.failure_threshold
            ),
            (
                Duration::from_millis(500),
                Duration::from_millis(200),
                Duration::from_secs(3),
                2,
                1
            )
        );
        let zero = Probe::parse(
            &json!({"tcpSocket": {"port": "8080"}, "periodSeconds": 0, "failureThreshold": 0}),
            &container(),
            TimeScale::REAL,
        )
        .expect("probe");
        assert_eq!(
            (zero.action, zero.period, zero.failure_threshold),
            (Action::Tcp { port: 8080 }, Duration::from_secs(1), 1)
        );
    }

    #[test]
    fn unrunnable_probes_are_marked_unsupported() {
        let c = container();
        let cases = [
            (json!({"exec": {"command": ["true"]}}), "exec"),
            (json!({"grpc": {"port": 1}}), "grpc"),
            (json!({}), "no handler"),
            (
                json!({"httpGet": {"port": "nope"}}),
                "httpGet port \"nope\"",
            ),
            (json!({"httpGet": {"port": "big"}}), "httpGet port \"big\""),
            (
                json!({"tcpSocket": {"port": 70000}}),
                "tcpSocket port 70000",
            ),
        ];
        for (spec, want) in cases {
            let p = Probe::parse(&spec, &c, TimeScale::REAL).expect("probe");
            assert_eq!(p.action, Action::Unsupported(want.into()), "{spec}");
        }
        assert!(Probe::parse(&Value::Null, &c, TimeScale::REAL).is_none());
    }

    fn probe(success_threshold: u32, failure_threshold: u32) -> Probe {
        Probe {
            action: Action::Tcp { port: 1 },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold,
            failure_threshold,
        }
    }

    #[test]
    fn verdicts_flip_only_after_their_thresholds_of_consecutive_results() {
        let p = probe(2, 3);
        let mut t = Tally::new(false);
        let mut seen = Vec::new();
        for ok in [
            true, false, true, true, false, false, true, false, false, false, true, true,
        ] {
            t.record(ok, &p);
            seen.push(t.passing());
        }
        assert_eq!(
            seen,
            [
                false, false, false, true, true, true, true, true, true, false, false, true
            ]
        );
        let mut alive = Tally::new(true);
        alive.record(false, &probe(1, 1));
        assert!(!alive.passing(), "failureThreshold 1 fails at once");
        alive.record(true, &probe(1, 1));
        assert!(alive.passing());
    }

    #[test]
    fn a_startup_probe_gives_up_at_its_failure_threshold_of_consecutive_failures() {
        let p = probe(1, 3);
        let mut startup = Tally::new(false);
        let mut given_up = Vec::new();
        for ok in [false, false, true, false, false, false] {
            startup.record(ok, &p);
            given_up.push(startup.failures_reached(&p));
        }
        assert_eq!(given_up, [false, false, false, false, false, true]);
        let mut passed = Tally::new(false);
        passed.record(true, &p);
        assert!(passed.passing() && !passed.failures_reached(&p));
    }

    #[test]
    fn http_successes_are_2xx_and_3xx() {
        for (code, want) in [
            (199, false),
            (200, true),
            (302, true),
            (399, true),
            (400, false),
            (500, false),
        ] {
            assert_eq!(http_success(code), want, "{code}");
        }
    }
}
