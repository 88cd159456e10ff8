//! Whether this replica may serve a user's first page from its in-process tier, given what it
//! heard of other replicas' writes (`store::redis_peers`): the decision, free of I/O.
//!
//! An in-process first page ranked at user version `v` is served only while the replica is
//! *listening* (subscribed and answering pings, so no announced write can have been missed) and
//! the last version heard for the user, if any, is `v` itself. Remembering the version heard
//! (not only dropping the entry) closes the race of a ranking that read the user's state before
//! a write and stores its page after the write's announcement. A replica without peers (the
//! embedded store) is always listening.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::store::UserVersion;

/// Most users whose last heard version is remembered; beyond it the least recently written are
/// forgotten (their in-process page was dropped when they were heard; only a ranking racing
/// that very write could then be served until `local_ttl`).
const HEARD_MAX: u64 = 262_144;

/// Longest a heard version is remembered, whatever `--local-cache-ttl-ms` (an in-process entry
/// older than a day is not worth a bigger map).
const HEARD_FOR_MAX: Duration = Duration::from_secs(86_400);

/// What this replica heard of users' writes.
pub struct PeerHeads {
    listening: AtomicBool,
    heard: moka::sync::Cache<String, UserVersion>,
}

impl PeerHeads {
    /// The state of a replica that hears other replicas (`listening` false until subscribed)
    /// or has none (`listening` true for good), whose in-process entries live at most
    /// `local_ttl`: a heard version is kept twice that (a ranking racing a write may store its
    /// page a little after hearing of it), at most [`HEARD_FOR_MAX`].
    pub fn new(listening: bool, local_ttl: Duration) -> Self {
        Self {
            listening: AtomicBool::new(listening),
            heard: moka::sync::Cache::builder()
                .max_capacity(HEARD_MAX)
                .time_to_live(local_ttl.saturating_mul(2).min(HEARD_FOR_MAX))
                .build(),
        }
    }

    /// Whether an in-process first page of `user` ranked at `version` may be served.
    pub fn admits(&self, user: &str, version: UserVersion) -> bool {
        self.listening.load(Ordering::Acquire) && self.heard.get(user).is_none_or(|v| v == version)
    }

    /// `user` was written and is now at `version` (announcements arrive in write order).
    pub fn heard(&self, user: &str, version: UserVersion) {
        self.heard.insert(user.to_owned(), version);
    }

    /// Records whether announcements are heard; true when listening just resumed (the caller
    /// must then drop every in-process first page: writes announced meanwhile were missed).
    pub fn set_listening(&self, listening: bool) -> bool {
        let was = self.listening.swap(listening, Ordering::AcqRel);
        listening && !was
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn a_page_is_served_only_at_the_last_version_heard() {
        let p = PeerHeads::new(true, LONG);
        assert!(p.admits("u", UserVersion(3)), "nothing heard of u");
        p.heard("u", UserVersion(4));
        assert!(!p.admits("u", UserVersion(3)), "ranked before the write");
        assert!(p.admits("u", UserVersion(4)), "ranked after it");
        assert!(
            !p.admits("u", UserVersion(5)),
            "ranked after a write not heard yet: wait for it"
        );
        assert!(p.admits("v", UserVersion(0)), "another user");
        // A version that went back (the key was lost) is still a mismatch.
        p.heard("u", UserVersion(1));
        assert!(!p.admits("u", UserVersion(4)));
    }

    #[test]
    fn nothing_is_served_in_process_while_not_listening() {
        let p = PeerHeads::new(false, LONG);
        assert!(!p.admits("u", UserVersion(0)), "not subscribed yet");
        assert!(p.set_listening(true), "listening resumed: drop the pages");
        assert!(p.admits("u", UserVersion(0)));
        assert!(!p.set_listening(true), "already listening");
        assert!(!p.set_listening(false));
        assert!(!p.admits("u", UserVersion(0)), "announcements may be lost");
    }

    #[test]
    fn a_heard_version_is_forgotten_after_its_time() {
        let p = PeerHeads::new(true, Duration::from_millis(10));
        p.heard("u", UserVersion(2));
        assert!(!p.admits("u", UserVersion(1)));
        std::thread::sleep(Duration::from_millis(40));
        assert!(p.admits("u", UserVersion(1)));
    }
}
