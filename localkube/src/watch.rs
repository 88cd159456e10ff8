//! Watch responses: the backlog (current objects or replayed history) then live changes,
//! each seen through the watch's selectors (objects entering and leaving them), as JSON lines
//! or Table rows; a compacted resourceVersion's single 410 `ERROR` event.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::path::Target;
use crate::resources::ResourceInfo;
use crate::selector::Selector;
use crate::server::ResponseBody;
use crate::store::{Change, EventType, ObjectKey};
use crate::table::{self, Include};

/// What a watch request asked for, with its backlog and live channel.
pub(crate) struct WatchSpec {
    pub(crate) target: Target,
    pub(crate) info: ResourceInfo,
    pub(crate) labels: Selector,
    pub(crate) fields: Selector,
    pub(crate) backlog: Vec<Change>,
    pub(crate) rx: broadcast::Receiver<Change>,
    pub(crate) table: Option<Include>,
    pub(crate) timeout: Option<Duration>,
}

/// Whether a change to `key` is in the watched collection `t` (resource and namespace).
pub(crate) fn in_scope(t: &Target, key: &ObjectKey) -> bool {
    key.prefix == t.prefix
        && key.resource == t.resource
        && t.namespace.as_ref().is_none_or(|ns| *ns == key.namespace)
}

pub(crate) fn watch_line(kind: &str, object: &Value) -> Frame<Bytes> {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Frame::data(Bytes::from(line))
}

pub(crate) fn watch_response(spec: WatchSpec) -> Response<ResponseBody> {
    let WatchSpec {
        target: t,
        info,
        labels,
        fields,
        backlog,
        rx,
        table,
        timeout,
    } = spec;
    let seen = move |c: Change| {
        let event = in_scope(&t, &c.key)
            .then(|| c.seen_through(|o| labels.matches_labels(o) && fields.matches_fields(o)))
            .flatten();
        std::future::ready(event)
    };
    // A lagging watcher ends its stream: the client resumes from the last resourceVersion it
    // saw and gets the missed changes from the history, nothing is skipped.
    let live = futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(c) => Some((c, rx)),
            Err(_) => None,
        }
    });
    let render = move |(kind, object): (EventType, Value)| {
        let object = match table {
            Some(include) => {
                let rv = object["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                table::table(&info, std::slice::from_ref(&object), &rv, include)
            }
            None => object,
        };
        Ok::<_, Infallible>(watch_line(&kind.to_string(), &object))
    };
    let events = futures::stream::iter(backlog)
        .chain(live)
        .filter_map(seen)
        .map(render);
    let body = match timeout {
        Some(d) => StreamBody::new(events.take_until(tokio::time::sleep(d))).boxed_unsync(),
        None => StreamBody::new(events).boxed_unsync(),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

/// A watch of a compacted resourceVersion: one ERROR event with the 410 Status, as the API
/// server sends it.
pub(crate) fn expired_watch(e: &ApiError) -> Response<ResponseBody> {
    let line = watch_line("ERROR", &e.status());
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(StreamBody::new(futures::stream::iter([Ok::<_, Infallible>(line)])).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}
