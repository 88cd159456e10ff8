//! The exposure log on Redis: a capped Stream `P xlog` ([`crate::exposure`]). Each entry holds
//! accepted events in one of three forms (`--exposure-log-format`, [`LogFormat`]), all read:
//!
//! - **fields** (the default): one event, in fields `u` (user), `v` (video), `k` (type), `t`
//!   (unix seconds) and `w` (watch ms, when the event had one) — the form every version reads;
//! - **packed**: one event, in one field `e`, the same values joined by [`SEP`] (`\x1f`, the unit
//!   separator, which no id holds: the API refuses ids with control characters);
//! - **batched**: up to [`BATCH_MAX`] events in one entry, field `n` their count and field `b`
//!   the packed events joined by [`RECORD_SEP`] (`\x1e`).
//!
//! An event whose id holds a separator anyway (written around the API) is written in fields, in
//! an entry of its own.
//!
//! **Appends** ride in the script that applies a round of the ingest stream to the shared
//! aggregates (`store::redis_events`), or, with the aggregates folded in process, in the
//! checkpoint writer's log script (`store::redis_checkpoint`). Both end with [`trim_log_lua`]'s
//! routine, which caps the log at `--exposure-log-capacity` *events*:
//!
//! - with single-event entries and no event counter, one `XTRIM MAXLEN ~ N LIMIT 0` (no limit
//!   on what one trim evicts: a round can log far more than the 10,000 entries a trim evicts by
//!   default);
//! - with batched entries an entry count says little, so the routine keeps the log's event
//!   count in `P xlog:n` (created from `XLEN` by the first batched append, when every entry holds
//!   one event) and deletes the oldest entries, counting each one's events, until the count is
//!   within the cap. Once the counter exists every writer of this version keeps it, whatever its
//!   form, so a later switch back to single-event entries stays capped in events.
//!
//! Both count what they dropped (`feed_exposure_log_dropped_total`). Reads walk the stream from
//! the newest entry backwards in pages.
//!
//! **Why packed, why batched.** Every argument of those scripts becomes a Lua string and then a
//! Redis object again, and each entry is one `XADD`. The log's appends were most of the apply
//! script's arguments: 12 or 14 per event with a `MAXLEN ~ N` each, 9 or 11 in fields now, 3
//! packed, and with batched entries 5 per ~[`BATCH_MAX`] events, one `XADD` for them all
//! (BENCHMARKS.md, "Event POSTs: the exposure log in one field …" and "The exposure log in
//! batches"). A version that lacks a form fails a tune or a replay (500 `store_corrupt`) on an
//! entry of that form — the operator's replay gate asks the *stable* pods, so a canary writing
//! them would stall its own rollout. Hence fields by default, a newer form once every replica
//! reads it (feed-server/README.md). A replica of a version without the event counter appends
//! without counting (and trims by entries), which leaves the count off for good; the log is
//! still never emptied nor left untrimmed ([`trim_log_lua`]).

use std::collections::HashMap;

use redis::{Pipeline, Value};

use super::StoreError;
use crate::exposure::{LogFormat, LogSettings, LoggedEvent};
use crate::model::EventType;

/// Events read per round trip, about: small enough that a page arrives well within the store
/// timeout (a debug build on a loaded machine took more than 300 ms for 1,000 single-event
/// entries). A page asks for entries; [`page_command`] sizes it by the events per entry of the
/// page before.
const PAGE: usize = 500;

/// Separates the parts of a packed event.
const SEP: char = '\x1f';

/// Separates the packed events of a batched entry.
const RECORD_SEP: char = '\x1e';

/// The field holding a whole event.
const FIELD: &str = "e";

/// The field holding a batched entry's events.
const BATCH_FIELD: &str = "b";

/// The field holding how many events a batched entry has (first, so that the trim finds it at
/// once).
const COUNT_FIELD: &str = "n";

/// Most events in one batched entry (fewer when the log's capacity is smaller, so that the
/// newest entry always fits): the trim drops whole entries, so a bigger entry makes the log's
/// size less exact, and a read wants few more events than it asked for. [`trim_log_lua`] holds
/// the same number.
pub const BATCH_MAX: usize = 64;

