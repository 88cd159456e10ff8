//! Friends' recent engagements kept in process until the friend writes: the friends source of
//! every ranking reads up to 50 users' lists of recent engagements (`P{u:<user>}:recent`), one
//! `LRANGE` each. Those lists are not the ranking user's own state but other users', read alike
//! by every ranking that names them as friends, and a list changes only with its own user's
//! write (an event), which every replica hears announced (`store::redis_peers`).
//!
//! **Kept until the user's next write is heard.** A list read is kept under its user; the
//! announcement of that user's next write (by any replica) drops it. Announcements are published
//! in the transaction of the write, so a read issued after one was heard sees the write.
//!
//! **No read older than a heard write is kept.** A lookup that misses marks its users as being
//! read and hands out a [`ReadTicket`] (the generation of the writes heard so far); a write heard
//! of a user with any entry (a kept list, a read in flight) leaves a mark of its generation, and
//! a list read under an older ticket is not kept, nor one read under an older ticket than the
//! list kept already (a slow read must not replace a later one). A user nobody reads leaves no
//! mark.
//!
//! **Only while every write is heard, and for at most the replica's trust.** Pub/sub delivers at
//! most once: lists are used and kept only while the listener vouches (subscribed, answering its
//! pings) and everything is dropped when it stops or starts vouching. A kept list is used at most
//! the trust the listener was started with after its read was issued (`--local-cache-ttl-ms`,
//! the bound of in-process first pages), which bounds the one loss the listener cannot see: a
//! broken bus link between two nodes of a cluster.

use std::time::{Duration, Instant};

use foldhash::HashMap;
use parking_lot::RwLock;

use super::SharedList;

/// The generation of heard writes a read was issued at (see the module docs), and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReadTicket(u64, Instant);

/// A user's entry.
#[derive(Debug)]
enum Slot {
    /// The list as read at `read_at` under the ticket of generation `read_under`: its first
    /// `stop + 1` ids.
    Kept {
        stop: isize,
        list: SharedList,
        read_at: Instant,
        read_under: u64,
    },
    /// A read is in flight, no list kept.
    Reading,
    /// The user's write heard at this generation: reads issued before it are not kept.
    Written(u64),
}

#[derive(Default)]
struct State {
    /// While the listener vouches: how long after its read a kept list is used. `None`: no list
    /// is used or kept.
    trust: Option<Duration>,
    /// Moves with every heard write of a user with an entry, and with every reset.
    generation: u64,
    /// Reads issued before this generation are not kept (issued before a reset).
    floor: u64,
    entries: HashMap<Box<str>, Slot>,
}

impl State {
    /// Drops every entry; reads in flight are not kept.
    fn empty(&mut self) {
        self.entries.clear();
        self.generation += 1;
        self.floor = self.generation;
    }

    /// Makes room in a full map (`max` entries): keeps only the lists still usable at `now`
    /// (read less than the trust ago), drops the rest — write marks, reads in flight, lists past
    /// their trust — and, as [`State::empty`], keeps no read in flight (a dropped mark would let
    /// a write racing its read go unnoticed; with the floor raised no earlier ticket needs one).
    /// When usable lists alone still fill three quarters of the map, empties it, so a map full
    /// of live lists is not swept again at every read.
    fn make_room(&mut self, now: Instant, max: usize) {
        let trust = self.trust.unwrap_or_default();
        self.entries.retain(|_, slot| {
            matches!(slot, Slot::Kept { read_at, .. } if now.saturating_duration_since(*read_at) < trust)
        });
        self.generation += 1;
        self.floor = self.generation;
        if self.entries.len() >= max - max / 4 {
            self.entries.clear();
        }
    }
}

/// Users' recent-engagement lists kept in process (see the module docs).
pub(crate) struct RecentLists {
    /// `false`: nothing is ever kept (`--shared-cache-ms 0`).
    on: bool,
    /// Most entries (lists, reads in flight, write marks); a full map keeps only its usable
    /// lists ([`State::make_room`]).
    max_entries: usize,
    state: RwLock<State>,
}

impl RecentLists {
    /// An empty map, unused until the listener vouches ([`RecentLists::listening`]); `on`
    /// false: never used.
    pub(crate) fn new(on: bool, max_entries: usize) -> Self {
        Self {
            on,
            max_entries,
            state: RwLock::new(State::default()),
        }
    }

