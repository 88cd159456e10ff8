//! The Redis key layout: every key the Redis store reads or writes is named here, under the
//! configurable prefix `P` (which lets deployments or tests share one Redis or one cluster),
//! written as is in front: with `feed:`, `P{shared}:ev` is `feed:{shared}:ev`.
//!
//! **Slots.** Every key carries a Redis Cluster hash tag (the text between the first `{` and
//! the next `}`), so where it lives in a cluster is a decision, not an accident:
//! - `{shared}`: everything every user reads alike (the catalog, video counters, source lists,
//!   trending, the ingest stream and its backlog, the exposure log, the activity index) is
//!   pinned to one slot. Catalog writes stay one MULTI/EXEC and the consumers' apply script
//!   (counters, trending, exposure log, acknowledgement) stays one atomic script: an accepted
//!   event is applied exactly once without cross-slot coordination. The cost: that slot's
//!   master carries the shared writes; the replicas' in-process caches (catalog, 1-s shared
//!   reads) keep the shared reads per replica and second, not per request.
//! - `{u:<user>}`: a user's own state (profile, follows, friends, affinities, taste, seen set,
//!   recent engagements) shares one slot per user, so a user's writes are one MULTI/EXEC and
//!   what grows with the number of users spreads over every master.
//! - cached pages (`Pc:…`) carry no tag: each spreads by its own name.
//!
//! The same names are used on a single Redis and on a cluster (one layout, one upgrade note in
//! feed-server/README.md). The prefix itself must not contain `{` or `}` (checked at start-up:
//! it would move every key into the prefix's slot).
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `P{shared}:v:<id>` | string | video JSON |
//! | `P{shared}:catv` | string | catalog version: incremented by every catalog write |
//! | `P{shared}:vs:<id>` | hash | video counters ([`crate::learning::VideoStats::FIELDS`]) |
//! | `P{shared}:cv:<creator>`, `P{shared}:tv:<tag>`, `P{shared}:fresh:<lang or *>` | zset | video ids by publish time (ms) |
//! | `P{shared}:exp` | zset | video ids by impressions (long tail) |
//! | `P{shared}:tr:<lang or *>:<day>`, `P{shared}:trr:<region>:<day>` | zset | trending score per language (or all) and per region, per UTC day (expires one day after it ends) |
//! | `P{shared}:dur` | hash | impressions and completes per duration bucket: `<bucket>:impressions`, `<bucket>:plays`, `<bucket>:completes` |
//! | `P{shared}:active` | zset | users by last activity |
//! | `P{shared}:xlog` | stream | the exposure log: every applied event, capped (`store::redis_log`) |
//! | `P{shared}:xlog:n` | string | the events the exposure log holds, kept once a replica writes batched entries (its cap is in events) |
//! | `P{shared}:ev` | stream | the ingest stream: one entry per accepted batch not yet applied (field `d`: its shared deltas), consumer group `apply` (`store::redis_events`) |
//! | `P{shared}:evq` | string | events accepted and not yet applied (the backlog) |
//! | `P{shared}:ckpt` | hash | the manifest of the shared aggregates' checkpoint: its stream id (`ms`, `seq`), `chunks`, `events` folded, `format`, and where the stream was trimmed (`trim_ms`, `trim_seq`) (`store::redis_checkpoint`) |
//! | `P{shared}:ckpt:<ms>-<seq>:<n>` | string | chunk `n` of the checkpoint at stream id `<ms>-<seq>` |
//! | `P{shared}:ckpt:lease` | string | the checkpoint writer's lease: the holder's name, expiring |
//! | `P{shared}:ckpt:logged` | string | the last ingest-stream entry (`<ms>-<seq>`) whose events the checkpoint writer appended to the exposure log |
//! | `P{shared}:vsc` | stream | the counter change feed: one entry per apply round or video deletion (field `d`: the JSON array of the video ids whose counters changed), trimmed to the last minute (`store::redis_counter_feed`) |
//! | `P{u:<user>}:p` | hash | language, region |
//! | `P{u:<user>}:fc`, `P{u:<user>}:fr` | set | followed creators, friends |
//! | `P{u:<user>}:aff` | hash | decayed affinities as anchored sums: field `~<era>:f`, added to with `HINCRBYFLOAT` (`super::anchored`; the legacy fields `f` and `f@` are still read) |
//! | `P{u:<user>}:taste` | hash | the taste in the format of `P{u:<user>}:aff`: read, no longer written |
//! | `P{u:<user>}:tb:<era>` | string | the taste's anchored sums of one era in fixed point, a big-endian `i64` per dimension, added to with one `BITFIELD` (`super::taste_sums`) |
//! | `P{u:<user>}:seen` | zset | seen videos by time (last 5,000) |
//! | `P{u:<user>}:recent` | list | recently engaged videos (last 50) |
//! | `P{u:<user>}:ver` | string | the user's version: incremented, and published on `Pwrites`, by every write of the user's own state (`store::redis_peers`) |
//! | `Pc:<key>` | string | cached pages |
//!
//! One pub/sub channel (not a key, so in no slot; a cluster broadcasts it to every node):
//! `Pwrites` carries `<version> <user>` for every write of a user's own state, so every replica
//! drops that user's in-process first page at once (`store::redis_peers`).
//!
//! The layout is the data's address: a change here strands what Redis holds, so a unit test
//! pins every key and its slot.

