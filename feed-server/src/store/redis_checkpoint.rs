//! Checkpoints of the shared aggregates on Redis (`feed-server/docs/shared-aggregates-in-process.md`):
//! the state a replica folded from the ingest stream, as of one stream entry, so that a new
//! replica loads it and replays only the entries after it, and the stream can be trimmed
//! behind it.
//!
//! **Layout** (all in the `{shared}` slot, `store::keys`): the manifest `P{shared}:ckpt` (a
//! hash: the checkpoint's stream id, its chunk count, the events folded up to it, the format,
//! and where the stream was trimmed), the chunks `P{shared}:ckpt:<id>:<n>` (the bytes of
//! [`SharedAggregates::encode`] cut in [`CheckpointSettings::chunk_bytes`]), and the writer's
//! lease `P{shared}:ckpt:lease`.
//!
//! **Writing** ([`write()`]): first the events of the entries not yet logged go to the exposure
//! log ([`LOG`], exactly once by the logged mark `P{shared}:ckpt:logged`; the log thus trails
//! the stream by up to a checkpoint interval); then the chunks not written yet
//! ([`write_chunks`]), each expiring after [`CheckpointSettings::keep`]; then one script ([`MOVE`]) moves the manifest, only if it
//! still names the checkpoint the writer read and only forward, and in the same atomic step
//! makes the new chunks permanent, lets the replaced checkpoint's chunks expire (a replica may
//! be loading them), trims the stream to the replaced checkpoint's id (`XTRIM MINID`: a
//! follower less than one checkpoint behind keeps reading) and takes the events of the entries
//! now checkpointed off the backlog counter. A writer that crashes before the move leaves
//! chunks that expire; a writer whose move is refused (another moved it first) trims nothing.
//! Checkpoints of the same stream prefix are the same bytes (the encoding is deterministic), so
//! two writers after a lost lease cost work, not state. Across versions they may differ (what
//! the state keeps can change), so the move also checks that the chunks add up to the writer's
//! length: chunks a writer of another version left at the same entry are not published.
//!
//! **Loading** ([`load`]): the manifest, then its chunks; when a chunk is gone (the manifest
//! moved on and the replaced chunks outlived their [`CheckpointSettings::keep`]) it starts
//! again from the manifest, after a short pause.
//!
//! **The lease** ([`hold_lease`], [`release_lease`]): one writer at a time, so that replicas do
//! not all encode the state; taken with a script that sets it when free and extends it only
//! for its holder. Correctness does not rest on it: the manifest moves only forward.

use std::collections::HashMap;
use std::time::Duration;

use redis::Value;
use thiserror::Error;

use super::redis_store::RedisStore;
use super::{StoreError, redis_events, redis_log};
use crate::exposure::LoggedEvent;
use crate::learning::aggregates::{DecodeError, EntryId, FORMAT, SharedAggregates};
use crate::learning::shared::SharedDeltas;

/// Moves the manifest (see the module docs). `KEYS`: manifest, stream, backlog counter, the
/// `n` new chunks, then the replaced checkpoint's chunks. `ARGV`: the manifest's id as read
/// (`ms`, `seq`; both empty when there was none), the new id (`ms`, `seq`), `n`, the events
/// folded up to the new id, the format, how long the replaced chunks are kept (ms), the new
/// chunks' total length. Returns 1 when moved, 0 when the manifest changed since it was read or
/// would not move forward, -1 when a new chunk has expired (a writer slower than
/// [`CheckpointSettings::keep`]), -2 when the new chunks' lengths do not add up to the
/// writer's: chunks another writer left under the same keys (`NX` kept them) hold another
/// encoding of the same entries — a writer of another version that stopped before its move —
/// and must not be published with this writer's count.
pub const MOVE: &str = r#"
local cur = redis.call('HMGET', KEYS[1], 'ms', 'seq', 'events')
local cms, cseq = cur[1] or '', cur[2] or ''
if cms ~= ARGV[1] or cseq ~= ARGV[2] then return 0 end
local x, y = tonumber(ARGV[3]), tonumber(ARGV[4])
if cms ~= '' then
  local a, b = tonumber(cms), tonumber(cseq)
  if x < a or (x == a and y <= b) then return 0 end
