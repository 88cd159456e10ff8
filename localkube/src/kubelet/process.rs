//! Container processes: started in their own process group with exactly the container's
//! environment, output appended to a log file; stopped with SIGTERM, then SIGKILL after the
//! grace period. Every live process is in a [`Pids`] registry so the kubelet can stop them all
//! even when its tasks no longer run (the handle dropped as the runtime shuts down).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::process::{Child, Command};

/// What the process runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch<'a> {
    /// The executable.
    pub binary: &'a Path,
    /// Its arguments.
    pub args: &'a [String],
    /// Its whole environment.
    pub env: &'a BTreeMap<String, String>,
    /// Its working directory.
    pub dir: &'a Path,
    /// Where stdout and stderr go (appended).
    pub log: &'a Path,
}

/// The live container processes and their grace periods.
#[derive(Clone, Debug, Default)]
pub struct Pids(Arc<Mutex<HashMap<u32, Duration>>>);

impl Pids {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<u32, Duration>) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The live pids.
    pub fn live(&self) -> Vec<u32> {
        self.with(|m| m.keys().copied().collect())
    }

    /// Stops every registered process group now, without the async runtime: SIGTERM, a wait
    /// of up to the longest grace period for them to exit, SIGKILL for the rest.
    pub fn stop_all_blocking(&self) {
        let all: Vec<(u32, Duration)> = self.with(|m| m.drain().collect());
        let grace = all.iter().map(|(_, g)| *g).max().unwrap_or_default();
        for (pid, _) in &all {
            signal(*pid, Signal::TERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && all.iter().any(|(pid, _)| alive(*pid)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for (pid, _) in &all {
            if alive(*pid) {
                signal(*pid, Signal::KILL);
            }
        }
    }
}

/// Whether `pid` is a process that has not exited (a zombie has).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Sends `sig` to the process group `pid` leads; one that is gone is fine.
fn signal(pid: u32, sig: Signal) {
    if let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(p, sig);
    }
}

/// A running container process.
#[derive(Debug)]
pub struct Process {
    child: Child,
    pid: u32,
    pids: Pids,
}

impl Process {
    /// Starts `launch` in a new process group, registered in `pids` with its `grace` period.
    pub fn start(launch: &Launch<'_>, pids: &Pids, grace: Duration) -> io::Result<Self> {
        if let Some(parent) = launch.log.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(launch.log)?;
        let child = Command::new(launch.binary)
            .args(launch.args)
            .env_clear()
            .envs(launch.env)
            .current_dir(launch.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("the process exited before it got a pid"))?;
        pids.with(|m| m.insert(pid, grace));
        Ok(Self {
            child,
            pid,
            pids: pids.clone(),
        })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok().flatten()?;
        self.pids.with(|m| m.remove(&self.pid));
        Some(status)
    }

    /// Stops it: SIGTERM to its process group, SIGKILL after `grace`; returns how it ended.
    pub async fn terminate(mut self, grace: Duration) -> io::Result<ExitStatus> {
        signal(self.pid, Signal::TERM);
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                signal(self.pid, Signal::KILL);
                self.child.wait().await
            }
        };
        self.pids.with(|m| m.remove(&self.pid));
        status
    }
}

/// The exit code and signal of `status` (a signal `n` reports code 128 + n, as container
/// runtimes do).
pub fn exit_code(status: ExitStatus) -> (i32, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => (code, None),
        (None, Some(sig)) => (128 + sig, Some(sig)),
        (None, None) => (-1, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch<'a>(
        args: &'a [String],
        env: &'a BTreeMap<String, String>,
        dir: &'a Path,
        log: &'a Path,
    ) -> Launch<'a> {
        Launch {
            binary: Path::new("/bin/sh"),
            args,
            env,
            dir,
            log,
        }
    }

    /// Waits (up to 10 s) until `n` shells have written `trapped` to `log`: their TERM trap is
    /// set.
    fn trapped(log: &Path, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches("trapped")
            .count()
            < n
        {
            assert!(
                Instant::now() < deadline,
                "the shells set no trap within 10 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[tokio::test]
    async fn processes_get_only_their_env_and_log_to_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("logs/c/0.log");
        let env = BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]);
        let args = [
            "-c".to_owned(),
            "echo $GREETING ${HOME:-nohome}; pwd; echo err >&2; exit 3".to_owned(),
        ];
        let pids = Pids::default();
        let mut p = Process::start(
            &launch(&args, &env, dir.path(), &log),
            &pids,
            Duration::from_secs(1),
        )
        .expect("start");
        assert_eq!(pids.live(), vec![p.pid()]);
        let status = loop {
            if let Some(s) = p.exited() {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(exit_code(status), (3, None));
        assert!(pids.live().is_empty());
        let out = std::fs::read_to_string(&log).expect("log");
        let cwd = dir.path().canonicalize().expect("canonical");
        assert_eq!(out, format!("hi nohome\n{}\nerr\n", cwd.display()));
    }

    #[tokio::test]
    async fn terminate_sends_term_then_kill_after_the_grace_period() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = BTreeMap::new();
        let pids = Pids::default();
        let log = dir.path().join("l.log");
        let polite = [
            "-c".to_owned(),
            "trap 'exit 0' TERM; echo trapped; while :; do sleep 0.01; done".to_owned(),
        ];
        let p = Process::start(
            &launch(&polite, &env, dir.path(), &log),
            &pids,
            Duration::from_secs(5),
        )
        .expect("start");
        trapped(&log, 1);
        assert_eq!(
            exit_code(p.terminate(Duration::from_secs(5)).await.expect("ends")),
            (0, None)
        );
        let stubborn = [
            "-c".to_owned(),
            "trap '' TERM; echo trapped; while :; do sleep 0.01; done".to_owned(),
        ];
        let p = Process::start(
            &launch(&stubborn, &env, dir.path(), &log),
            &pids,
            Duration::from_secs(5),
        )
        .expect("start");
        let pid = p.pid();
        trapped(&log, 2);
        assert_eq!(
            exit_code(p.terminate(Duration::from_millis(200)).await.expect("ends")),
            (137, Some(9))
        );
        assert!(!alive(pid) && pids.live().is_empty());
    }

    #[test]
    fn stop_all_blocking_kills_every_registered_group() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let env = BTreeMap::new();
        let pids = Pids::default();
        let log = dir.path().join("l.log");
        let stubborn = [
            "-c".to_owned(),
            "trap '' TERM; echo trapped; while :; do sleep 0.01; done".to_owned(),
        ];
        let procs: Vec<Process> = rt.block_on(async {
            (0..2)
                .map(|_| {
                    Process::start(
                        &launch(&stubborn, &env, dir.path(), &log),
                        &pids,
                        Duration::from_millis(100),
                    )
                    .expect("start")
                })
                .collect()
        });
        let ids: Vec<u32> = procs.iter().map(Process::pid).collect();
        trapped(&log, 2);
        pids.stop_all_blocking();
        std::thread::sleep(Duration::from_millis(50));
        assert!(ids.iter().all(|pid| !alive(*pid)), "{ids:?} still alive");
        assert!(pids.live().is_empty());
        drop(procs);
    }
}
