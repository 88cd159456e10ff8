//! The exposure log on Redis: a capped Stream `P xlog` ([`crate::exposure`]). Each entry holds
//! one accepted event, in one of two forms (`--exposure-log-format`, [`LogFormat`]), both read:
//!
//! - **fields** (the default): fields `u` (user), `v` (video), `k` (type), `t` (unix seconds)
//!   and `w` (watch ms, when the event had one) — the form every version reads;
//! - **packed**: one field `e`, the same values joined by [`SEP`] (`\x1f`, the unit separator,
//!   which no id holds: the API refuses ids with control characters; an event whose id holds it
//!   anyway, written around the API, is still written in fields).
//!
//! Appends ride in the script that applies a round of the ingest stream to the shared
//! aggregates (`store::redis_events`), then one `XTRIM MAXLEN ~ N LIMIT 0` caps the log (no
//! limit on what one trim evicts: a round can log far more than the 10,000 entries a trim
//! evicts by default), and the script counts what it trimmed; reads walk the stream from the
//! newest entry backwards in pages.
//!
//! **Why packed.** Every argument of that script becomes a Lua string and then a Redis object
//! again, and the log's appends were most of its arguments: 12 or 14 per event with a
//! `MAXLEN ~ N` each, 9 or 11 in fields now, 3 packed (BENCHMARKS.md, "Event POSTs: the
//! exposure log in one field …"). A version without
//! the option reads only fields, and would fail a tune or a replay (500 `store_corrupt`) on a
//! packed entry — the operator's replay gate asks the *stable* pods, so a canary writing packed
//! entries would stall its own rollout. Hence fields by default, packed once every replica reads
//! both (feed-server/README.md).

use std::collections::HashMap;

use redis::{Pipeline, Value};

use super::StoreError;
use crate::exposure::{LogFormat, LoggedEvent};
use crate::model::EventType;

/// Entries read per round trip: small enough that a page arrives well within the store timeout
/// (a debug build on a loaded machine took more than 300 ms for 1,000 entries).
const PAGE: usize = 500;

/// Separates the parts of a packed entry's field `e`.
const SEP: char = '\x1f';

/// The field holding a whole event.
const FIELD: &str = "e";

/// Adds to `pipe` one `XADD` per event in `format`, then one `XTRIM … MAXLEN ~ capacity LIMIT 0`.
pub fn append(
    pipe: &mut Pipeline,
    key: &str,
    capacity: usize,
    format: LogFormat,
    events: &[LoggedEvent],
) {
    for e in events {
        pipe.cmd("XADD")
            .arg(key)
            .arg("*")
            .arg(entry_args(format, e))
            .ignore();
    }
    pipe.cmd("XTRIM")
        .arg(key)
        .arg("MAXLEN")
        .arg("~")
        .arg(capacity)
        .arg("LIMIT")
        .arg(0)
        .ignore();
}

/// The field-value arguments of `e`'s entry in `format`: one field `e` packed, or the five
/// fields (also when packed is asked for but an id holds [`SEP`]).
pub fn entry_args(format: LogFormat, e: &LoggedEvent) -> Vec<String> {
    if format == LogFormat::Packed
        && let Some(value) = packed(e)
    {
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
            "field {FIELD} has {} parts, not 4 or 5",
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
    fn page_of(format: LogFormat, events: &[LoggedEvent]) -> Value {
        let mut pipe = redis::pipe();
        append(&mut pipe, "xlog", 1_000, format, events);
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
        assert_eq!(
            trim[0],
            [
                &b"XTRIM"[..],
                b"xlog",
                b"MAXLEN",
                b"~",
                b"1000",
                b"LIMIT",
                b"0"
            ]
        );
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

    fn read(page: Value) -> Vec<LoggedEvent> {
        parse_page(page)
            .expect("parse")
            .into_iter()
            .map(|(_, e)| e)
            .collect()
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
        assert_eq!(fields_of(&fields), [5, 4]);
        assert_eq!(read(fields), events);
    }

    #[test]
    fn an_id_holding_the_separator_is_written_and_read_in_fields() {
        let odd = event("u\u{1f}x", EventType::Like, None);
        let page = page_of(LogFormat::Packed, std::slice::from_ref(&odd));
        assert_eq!(fields_of(&page), [4]);
        assert_eq!(read(page), [odd]);
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