end
local n = tonumber(ARGV[5])
local total = 0
for i = 4, 3 + n do
  if redis.call('EXISTS', KEYS[i]) == 0 then return -1 end
  total = total + redis.call('STRLEN', KEYS[i])
end
if total ~= tonumber(ARGV[9]) then return -2 end
for i = 4, 3 + n do redis.call('PERSIST', KEYS[i]) end
for i = 4 + n, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[8]) end
redis.call('HSET', KEYS[1], 'ms', ARGV[3], 'seq', ARGV[4], 'chunks', ARGV[5],
  'events', ARGV[6], 'format', ARGV[7])
if cms ~= '' then
  redis.call('HSET', KEYS[1], 'trim_ms', cms, 'trim_seq', cseq)
  redis.call('XTRIM', KEYS[2], 'MINID', cms .. '-' .. cseq)
end
redis.call('DECRBY', KEYS[3], string.format('%d', tonumber(ARGV[6]) - (tonumber(cur[3]) or 0)))
return 1
"#;

/// Appends the exposure-log entries of a range of stream entries, once: only if the logged
/// mark `P{shared}:ckpt:logged` (the last stream entry whose events are in the log) still
/// holds what the writer read, and moves the mark in the same atomic step, so that a writer
/// that repeats the range of one that crashed appends nothing twice. `KEYS`: the mark, the
/// exposure log, its event counter. `ARGV`: the mark as read (empty when none), the new mark,
/// the log's capacity in events, `1` when the entries are batched (else `0`), the events they
/// hold, then each entry's `XADD` field-value arguments, preceded by their count. Returns the
/// events the log's cap dropped (`redis_log::trim_log_lua!`), or -1 when the mark had moved.
pub const LOG: &str = concat!(
    redis_log::trim_log_lua!(),
    r#"
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return -1 end
local before = redis.call('XLEN', KEYS[2])
local i = 6
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, i + 1, i + n))
  i = i + 1 + n
end
local dropped = trim_log(KEYS[2], KEYS[3], ARGV[3], before, tonumber(ARGV[5]), ARGV[4])
redis.call('SET', KEYS[1], ARGV[2])
return dropped
"#
);

/// Stream entries whose events one [`LOG`] call appends at most.
const LOG_PAGE: usize = 256;

/// Takes the lease when free or extends it for its holder. `KEYS`: the lease; `ARGV`: holder,
/// time to live (ms). Returns 1 when held.
const HOLD: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

/// Deletes the lease if `ARGV[1]` holds it.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// How often [`load`] starts again when the manifest moves under it.
const LOAD_ATTEMPTS: usize = 3;

/// The pause before [`load`] starts again.
const LOAD_RETRY: Duration = Duration::from_millis(50);

/// How checkpoints are cut and kept.
#[derive(Clone, Debug)]
pub struct CheckpointSettings {
    /// Most bytes per chunk: one `SET` of this size keeps Redis busy for about a millisecond
    /// per MiB, so a checkpoint never stalls it for long.
    pub chunk_bytes: usize,
    /// How long chunks live while not the manifest's: a new checkpoint's before the move (so
    /// that a crashed writer's go), the replaced one's after it (so that a replica that read
    /// the old manifest can finish loading).
    pub keep: Duration,
}

impl Default for CheckpointSettings {
    /// 1 MiB chunks, kept 60 s.
    fn default() -> Self {
        Self {
            chunk_bytes: 1 << 20,
            keep: Duration::from_secs(60),
        }
    }
}