/// Defines the Lua function `trim_log(log, counter, cap, before, events, batched)` that caps the
/// exposure log `log` at `cap` events after `events` events were appended to it (`before`: its
/// `XLEN` before the appends). With no `counter` key and `batched` not `'1'`: `XTRIM MAXLEN ~`.
/// Otherwise it counts events in `counter` and deletes the oldest entries while the count is over
/// the cap, an entry's events in its field `n` (1 to [`BATCH_MAX`]), else one; never the newest
/// entry (it holds at most `cap` events: [`entries`]). The count starts from `before` when the
/// counter is missing (every entry then holds one event), from the appended events when the log
/// was empty (deleted under its counter), and from the newest entry's events when that entry is
/// all that is left; it is never below the log's entries. A counter or log changed around the
/// routine thus leaves the count off (README), but never empties the log nor stops its
/// trimming. Nothing in it can fail once the appends are made: a script that fails half-way
/// keeps what it wrote, and the retried round would apply its counters twice. Returns the
/// events dropped. Expands to a string literal, for `concat!` into the scripts.
macro_rules! trim_log_lua {
    () => {
        r#"
local function count_of(fields)
  for j = 1, #fields - 1, 2 do
    if fields[j] == 'n' then
      return math.max(1, math.min(64, math.floor(tonumber(fields[j + 1]) or 1)))
    end
  end
  return 1
end
local function trim_log(log, counter, cap, before, events, batched)
  if events == 0 then return 0 end
  cap = tonumber(cap)
  local total = redis.call('GET', counter)
  if not total and batched ~= '1' then
    redis.call('XTRIM', log, 'MAXLEN', '~', cap, 'LIMIT', 0)
    return before + events - redis.call('XLEN', log)
  end
  if before == 0 then total = 0 end
  local len = redis.call('XLEN', log)
  total = math.max(len, (tonumber(total) or before) + events)
  local dropped, deletable = 0, len - 1
  while total > cap and deletable > 0 do
    local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', math.min(128, total - cap, deletable))
    local ids = {}
    for _, entry in ipairs(oldest) do
      if total <= cap then break end
      local n = count_of(entry[2])
      total = total - n
      dropped = dropped + n
      ids[#ids + 1] = entry[1]
    end
    if #ids == 0 then break end
    deletable = deletable - #ids
    redis.call('XDEL', log, unpack(ids))
  end
  if deletable == 0 then
    total = count_of(redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)[1][2])
  end
  redis.call('SET', counter, math.max(total, 0))
  return dropped
end
"#
    };
}
pub(super) use trim_log_lua;

/// How a writer caps the log: the script arguments `cap` and `batched` of [`trim_log_lua`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    /// Most events kept (`--exposure-log-capacity`).
    pub events: usize,
    /// Whether this writer writes batched entries (it then counts events from its first append).
    pub batched: bool,
}

impl Cap {
    /// The cap of a writer with these settings.
    pub fn of(settings: &LogSettings) -> Self {
        Self {
            events: settings.capacity,
            batched: settings.format == LogFormat::Batched,
        }
    }

    /// The `batched` argument of the trim.
    pub fn batched_arg(self) -> &'static str {
        if self.batched { "1" } else { "0" }
    }
}

/// Adds to `pipe` one `XADD` per entry of `events` as `log` writes them ([`entries`]); the trim
/// is the script's ([`trim_log_lua`]).
pub fn append(pipe: &mut Pipeline, key: &str, log: &LogSettings, events: &[LoggedEvent]) {
    for args in entries(log, events) {
        pipe.cmd("XADD").arg(key).arg("*").arg(args).ignore();
    }
}

