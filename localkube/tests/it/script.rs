//! `scripts/local-cluster.sh` stops what it started and nothing else: Ctrl-C (or TERM) while
//! `up --foreground` still waits for readiness stops the server it launched, and `down` never
//! signals a pid from the pid file that is not a localkube process (a recycled pid). Stand-in
//! servers are `sleep` processes (a `localkube` that never becomes ready), so this takes
//! about a second.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/local-cluster.sh")
}

/// Kills and reaps a child when the test ends, whatever happened.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The tests write an executable and fork: one at a time, so no fork inherits the file's
/// descriptor while it is open for writing (ETXTBSY).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alive(pid: u32) -> bool {
    // A zombie is gone for our purpose: its state in /proc/PID/stat is `Z`.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn down_leaves_alone_a_pid_that_is_not_localkube() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().expect("tempdir");
    let other = Reaped(
        Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("start sleep"),
    );
    std::fs::write(dir.path().join("localkube.pid"), other.0.id().to_string()).expect("pid");
    let out = Command::new(script())
        .args(["down", "--dir"])
        .arg(dir.path())
        .output()
        .expect("run local-cluster.sh down");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing running"),
        "{out:?}"
    );
    assert!(alive(other.0.id()), "down killed an unrelated process");
    assert!(!dir.path().join("localkube.pid").exists());
}

#[test]
fn interrupting_a_foreground_start_up_stops_the_server() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().expect("tempdir");
    // A `localkube` that never writes its kubeconfig: the script stays in its readiness wait.
    let bin = dir.path().join("localkube");
    std::fs::write(&bin, "#!/bin/sh\nexec sleep 30\n").expect("fake localkube");
    Command::new("chmod")
        .arg("+x")
        .arg(&bin)
        .status()
        .expect("chmod");
    let state = dir.path().join("state");
    let up = Reaped(
        Command::new(script())
            .args(["up", "--foreground", "--dir"])
            .arg(&state)
            .env("LOCALKUBE_BIN", &bin)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run local-cluster.sh up"),
    );
    let pidfile = state.join("localkube.pid");
    let mut server = 0;
    wait_until("the pid file", || {
        server = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        server != 0
    });
    assert!(alive(server));
    let term = Command::new("kill")
        .args(["-TERM", &up.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    wait_until("the server to stop", || !alive(server));
    wait_until("the pid file to go", || !pidfile.exists());
}
