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
use std::time::{Duration, Instant};

use foldhash::HashMap;
use parking_lot::RwLock;

use crate::store::UserVersion;

/// Most users whose last heard version one generation remembers; a full generation ages at
/// once, so beyond it the least recently written are forgotten (their in-process page was
/// dropped when they were heard; only a ranking racing that very write could then be served
/// until its trust of `local_ttl` ends: its recheck sees the version moved, `crate::cache`).
const HEARD_MAX: usize = 262_144;

/// Longest a heard version is remembered, whatever `--local-cache-ttl-ms` (an in-process entry
/// older than a day is not worth a bigger map).
const HEARD_FOR_MAX: Duration = Duration::from_secs(86_400);

/// Heard versions in two generations: a version stays at least one generation's length (it is
/// looked up in both) and at most two. A map pair, not a cache with per-entry expiry: every
/// event POST records ~5 versions, and the general cache's insert cost 3.4% of feed-server's
/// CPU in the events bench.
struct Generations {
    current: HashMap<String, UserVersion>,
    previous: HashMap<String, UserVersion>,
    /// When `current` started.
    since: Instant,
}

impl Generations {
    fn get(&self, user: &str) -> Option<UserVersion> {
        self.current
            .get(user)
            .or_else(|| self.previous.get(user))
            .copied()
    }

    /// Ages the generations by what elapsed since `current` started, at `now` (generations of
    /// `length`).
    fn age(&mut self, length: Duration, now: Instant) {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed >= length.saturating_mul(2) {
            self.current.clear();
            self.rotate(now);
        } else if elapsed >= length {
            self.rotate(now);
        }
    }

    /// Starts a new generation at `now`: the current one becomes the previous, the previous is
    /// forgotten.
    fn rotate(&mut self, now: Instant) {
        self.previous = std::mem::take(&mut self.current);
        self.since = now;
    }

    /// Records `version` for `user` at `now`; a full generation ages at once.
    fn insert(&mut self, user: &str, version: UserVersion, length: Duration, now: Instant) {
        self.age(length, now);
        if self.current.len() >= HEARD_MAX {
            self.rotate(now);
        }
        self.current.insert(user.to_owned(), version);
    }
}

/// What this replica heard of users' writes.
pub struct PeerHeads {
    listening: AtomicBool,
    /// How long a heard version is remembered at least.
    keep: Duration,
    heard: RwLock<Generations>,
}

impl PeerHeads {
    /// The state of a replica that hears other replicas (`listening` false until subscribed)
    /// or has none (`listening` true for good), whose in-process first pages are served
    /// without a recheck in the store at most `local_ttl` from their ranking (a recheck then
    /// compares the store's version, `crate::cache`): a heard version is kept twice that at
    /// least (a ranking racing a write may store its page a little after hearing of it), at
    /// most [`HEARD_FOR_MAX`], and forgotten within twice that.
    pub fn new(listening: bool, local_ttl: Duration) -> Self {
        Self {
            listening: AtomicBool::new(listening),
            keep: local_ttl.saturating_mul(2).min(HEARD_FOR_MAX),
            heard: RwLock::new(Generations {
                current: HashMap::default(),
                previous: HashMap::default(),
                since: Instant::now(),
            }),
        }
    }

    /// Whether an in-process first page of `user` ranked at `version` may be served.
    pub fn admits(&self, user: &str, version: UserVersion) -> bool {
        if !self.listening.load(Ordering::Acquire) {
            return false;
        }
        let heard = self.heard.read();
        let last = if heard.since.elapsed() < self.keep {
            heard.get(user)
        } else {
            drop(heard);
            let mut heard = self.heard.write();
            heard.age(self.keep, Instant::now());
            heard.get(user)
        };
        last.is_none_or(|v| v == version)
    }

    /// `user` was written and is now at `version` (announcements arrive in write order).
    pub fn heard(&self, user: &str, version: UserVersion) {
        self.heard
            .write()
            .insert(user, version, self.keep, Instant::now());
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
    fn a_version_is_remembered_one_generation_at_least_and_two_at_most() {
        let length = Duration::from_secs(10);
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let mut g = Generations {
            current: HashMap::default(),
            previous: HashMap::default(),
            since: t0,
        };
        g.insert("early", UserVersion(1), length, at(0));
        g.insert("late", UserVersion(2), length, at(9));
        // 10 s in: a new generation; both still remembered.
        g.age(length, at(12));
        assert_eq!(
            (g.get("early"), g.get("late")),
            (Some(UserVersion(1)), Some(UserVersion(2)))
        );
        g.insert("later", UserVersion(3), length, at(13));
        // The next generation: what was heard before 12 s is forgotten, 13 s is kept.
        g.age(length, at(22));
        assert_eq!(g.get("early"), None, "heard 22 s ago, over two generations");
        assert_eq!(g.get("late"), None);
        assert_eq!(g.get("later"), Some(UserVersion(3)), "heard 9 s ago");
        // A long silence forgets everything at once.
        g.age(length, at(60));
        assert_eq!(g.get("later"), None);
        // A newer version replaces the one heard before, in either generation.
        g.insert("u", UserVersion(4), length, at(61));
        g.age(length, at(72));
        g.insert("u", UserVersion(5), length, at(73));
        assert_eq!(g.get("u"), Some(UserVersion(5)));
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