    /// The kept list of each `(user, stop)` (`None` where it must be read: the list is not kept,
    /// was read with another range or over the trust ago), and the ticket to keep what is read
    /// under.
    pub(crate) fn lookup(&self, reads: &[(&str, isize)]) -> (ReadTicket, Vec<Option<SharedList>>) {
        let now = Instant::now();
        let (ticket, found, missed) = {
            let s = self.state.read();
            let ticket = ReadTicket(s.generation, now);
            let Some(trust) = s.trust.filter(|_| self.on) else {
                return (ticket, vec![None; reads.len()]);
            };
            let found: Vec<Option<SharedList>> = reads
                .iter()
                .map(|(user, stop)| match s.entries.get(*user) {
                    Some(Slot::Kept {
                        stop: kept,
                        list,
                        read_at,
                        ..
                    }) if kept == stop && now.saturating_duration_since(*read_at) < trust => {
                        Some(list.clone())
                    }
                    _ => None,
                })
                .collect();
            let missed: Vec<&str> = reads
                .iter()
                .zip(&found)
                .filter(|(_, f)| f.is_none())
                .map(|((user, _), _)| *user)
                .filter(|user| !s.entries.contains_key(*user))
                .collect();
            (ticket, found, missed)
        };
        if !missed.is_empty() {
            let mut s = self.state.write();
            for user in missed {
                if s.entries.len() >= self.max_entries {
                    // This lookup's reads were issued before the floor moved: no marks for them.
                    s.make_room(now, self.max_entries);
                    break;
                }
                s.entries.entry(user.into()).or_insert(Slot::Reading);
            }
        }
        (ticket, found)
    }

    /// Keeps lists read under `ticket` (`(user, stop, list)`), except those of users whose
    /// write was heard since and those of which a read issued later is kept (it may have seen
    /// a write this one did not). A list counts as read when its read was issued.
    pub(crate) fn keep<'u>(
        &self,
        ticket: ReadTicket,
        read: impl IntoIterator<Item = (&'u str, isize, SharedList)>,
    ) {
        let mut s = self.state.write();
        if !self.on || s.trust.is_none() || ticket.0 < s.floor {
            return;
        }
        let ReadTicket(read_under, read_at) = ticket;
        for (user, stop, list) in read {
            let kept = Slot::Kept {
                stop,
                list,
                read_at,
                read_under,
            };
            let full = s.entries.len() >= self.max_entries;
            match s.entries.get_mut(user) {
                Some(
                    Slot::Written(later)
                    | Slot::Kept {
                        read_under: later, ..
                    },
                ) if *later > read_under => {}
                Some(slot) => *slot = kept,
                None if full => {
                    // The rest of this call's reads were issued before the floor moved.
                    s.make_room(Instant::now(), self.max_entries);
                    return;
                }
                None => {
                    s.entries.insert(user.into(), kept);
                }
            }
        }
    }

    /// `user`'s write was heard: a list kept of them is dropped, and reads of them issued
    /// before are not kept.
    pub(crate) fn written(&self, user: &str) {
        // Most writes are of users nobody reads: a shared lock tells. A user marked after this
        // check is read after the write was heard, so after it committed: nothing to drop.
        if !self.state.read().entries.contains_key(user) {
            return;
        }
        let mut s = self.state.write();
        if !s.entries.contains_key(user) {
            return;
        }
        s.generation += 1;
        let at = s.generation;
        if let Some(slot) = s.entries.get_mut(user) {
            *slot = Slot::Written(at);
        }
    }

    /// The listener vouches for every write from now on, for `trust` after a read (`Some`), or
    /// no longer (`None`). Either way what was kept is dropped: writes may have gone unheard.
    pub(crate) fn listening(&self, trust: Option<Duration>) {
        let mut s = self.state.write();
        s.trust = trust;
        s.empty();
    }

    /// Entries (lists, reads in flight, write marks).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.read().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::ListedIds;

    const LONG: Duration = Duration::from_secs(60);

    fn list(ids: &[&str]) -> SharedList {
        Arc::new(ListedIds::new(
            ids.iter().map(|id| (*id).to_owned()).collect(),
        ))
    }

