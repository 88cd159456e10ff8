//! A pod's status from its containers' states, as the kubelet reports it: the phase (by the
//! kubelet's own rules), the conditions PodScheduled, Initialized, ContainersReady and Ready
//! (transition times kept while a condition does not change), and `containerStatuses`. Pure.

use serde_json::{Value, json};

use crate::conditions;

/// `spec.restartPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Restart every exited container (the default).
    #[default]
    Always,
    /// Restart containers that exited with a failure.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// The pod's policy (`Always` when unset or unknown).
    pub fn of(pod: &Value) -> Self {
        match pod["spec"]["restartPolicy"].as_str() {
            Some("OnFailure") => Self::OnFailure,
            Some("Never") => Self::Never,
            _ => Self::Always,
        }
    }

    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => exit_code != 0,
            Self::Never => false,
        }
    }
}

/// Why a container is not running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// Volumes and the image are being prepared.
    ContainerCreating,
    /// The image cannot be pulled (no image rule matches it).
    ErrImagePull,
    /// Waiting to pull the image again.
    ImagePullBackOff,
    /// Waiting to restart a container that keeps exiting.
    CrashLoopBackOff,
    /// An env var or volume refers to something missing.
    CreateContainerConfigError,
    /// The process could not be started.
    RunContainerError,
}

impl WaitReason {
    /// The reason as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContainerCreating => "ContainerCreating",
            Self::ErrImagePull => "ErrImagePull",
            Self::ImagePullBackOff => "ImagePullBackOff",
            Self::CrashLoopBackOff => "CrashLoopBackOff",
            Self::CreateContainerConfigError => "CreateContainerConfigError",
            Self::RunContainerError => "RunContainerError",
        }
    }
}

/// How a container process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The exit status (128 + signal when killed by a signal, as container runtimes report).
    pub exit_code: i32,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    pub finished_at: String,
}

impl Exit {
    /// `Completed` for status 0, `Error` otherwise.
    pub fn reason(&self) -> &'static str {
        if self.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }

    fn to_json(&self, container_id: &str) -> Value {
        let mut t = json!({"exitCode": self.exit_code, "reason": self.reason(),
            "startedAt": self.started_at, "finishedAt": self.finished_at, "containerID": container_id});
        if let Some(s) = self.signal {
            t["signal"] = json!(s);
        }
        json!({"terminated": t})
    }
}

/// A container's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Not running, with why.
    Waiting {
        /// The reason.
        reason: WaitReason,
        /// Details.
        message: String,
    },
    /// Running since `started_at`.
    Running {
        /// RFC 3339.
        started_at: String,
    },
    /// Exited and not restarted (yet, or ever).
    Terminated(Exit),
}

/// One container as the kubelet sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerView {
    /// Its name.
    pub name: String,
    /// Its image.
    pub image: String,
    /// The current state.
    pub state: State,
    /// The previous run's end, once it has restarted or is waiting to.
    pub last_exit: Option<Exit>,
    /// Passing its readiness probe (or running without one).
    pub ready: bool,
    /// Running and past its startup probe (or running without one): the kubelet's `started`.
    pub started: bool,
    /// Times it was started again.
    pub restart_count: u32,
    /// `localkube://<pid>` of the current or last process (empty before the first start).
    pub container_id: String,
}

impl ContainerView {
    fn to_json(&self) -> Value {
        let state = match &self.state {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason.as_str()});
                if !message.is_empty() {
                    w["message"] = json!(message);
                }
                json!({"waiting": w})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated(exit) => exit.to_json(&self.container_id),
        };
        let mut s = json!({"name": self.name, "image": self.image, "imageID": "",
            "state": state, "lastState": {}, "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count});
        if let Some(exit) = &self.last_exit {
            s["lastState"] = exit.to_json(&self.container_id);
        }
        if !self.container_id.is_empty() {
            s["containerID"] = json!(self.container_id);
        }
        s
    }
}

/// `status.phase`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Accepted; some container has not run yet.
    Pending,
    /// Bound, some container running or restarting.
    Running,
    /// Every container exited 0 and none will restart.
    Succeeded,
    /// Every container exited, some with a failure, and none will restart.
    Failed,
}

impl Phase {
    /// The phase as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

/// The pod phase by the kubelet's rules: a container that never ran keeps the pod Pending;
/// one running makes it Running; when all have stopped (exited, or waiting to restart), the
/// restart policy decides.
pub fn phase(policy: RestartPolicy, containers: &[ContainerView]) -> Phase {
    let mut running = 0;
    let mut waiting = 0;
    let mut stopped = 0;
    let mut succeeded = 0;
    for c in containers {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated(exit) => {
                stopped += 1;
                if exit.exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } => match &c.last_exit {
                Some(exit) => {
                    stopped += 1;
                    if exit.exit_code == 0 {
                        succeeded += 1;
                    }
                }
                None => waiting += 1,
            },
        }
    }
    if waiting > 0 || containers.is_empty() {
        Phase::Pending
    } else if running > 0 {
        Phase::Running
    } else {
        match policy {
            RestartPolicy::Always => Phase::Running,
            RestartPolicy::OnFailure if succeeded == stopped => Phase::Succeeded,
            RestartPolicy::OnFailure => Phase::Running,
            RestartPolicy::Never if succeeded == stopped => Phase::Succeeded,
            RestartPolicy::Never => Phase::Failed,
        }
    }
}