use crate::learning::TrendingScope;
use crate::learning::aggregates::EntryId;
use crate::model::Video;

/// The language of the fresh-upload list of every language.
pub const EVERY_LANGUAGE: &str = "*";

/// The hash tag of everything every user reads alike (one cluster slot, see the module docs).
pub const SHARED_TAG: &str = "shared";

/// Builds the keys of one deployment (one prefix).
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys under `prefix` (written as is in front of every key; see [`Keys::check_prefix`]).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// Fails when `prefix` holds a brace: a hash tag in the prefix would pin every key to one
    /// cluster slot, and a lone `{` would swallow the tags of the layout.
    pub fn check_prefix(prefix: &str) -> Result<(), char> {
        match prefix.chars().find(|c| matches!(c, '{' | '}')) {
            Some(c) => Err(c),
            None => Ok(()),
        }
    }

    /// What every key of the shared slot starts with (`P{shared}:`), for listing them by pattern.
    pub fn shared_prefix(&self) -> String {
        self.shared(format_args!(""))
    }

    /// A key of the shared slot.
    fn shared(&self, name: std::fmt::Arguments<'_>) -> String {
        format!("{}{{{SHARED_TAG}}}:{name}", self.prefix)
    }

    /// A key of `user`'s slot.
    fn user(&self, user: &str, name: &str) -> String {
        format!("{}{{u:{user}}}:{name}", self.prefix)
    }

    /// A video's catalog entry (JSON).
    pub fn video(&self, id: &str) -> String {
        self.shared(format_args!("v:{id}"))
    }

    /// The catalog version, moved by every catalog write.
    pub fn catalog_version(&self) -> String {
        self.shared(format_args!("catv"))
    }

    /// A video's counters.
    pub fn video_stats(&self, id: &str) -> String {
        self.shared(format_args!("vs:{id}"))
    }

    /// A creator's videos by publish time.
    pub fn creator_videos(&self, creator: &str) -> String {
        self.shared(format_args!("cv:{creator}"))
    }

    /// A tag's videos by publish time.
    pub fn tag_videos(&self, tag: &str) -> String {
        self.shared(format_args!("tv:{tag}"))
    }

    /// The newest uploads in `language` ([`EVERY_LANGUAGE`] for all of them).
    pub fn fresh(&self, language: &str) -> String {
        self.shared(format_args!("fresh:{language}"))
    }

    /// Video ids by impressions (the long-tail source).
    pub fn exposures(&self) -> String {
        self.shared(format_args!("exp"))
    }

    /// The trending list of `scope` on UTC day `day`.
    pub fn trending(&self, scope: &TrendingScope, day: i64) -> String {
        match scope {
            TrendingScope::All => self.shared(format_args!("tr:{EVERY_LANGUAGE}:{day}")),
            TrendingScope::Language(lang) => self.shared(format_args!("tr:{lang}:{day}")),
            TrendingScope::Region(region) => self.shared(format_args!("trr:{region}:{day}")),
        }
    }

    /// Counters per duration bucket (the completion prior).
    pub fn durations(&self) -> String {
        self.shared(format_args!("dur"))
    }

    /// A user's language and region.
    pub fn user_profile(&self, user: &str) -> String {
        self.user(user, "p")
    }

    /// A user's followed creators.
    pub fn followed_creators(&self, user: &str) -> String {
        self.user(user, "fc")
    }

    /// A user's friends.
    pub fn friends(&self, user: &str) -> String {
        self.user(user, "fr")
    }

    /// A user's decayed affinities.
    pub fn affinity(&self, user: &str) -> String {
        self.user(user, "aff")
    }

    /// A user's decayed taste vector in the format before [`Keys::taste_era`] (a hash of
    /// anchored sums, `store::anchored`): read, no longer written.
    pub fn taste(&self, user: &str) -> String {
        self.user(user, "taste")
    }

    /// A user's taste sums of one era, in fixed point (`store::taste_sums`).
    pub fn taste_era(&self, user: &str, era: i64) -> String {
        self.user(user, &format!("tb:{era}"))
    }

    /// A user's sums log: affinity and taste sums appended per batch (`store::user_sums`).
    pub fn user_sums(&self, user: &str) -> String {
        self.user(user, "sums")
    }

    /// A user's seen videos by time.
    pub fn seen(&self, user: &str) -> String {
        self.user(user, "seen")
    }

    /// A user's recently engaged videos.
    pub fn recent(&self, user: &str) -> String {
        self.user(user, "recent")
    }

    /// A user's version, moved by every write of the user's own state (in the same transaction).
    pub fn user_version(&self, user: &str) -> String {
        self.user(user, "ver")
    }

    /// The pub/sub channel announcing users' writes to every replica (a channel, not a key).
    pub fn peer_writes_channel(&self) -> String {
        format!("{}writes", self.prefix)
    }

    /// Users by last activity.
    pub fn active_users(&self) -> String {
        self.shared(format_args!("active"))
    }

    /// A cached blob (feed snapshots and heads, named by [`crate::cache`]); untagged, so cached
    /// pages spread over the cluster.
    pub fn cached(&self, key: &str) -> String {
        format!("{}c:{key}", self.prefix)
    }

    /// The exposure log.
    pub fn exposure_log(&self) -> String {
        self.shared(format_args!("xlog"))
    }

    /// The exposure log's event count (`store::redis_log`: kept once entries are batched).
    pub fn exposure_log_events(&self) -> String {
        self.shared(format_args!("xlog:n"))
    }

    /// The counter change feed: which videos' counters changed (`store::redis_counter_feed`).
    pub fn counter_changes(&self) -> String {
        self.shared(format_args!("vsc"))
    }

    /// The ingest stream: accepted batches not yet applied (`store::redis_events`).
    pub fn ingest_stream(&self) -> String {
        self.shared(format_args!("ev"))
    }

    /// Events accepted and not yet applied (the backlog counter).
    pub fn ingest_backlog(&self) -> String {
        self.shared(format_args!("evq"))
    }

    /// The manifest of the shared aggregates' checkpoint (`store::redis_checkpoint`).
    pub fn checkpoint_manifest(&self) -> String {
        self.shared(format_args!("ckpt"))
    }

    /// Chunk `n` of the checkpoint at stream id `id`.
    pub fn checkpoint_chunk(&self, id: EntryId, n: u32) -> String {
        self.shared(format_args!("ckpt:{id}:{n}"))
    }

    /// The last ingest-stream entry whose events are in the exposure log (written by the
    /// checkpoint writer).
    pub fn checkpoint_logged(&self) -> String {
        self.shared(format_args!("ckpt:logged"))
    }

    /// The checkpoint writer's lease.
    pub fn checkpoint_lease(&self) -> String {
        self.shared(format_args!("ckpt:lease"))
    }

    /// The source lists a video is indexed in: its creator's, the fresh lists of every
    /// language and of its own, and its tags'.
    pub fn index_keys(&self, v: &Video) -> Vec<String> {
        let mut keys = vec![
            self.creator_videos(&v.creator_id),
            self.fresh(EVERY_LANGUAGE),
        ];
        if !v.language.is_empty() {
            keys.push(self.fresh(&v.language));
        }
        keys.extend(v.tags.iter().map(|t| self.tag_videos(t)));
        keys
    }
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::*;

    /// The cluster slot of a hash tag (or of a whole untagged key).
    fn slot(tag: &str) -> Slot {
        Slot::for_key(tag)
    }

    #[test]
    fn the_layout_is_the_one_redis_holds() {
        let k = Keys::new("P");
        let shared = slot(SHARED_TAG);
        let u1 = slot("u:u1");
        let pairs = [
            (k.video("v1"), "P{shared}:v:v1", shared),
            (k.catalog_version(), "P{shared}:catv", shared),
            (k.video_stats("v1"), "P{shared}:vs:v1", shared),
            (k.creator_videos("c1"), "P{shared}:cv:c1", shared),
            (k.tag_videos("cats"), "P{shared}:tv:cats", shared),
            (k.fresh("en"), "P{shared}:fresh:en", shared),
            (k.fresh(EVERY_LANGUAGE), "P{shared}:fresh:*", shared),
            (k.exposures(), "P{shared}:exp", shared),
            (
                k.trending(&TrendingScope::All, 7),
                "P{shared}:tr:*:7",
                shared,
            ),
            (
                k.trending(&TrendingScope::Language("en".into()), 7),
                "P{shared}:tr:en:7",
                shared,
            ),
            (
                k.trending(&TrendingScope::Region("fr".into()), 7),
                "P{shared}:trr:fr:7",
                shared,
            ),
            (k.durations(), "P{shared}:dur", shared),
            (k.active_users(), "P{shared}:active", shared),
            (k.exposure_log(), "P{shared}:xlog", shared),
            (k.exposure_log_events(), "P{shared}:xlog:n", shared),
            (k.ingest_stream(), "P{shared}:ev", shared),
            (k.ingest_backlog(), "P{shared}:evq", shared),
            (k.checkpoint_manifest(), "P{shared}:ckpt", shared),
            (
                k.checkpoint_chunk(EntryId { ms: 1_700, seq: 3 }, 2),
                "P{shared}:ckpt:1700-3:2",
                shared,
            ),
            (k.checkpoint_lease(), "P{shared}:ckpt:lease", shared),
            (k.checkpoint_logged(), "P{shared}:ckpt:logged", shared),
            (k.counter_changes(), "P{shared}:vsc", shared),
            (k.user_profile("u1"), "P{u:u1}:p", u1),
            (k.followed_creators("u1"), "P{u:u1}:fc", u1),
            (k.friends("u1"), "P{u:u1}:fr", u1),
            (k.affinity("u1"), "P{u:u1}:aff", u1),
            (k.taste("u1"), "P{u:u1}:taste", u1),
            (k.taste_era("u1", 2_961), "P{u:u1}:tb:2961", u1),
            (k.taste_era("u1", -1), "P{u:u1}:tb:-1", u1),
            (k.user_sums("u1"), "P{u:u1}:sums", u1),
            (k.seen("u1"), "P{u:u1}:seen", u1),
            (k.recent("u1"), "P{u:u1}:recent", u1),
            (k.user_version("u1"), "P{u:u1}:ver", u1),
            (k.cached("h:u1"), "Pc:h:u1", slot("Pc:h:u1")),
        ];
        for (key, expected, expected_slot) in pairs {
            assert_eq!(key, expected);
            assert_eq!(Slot::for_key(&key), expected_slot, "{key}");
        }
        assert_eq!(k.peer_writes_channel(), "Pwrites");
        assert_eq!(k.shared_prefix(), "P{shared}:");
        // The slots themselves, as `redis-cli cluster keyslot` gives them (feed-server/README.md).
        assert_eq!(Some(shared), Slot::new(SHARED_SLOT));
        assert_eq!(Some(u1), Slot::new(11_658));
    }

    /// `CLUSTER KEYSLOT shared`: the slot of everything shared.
    const SHARED_SLOT: u16 = 4_478;

    #[test]
    fn users_spread_over_the_cluster_whatever_their_ids() {
        let k = Keys::new("feed:");
        // Ids with braces stay in their own user's slot: the tag ends at the first `}`.
        for user in ["alice", "a}b", "{x}", "ü-42"] {
            let own = Slot::for_key(k.user_profile(user));
            for key in [
                k.seen(user),
                k.affinity(user),
                k.user_sums(user),
                k.recent(user),
                k.friends(user),
                k.user_version(user),
            ] {
                assert_eq!(Slot::for_key(&key), own, "{key}");
            }
        }
        let slots: std::collections::HashSet<Slot> = (0..200)
            .map(|i| Slot::for_key(k.seen(&format!("user{i}"))))
            .collect();
        assert!(slots.len() > 190, "users share few slots: {}", slots.len());
    }

    #[test]
    fn a_prefix_with_a_brace_is_refused() {
        assert_eq!(Keys::check_prefix("feed:"), Ok(()));
        assert_eq!(Keys::check_prefix("feed{1}:"), Err('{'));
        assert_eq!(Keys::check_prefix("feed}"), Err('}'));
    }
}