    fn listening() -> RecentLists {
        let r = RecentLists::new(true, 100);
        r.listening(Some(LONG));
        r
    }

    /// A lookup of `user`'s list (last index 9) and the keep of what it read, `ids`, at once.
    fn read(r: &RecentLists, user: &str, ids: &[&str]) {
        let (ticket, _) = r.lookup(&[(user, 9)]);
        r.keep(ticket, [(user, 9, list(ids))]);
    }

    /// The ids of each looked-up list (`None`: to be read).
    fn ids(found: &[Option<SharedList>]) -> Vec<Option<Vec<String>>> {
        found
            .iter()
            .map(|l| {
                l.as_ref()
                    .map(|l| l.iter().map(|(id, _)| id.to_owned()).collect())
            })
            .collect()
    }

    #[test]
    fn a_list_read_is_used_until_its_users_write_is_heard() {
        let r = listening();
        let (ticket, found) = r.lookup(&[("f1", 9), ("f2", 9)]);
        assert_eq!(ids(&found), [None, None]);
        r.keep(ticket, [("f1", 9, list(&["v1"])), ("f2", 9, list(&["v2"]))]);
        let (_, found) = r.lookup(&[("f1", 9), ("f2", 9)]);
        assert_eq!(
            ids(&found),
            [Some(vec!["v1".to_owned()]), Some(vec!["v2".to_owned()])]
        );
        r.written("f1");
        let (ticket, found) = r.lookup(&[("f1", 9), ("f2", 9)]);
        assert_eq!(ids(&found), [None, Some(vec!["v2".to_owned()])]);
        // Read again after the write was heard: kept.
        r.keep(ticket, [("f1", 9, list(&["v3", "v1"]))]);
        let (_, found) = r.lookup(&[("f1", 9)]);
        assert_eq!(ids(&found), [Some(vec!["v3".to_owned(), "v1".to_owned()])]);
    }

    #[test]
    fn a_read_issued_before_a_heard_write_is_not_kept() {
        let r = listening();
        let (before, _) = r.lookup(&[("f1", 9)]);
        // Another ranking reads f1 too; f1 writes; both reads come back afterwards.
        let (also_before, _) = r.lookup(&[("f1", 9)]);
        r.written("f1");
        r.keep(before, [("f1", 9, list(&["old"]))]);
        r.keep(also_before, [("f1", 9, list(&["old"]))]);
        let (after, found) = r.lookup(&[("f1", 9)]);
        assert_eq!(ids(&found), [None], "the stale read was dropped");
        r.keep(after, [("f1", 9, list(&["new"]))]);
        assert_eq!(
            ids(&r.lookup(&[("f1", 9)]).1),
            [Some(vec!["new".to_owned()])]
        );
        // The same after the list was kept: the write drops it, a read racing it is refused.
        let (racing, _) = r.lookup(&[("f2", 9)]);
        r.keep(racing, [("f2", 9, list(&["a"]))]);
        r.written("f2");
        r.keep(racing, [("f2", 9, list(&["a"]))]);
        assert_eq!(ids(&r.lookup(&[("f2", 9)]).1), [None]);
    }

    #[test]
    fn a_slow_read_does_not_replace_a_later_one_kept_after_a_heard_write() {
        let r = listening();
        let (slow, _) = r.lookup(&[("f1", 9)]);
        r.written("f1");
        read(&r, "f1", &["new"]);
        // The slow read saw the list before the write; it comes back last.
        r.keep(slow, [("f1", 9, list(&["old"]))]);
        assert_eq!(
            ids(&r.lookup(&[("f1", 9)]).1),
            [Some(vec!["new".to_owned()])]
        );
    }

    #[test]
    fn a_list_is_trusted_from_when_its_read_was_issued() {
        let r = RecentLists::new(true, 100);
        r.listening(Some(Duration::from_millis(30)));
        let (ticket, _) = r.lookup(&[("f1", 9)]);
        // A read that took the whole trust: kept, but already too old to use.
        std::thread::sleep(Duration::from_millis(40));
        r.keep(ticket, [("f1", 9, list(&["v1"]))]);
        assert_eq!(ids(&r.lookup(&[("f1", 9)]).1), [None]);
    }

