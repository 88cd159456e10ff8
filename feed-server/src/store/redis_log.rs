//! The exposure log on Redis: a capped Stream `P xlog` ([`crate::exposure`]). Each entry holds
//! one accepted event in one field `e`: user, video, type, unix seconds and, when the event had
//! one, watch ms, joined by [`SEP`] (`\x1f`, the unit separator, which no id holds: the API
//! refuses ids with control characters). Appends ride in the script that applies a round of the
//! ingest stream to the shared aggregates (`store::redis_events`), then one `XTRIM MAXLEN ~`
//! caps the log, and the script counts what it trimmed; reads walk the stream from the newest
//! entry backwards in pages.
//!
//! **One field, not five.** Every argument of that script becomes a Lua string and then a Redis
//! object again, and the log's appends were most of its arguments: fields `u`, `v`, `k`, `t`,
//! `w` and a `MAXLEN ~` per event made ~13 arguments an event, one field makes 3 (BENCHMARKS.md,
//! "Event POSTs: the exposure log in one field …"). Entries in the five-field form (written by
//! versions before this one, or for an id holding [`SEP`], which only a write around the API
//! could store) are still read. A replica of an earlier version reads only five-field entries:
//! during a rolling upgrade its `POST /v1/admin/tune` fails (500 `store_corrupt`) once new
//! entries exist; the upgraded replicas answer it.

use std::collections::HashMap;

use redis::{Pipeline, Value};

use super::StoreError;
use crate::exposure::LoggedEvent;
use crate::model::EventType;

/// Entries read per round trip: small enough that a page arrives well within the store timeout
/// (a debug build on a loaded machine took more than 300 ms for 1,000 entries).
const PAGE: usize = 500;

/// Separates the parts of an entry's field `e`.
pub const SEP: char = '\x1f';

/// The field holding a whole event.
const FIELD: &str = "e";

/// Adds to `pipe` one `XADD` per event, then one `XTRIM … MAXLEN ~ capacity`.
pub fn append(pipe: &mut Pipeline, key: &str, capacity: usize, events: &[LoggedEvent]) {
    for e in events {
        match packed(e) {
            Some(value) => pipe.cmd("XADD").arg(key).arg("*").arg(FIELD).arg(value),
            None => fields(pipe, key, e),
        }
        .ignore();
    }
    pipe.cmd("XTRIM")
        .arg(key)
        .arg("MAXLEN")
        .arg("~")
        .arg(capacity)
        .ignore();
}

/// `e` as one field's value; `None` when an id holds [`SEP`] (the five-field form then).
fn packed(e: &LoggedEvent) -> Option<String> {
    if e.user_id.contains(SEP) || e.video_id.contains(SEP) {
        return None;
    }
    let mut value = format!(
        "{}{SEP}{}{SEP}{}{SEP}{}",
        e.user_id,
        e.video_id,
        e.kind.as_str(),
        e.ts
    );
    if let Some(w) = e.watch_ms {
        value.push(SEP);
        value.push_str(&w.to_string());
    }
    Some(value)
}

/// The five-field `XADD` of `e` (the form earlier versions wrote).
fn fields<'p>(pipe: &'p mut Pipeline, key: &str, e: &LoggedEvent) -> &'p mut Pipeline {
    let cmd = pipe
        .cmd("XADD")
        .arg(key)
        .arg("*")
        .arg("u")
        .arg(&e.user_id)
        .arg("v")
        .arg(&e.video_id)
        .arg("k")
        .arg(e.kind.as_str())
        .arg("t")
        .arg(e.ts.to_string());
    if let Some(w) = e.watch_ms {
        cmd.arg("w").arg(w.to_string());
    }
    cmd
}