/// What the manifest says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The last stream entry folded into the checkpoint.
    pub id: EntryId,
    /// How many chunks hold it.
    pub chunks: u32,
    /// Events folded up to `id` since the stream began (what left the backlog counter).
    pub events: u64,
    /// The encoding's format ([`FORMAT`]).
    pub format: u8,
    /// The stream holds no entry before this id (the previous checkpoint's): a follower whose
    /// cursor is before it may have missed entries and must load the checkpoint.
    pub trimmed: Option<EntryId>,
}

/// Why a checkpoint could not be written or loaded.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// Redis failed or answered something unreadable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest names a format this version does not read (a newer version wrote it).
    #[error("the checkpoint is in format {0}; this version reads format {FORMAT}")]
    UnknownFormat(u8),
    /// The chunks are not an encoding of the shared aggregates.
    #[error("the checkpoint at {id} does not decode: {source}")]
    Decode {
        /// The manifest's id.
        id: EntryId,
        /// What is wrong with the bytes.
        source: DecodeError,
    },
    /// The chunks decode to a state of another stream id than the manifest's.
    #[error("the checkpoint's manifest names {manifest} but its chunks hold the state at {chunks}")]
    Mismatch {
        /// The manifest's id.
        manifest: EntryId,
        /// The id the decoded state was folded up to.
        chunks: EntryId,
    },
    /// The manifest kept moving while its chunks were read.
    #[error("the checkpoint moved {LOAD_ATTEMPTS} times while it was read")]
    Moving,
    /// Redis holds shared aggregates the consumers applied (`--shared-aggregates redis`) and
    /// no checkpoint: starting from an empty state would drop them.
    #[error(
        "this Redis holds shared aggregates applied by consumers (--shared-aggregates redis) and no checkpoint: run `feed-server --checkpoint-from-redis` once, with the consumers stopped, before --shared-aggregates process"
    )]
    NotMigrated,
}

/// What [`write()`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The manifest now names the new checkpoint.
    Moved,
    /// The manifest already names this state or a later one: nothing written.
    NotNewer,
    /// Another writer moved the manifest meanwhile, a chunk expired before the move, or chunks
    /// left at the same entry hold another encoding: the new chunks expire, nothing was
    /// trimmed.
    Refused,
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("checkpoint manifest: {what}"))
}

/// The manifest's fields as `HGETALL` returns them (`None` when there is no manifest).
fn parse_manifest(fields: &[(String, String)]) -> Result<Option<Manifest>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    fn number<T: std::str::FromStr>(name: &str, value: Option<&str>) -> Result<T, StoreError> {
        value
            .ok_or_else(|| corrupt(format_args!("no field {name}")))?
            .parse()
            .map_err(|_| corrupt(format_args!("field {name} is not a number")))
    }
    let id = EntryId {
        ms: number("ms", get("ms"))?,
        seq: number("seq", get("seq"))?,
    };
    let trimmed = match (get("trim_ms"), get("trim_seq")) {
        (None, None) => None,
        (ms, seq) => Some(EntryId {
            ms: number("trim_ms", ms)?,
            seq: number("trim_seq", seq)?,
        }),
    };
    Ok(Some(Manifest {
        id,
        chunks: number("chunks", get("chunks"))?,
        events: number("events", get("events"))?,
        format: number("format", get("format"))?,
        trimmed,
    }))
}

/// The manifest, if a checkpoint was ever written.
pub async fn manifest(store: &RedisStore) -> Result<Option<Manifest>, StoreError> {
    let fields: Vec<(String, String)> = store
        .connection()
        .cmd(redis::cmd("HGETALL").arg(store.keys().checkpoint_manifest()))
        .await?;
    parse_manifest(&fields)
}

/// Where the stream was trimmed, from the reply of [`trim_query`].
pub(super) fn parse_trimmed(reply: Value) -> Result<Option<EntryId>, StoreError> {
    let (ms, seq): (Option<u64>, Option<u64>) = redis::from_redis_value(reply).map_err(corrupt)?;
    Ok(ms.zip(seq).map(|(ms, seq)| EntryId { ms, seq }))
}

