//! The kubelet and the Deployment controller through real `kubectl` against the `localkube
//! --kubelet` binary, on a time scale of 0.05 (a 10 s back-off takes 0.5 s, the 30 s ConfigMap
//! sync delay 1.5 s; everything is applied at once and checked in one polling loop): a
//! Deployment of the fault-injection feed-server gets Running, Ready pods that serve on their
//! own loopback IPs with the template's env, args and ConfigMap volume; an
//! unknown image gives ImagePullBackOff and, past its progress deadline,
//! ProgressDeadlineExceeded; a container that exits at start goes into CrashLoopBackOff with a
//! growing restartCount; `kubectl logs` (and `--previous`) shows the processes' output; a
//! ConfigMap update reaches the pods' files after the sync delay; a deleted Deployment's
//! processes are gone, and so are the rest when localkube stops.
//!
//! Needs kubectl and the fault-injection feed-server (`make test` builds it and sets
//! FEEDROLL_FAULTY_FEED_SERVER; by hand: `cargo build -p feed-server --features
//! fault-injection` and copy target/debug/feed-server to target/fault-injection/): without
//! them the test fails, it does not skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The time scale of the run.
const SCALE: f64 = 0.05;

/// The fault-injection feed-server, where localkube's default image rule looks for it.
fn faulty_feed_server() -> PathBuf {
    std::env::var_os(feedroll_localkube::kubelet::images::FAULTY_FEED_SERVER_ENV).map_or_else(
        || {
            Path::new(env!("CARGO_BIN_EXE_localkube"))
                .parent()
                .and_then(Path::parent)
                .map(|target| target.join("fault-injection").join("feed-server"))
                .unwrap_or_default()
        },
        PathBuf::from,
    )
}

struct Cluster {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }
}

/// SIGTERM (localkube stops its pods' processes), then SIGKILL after 10 s.
fn terminate(child: &mut Child) {
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn start() -> Cluster {
    let feed_server = faulty_feed_server();
    assert!(
        feed_server.is_file(),
        "this test runs the fault-injection feed-server, not found at {} (make test builds it; by hand: cargo build -p feed-server --features fault-injection && mkdir -p target/fault-injection && cp target/debug/feed-server target/fault-injection/)",
        feed_server.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new(env!("CARGO_BIN_EXE_localkube"))
        .args([
            "--dir",
            path_str(dir.path()),
            "--namespace",
            "feed",
            "--kubelet",
        ])
        .args([
            "--time-scale",
            &SCALE.to_string(),
            "--kubelet-sync-delay",
            "30s",
        ])
        .arg("--image")
        .arg(format!("feed-server:*={}", feed_server.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start localkube");
    let cluster = Cluster {
        child: Some(child),
        dir,
    };
    wait_for("localkube's kubeconfig", || {
        cluster.dir.path().join("kubeconfig").exists().then_some(())
    });
    cluster
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Polls `f` every 50 ms until it gives something (printing how long that took); fails
/// after 20 s.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            eprintln!("{:>7.2?}  {what}", started.elapsed());
            return v;
        }
        assert!(Instant::now() < deadline, "no {what} within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Cluster {
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("kubectl is required for this test and could not run ({e})")
            });
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.unwrap_or_default().as_bytes())
                .expect("kubectl stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-n", "feed", "get", "-o", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all, None)).expect("kubectl -o json")
    }
}

const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: crash, namespace: feed}
spec:
  replicas: 1
  selector: {matchLabels: {app: crash}}
  template:
    metadata: {labels: {app: crash}}
    spec:
      containers:
        - name: feed-server
          image: feed-server:test
          env: [{name: FEED_FAULT_EXIT_AT_START, value: "1"}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: profile, namespace: feed}
