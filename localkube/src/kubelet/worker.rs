//! One pod's life on the node: its directory and volumes, its containers' processes, probes,
//! restarts with back-off, and its status written back to the API server. A worker runs until
//! its pod is gone (or deleting) or the kubelet stops, then stops its processes with the pod's
//! grace period.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Settings;
use super::backoff::{failures_after, pull_delay, restart_delay};
use super::env::{self, Objects, Pod, Source, container_env, process_command, rewrite_path};
use super::probe::{Action, Probe, Tally, http_success};
use super::process::{Launch, Process, exit_code};
use super::status::{ContainerView, Exit, Placement, RestartPolicy, State, WaitReason, pod_status};
use super::volumes::{self, Files, MountError};
use crate::FakeApi;
use crate::clock;
use crate::store::is_deleting;

/// The default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE_SECONDS: f64 = 30.0;

/// The pod a worker runs.
#[derive(Clone, Debug)]
pub(super) struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// ConfigMaps and Secrets of one namespace, read from the store.
struct Stored<'a> {
    api: &'a FakeApi,
    namespace: &'a str,
}

impl Objects for Stored<'_> {
    fn data(&self, source: Source, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let resource = match source {
            Source::ConfigMap => "configmaps",
            Source::Secret => "secrets",
        };
        self.api
            .get("v1", resource, self.namespace, name)
            .map(|obj| env::object_data(source, &obj))
    }
}

/// A probe in progress.
struct ProbeRun {
    probe: Probe,
    tally: Tally,
    next: Instant,
    in_flight: Option<JoinHandle<bool>>,
}

impl ProbeRun {
    fn new(probe: Probe, passing: bool, started: Instant) -> Self {
        Self {
            next: started + probe.initial_delay,
            probe,
            tally: Tally::new(passing),
            in_flight: None,
        }
    }

    /// Collects a finished check and starts the next one when it is due.
    async fn poll(&mut self, ip: Ipv4Addr, http: &reqwest::Client, now: Instant) {
        if self.in_flight.as_ref().is_some_and(JoinHandle::is_finished)
            && let Some(h) = self.in_flight.take()
        {
            let ok = h.await.unwrap_or(false);
            self.tally.record(ok, &self.probe);
        }
        if self.in_flight.is_none() && now >= self.next {
            self.next = now + self.probe.period;
            let (action, timeout, http) =
                (self.probe.action.clone(), self.probe.timeout, http.clone());
            self.in_flight = Some(tokio::spawn(check(action, ip, timeout, http)));
        }
    }
}

/// The probe whose failure restarts a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Restarting {
    /// The startup probe failed `failureThreshold` times in a row.
    Startup,
    /// The liveness probe failed.
    Liveness,
}

impl std::fmt::Display for Restarting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Startup => "startup",
            Self::Liveness => "liveness",
        })
    }
}

/// A running container's probes.
struct Probes {
    /// The startup probe until it passes: meanwhile the other two wait and the container is
    /// neither started nor ready; `None` once passed (or without one).
    startup: Option<ProbeRun>,
    readiness: Option<ProbeRun>,
    liveness: Option<ProbeRun>,
}

impl Probes {
    /// Past its startup probe (the kubelet's `started`).
    fn started(&self) -> bool {
        self.startup.is_none()
    }

    /// Started and passing its readiness probe (or without one).
    fn ready(&self) -> bool {
        self.started() && self.readiness.as_ref().is_none_or(|r| r.tally.passing())
    }