/// Adds to `pipe` the read of where the stream was trimmed ([`parse_trimmed`] reads its reply).
pub(super) fn trim_query(pipe: &mut redis::Pipeline, store: &RedisStore) {
    pipe.cmd("HMGET")
        .arg(store.keys().checkpoint_manifest())
        .arg("trim_ms")
        .arg("trim_seq");
}

/// The checkpoint the manifest names, decoded, with its manifest; `None` when none was ever
/// written.
pub async fn load(
    store: &RedisStore,
) -> Result<Option<(Manifest, SharedAggregates)>, CheckpointError> {
    for _ in 0..LOAD_ATTEMPTS {
        let Some(m) = manifest(store).await? else {
            return Ok(None);
        };
        if m.format != FORMAT {
            return Err(CheckpointError::UnknownFormat(m.format));
        }
        let Some(bytes) = read_chunks(store, &m).await? else {
            // Replaced while read and its chunks expired since: the new manifest.
            tokio::time::sleep(LOAD_RETRY).await;
            continue;
        };
        let state = SharedAggregates::decode(&bytes)
            .map_err(|source| CheckpointError::Decode { id: m.id, source })?;
        let folded = state.last_entry().unwrap_or(EntryId::START);
        if folded != m.id {
            return Err(CheckpointError::Mismatch {
                manifest: m.id,
                chunks: folded,
            });
        }
        return Ok(Some((m, state)));
    }
    Err(CheckpointError::Moving)
}