data: {profile.json: "v1", mode: fast}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: feed}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: feed-server
          image: ghcr.io/feedroll/feed-server:test
          args: ["--listen", "0.0.0.0:8080", "--log-format", "text"]
          ports: [{name: http, containerPort: 8080}]
          env:
            - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
            - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
            - {name: MODE, valueFrom: {configMapKeyRef: {name: profile, key: mode}}}
            - {name: GREETING, value: "hello $(POD_NAME)"}
            - {name: PROFILE_PATH, value: /etc/feed/profile.json}
          # As Kubernetes documents a slow starter (period 10 s × 30: five minutes to start):
          # the liveness probe's six seconds only count once the process answers. Without it,
          # the time scale shrinks those six seconds to 0.3 s, less than a debug build takes
          # to start on a busy machine.
          startupProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 10, failureThreshold: 30}
          readinessProbe: {httpGet: {path: /readyz, port: http}, periodSeconds: 2}
          livenessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 2}
          volumeMounts: [{name: profile, mountPath: /etc/feed}]
      volumes: [{name: profile, configMap: {name: profile}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nope, namespace: feed}
spec:
  replicas: 1
  progressDeadlineSeconds: 20
  selector: {matchLabels: {app: nope}}
  template:
    metadata: {labels: {app: nope}}
    spec:
      containers: [{name: app, image: "registry.invalid/nope:1"}]
---
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: feed, labels: {app: solo}}
spec:
  terminationGracePeriodSeconds: 5
  containers: [{name: feed-server, image: feed-server:test, ports: [{containerPort: 9090}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: sick, namespace: feed, labels: {app: sick}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - name: feed-server
      image: feed-server:test
      livenessProbe: {httpGet: {path: /no-such-page, port: 8080}, periodSeconds: 1, failureThreshold: 2}
---
apiVersion: v1
kind: Pod
metadata: {name: stuck, namespace: feed, labels: {app: stuck}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - name: feed-server
      image: feed-server:test
      startupProbe: {httpGet: {path: /no-such-page, port: 8080}, periodSeconds: 1, failureThreshold: 20}
      readinessProbe: {httpGet: {path: /readyz, port: 8080}, periodSeconds: 1}
      livenessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
"#;

fn condition<'a>(obj: &'a Value, kind: &str) -> &'a Value {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

/// The process of a pod's first container (`containerID` is `localkube://PID`).
fn pid_of(pod: &Value) -> u32 {
    pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .and_then(|id| id.strip_prefix("localkube://"))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no localkube://PID container ID: {pod}"))
}

/// The NUL-separated strings of `/proc/PID/FILE` (`environ`, `cmdline`).
fn proc_strings(pid: u32, file: &str) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/{file}")).expect("the pod's process exists");
    raw.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn environ(pid: u32) -> Vec<String> {
    proc_strings(pid, "environ")
}

/// Whether `pid` runs (not gone, not a zombie).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

/// An HTTP/1.0 GET's status line from `ip:port`.
fn http_status(addr: &str, path: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the pod");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n").expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or_default().to_owned()
}

/// Everything in namespace `feed` at one moment: Deployments and pods by name, pods by their
/// `app` label.
struct World {
    deployments: Vec<Value>,
    pods: Vec<Value>,
}

impl World {
    fn deployment(&self, name: &str) -> &Value {
        self.deployments
            .iter()
            .find(|d| d["metadata"]["name"] == name)
            .unwrap_or(&Value::Null)
    }

    fn pods(&self, app: &str) -> Vec<&Value> {
        self.pods
            .iter()
            .filter(|p| p["metadata"]["labels"]["app"] == app)
            .collect()
    }

    /// The first container's status of the first pod of `app`.
    fn container(&self, app: &str) -> &Value {
        self.pods(app)
            .first()
            .map_or(&Value::Null, |p| &p["status"]["containerStatuses"][0])
    }

    fn rolled_out(&self, name: &str, replicas: u64) -> bool {
        let d = self.deployment(name);
        let s = &d["status"];
        [
            "readyReplicas",
            "availableReplicas",
            "updatedReplicas",
            "replicas",
        ]
        .iter()
        .all(|k| s[*k] == replicas)
            && s["observedGeneration"] == d["metadata"]["generation"]
    }
}

impl Cluster {
    fn world(&self) -> World {
        let list = self.json(&["deployments,pods"]);
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let (deployments, pods) = items.into_iter().partition(|o| o["kind"] == "Deployment");
        World { deployments, pods }
    }
}

#[test]
fn deployments_become_real_processes_through_kubectl() {
    let mut c = start();
    let out = c.ok(&["apply", "-f", "-"], Some(MANIFESTS));
    assert!(out.contains("deployment.apps/web created"), "{out}");

    // Everything applied comes to its state: web rolled out; the unknown image in
    // ImagePullBackOff past its progress deadline (20 s × 0.05); the container that exits at
    // start in CrashLoopBackOff, its restartCount seen growing; the pod failing its liveness
    // probe (a 404) restarted, and so is the one failing its startup probe; the bare pod ready.
    let mut crash_restarts: Option<u64> = None;
    // The pod failing its startup probe: seen running yet neither started nor ready (its
    // readiness probe would pass: the other probes wait for the startup probe), never seen
    // started or ready.
    let (mut stuck_seen_running, mut stuck_seen_started) = (false, false);
    let world = wait_for("every object in its state", || {
        let w = c.world();
        let stuck = w.container("stuck");
        stuck_seen_running |= stuck["state"]["running"].is_object()
            && stuck["started"] == false
            && stuck["ready"] == false;
        stuck_seen_started |= stuck["started"] == true || stuck["ready"] == true;
        let crash = w.container("crash");
        let restarts = crash["restartCount"].as_u64().filter(|n| *n >= 1);
        let grown = restarts.is_some_and(|n| crash_restarts.is_some_and(|before| n > before));
        crash_restarts = crash_restarts.or(restarts);
        (w.rolled_out("web", 2)
            && grown
            && crash["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            && w.container("nope")["state"]["waiting"]["reason"] == "ImagePullBackOff"
            && condition(w.deployment("nope"), "Progressing")["reason"]
                == "ProgressDeadlineExceeded"
            && w.container("sick")["restartCount"].as_u64() >= Some(1)
            && stuck["restartCount"].as_u64() >= Some(1)
            && stuck_seen_running
            && w.container("solo")["ready"] == true)
            .then_some(w)
    });
    let web = world.deployment("web");
    assert_eq!(condition(web, "Available")["status"], "True", "{web}");
    assert_eq!(
        condition(web, "Progressing")["reason"],
        "NewReplicaSetAvailable",
        "{web}"
    );
    let nope = world.deployment("nope");
    assert_eq!(condition(nope, "Progressing")["status"], "False");
    assert_eq!(nope["status"]["readyReplicas"], 0);
    let nope_pod = world.pods("nope")[0];
    assert_eq!(nope_pod["status"]["phase"], "Pending");
    assert_eq!(condition(nope_pod, "Ready")["status"], "False");
    let crash = world.container("crash");
    assert_eq!(crash["lastState"]["terminated"]["exitCode"], 70, "{crash}");
    assert_eq!(crash["ready"], false);
    assert_eq!(
        world.pods("crash")[0]["status"]["phase"],
        "Running",
        "restarting containers keep the pod Running"
    );
    // 0 once feed-server handles SIGTERM; 143 when the signal came before its handler.
    let code = &world.container("sick")["lastState"]["terminated"]["exitCode"];
    assert!(code == 0 || code == 143, "{}", world.container("sick"));
    assert!(
        !stuck_seen_started,
        "never passed its startup probe, yet started or ready"
    );
    let stuck = world.container("stuck");
    let code = &stuck["lastState"]["terminated"]["exitCode"];
    assert!(code == 0 || code == 143, "{stuck}");

    // kubectl get prints the columns a real API server's printers give.
    let table = c.ok(&["-n", "feed", "get", "pods"], None);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{table}"
    );
    let row = |prefix: &str| -> Vec<Vec<String>> {
        table
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    let web_rows = row("web-");
    assert_eq!(web_rows.len(), 2, "{table}");
    assert!(
        web_rows.iter().all(|r| r[1..4] == ["1/1", "Running", "0"]),
        "{table}"
    );
    assert!(
        row("nope-")
            .iter()
            .all(|r| r[1] == "0/1" && ["ImagePullBackOff", "ErrImagePull"].contains(&r[2].as_str())),
        "{table}"
    );
    let deployments = c.ok(&["-n", "feed", "get", "deployments"], None);
    let header: Vec<&str> = deployments
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    let web: Vec<&str> = deployments
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(web[1..4], ["2/2", "2", "2"], "{deployments}");

    // web's pods: Running and Ready, each on its own IP, with the template's env and args.
    let pods = world.pods("web");
    assert_eq!(pods.len(), 2);
    let mut ips = Vec::new();
    let mut pids = Vec::new();
    for pod in pods {
        let (meta, st) = (&pod["metadata"], &pod["status"]);
        let name = meta["name"].as_str().unwrap_or_default();
        let hash = meta["labels"]["pod-template-hash"]
            .as_str()
            .unwrap_or_default();
        assert!(
            !hash.is_empty() && name.starts_with(&format!("web-{hash}-")),
            "{name}"
        );
        assert_eq!(meta["ownerReferences"][0]["kind"], "Deployment");
        assert_eq!(st["phase"], "Running", "{pod}");
        for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            assert_eq!(condition(pod, kind)["status"], "True", "{kind}: {pod}");
        }
        let cs = &st["containerStatuses"][0];
        assert_eq!(
            (&cs["ready"], &cs["started"], &cs["restartCount"]),
            (&Value::Bool(true), &Value::Bool(true), &Value::from(0))
        );
        assert!(cs["state"]["running"]["startedAt"].is_string(), "{cs}");
        let ip = st["podIP"].as_str().unwrap_or_default().to_owned();
        assert!(
            ip.starts_with("127.10.") && st["hostIP"] == "127.0.0.1",
            "{st}"
        );
        assert_eq!(st["podIPs"][0]["ip"], ip.as_str());
        let answer = http_status(&format!("{ip}:8080"), "/readyz");
        assert!(answer.contains(" 200 "), "served on the pod's IP: {answer}");
        let pid = pid_of(pod);
        let env = environ(pid);
        for want in [
            format!("POD_NAME={name}"),
            format!("POD_IP={ip}"),
            "MODE=fast".to_owned(),
            format!("GREETING=hello {name}"),
        ] {
            assert!(env.contains(&want), "{want} not in {env:?}");
        }
        assert_eq!(
            &proc_strings(pid, "cmdline")[1..],
            ["--listen", &format!("{ip}:8080"), "--log-format", "text"]
        );
        let profile = env
            .iter()
            .find_map(|e| e.strip_prefix("PROFILE_PATH="))
            .expect("PROFILE_PATH set");
        assert!(
            profile.starts_with(path_str(c.dir.path())),
            "{profile} rewritten into the pod's directory"
        );
        assert_eq!(
            std::fs::read_to_string(profile).expect("mounted file"),
            "v1"
        );
        ips.push((ip, profile.to_owned()));
        pids.push(pid);
    }
    assert_ne!(ips[0].0, ips[1].0, "each pod has its own IP");
    // `kubectl logs` reads the kubelet's log files: the current run, and the previous one.
    let web_pod = world.pods("web")[0]["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let log = c.ok(&["-n", "feed", "logs", &web_pod], None);
    assert!(log.contains("feed-server listening"), "{log}");
    let crash_pod = world.pods("crash")[0]["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let log = c.ok(&["-n", "feed", "logs", "--previous", &crash_pod], None);
    assert!(log.contains("exiting at start"), "{log}");

    // A ConfigMap update reaches the mounted files after the sync delay (30 s × 0.05).
    let patched = Instant::now();
    c.ok(
        &[
            "-n",
            "feed",
            "patch",
            "configmap",
            "profile",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"profile.json":"v2"}}"#,
        ],
        None,
    );
    std::thread::sleep(Duration::from_millis(500));
    for (_, profile) in &ips {
        assert_eq!(
            std::fs::read_to_string(profile).expect("mounted file"),
            "v1",
            "not before the delay"
        );
    }

    for (_, profile) in &ips {
        wait_for("the new profile in the pod", || {
            (std::fs::read_to_string(profile).ok()? == "v2").then_some(())
        });
    }
    assert!(
        patched.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        patched.elapsed()
    );

    // Deleting the Deployment deletes its pods and stops their processes.
    c.ok(&["-n", "feed", "delete", "deployment", "web"], None);
    // (The kubelet stops a pod's processes once the pod is gone: garbage collection.)
    wait_for("web's processes gone", || {
        pids.iter().all(|p| !running(*p)).then_some(())
    });

    // A bare pod is scheduled too; with no listen address in its template it is told the
    // pod's IP and its first containerPort. Stopping localkube stops its process.
    let solo = world.pods("solo")[0];
    assert_eq!(solo["spec"]["nodeName"], "localkube");
    let solo_pid = pid_of(solo);
    let ip = solo["status"]["podIP"].as_str().unwrap_or_default();
    assert!(environ(solo_pid).contains(&format!("FEED_LISTEN={ip}:9090")));
    assert!(running(solo_pid));
    let mut child = c.child.take().expect("localkube running");
    terminate(&mut child);
    assert!(
        child
            .try_wait()
            .is_ok_and(|s| s.is_some_and(|s| s.success())),
        "localkube exits cleanly on SIGTERM"
    );
    assert!(!running(solo_pid), "pid {solo_pid} outlived localkube");
}