/// The `XREVRANGE` of the page after `last` (exclusive; the newest page when `None`).
pub fn page_command(key: &str, last: Option<&str>, max: usize) -> redis::Cmd {
    let mut cmd = redis::cmd("XREVRANGE");
    cmd.arg(key)
        .arg(last.map_or_else(|| "+".to_owned(), |id| format!("({id}")))
        .arg("-")
        .arg("COUNT")
        .arg(max.min(PAGE));
    cmd
}

/// Parses one `XREVRANGE` page: (entry id, event), newest first.
pub fn parse_page(reply: Value) -> Result<Vec<(String, LoggedEvent)>, StoreError> {
    let entries: Vec<(String, HashMap<String, String>)> =
        redis::from_redis_value(reply).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    entries
        .into_iter()
        .map(|(id, fields)| {
            let event = parse_entry(&fields)
                .map_err(|why| StoreError::Corrupt(format!("exposure log entry {id}: {why}")))?;
            Ok((id, event))
        })
        .collect()
}

fn parse_entry(f: &HashMap<String, String>) -> Result<LoggedEvent, String> {
    if let Some(value) = f.get(FIELD) {
        return parse_packed(value);
    }
    let get = |name: &str| f.get(name).ok_or_else(|| format!("no field {name}"));
    event_of(
        get("u")?,
        get("v")?,
        get("k")?,
        get("t")?,
        f.get("w").map(String::as_str),
    )
}

fn parse_packed(value: &str) -> Result<LoggedEvent, String> {
    let parts: Vec<&str> = value.split(SEP).collect();
    match parts[..] {
        [user, video, kind, ts] => event_of(user, video, kind, ts, None),
        [user, video, kind, ts, watch_ms] => event_of(user, video, kind, ts, Some(watch_ms)),
        _ => Err(format!(
            "field {FIELD} has {} parts, not 4 or 5: {value:?}",
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

    /// The `XREVRANGE` reply holding what `append` would write for `events` (ids made up).
    fn page_of(events: &[LoggedEvent]) -> Value {
        let mut pipe = redis::pipe();
        append(&mut pipe, "xlog", 1_000, events);
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
        let (xadds, trim) = cmds.split_at(cmds.len() - 1);
        assert_eq!(trim[0], [&b"XTRIM"[..], b"xlog", b"MAXLEN", b"~", b"1000"]);
        Value::Array(
            xadds
                .iter()
                .enumerate()
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

    #[test]
    fn an_event_is_one_field_and_reads_back_as_written() {
        let events = [
            event("u1", EventType::View, Some(1_234.5)),
            event("u2", EventType::Impression, None),
        ];
        let page = page_of(&events);
        let Value::Array(entries) = &page else {
            unreachable!()
        };
        let Value::Array(fields) = &entries[0].as_sequence().expect("entry")[1] else {
            panic!("fields")
        };
        assert_eq!(fields.len(), 2, "one field: {fields:?}");
        let read: Vec<LoggedEvent> = parse_page(page)
            .expect("parse")
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        assert_eq!(read, events);
    }

    #[test]
    fn an_id_holding_the_separator_is_written_and_read_in_five_fields() {
        let odd = event("u\u{1f}x", EventType::Like, None);
        let page = page_of(std::slice::from_ref(&odd));
        let read = parse_page(page).expect("parse");
        assert_eq!(read[0].1, odd);
    }

    #[test]
    fn an_entry_of_an_earlier_version_is_read() {
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
    fn a_malformed_entry_is_refused_naming_it() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        for bad in [
            "u1\u{1f}v1\u{1f}view",
            "u1\u{1f}v1\u{1f}nap\u{1f}12",
            "u1\u{1f}v1\u{1f}view\u{1f}soon",
        ] {
            let page = Value::Array(vec![Value::Array(vec![
                bulk("9-0"),
                Value::Array(vec![bulk("e"), bulk(bad)]),
            ])]);
            let err = parse_page(page).expect_err(bad).to_string();
            assert!(err.contains("exposure log entry 9-0"), "{err}");
        }
    }
}