/// The chunks of the checkpoint `m` names, joined; `None` when one is gone. One chunk per
/// command, appended to one buffer sized from the first: reading them holds the state's bytes
/// about once, not as replies, then chunks, then their concatenation.
async fn read_chunks(store: &RedisStore, m: &Manifest) -> Result<Option<Vec<u8>>, StoreError> {
    let mut bytes = Vec::new();
    for n in 0..m.chunks {
        let chunk: Option<Vec<u8>> = store
            .connection()
            .cmd(redis::cmd("GET").arg(store.keys().checkpoint_chunk(m.id, n)))
            .await?;
        let Some(chunk) = chunk else {
            return Ok(None);
        };
        if n == 0 {
            // A corrupt count must not abort on the reservation: the buffer then grows as the
            // chunks arrive (and a chunk past the real ones is missing: `None`).
            let _ = bytes.try_reserve_exact(chunk.len().saturating_mul(m.chunks as usize));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

/// A state ready to be written: its bytes ([`SharedAggregates::encode_chunks`]), the last
/// entry folded and the events folded up to it since the stream began.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The last stream entry folded ([`EntryId::START`] when none).
    pub id: EntryId,
    /// Events folded up to `id`.
    pub events: u64,
    /// The encoded state, cut in [`CheckpointSettings::chunk_bytes`]: one key each.
    pub chunks: Vec<Vec<u8>>,
}

impl Snapshot {
    /// `state`, encoded in chunks of `chunk_bytes`, with the events folded into it.
    pub fn of(state: &SharedAggregates, events: u64, chunk_bytes: usize) -> Self {
        Self {
            id: state.last_entry().unwrap_or(EntryId::START),
            events,
            chunks: state.encode_chunks(chunk_bytes),
        }
    }

    /// The encoded state's length in bytes.
    pub fn encoded_len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }
}

/// Writes `snapshot` as the checkpoint and moves the manifest to it; see the module docs.
pub async fn write(
    store: &RedisStore,
    snapshot: &Snapshot,
    settings: &CheckpointSettings,
) -> Result<Written, CheckpointError> {
    let Snapshot { id, events, .. } = *snapshot;
    let current = manifest(store).await?;
    if current.is_some_and(|m| m.id >= id) {
        return Ok(Written::NotNewer);
    }
    // Logged before the move, which trims the stream: no event leaves it unlogged.
    if !log_through(store, id).await? {
        return Ok(Written::Refused);
    }
    let keys = store.keys();
    let keep_ms = keep_ms(settings);
    let new_keys = write_chunks(store, snapshot, settings).await?;
    let (read_ms, read_seq) = current.map_or((String::new(), String::new()), |m| {
        (m.id.ms.to_string(), m.id.seq.to_string())
    });
    let replaced = current
        .iter()
        .flat_map(|m| (0..m.chunks).map(move |n| keys.checkpoint_chunk(m.id, n)));
    let mut eval = redis::cmd("EVAL");
    eval.arg(MOVE)
        .arg(3 + new_keys.len() + current.map_or(0, |m| m.chunks as usize));
    eval.arg(keys.checkpoint_manifest())
        .arg(keys.ingest_stream())
        .arg(keys.ingest_backlog())
        .arg(&new_keys);
    for key in replaced {
        eval.arg(key);
    }
    eval.arg(read_ms)
        .arg(read_seq)
        .arg(id.ms)
        .arg(id.seq)
        .arg(new_keys.len())
        .arg(events)
        .arg(FORMAT)
        .arg(keep_ms)
        .arg(snapshot.encoded_len());
    let moved: i64 = store.connection().cmd(&eval).await?;
    if moved == -2 {
        tracing::warn!(
            id = %id,
            "checkpoint writer: chunks another writer left at this entry hold another encoding \
             (a replica of another version stopped before its move?); trying again once they \
             expire"
        );
    }
    Ok(if moved == 1 {
        Written::Moved
    } else {
        Written::Refused
    })
}

/// The logged mark ([`LOG`]): the last stream entry whose events are in the exposure log.
pub async fn logged_mark(store: &RedisStore) -> Result<Option<EntryId>, StoreError> {
    let mark: Option<String> = store
        .connection()
        .cmd(redis::cmd("GET").arg(store.keys().checkpoint_logged()))
        .await?;
    mark.map(|m| {
        m.parse()
            .map_err(|_| corrupt(format_args!("logged mark {m:?}")))
    })
    .transpose()
}

/// Appends to the exposure log the events of the stream entries after the logged mark up to
/// `to`, 256 stream entries per [`LOG`] call; `false` when another writer moved
/// the mark meanwhile (it logs them). Unreadable entries log nothing (the followers skip them
/// too).
pub async fn log_through(store: &RedisStore, to: EntryId) -> Result<bool, CheckpointError> {
    let keys = store.keys();
    let log = store.log_settings();
    loop {
        let mark = logged_mark(store).await?;
        if mark >= Some(to) {
            return Ok(true);
        }
        let mut range = redis::cmd("XRANGE");
        range
            .arg(keys.ingest_stream())
            .arg(mark.map_or_else(|| "-".to_owned(), |m| format!("({m}")))
            .arg(to.to_string())
            .arg("COUNT")
            .arg(LOG_PAGE);
        let entries: Vec<(String, HashMap<String, Vec<u8>>)> =
            store.connection().cmd(&range).await?;
        let full = entries.len() >= LOG_PAGE;
        let next = match entries.last() {
            Some((id, _)) if full => id
                .parse()
                .map_err(|_| corrupt(format_args!("stream entry id {id:?}")))?,
            _ => to,
        };
        let events: Vec<LoggedEvent> = entries
            .iter()
            .filter_map(|(_, fields)| fields.get(redis_events::FIELD))
            .filter_map(|payload| SharedDeltas::decode(payload).ok())
            .flat_map(|deltas| deltas.log)
            .collect();
        let cap = redis_log::Cap::of(log);
        let mut eval = redis::cmd("EVAL");
        eval.arg(LOG)
            .arg(3)
            .arg(keys.checkpoint_logged())
            .arg(store.log_key())
            .arg(keys.exposure_log_events())
            .arg(mark.map_or_else(String::new, |m| m.to_string()))
            .arg(next.to_string())
            .arg(cap.events)
            .arg(cap.batched_arg())
            .arg(events.len());
        for args in redis_log::entries(log, &events) {
            eval.arg(args.len()).arg(args);
        }
        let dropped: i64 = store.connection().cmd(&eval).await?;
        if dropped < 0 {
            return Ok(false);
        }
        store.log_dropped(dropped.unsigned_abs());
    }
}

fn keep_ms(settings: &CheckpointSettings) -> u64 {
    u64::try_from(settings.keep.as_millis()).unwrap_or(u64::MAX)
}

/// Writes the chunks of `snapshot`, each expiring after [`CheckpointSettings::keep`] unless a
/// move makes it permanent; their keys. Only chunks not written yet are set (`NX`): a writer
/// of the same entries as one whose move succeeded (the same bytes under the same keys) must
/// not put an expiry back on the manifest's chunks. One chunk per command, so that the
/// request buffers hold one chunk at a time, not a copy of the whole state.
pub async fn write_chunks(
    store: &RedisStore,
    snapshot: &Snapshot,
    settings: &CheckpointSettings,
) -> Result<Vec<String>, StoreError> {
    let keys = store.keys();
    let mut new_keys = Vec::with_capacity(snapshot.chunks.len());
    for (n, chunk) in (0u32..).zip(&snapshot.chunks) {
        let key = keys.checkpoint_chunk(snapshot.id, n);
        let _: Value = store
            .connection()
            .cmd(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(chunk.as_slice())
                    .arg("NX")
                    .arg("PX")
                    .arg(keep_ms(settings)),
            )
            .await?;
        new_keys.push(key);
    }
    Ok(new_keys)
}

/// Takes the checkpoint writer's lease for `holder`, or extends it if `holder` has it, for
/// `ttl`; whether `holder` holds it now.
pub async fn hold_lease(
    store: &RedisStore,
    holder: &str,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let held: i64 = store
        .connection()
        .cmd(
            redis::cmd("EVAL")
                .arg(HOLD)
                .arg(1)
                .arg(store.keys().checkpoint_lease())
                .arg(holder)
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)),
        )
        .await?;
    Ok(held == 1)
}