    /// Runs the checks that are due; the probe whose failure restarts the container, if one
    /// failed (the startup probe at its failure threshold, or the liveness probe).
    async fn poll(
        &mut self,
        ip: Ipv4Addr,
        http: &reqwest::Client,
        now: Instant,
    ) -> Option<Restarting> {
        if let Some(startup) = &mut self.startup {
            startup.poll(ip, http, now).await;
            if startup.tally.failures_reached(&startup.probe) {
                return Some(Restarting::Startup);
            }
            if !startup.tally.passing() {
                return None;
            }
            self.startup = None;
            // Their initial delays count from the container's start; they run from now on.
            for held in [self.readiness.as_mut(), self.liveness.as_mut()]
                .into_iter()
                .flatten()
            {
                held.next = held.next.max(now);
            }
        }
        for run in [self.readiness.as_mut(), self.liveness.as_mut()]
            .into_iter()
            .flatten()
        {
            run.poll(ip, http, now).await;
        }
        self.liveness
            .as_ref()
            .is_some_and(|l| !l.tally.passing())
            .then_some(Restarting::Liveness)
    }
}

/// One check: an HTTP GET (2xx/3xx) or a TCP connect within `timeout`.
async fn check(action: Action, ip: Ipv4Addr, timeout: Duration, http: reqwest::Client) -> bool {
    match action {
        Action::Http { port, path } => {
            let url = format!("http://{ip}:{port}{path}");
            matches!(http.get(url).timeout(timeout).send().await, Ok(r) if http_success(r.status().as_u16()))
        }
        Action::Tcp { port } => matches!(
            tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip, port))).await,
            Ok(Ok(_))
        ),
        Action::Unsupported(_) => true,
    }
}

/// Where a container is in its life.
enum Stage {
    /// To be started at `not_before`; meanwhile waiting for `reason`.
    Waiting {
        not_before: Instant,
        reason: WaitReason,
        message: String,
    },
    /// Running.
    Running {
        process: Process,
        started: Instant,
        started_at: String,
        probes: Box<Probes>,
    },
    /// Exited, not to be restarted.
    Done(Exit),
}

struct Container {
    spec: Value,
    name: String,
    image: String,
    stage: Stage,
    starts: u32,
    failures: u32,
    pull_failures: u32,
    last_exit: Option<Exit>,
    id: String,
}

impl Container {
    fn new(spec: &Value, now: Instant) -> Self {
        Self {
            name: spec["name"].as_str().unwrap_or_default().to_owned(),
            image: spec["image"].as_str().unwrap_or_default().to_owned(),
            spec: spec.clone(),
            stage: Stage::Waiting {
                not_before: now,
                reason: WaitReason::ContainerCreating,
                message: String::new(),
            },
            starts: 0,
            failures: 0,
            pull_failures: 0,
            last_exit: None,
            id: String::new(),
        }
    }

    fn view(&self) -> ContainerView {
        let (state, started, ready) = match &self.stage {
            Stage::Waiting {
                reason, message, ..
            } => (
                State::Waiting {
                    reason: *reason,
                    message: message.clone(),
                },
                false,
                false,
            ),
            Stage::Running {
                started_at, probes, ..
            } => (
                State::Running {
                    started_at: started_at.clone(),
                },
                probes.started(),
                probes.ready(),
            ),
            Stage::Done(exit) => (State::Terminated(exit.clone()), false, false),
        };
        ContainerView {
            name: self.name.clone(),
            image: self.image.clone(),
            state,
            last_exit: self.last_exit.clone(),
            ready,
            started,
            restart_count: self.starts.saturating_sub(1),
            container_id: self.id.clone(),
        }
    }
}

/// The pod's volumes: what was written and what waits for the sync delay.
#[derive(Default)]
struct Volumes {
    mounted: bool,
    written: BTreeMap<String, Files>,
    pending: BTreeMap<String, (Files, Instant)>,
}

/// A pod on the node.
pub(super) struct Worker {
    settings: Arc<Settings>,
    pod: PodRef,
    ip: Ipv4Addr,
    dir: PathBuf,
    containers: Vec<Container>,
    volumes: Volumes,
    mount_error: Option<MountError>,
    placement: Placement,
    policy: RestartPolicy,
    grace: Duration,
}

