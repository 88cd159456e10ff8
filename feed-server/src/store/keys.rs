//! The Redis key layout, owned by one type: every key the Redis store reads or writes is spelled
//! here, under the configurable prefix `P` (which lets deployments or tests share one Redis).
//! It is not ready for Redis Cluster yet: the event consumers' apply script names the shared keys
//! in `ARGV` (see `store::redis_events`), and a cluster port must split it by slot (issue #16).
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `P v:{id}` | string | video JSON |
//! | `P catv` | string | catalog version: incremented by every catalog write |
//! | `P vs:{id}` | hash | video counters ([`crate::learning::VideoStats::FIELDS`]) |
//! | `P cv:{creator}`, `P tv:{tag}`, `P fresh:{lang or *}` | zset | video ids by publish time (ms) |
//! | `P exp` | zset | video ids by impressions (long tail) |
//! | `P tr:{lang or *}:{day}`, `P trr:{region}:{day}` | zset | trending score per language (or all) and per region, per UTC day (expires after 3 days) |
//! | `P dur` | hash | impressions and completes per duration bucket: `{bucket}:impressions`, `{bucket}:plays`, `{bucket}:completes` |
//! | `P u:{user}:p` | hash | language, region |
//! | `P u:{user}:fc`, `P u:{user}:fr` | set | followed creators, friends |
//! | `P u:{user}:aff`, `P u:{user}:taste` | hash | decayed values: field `f` and its time `f@` ([`super::encoding`]) |
//! | `P u:{user}:seen` | zset | seen videos by time (last 5,000) |
//! | `P u:{user}:recent` | list | recently engaged videos (last 50) |
//! | `P active` | zset | users by last activity |
//! | `P c:{key}` | string | cached pages |
//! | `P xlog` | stream | the exposure log: every applied event, capped (`store::redis_log`) |
//! | `P ev` | stream | the ingest stream: one entry per accepted batch not yet applied (field `d`: its shared deltas), consumer group `apply` (`store::redis_events`) |
//! | `P evq` | string | events accepted and not yet applied (the backlog) |
//!
//! The layout is the data's address: a change here strands what Redis holds, so a unit test
//! pins every key.

use std::fmt;

use crate::learning::TrendingScope;
use crate::model::Video;

/// The language of the fresh-upload list of every language.
pub const EVERY_LANGUAGE: &str = "*";

