//! The exposure log on Redis: a capped Stream `P xlog` ([`crate::exposure`]). Each entry holds
//! one accepted event: fields `u` (user), `v` (video), `k` (type), `t` (unix seconds) and `w`
//! (watch ms, when the event had one). Appends ride in the script that applies a round of the
//! ingest stream to the shared aggregates (`store::redis_events`), which counts what the
//! `MAXLEN ~` trimmed; reads walk the stream from the newest entry backwards in pages.

use std::collections::HashMap;

use redis::{Pipeline, Value};

use super::StoreError;
use crate::exposure::LoggedEvent;
use crate::model::EventType;

/// Entries read per round trip: small enough that a page arrives well within the store timeout
/// (a debug build on a loaded machine took more than 300 ms for 1,000 entries).
const PAGE: usize = 500;

/// Adds to `pipe` one `XADD … MAXLEN ~ capacity` per event.
pub fn append(pipe: &mut Pipeline, key: &str, capacity: usize, events: &[LoggedEvent]) {
    for e in events {
        let cmd = pipe
            .cmd("XADD")
            .arg(key)
            .arg("MAXLEN")
            .arg("~")
            .arg(capacity)
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
        cmd.ignore();
    }
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
    let get = |name: &str| f.get(name).ok_or_else(|| format!("no field {name}"));
    let kind = get("k")?;
    let kind = EventType::ALL
        .into_iter()
        .find(|k| k.as_str() == kind)
        .ok_or_else(|| format!("unknown type {kind:?}"))?;
    let ts = get("t")?.parse::<f64>().map_err(|e| format!("t: {e}"))?;
    let watch_ms = f
        .get("w")
        .map(|w| w.parse::<f64>().map_err(|e| format!("w: {e}")))
        .transpose()?;
    Ok(LoggedEvent {
        user_id: get("u")?.clone(),
        video_id: get("v")?.clone(),
        kind,
        watch_ms,
        ts,
    })
}