impl Worker {
    pub(super) fn new(settings: Arc<Settings>, pod: &Value, ip: Ipv4Addr) -> Self {
        let meta = &pod["metadata"];
        let r = PodRef {
            namespace: meta["namespace"].as_str().unwrap_or_default().to_owned(),
            name: meta["name"].as_str().unwrap_or_default().to_owned(),
            uid: meta["uid"].as_str().unwrap_or_default().to_owned(),
        };
        let dir = super::logs::pod_dir(&settings.root, &r.namespace, &r.name, &r.uid);
        let now = Instant::now();
        Self {
            containers: pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| Container::new(c, now))
                .collect(),
            placement: Placement {
                pod_ip: ip.to_string(),
                host_ip: super::HOST_IP.into(),
                start_time: clock::now(),
            },
            policy: RestartPolicy::of(pod),
            grace: grace_of(pod, &settings),
            volumes: Volumes::default(),
            mount_error: None,
            settings,
            pod: r,
            ip,
            dir,
        }
    }

    /// The pod as stored, if it is still this pod and not deleting.
    fn current(&self) -> Option<Value> {
        self.settings
            .api
            .get("v1", "pods", &self.pod.namespace, &self.pod.name)
            .filter(|p| p["metadata"]["uid"] == self.pod.uid.as_str() && !is_deleting(p))
    }

    /// Runs the pod until it goes or `stop` is cancelled, then stops its processes.
    pub(super) async fn run(mut self, stop: CancellationToken) {
        let mut tick = super::ticker(super::TICK);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let Some(pod) = self.current() else { break };
            self.grace = grace_of(&pod, &self.settings);
            let pod = self.with_placement(pod);
            self.sync_volumes(&pod);
            for i in 0..self.containers.len() {
                self.step(i, &pod).await;
            }
            self.write_status();
        }
        for c in std::mem::take(&mut self.containers) {
            if let Stage::Running { process, .. } = c.stage {
                let pid = process.pid();
                if let Err(e) = process.terminate(self.grace).await {
                    tracing::warn!(pod = %self.pod.name, pid, "stopping a container failed: {e}");
                }
            }
        }
    }

    /// The pod with its IPs in its status (what fieldRefs read).
    fn with_placement(&self, mut pod: Value) -> Value {
        pod["status"]["podIP"] = self.placement.pod_ip.as_str().into();
        pod["status"]["podIPs"] = serde_json::json!([{"ip": self.placement.pod_ip}]);
        pod["status"]["hostIP"] = self.placement.host_ip.as_str().into();
        pod["status"]["hostIPs"] = serde_json::json!([{"ip": self.placement.host_ip}]);
        pod
    }

    /// Writes the volumes: all at once before the first container starts, later changes of
    /// their ConfigMaps and Secrets only after the sync delay.
    fn sync_volumes(&mut self, pod: &Value) {
        let now = Instant::now();
        let objects = Stored {
            api: &self.settings.api,
            namespace: &self.pod.namespace,
        };
        let dir = self.dir.join("volumes");
        for (name, kind) in volumes::volumes(pod) {
            let files = match volumes::desired(&name, &kind, &objects) {
                Ok(f) => f,
                Err(e) if !self.volumes.mounted => {
                    self.mount_error = Some(e);
                    return;
                }
                // A ConfigMap deleted after the mount: its files stay, as on a node.
                Err(_) => continue,
            };
            let due = match self.volumes.pending.get(&name) {
                _ if !self.volumes.mounted => Some(now),
                _ if self.volumes.written.get(&name) == Some(&files) => {
                    self.volumes.pending.remove(&name);
                    None
                }
                Some((waiting, due)) if *waiting == files => Some(*due),
                _ => {
                    let due = now + self.settings.sync_delay;
                    self.volumes
                        .pending
                        .insert(name.clone(), (files.clone(), due));
                    Some(due)
                }
            };
            if due.is_some_and(|d| d <= now) {
                match volumes::write(&dir.join(&name), &files) {
                    Ok(()) => {
                        self.volumes.pending.remove(&name);
                        self.volumes.written.insert(name, files);
                    }
                    Err(e) => {
                        self.mount_error = Some(MountError {
                            volume: name,
                            reason: e.to_string(),
                        });
                        return;
                    }
                }
            }
        }
        self.volumes.mounted = true;
        self.mount_error = None;
    }

    /// Advances container `i`: start it when due, watch it exit, run its probes.
    async fn step(&mut self, i: usize, pod: &Value) {
        let now = Instant::now();
        let image = self.containers[i].image.clone();
        let failed_probe = match &mut self.containers[i].stage {
            Stage::Running {
                process,
                started,
                started_at,
                probes,
            } => {
                if let Some(status) = process.exited() {
                    let run = (*started, started_at.clone());
                    self.exited(i, status, run);
                    return;
                }
                probes.poll(self.ip, &self.settings.http, now).await
            }
            Stage::Waiting {
                not_before,
                reason,
                message,
            } => {
                if now < *not_before {
                    if *reason == WaitReason::ErrImagePull {
                        *reason = WaitReason::ImagePullBackOff;
                        *message = format!("Back-off pulling image \"{image}\"");
                    }
                    return;
                }
                self.start(i, pod);
                return;
            }
            Stage::Done(_) => return,
        };
        if let Some(probe) = failed_probe {
            let c = &mut self.containers[i];
            let stage = std::mem::replace(
                &mut c.stage,
                Stage::Waiting {
                    not_before: now,
                    reason: WaitReason::ContainerCreating,
                    message: String::new(),
                },
            );
            if let Stage::Running {
                process,
                started,
                started_at,
                ..
            } = stage
            {
                tracing::info!(pod = %self.pod.name, container = %c.name, "{probe} probe failed, restarting");
                match process.terminate(self.grace).await {
                    Ok(status) => self.exited(i, status, (started, started_at)),
                    Err(e) => {
                        tracing::warn!(pod = %self.pod.name, "stopping a container failed: {e}");
                    }
                }
            }
        }
    }

    /// Container `i`, started at `run` (instant, RFC 3339), exited with `status`: restart it
    /// after its back-off, or leave it terminated, as the restart policy says.
    fn exited(&mut self, i: usize, status: std::process::ExitStatus, run: (Instant, String)) {
        let now = Instant::now();
        let (started, started_at) = run;
        let ran = now.duration_since(started);
        let scale = self.settings.scale;
        let (pod_name, ns, uid) = (&self.pod.name, &self.pod.namespace, &self.pod.uid);
        let c = &mut self.containers[i];
        let (code, signal) = exit_code(status);
        let exit = Exit {
            exit_code: code,
            signal,
            started_at,
            finished_at: clock::now(),
        };
        if !self.policy.restarts(code) {
            c.stage = Stage::Done(exit);
            return;
        }
        c.failures = failures_after(c.failures, ran, scale);
        let delay = restart_delay(c.failures);
        c.last_exit = Some(exit);
        c.stage = Stage::Waiting {
            not_before: now + scale.of(delay),
            reason: if delay.is_zero() {
                WaitReason::ContainerCreating
            } else {
                WaitReason::CrashLoopBackOff
            },
            message: if delay.is_zero() {
                String::new()
            } else {
                format!(
                    "back-off {}s restarting failed container={} pod={pod_name}_{ns}({uid})",
                    delay.as_secs(),
                    c.name
                )
            },
        };
    }

    /// Tries to start container `i`: its image, its config, its volumes, then the process.
    fn start(&mut self, i: usize, pod: &Value) {
        let now = Instant::now();
        let settings = self.settings.clone();
        let scale = settings.scale;
        let wait = |c: &mut Container, reason: WaitReason, message: String, after: Duration| {
            c.stage = Stage::Waiting {
                not_before: now + after,
                reason,
                message,
            };
        };
        let Some(rule) = settings.images.resolve(&self.containers[i].image) else {
            let c = &mut self.containers[i];
            c.pull_failures = c.pull_failures.saturating_add(1);
            let message = format!(
                "failed to pull image \"{}\": no localkube image rule matches it (localkube --image PATTERN=PATH)",
                c.image
            );
            let after = scale.of(pull_delay(c.pull_failures));
            wait(c, WaitReason::ErrImagePull, message, after);
            return;
        };
        let objects = Stored {
            api: &settings.api,
            namespace: &self.pod.namespace,
        };
        let c = &mut self.containers[i];
        c.pull_failures = 0;
        let vars = match container_env(pod, &c.spec, &objects) {
            Ok(v) => v,
            Err(e) => {
                return wait(
                    c,
                    WaitReason::CreateContainerConfigError,
                    e.to_string(),
                    Duration::ZERO,
                );
            }
        };
        if let Some(e) = &self.mount_error {
            return wait(
                c,
                WaitReason::ContainerCreating,
                e.to_string(),
                Duration::ZERO,
            );
        }
        let mounts = volumes::mounts(&c.spec, &self.dir.join("volumes"));
        let mount_refs: Vec<(String, &std::path::Path)> = mounts
            .iter()
            .map(|(m, d)| (m.clone(), d.as_path()))
            .collect();
        let ip = self.placement.pod_ip.as_str();
        let (args, env) = process_command(
            &c.spec,
            &vars,
            &Pod {
                ip,
                hostname: &self.pod.name,
                mounts: &mount_refs,
                dns: self.settings.dns.as_ref(),
            },
            rule.listen_env.as_deref(),
        );
        let workdir = c.spec["workingDir"]
            .as_str()
            .map(|w| PathBuf::from(rewrite_path(w, &mount_refs)))
            .filter(|w| w.is_dir())
            .unwrap_or_else(|| self.dir.clone());
        let log = super::logs::log_file(&self.dir, &c.name, c.starts);
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            return wait(
                c,
                WaitReason::RunContainerError,
                e.to_string(),
                scale.of(restart_delay(2)),
            );
        }
        let launch = Launch {
            binary: &rule.binary,
            args: &args,
            env: &env,
            dir: &workdir,
            log: &log,
        };
        match Process::start(&launch, &settings.pids, self.grace) {
            Ok(process) => {
                let started = Instant::now();
                c.starts = c.starts.saturating_add(1);
                c.id = format!("localkube://{}", process.pid());
                let probe = |k: &str| Probe::parse(&c.spec[k], &c.spec, scale);
                c.stage = Stage::Running {
                    probes: Box::new(Probes {
                        startup: probe("startupProbe").map(|p| ProbeRun::new(p, false, started)),
                        readiness: probe("readinessProbe")
                            .map(|p| ProbeRun::new(p, false, started)),
                        liveness: probe("livenessProbe").map(|p| ProbeRun::new(p, true, started)),
                    }),
                    process,
                    started,
                    started_at: clock::now(),
                };
            }
            Err(e) => {
                c.failures = c.failures.saturating_add(1);
                let message = format!("failed to start {}: {e}", rule.binary.display());
                wait(
                    c,
                    WaitReason::RunContainerError,
                    message,
                    scale.of(restart_delay(c.failures)),
                );
            }
        }
    }

    /// Writes the pod's status when it changed.
    fn write_status(&self) {
        let views: Vec<ContainerView> = self.containers.iter().map(Container::view).collect();
        let uid = self.pod.uid.clone();
        let (placement, policy) = (&self.placement, self.policy);
        self.settings
            .api
            .update("v1", "pods", &self.pod.namespace, &self.pod.name, |p| {
                if p["metadata"]["uid"] != uid.as_str() {
                    return;
                }
                let now = clock::now();
                let new = pod_status(&p["status"], placement, policy, &views, &now);
                if new != p["status"] {
                    p["status"] = new;
                }
            });
    }
}

/// The pod's `terminationGracePeriodSeconds` (default 30), scaled.
fn grace_of(pod: &Value, settings: &Settings) -> Duration {
    let secs = pod["spec"]["terminationGracePeriodSeconds"]
        .as_f64()
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    settings.scale.secs(secs)
}