/// Builds the keys of one deployment (one prefix).
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys under `prefix` (written as is in front of every key).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// A key under the prefix. Only the event write path (`RedisStore::apply`, being rebuilt
    /// as a durable stream in issue #16) still spells keys itself through this.
    pub fn raw(&self, parts: fmt::Arguments<'_>) -> String {
        format!("{}{}", self.prefix, parts)
    }

    /// A video's catalog entry (JSON).
    pub fn video(&self, id: &str) -> String {
        self.raw(format_args!("v:{id}"))
    }

    /// The catalog version, moved by every catalog write.
    pub fn catalog_version(&self) -> String {
        self.raw(format_args!("catv"))
    }

    /// A video's counters.
    pub fn video_stats(&self, id: &str) -> String {
        self.raw(format_args!("vs:{id}"))
    }

    /// A creator's videos by publish time.
    pub fn creator_videos(&self, creator: &str) -> String {
        self.raw(format_args!("cv:{creator}"))
    }

    /// A tag's videos by publish time.
    pub fn tag_videos(&self, tag: &str) -> String {
        self.raw(format_args!("tv:{tag}"))
    }

    /// The newest uploads in `language` ([`EVERY_LANGUAGE`] for all of them).
    pub fn fresh(&self, language: &str) -> String {
        self.raw(format_args!("fresh:{language}"))
    }

    /// Video ids by impressions (the long-tail source).
    pub fn exposures(&self) -> String {
        self.raw(format_args!("exp"))
    }

    /// The trending list of `scope` on UTC day `day`.
    pub fn trending(&self, scope: &TrendingScope, day: i64) -> String {
        match scope {
            TrendingScope::All => self.raw(format_args!("tr:{EVERY_LANGUAGE}:{day}")),
            TrendingScope::Language(lang) => self.raw(format_args!("tr:{lang}:{day}")),
            TrendingScope::Region(region) => self.raw(format_args!("trr:{region}:{day}")),
        }
    }

    /// Counters per duration bucket (the completion prior).
    pub fn durations(&self) -> String {
        self.raw(format_args!("dur"))
    }

    /// A user's language and region.
    pub fn user_profile(&self, user: &str) -> String {
        self.raw(format_args!("u:{user}:p"))
    }

    /// A user's followed creators.
    pub fn followed_creators(&self, user: &str) -> String {
        self.raw(format_args!("u:{user}:fc"))
    }

    /// A user's friends.
    pub fn friends(&self, user: &str) -> String {
        self.raw(format_args!("u:{user}:fr"))
    }

    /// A user's decayed affinities.
    pub fn affinity(&self, user: &str) -> String {
        self.raw(format_args!("u:{user}:aff"))
    }

    /// A user's decayed taste vector.
    pub fn taste(&self, user: &str) -> String {
        self.raw(format_args!("u:{user}:taste"))
    }

    /// A user's seen videos by time.
    pub fn seen(&self, user: &str) -> String {
        self.raw(format_args!("u:{user}:seen"))
    }

    /// A user's recently engaged videos.
    pub fn recent(&self, user: &str) -> String {
        self.raw(format_args!("u:{user}:recent"))
    }

    /// Users by last activity.
    pub fn active_users(&self) -> String {
        self.raw(format_args!("active"))
    }

    /// A cached blob (feed snapshots and heads, named by [`crate::cache`]).
    pub fn cached(&self, key: &str) -> String {
        self.raw(format_args!("c:{key}"))
    }

    /// The exposure log.
    pub fn exposure_log(&self) -> String {
        self.raw(format_args!("xlog"))
    }

    /// The ingest stream: accepted batches not yet applied (`store::redis_events`).
    pub fn ingest_stream(&self) -> String {
        self.raw(format_args!("ev"))
    }

    /// Events accepted and not yet applied (the backlog counter).
    pub fn ingest_backlog(&self) -> String {
        self.raw(format_args!("evq"))
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
    use super::*;

    #[test]
    fn the_layout_is_the_one_redis_holds() {
        let k = Keys::new("P ");
        let pairs = [
            (k.video("v1"), "P v:v1"),
            (k.catalog_version(), "P catv"),
            (k.video_stats("v1"), "P vs:v1"),
            (k.creator_videos("c1"), "P cv:c1"),
            (k.tag_videos("cats"), "P tv:cats"),
            (k.fresh("en"), "P fresh:en"),
            (k.fresh(EVERY_LANGUAGE), "P fresh:*"),
            (k.exposures(), "P exp"),
            (k.trending(&TrendingScope::All, 7), "P tr:*:7"),
            (
                k.trending(&TrendingScope::Language("en".into()), 7),
                "P tr:en:7",
            ),
            (
                k.trending(&TrendingScope::Region("fr".into()), 7),
                "P trr:fr:7",
            ),
            (k.durations(), "P dur"),
            (k.user_profile("u1"), "P u:u1:p"),
            (k.followed_creators("u1"), "P u:u1:fc"),
            (k.friends("u1"), "P u:u1:fr"),
            (k.affinity("u1"), "P u:u1:aff"),
            (k.taste("u1"), "P u:u1:taste"),
            (k.seen("u1"), "P u:u1:seen"),
            (k.recent("u1"), "P u:u1:recent"),
            (k.active_users(), "P active"),
            (k.cached("h:u1"), "P c:h:u1"),
            (k.exposure_log(), "P xlog"),
            (k.ingest_stream(), "P ev"),
            (k.ingest_backlog(), "P evq"),
        ];
        for (key, expected) in pairs {
            assert_eq!(key, expected);
        }
    }
}