/// The field-value arguments of each entry that logs `events` in `log`'s form, in order: one
/// entry per event in fields or packed; batched, up to [`BATCH_MAX`] events an entry, at most the
/// log's capacity (an event whose id holds a separator in fields, alone).
pub fn entries(log: &LogSettings, events: &[LoggedEvent]) -> Vec<Vec<String>> {
    if log.format != LogFormat::Batched {
        return events.iter().map(|e| entry_args(log.format, e)).collect();
    }
    let most = BATCH_MAX.min(log.capacity).max(1);
    /// Closes the batch being built (if it holds any event) into an entry.
    fn close(batch: &mut String, count: &mut usize, entries: &mut Vec<Vec<String>>) {
        if *count > 0 {
            entries.push(vec![
                COUNT_FIELD.to_owned(),
                count.to_string(),
                BATCH_FIELD.to_owned(),
                std::mem::take(batch),
            ]);
            *count = 0;
        }
    }
    let mut entries = Vec::with_capacity(events.len().div_ceil(most));
    let (mut batch, mut count) = (String::new(), 0usize);
    for e in events {
        if holds_separator(e) {
            close(&mut batch, &mut count, &mut entries);
            entries.push(entry_args(LogFormat::Fields, e));
            continue;
        }
        if count > 0 {
            batch.push(RECORD_SEP);
        }
        push_packed(&mut batch, e);
        count += 1;
        if count == most {
            close(&mut batch, &mut count, &mut entries);
        }
    }
    close(&mut batch, &mut count, &mut entries);
    entries
}

/// The field-value arguments of `e`'s own entry in `format`: one field `e` packed, or the five
/// fields (also when packed is asked for but an id holds a separator; batched is not a
/// single-event form: see [`entries`]).
fn entry_args(format: LogFormat, e: &LoggedEvent) -> Vec<String> {
    if format == LogFormat::Packed && !holds_separator(e) {
        let mut value = String::new();
        push_packed(&mut value, e);
        return vec![FIELD.to_owned(), value];
    }
    let mut args = vec![
        "u".to_owned(),
        e.user_id.clone(),
        "v".to_owned(),
        e.video_id.clone(),
        "k".to_owned(),
        e.kind.as_str().to_owned(),
        "t".to_owned(),
        e.ts.to_string(),
    ];
    if let Some(w) = e.watch_ms {
        args.extend(["w".to_owned(), w.to_string()]);
    }
    args
}

/// Whether an id of `e` holds a separator of the packed forms (it is then written in fields).
fn holds_separator(e: &LoggedEvent) -> bool {
    [&e.user_id, &e.video_id]
        .iter()
        .any(|id| id.contains([SEP, RECORD_SEP]))
}

/// Appends `e` packed to `out`: its values joined by [`SEP`].
fn push_packed(out: &mut String, e: &LoggedEvent) {
    use std::fmt::Write;
    // Writing into a `String` cannot fail.
    let _ = write!(
        out,
        "{}{SEP}{}{SEP}{}{SEP}{}",
        e.user_id,
        e.video_id,
        e.kind.as_str(),
        e.ts
    );
    if let Some(w) = e.watch_ms {
        let _ = write!(out, "{SEP}{w}");
    }
}

/// The `XREVRANGE` of the page after `last` (exclusive; the newest page when `None`), for
/// `wanted` more events from entries of `per_entry` events each (as the page before held:
/// [`events_per_entry`]; 1 for the first page): enough entries for them, at most about [`PAGE`]
/// events.
pub fn page_command(key: &str, last: Option<&str>, wanted: usize, per_entry: usize) -> redis::Cmd {
    let per_entry = per_entry.max(1);
    let entries = wanted
        .div_ceil(per_entry)
        .clamp(1, (PAGE / per_entry).max(1));
    let mut cmd = redis::cmd("XREVRANGE");
    cmd.arg(key)
        .arg(last.map_or_else(|| "+".to_owned(), |id| format!("({id}")))
        .arg("-")
        .arg("COUNT")
        .arg(entries);
    cmd
}

/// The events per entry of a parsed `page` (its events share their entry's id), rounded up; 1
/// for an empty page.
pub fn events_per_entry(page: &[(String, LoggedEvent)]) -> usize {
    let entries = 1 + page.windows(2).filter(|w| w[0].0 != w[1].0).count();
    page.len().div_ceil(entries).max(1)
}