    #[test]
    fn a_write_of_a_user_nobody_reads_leaves_no_mark() {
        let r = listening();
        for i in 0..1_000 {
            r.written(&format!("u{i}"));
        }
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn another_range_or_a_read_older_than_the_trust_is_read_again() {
        let r = RecentLists::new(true, 100);
        r.listening(Some(Duration::from_millis(30)));
        read(&r, "f1", &["v1"]);
        assert_eq!(ids(&r.lookup(&[("f1", 4)]).1), [None], "another range");
        assert!(r.lookup(&[("f1", 9)]).1[0].is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(ids(&r.lookup(&[("f1", 9)]).1), [None], "past the trust");
    }

    #[test]
    fn nothing_is_used_or_kept_unless_the_listener_vouches_and_its_changes_drop_everything() {
        let r = RecentLists::new(true, 100);
        read(&r, "f1", &["v1"]);
        assert_eq!(r.len(), 0, "not listening yet");
        r.listening(Some(LONG));
        let (in_flight, _) = r.lookup(&[("f1", 9)]);
        read(&r, "f2", &["v2"]);
        r.listening(None);
        assert_eq!(
            ids(&r.lookup(&[("f2", 9)]).1),
            [None],
            "no longer vouched for"
        );
        r.listening(Some(LONG));
        assert_eq!(
            ids(&r.lookup(&[("f2", 9)]).1),
            [None],
            "dropped on resuming"
        );
        r.keep(in_flight, [("f1", 9, list(&["v1"]))]);
        assert_eq!(
            ids(&r.lookup(&[("f1", 9)]).1),
            [None],
            "issued before the listener resumed"
        );
        let off = RecentLists::new(false, 100);
        off.listening(Some(LONG));
        let (ticket, _) = off.lookup(&[("f1", 9)]);
        off.keep(ticket, [("f1", 9, list(&["v1"]))]);
        assert_eq!(off.len(), 0, "off");
    }

    #[test]
    fn a_full_map_keeps_its_usable_lists_and_drops_the_rest() {
        let r = RecentLists::new(true, 8);
        r.listening(Some(Duration::from_millis(500)));
        read(&r, "old", &["v0"]);
        std::thread::sleep(Duration::from_millis(510));
        let (live, _) = r.lookup(&[("f1", 9), ("f2", 9)]);
        r.keep(live, [("f1", 9, list(&["v1"])), ("f2", 9, list(&["v2"]))]);
        r.written("f2");
        let (in_flight, _) = r.lookup(&[("f3", 9), ("f4", 9), ("f5", 9), ("f6", 9), ("f7", 9)]);
        assert_eq!(
            r.len(),
            8,
            "full: a stale list, a live one, a write mark, five reads"
        );
        let (_, found) = r.lookup(&[("f1", 9), ("f8", 9)]);
        assert_eq!(ids(&found), [Some(vec!["v1".to_owned()]), None]);
        assert_eq!(r.len(), 1, "only the usable list is left");
        r.keep(in_flight, [("f3", 9, list(&["v3"]))]);
        assert_eq!(
            ids(&r.lookup(&[("f3", 9)]).1),
            [None],
            "a read issued before the room was made is not kept"
        );
        read(&r, "f2", &["v2b"]);
        assert_eq!(
            ids(&r.lookup(&[("f1", 9), ("f2", 9)]).1),
            [Some(vec!["v1".to_owned()]), Some(vec!["v2b".to_owned()])],
            "the kept list still used, a read issued after it kept"
        );
        r.written("f1");
        assert_eq!(
            ids(&r.lookup(&[("f1", 9)]).1),
            [None],
            "a write of a user whose list survived still drops it"
        );
    }

    #[test]
    fn a_full_map_is_emptied_and_reads_in_flight_are_not_kept() {
        let r = RecentLists::new(true, 2);
        r.listening(Some(LONG));
        let (ticket, _) = r.lookup(&[("f1", 9), ("f2", 9)]);
        assert_eq!(r.len(), 2, "two reads in flight");
        let (_, _) = r.lookup(&[("f3", 9)]);
        assert_eq!(r.len(), 0, "full: emptied");
        r.keep(ticket, [("f1", 9, list(&["v1"]))]);
        assert_eq!(r.len(), 0, "issued before the map was emptied");
    }
}