/// Gives the lease up if `holder` has it (a replica shutting down), so that another writer
/// need not wait for it to expire.
pub async fn release_lease(store: &RedisStore, holder: &str) -> Result<(), StoreError> {
    let _: i64 = store
        .connection()
        .cmd(
            redis::cmd("EVAL")
                .arg(RELEASE)
                .arg(1)
                .arg(store.keys().checkpoint_lease())
                .arg(holder),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_manifest_reads_back_with_and_without_a_trim() {
        assert_eq!(parse_manifest(&[]).ok(), Some(None));
        let first = [
            ("ms", "1700"),
            ("seq", "2"),
            ("chunks", "3"),
            ("events", "40"),
            ("format", "1"),
        ];
        let m = parse_manifest(&fields(&first)).ok().flatten();
        assert_eq!(
            m,
            Some(Manifest {
                id: EntryId { ms: 1700, seq: 2 },
                chunks: 3,
                events: 40,
                format: 1,
                trimmed: None,
            })
        );
        let mut later = first.to_vec();
        later.extend([("trim_ms", "1600"), ("trim_seq", "0")]);
        let m = parse_manifest(&fields(&later)).ok().flatten();
        assert_eq!(
            m.and_then(|m| m.trimmed),
            Some(EntryId { ms: 1600, seq: 0 })
        );
    }

    #[test]
    fn a_manifest_missing_a_field_or_holding_garbage_is_corrupt() {
        for pairs in [
            vec![
                ("ms", "1700"),
                ("seq", "2"),
                ("chunks", "3"),
                ("events", "40"),
            ],
            vec![
                ("ms", "x"),
                ("seq", "2"),
                ("chunks", "3"),
                ("events", "4"),
                ("format", "1"),
            ],
            vec![
                ("ms", "1"),
                ("seq", "2"),
                ("chunks", "3"),
                ("events", "4"),
                ("format", "1"),
                ("trim_ms", "1"),
            ],
        ] {
            assert!(
                matches!(parse_manifest(&fields(&pairs)), Err(StoreError::Corrupt(_))),
                "{pairs:?}"
            );
        }
    }
}