/// Parses one `XREVRANGE` page: (entry id, event), newest first (a batched entry's events share
/// its id).
pub fn parse_page(reply: Value) -> Result<Vec<(String, LoggedEvent)>, StoreError> {
    let entries: Vec<(String, HashMap<String, String>)> =
        redis::from_redis_value(reply).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut events = Vec::with_capacity(entries.len());
    for (id, fields) in entries {
        let read = parse_entry(&fields)
            .map_err(|why| StoreError::Corrupt(format!("exposure log entry {id}: {why}")))?;
        // A batch holds its events oldest first.
        events.extend(read.into_iter().rev().map(|e| (id.clone(), e)));
    }
    Ok(events)
}

/// The events of one entry, oldest first.
fn parse_entry(f: &HashMap<String, String>) -> Result<Vec<LoggedEvent>, String> {
    if let Some(batch) = f.get(BATCH_FIELD) {
        let count = f
            .get(COUNT_FIELD)
            .ok_or_else(|| format!("a field {BATCH_FIELD} without a field {COUNT_FIELD}"))?;
        let count: usize = count.parse().map_err(|e| format!("{COUNT_FIELD}: {e}"))?;
        let events = batch
            .split(RECORD_SEP)
            .map(parse_packed)
            .collect::<Result<Vec<_>, _>>()?;
        if events.len() != count {
            return Err(format!(
                "{COUNT_FIELD} says {count} events, {BATCH_FIELD} holds {}",
                events.len()
            ));
        }
        return Ok(events);
    }
    if let Some(value) = f.get(FIELD) {
        return Ok(vec![parse_packed(value)?]);
    }
    let get = |name: &str| f.get(name).ok_or_else(|| format!("no field {name}"));
    Ok(vec![event_of(
        get("u")?,
        get("v")?,
        get("k")?,
        get("t")?,
        f.get("w").map(String::as_str),
    )?])
}

fn parse_packed(value: &str) -> Result<LoggedEvent, String> {
    let parts: Vec<&str> = value.split(SEP).collect();
    match parts[..] {
        [user, video, kind, ts] => event_of(user, video, kind, ts, None),
        [user, video, kind, ts, watch_ms] => event_of(user, video, kind, ts, Some(watch_ms)),
        _ => Err(format!(
            "a packed event has {} parts, not 4 or 5",
            parts.len()
        )),
    }
}