/// The pod's networking and start, fixed for its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The pod's loopback IP.
    pub pod_ip: String,
    /// The node's IP.
    pub host_ip: String,
    /// When the kubelet took the pod (RFC 3339).
    pub start_time: String,
}

/// A condition, keeping `previous`'s transition time when its status is unchanged.
fn condition(
    previous: &Value,
    kind: &str,
    ok: bool,
    reason: &str,
    message: &str,
    now: &str,
) -> Value {
    let since = conditions::transition_time(previous, kind, ok, now);
    let mut c = json!({"type": kind, "status": conditions::word(ok), "lastProbeTime": null,
                       "lastTransitionTime": since});
    if !ok && !reason.is_empty() {
        c["reason"] = json!(reason);
        c["message"] = json!(message);
    }
    c
}

/// The whole `status` of a pod with these containers; `previous` is the stored status (for
/// transition times), `now` the current time (RFC 3339).
pub fn pod_status(
    previous: &Value,
    placement: &Placement,
    policy: RestartPolicy,
    containers: &[ContainerView],
    now: &str,
) -> Value {
    let phase = phase(policy, containers);
    let unready: Vec<&str> = containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let all_ready = unready.is_empty() && !containers.is_empty();
    let (reason, message) = match phase {
        Phase::Succeeded | Phase::Failed => ("PodCompleted", String::new()),
        _ => (
            "ContainersNotReady",
            format!("containers with unready status: [{}]", unready.join(" ")),
        ),
    };
    let ready = all_ready && phase == Phase::Running;
    json!({
        "phase": phase.as_str(),
        "conditions": [
            condition(previous, "PodReadyToStartContainers", true, "", "", now),
            condition(previous, "Initialized", true, "", "", now),
            condition(previous, "Ready", ready, reason, &message, now),
            condition(previous, "ContainersReady", ready, reason, &message, now),
            condition(previous, "PodScheduled", true, "", "", now),
        ],
        "hostIP": placement.host_ip, "hostIPs": [{"ip": placement.host_ip}],
        "podIP": placement.pod_ip, "podIPs": [{"ip": placement.pod_ip}],
        "startTime": placement.start_time,
        "qosClass": "BestEffort",
        "containerStatuses": containers.iter().map(ContainerView::to_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> Exit {
        Exit {
            exit_code: code,
            signal: None,
            started_at: "t0".into(),
            finished_at: "t1".into(),
        }
    }

    fn c(state: State, last: Option<Exit>, ready: bool) -> ContainerView {
        let started = matches!(state, State::Running { .. });
        ContainerView {
            name: "app".into(),
            image: "feed-server:1".into(),
            state,
            last_exit: last,
            ready,
            started,
            restart_count: 0,
            container_id: String::new(),
        }
    }

    fn waiting(reason: WaitReason) -> State {
        State::Waiting {
            reason,
            message: String::new(),
        }
    }

    fn running() -> State {
        State::Running {
            started_at: "t0".into(),
        }
    }

    #[test]
    fn restart_policies_decide_which_exits_restart() {
        use RestartPolicy::*;
        let cases = [
            (Always, 0, true),
            (Always, 1, true),
            (OnFailure, 0, false),
            (OnFailure, 2, true),
            (Never, 0, false),
            (Never, 1, false),
        ];
        for (p, code, want) in cases {
            assert_eq!(p.restarts(code), want, "{p:?} {code}");
        }
        assert_eq!(RestartPolicy::of(&json!({"spec": {}})), Always);
        assert_eq!(
            RestartPolicy::of(&json!({"spec": {"restartPolicy": "Never"}})),
            Never
        );
        assert_eq!(
            RestartPolicy::of(&json!({"spec": {"restartPolicy": "OnFailure"}})),
            OnFailure
        );
    }

    #[test]
    fn phases_follow_the_kubelets_rules() {
        use Phase::*;
        use RestartPolicy::*;
        let never_ran = c(waiting(WaitReason::ImagePullBackOff), None, false);
        let looping = c(waiting(WaitReason::CrashLoopBackOff), Some(exit(1)), false);
        let up = c(running(), Some(exit(1)), true);
        let done = c(State::Terminated(exit(0)), None, false);
        let failed = c(State::Terminated(exit(3)), None, false);
        let cases: Vec<(RestartPolicy, Vec<&ContainerView>, Phase)> = vec![
            (Always, vec![], Pending),
            (Always, vec![&never_ran], Pending),
            (Always, vec![&up, &never_ran], Pending),
            (Always, vec![&up], Running),
            (Always, vec![&looping], Running),
            (Always, vec![&done], Running),
            (OnFailure, vec![&done], Succeeded),
            (OnFailure, vec![&done, &looping], Running),
            (Never, vec![&done], Succeeded),
            (Never, vec![&done, &failed], Failed),
            (Never, vec![&failed, &up], Running),
        ];
        for (policy, cs, want) in cases {
            let cs: Vec<ContainerView> = cs.into_iter().cloned().collect();
            assert_eq!(phase(policy, &cs), want, "{policy:?} {cs:?}");
        }
    }

    fn placement() -> Placement {
        Placement {
            pod_ip: "127.10.0.1".into(),
            host_ip: "127.0.0.1".into(),
            start_time: "t0".into(),
        }
    }

    fn cond<'a>(s: &'a Value, kind: &str) -> &'a Value {
        s["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
            .expect("condition present")
    }

    #[test]
    fn ready_needs_every_container_ready_and_keeps_transition_times() {
        let not_yet = pod_status(
            &Value::Null,
            &placement(),
            RestartPolicy::Always,
            &[c(running(), None, false)],
            "t1",
        );
        assert_eq!(not_yet["phase"], "Running");
        assert_eq!(not_yet["podIP"], "127.10.0.1");
        assert_eq!(not_yet["podIPs"], json!([{"ip": "127.10.0.1"}]));
        assert_eq!(not_yet["hostIP"], "127.0.0.1");
        assert_eq!(cond(&not_yet, "Ready")["status"], "False");
        assert_eq!(cond(&not_yet, "Ready")["reason"], "ContainersNotReady");
        assert_eq!(
            cond(&not_yet, "Ready")["message"],
            "containers with unready status: [app]"
        );
        assert_eq!(cond(&not_yet, "PodScheduled")["status"], "True");
        assert_eq!(not_yet["containerStatuses"][0]["started"], true);
        assert_eq!(not_yet["containerStatuses"][0]["ready"], false);

        let ready = pod_status(
            &not_yet,
            &placement(),
            RestartPolicy::Always,
            &[c(running(), None, true)],
            "t2",
        );
        assert_eq!(cond(&ready, "Ready")["status"], "True");
        assert_eq!(cond(&ready, "Ready")["lastTransitionTime"], "t2");
        assert_eq!(cond(&ready, "ContainersReady")["status"], "True");
        assert_eq!(
            cond(&ready, "PodScheduled")["lastTransitionTime"],
            "t1",
            "unchanged: kept"
        );
        assert!(cond(&ready, "Ready").get("reason").is_none());

        let still = pod_status(
            &ready,
            &placement(),
            RestartPolicy::Always,
            &[c(running(), None, true)],
            "t3",
        );
        assert_eq!(cond(&still, "Ready")["lastTransitionTime"], "t2");
    }

    #[test]
    fn container_statuses_carry_states_reasons_and_the_last_exit() {
        let mut looping = c(
            State::Waiting {
                reason: WaitReason::CrashLoopBackOff,
                message: "back-off 10s".into(),
            },
            Some(Exit {
                signal: Some(9),
                ..exit(137)
            }),
            false,
        );
        looping.restart_count = 2;
        looping.container_id = "localkube://42".into();
        let s = pod_status(
            &Value::Null,
            &placement(),
            RestartPolicy::Always,
            &[looping],
            "t",
        );
        let cs = &s["containerStatuses"][0];
        assert_eq!(
            cs["state"],
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}})
        );
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 137);
        assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
        assert_eq!(cs["lastState"]["terminated"]["signal"], 9);
        assert_eq!(
            (cs["restartCount"].as_u64(), cs["started"].as_bool()),
            (Some(2), Some(false))
        );
        assert_eq!(cs["containerID"], "localkube://42");

        let done = pod_status(
            &Value::Null,
            &placement(),
            RestartPolicy::Never,
            &[c(State::Terminated(exit(0)), None, false)],
            "t",
        );
        assert_eq!(done["phase"], "Succeeded");
        assert_eq!(
            done["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(cond(&done, "Ready")["reason"], "PodCompleted");
        let pulling = pod_status(
            &Value::Null,
            &placement(),
            RestartPolicy::Always,
            &[c(waiting(WaitReason::ErrImagePull), None, false)],
            "t",
        );
        assert_eq!(pulling["phase"], "Pending");
        assert_eq!(
            pulling["containerStatuses"][0]["state"],
            json!({"waiting": {"reason": "ErrImagePull"}})
        );
        assert_eq!(pulling["containerStatuses"][0]["lastState"], json!({}));
    }
}