fn event_of(
    user: &str,
    video: &str,
    kind: &str,
    ts: &str,
    watch_ms: Option<&str>,
) -> Result<LoggedEvent, String> {
    let kind = EventType::ALL
        .into_iter()
        .find(|k| k.as_str() == kind)
        .ok_or_else(|| format!("unknown type {kind:?}"))?;
    let ts = ts.parse::<f64>().map_err(|e| format!("t: {e}"))?;
    let watch_ms = watch_ms
        .map(|w| w.parse::<f64>().map_err(|e| format!("w: {e}")))
        .transpose()?;
    Ok(LoggedEvent {
        user_id: user.to_owned(),
        video_id: video.to_owned(),
        kind,
        watch_ms,
        ts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(user: &str, kind: EventType, watch_ms: Option<f64>) -> LoggedEvent {
        LoggedEvent {
            user_id: user.into(),
            video_id: "v 1/é".into(),
            kind,
            watch_ms,
            ts: 1_764_000_000.125,
        }
    }

    /// The `XREVRANGE` reply holding what `append` would write for `events` (ids made up),
    /// newest entry first.
    fn page_of(format: LogFormat, events: &[LoggedEvent]) -> Value {
        let mut pipe = redis::pipe();
        append(&mut pipe, "xlog", &settings(format, 1_000), events);
        let bulk = |b: &[u8]| Value::BulkString(b.to_vec());
        let cmds: Vec<Vec<Vec<u8>>> = pipe
            .cmd_iter()
            .map(|c| {
                c.args_iter()
                    .map(|a| match a {
                        redis::Arg::Simple(b) => b.to_vec(),
                        _ => Vec::new(),
                    })
                    .collect()
            })
            .collect();
        Value::Array(
            cmds.iter()
                .enumerate()
                .rev()
                .map(|(i, args)| {
                    assert_eq!(args[..3], [&b"XADD"[..], b"xlog", b"*"]);
                    Value::Array(vec![
                        bulk(format!("{i}-0").as_bytes()),
                        Value::Array(args[3..].iter().map(|a| bulk(a)).collect()),
                    ])
                })
                .collect(),
        )
    }

    fn settings(format: LogFormat, capacity: usize) -> LogSettings {
        LogSettings {
            capacity,
            format,
            ..LogSettings::default()
        }
    }

    /// The event counts of the batched entries that log `n` events under `capacity`.
    fn batch_sizes(n: usize, capacity: usize) -> Vec<String> {
        let events: Vec<LoggedEvent> = (0..n)
            .map(|i| event(&format!("u{i}"), EventType::ALL[i % 4], None))
            .collect();
        entries(&settings(LogFormat::Batched, capacity), &events)
            .into_iter()
            .map(|args| {
                assert_eq!((args[0].as_str(), args[2].as_str()), ("n", "b"));
                args[1].clone()
            })
            .collect()
    }

    /// How many fields each entry of `page` has.
    fn fields_of(page: &Value) -> Vec<usize> {
        let Value::Array(entries) = page else {
            return Vec::new();
        };
        entries
            .iter()
            .map(|entry| match entry.as_sequence().map(|e| &e[1]) {
                Some(Value::Array(fields)) => fields.len() / 2,
                _ => 0,
            })
            .collect()
    }

    /// The events of `page`, oldest first (as written).
    fn read(page: Value) -> Vec<LoggedEvent> {
        let mut events: Vec<LoggedEvent> = parse_page(page)
            .expect("parse")
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        events.reverse();
        events
    }

    #[test]
    fn each_form_reads_back_as_written() {
        let events = [
            event("u1", EventType::View, Some(1_234.5)),
            event("u2", EventType::Impression, None),
        ];
        let packed = page_of(LogFormat::Packed, &events);
        assert_eq!(fields_of(&packed), [1, 1]);
        assert_eq!(read(packed), events);
        let fields = page_of(LogFormat::Fields, &events);
        assert_eq!(fields_of(&fields), [4, 5]);
        assert_eq!(read(fields), events);
        let batched = page_of(LogFormat::Batched, &events);
        assert_eq!(fields_of(&batched), [2]);
        assert_eq!(read(batched), events);
    }

    #[test]
    fn batched_entries_hold_at_most_their_maximum_and_a_page_reads_newest_first() {
        assert_eq!(batch_sizes(2 * BATCH_MAX + 2, 1_000), ["64", "64", "2"]);
        // Under a smaller capacity an entry holds no more than the log keeps: the newest stays.
        assert_eq!(batch_sizes(12, 5), ["5", "5", "2"]);
        assert_eq!(batch_sizes(2, 1), ["1", "1"]);
        let events: Vec<LoggedEvent> = (0..2 * BATCH_MAX + 2)
            .map(|i| event(&format!("u{i}"), EventType::ALL[i % 4], None))
            .collect();
        let page = parse_page(page_of(LogFormat::Batched, &events)).expect("parse");
        let users: Vec<&str> = page.iter().map(|(_, e)| e.user_id.as_str()).collect();
        let newest_first: Vec<String> = (0..events.len()).rev().map(|i| format!("u{i}")).collect();
        assert_eq!(users, newest_first);
        // The events of one entry share its id.
        assert_eq!(page[0].0, page[1].0);
        assert_ne!(page[1].0, page[2].0);
    }

    #[test]
    fn an_id_holding_a_separator_is_written_and_read_in_fields() {
        for sep in ['\u{1f}', '\u{1e}'] {
            let odd = event(&format!("u{sep}x"), EventType::Like, None);
            let page = page_of(LogFormat::Packed, std::slice::from_ref(&odd));
            assert_eq!(fields_of(&page), [4]);
            assert_eq!(read(page), std::slice::from_ref(&odd));
            // In a batch: alone, in fields, between the batches around it.
            let around = [
                event("u1", EventType::View, Some(9.0)),
                odd.clone(),
                event("u2", EventType::Impression, None),
            ];
            let page = page_of(LogFormat::Batched, &around);
            assert_eq!(fields_of(&page), [2, 4, 2]);
            assert_eq!(read(page), around);
        }
    }

    #[test]
    fn an_entry_written_by_an_earlier_version_is_read() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let entry = |fields: &[&str]| {
            Value::Array(vec![
                bulk("5-0"),
                Value::Array(fields.iter().map(|f| bulk(f)).collect()),
            ])
        };
        let page = Value::Array(vec![
            entry(&["u", "u1", "v", "v1", "k", "view", "t", "12.5", "w", "300"]),
            entry(&["u", "u2", "v", "v2", "k", "like", "t", "13"]),
        ]);
        let read = parse_page(page).expect("parse");
        assert_eq!(read[0].1.watch_ms, Some(300.0));
        assert_eq!(read[1].1.user_id, "u2");
        assert_eq!(read[1].1.kind, EventType::Like);
    }

    #[test]
    fn a_page_asks_for_about_its_events_worth_of_entries() {
        let count = |wanted, per_entry| {
            let args =
                crate::store::command_text(&page_command("xlog", Some("5-0"), wanted, per_entry));
            assert_eq!(args[..5], ["XREVRANGE", "xlog", "(5-0", "-", "COUNT"]);
            args[5].parse::<usize>().expect("count")
        };
        assert_eq!(count(1_000, 1), 500);
        assert_eq!(count(3, 1), 3);
        assert_eq!(count(1_000, 64), 7);
        assert_eq!(count(100, 64), 2);
        assert_eq!(count(10, 64), 1);
        assert_eq!(count(10, 0), 10);
        assert_eq!(count(10, 1_000), 1);
        let page = parse_page(page_of(
            LogFormat::Batched,
            &vec![event("u1", EventType::View, None); BATCH_MAX + 1],
        ))
        .expect("parse");
        assert_eq!(events_per_entry(&page), 33);
        assert_eq!(events_per_entry(&[]), 1);
    }

    /// The trim's Lua holds the most events of an entry as a number: it must be [`BATCH_MAX`].
    #[test]
    fn the_trim_bounds_entries_by_the_batch_maximum() {
        let lua = trim_log_lua!();
        assert!(lua.contains(&format!("math.min({BATCH_MAX},")), "{lua}");
    }

    #[test]
    fn a_malformed_entry_is_refused_naming_it() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let entry = |fields: &[&str]| {
            Value::Array(vec![Value::Array(vec![
                bulk("9-0"),
                Value::Array(fields.iter().map(|f| bulk(f)).collect()),
            ])])
        };
        let good = "u1\u{1f}v1\u{1f}view\u{1f}12";
        let two = format!("{good}\u{1e}{good}");
        for (bad, why) in [
            (entry(&["e", "u1\u{1f}v1\u{1f}view"]), "3 parts"),
            (entry(&["e", "u1\u{1f}v1\u{1f}nap\u{1f}12"]), "unknown type"),
            (entry(&["e", "u1\u{1f}v1\u{1f}view\u{1f}soon"]), "t: "),
            (entry(&["n", "3", "b", &two]), "n says 3 events, b holds 2"),
            (entry(&["b", &two]), "without a field n"),
            (entry(&["n", "two", "b", &two]), "n: "),
            (
                entry(&["n", "2", "b", &format!("{good}\u{1e}u2")]),
                "1 parts",
            ),
        ] {
            let err = parse_page(bad).expect_err(why).to_string();
            assert!(
                err.contains("exposure log entry 9-0") && err.contains(why),
                "{why}: {err}"
            );
        }
    }
}
