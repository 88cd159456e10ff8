//! One item of a `POST /v1/events` batch, read field by field from its JSON value so that a bad
//! item (unknown `type`, missing, mistyped or unknown field) is rejected alone, with a per-item
//! code and a message naming the field, while the rest of the batch is applied.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::model::{ErrorCode, Event, EventType, Invalid};

/// Why one event of a batch was rejected when read: the `code` of its `rejected[]` entry (and the
/// `code` label of `feed_events_rejected_total`). The write use case rejects the rest
/// (`invalid_ts`, `unknown_video`: [`crate::ingest`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectCode {
    /// The item is not a JSON object.
    InvalidEvent,
    /// `type` is a string naming no event type this server knows (e.g. one a newer client sends).
    UnknownType,
    /// A field this server does not know.
    UnknownField,
    /// A required field (`user_id`, `video_id`, `type`) is absent or `null`.
    MissingField,
    /// A field has the wrong JSON type or a value that does not parse (e.g. `ts` not RFC 3339).
    InvalidField,
    /// A check of [`Event::validate`] failed; carries its code (`invalid_id`, `invalid_watch_ms`).
    Validation(ErrorCode),
}

impl RejectCode {
    /// The code of the `rejected[]` entry.
    pub const fn code(self) -> ErrorCode {
        match self {
            Self::InvalidEvent => ErrorCode::InvalidEvent,
            Self::UnknownType => ErrorCode::UnknownType,
            Self::UnknownField => ErrorCode::UnknownField,
            Self::MissingField => ErrorCode::MissingField,
            Self::InvalidField => ErrorCode::InvalidField,
            Self::Validation(code) => code,
        }
    }

    /// The code as on the wire.
    pub fn as_str(self) -> &'static str {
        self.code().as_str()
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected item: its code and a message naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Machine-readable reason.
    pub code: RejectCode,
    /// What is wrong, naming the field.
    pub message: String,
}

impl Rejection {
    /// A rejection with a code and message.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<Invalid> for Rejection {
    fn from(e: Invalid) -> Self {
        Self::new(RejectCode::Validation(e.code), e.message)
    }
}

/// The fields of an [`Event`] on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    UserId,
    VideoId,
    Type,
    WatchMs,
    Ts,
    Variant,
}

impl Field {
    const ALL: [Field; 6] = [
        Self::UserId,
        Self::VideoId,
        Self::Type,
        Self::WatchMs,
        Self::Ts,
        Self::Variant,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::UserId => "user_id",
            Self::VideoId => "video_id",
            Self::Type => "type",
            Self::WatchMs => "watch_ms",
            Self::Ts => "ts",
            Self::Variant => "variant",
        }
    }

    fn known(name: &str) -> bool {
        Self::ALL.iter().any(|f| f.name() == name)
    }
}

/// The names of every event field, for messages.
fn field_list() -> String {
    Field::ALL.map(Field::name).join(", ")
}

/// The names of every event type, for messages.
fn type_list() -> String {
    EventType::ALL.map(EventType::as_str).join(", ")
}

/// Reads an optional field: absent and `null` are `None`; a value of the wrong type is
/// `invalid_field` naming the field.
fn optional<T: DeserializeOwned>(
    obj: &Map<String, Value>,
    f: Field,
) -> Result<Option<T>, Rejection> {
    match obj.get(f.name()) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => T::deserialize(v).map(Some).map_err(|e| {
            Rejection::new(
                RejectCode::InvalidField,
                format!("{}: {e}, got {}", f.name(), describe(v)),
            )
        }),
    }
}

/// Reads a required field: absent or `null` is `missing_field`.
fn required<T: DeserializeOwned>(obj: &Map<String, Value>, f: Field) -> Result<T, Rejection> {
    optional(obj, f)?.ok_or_else(|| {
        Rejection::new(
            RejectCode::MissingField,
            format!("{} is required", f.name()),
        )
    })
}

/// A short description of a JSON value for messages (never the whole value).
fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads one item of a batch, as sent, into a typed, validated [`Event`]: the same answer as
/// [`parse_event`] on the item's `Value`, for less. Most items are well formed and are read
/// straight into an [`Event`] (which, like [`parse_event`], takes exactly the known fields, the
/// required ones present and not `null`); only an item that read refuses is read again as a
/// `Value`, field by field, for its code and message. `Err`: the item is not a JSON value
/// [`parse_event`] could have been given (a number beyond `f64`, which the body's first pass
/// does not check).
pub fn read_event(item: &RawValue) -> Result<Result<Event, Rejection>, serde_json::Error> {
    if let Ok(event) = serde_json::from_str::<Event>(item.get()) {
        return Ok(event.validate().map(|()| event).map_err(Rejection::from));
    }
    let value: Value = serde_json::from_str(item.get())?;
    Ok(parse_event(&value))
}

/// Reads one item of a batch into a typed, validated [`Event`].
///
/// Checks in this order, the first failure being the item's code: the item is an object
/// (`invalid_event`); `type`, when a string, names a known type (`unknown_type`); no unknown
/// fields (`unknown_field`, naming all of them); the required fields are present (`missing_field`);
/// every field has the right type (`invalid_field`); then [`Event::validate`] (`invalid_id`,
/// `invalid_watch_ms`). Checks that need the clock or the catalog are the caller's.
pub fn parse_event(item: &Value) -> Result<Event, Rejection> {
    let Value::Object(obj) = item else {
        return Err(Rejection::new(
            RejectCode::InvalidEvent,
            format!("an event must be a JSON object, got {}", describe(item)),
        ));
    };
    if let Some(Value::String(t)) = obj.get(Field::Type.name())
        && !EventType::ALL.iter().any(|k| k.as_str() == t)
    {
        return Err(Rejection::new(
            RejectCode::UnknownType,
            format!("type {t:?} is not a known event type ({})", type_list()),
        ));
    }
    let unknown: Vec<String> = obj
        .keys()
        .filter(|k| !Field::known(k))
        .map(|k| format!("{k:?}"))
        .collect();
    if !unknown.is_empty() {
        let plural = if unknown.len() == 1 { "" } else { "s" };
        return Err(Rejection::new(
            RejectCode::UnknownField,
            format!(
                "unknown field{plural} {} (known: {})",
                unknown.join(", "),
                field_list()
            ),
        ));
    }
    let user_id: String = required(obj, Field::UserId)?;
    let video_id: String = required(obj, Field::VideoId)?;
    let kind: EventType = required(obj, Field::Type)?;
    let event = Event {
        user_id,
        video_id,
        kind,
        watch_ms: optional(obj, Field::WatchMs)?,
        ts: optional(obj, Field::Ts)?,
        variant: optional(obj, Field::Variant)?,
    };
    event.validate()?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn code(item: Value) -> Result<Event, (&'static str, String)> {
        parse_event(&item).map_err(|r| (r.code.as_str(), r.message))
    }

    fn rejected(item: Value) -> (&'static str, String) {
        match code(item.clone()) {
            Err(r) => r,
            Ok(e) => panic!("{item} was accepted as {e:?}"),
        }
    }

    #[test]
    fn a_complete_event_reads_every_field() {
        let e = code(json!({
            "user_id": "u", "video_id": "v", "type": "view", "watch_ms": 1500,
            "ts": "2026-01-02T03:04:05Z", "variant": "b"
        }));
        let Ok(e) = e else { panic!("{e:?}") };
        assert_eq!(e.kind, EventType::View);
        assert_eq!(e.watch_ms, Some(1500.0));
        assert_eq!(
            e.ts.map(|t| t.to_rfc3339()),
            Some("2026-01-02T03:04:05+00:00".into())
        );
        assert_eq!(e.variant.as_deref(), Some("b"));
    }

    #[test]
    fn null_optional_fields_are_absent() {
        let e = code(json!({
            "user_id": "u", "video_id": "v", "type": "like", "watch_ms": null, "ts": null,
            "variant": null
        }));
        assert!(
            e.as_ref()
                .is_ok_and(|e| e.watch_ms.is_none() && e.ts.is_none() && e.variant.is_none()),
            "{e:?}"
        );
    }

    #[test]
    fn every_event_type_is_known() {
        for t in EventType::ALL {
            let e =
                code(json!({"user_id": "u", "video_id": "v", "type": t.as_str(), "watch_ms": 1}));
            assert_eq!(e.map(|e| e.kind), Ok(t));
        }
    }

    #[test]
    fn non_objects_are_invalid_events() {
        for item in [json!(null), json!(3), json!("like"), json!([]), json!(true)] {
            assert_eq!(rejected(item).0, "invalid_event");
        }
    }

    #[test]
    fn an_unknown_type_is_named() {
        let (c, m) = rejected(json!({"user_id": "u", "video_id": "v", "type": "teleport"}));
        assert_eq!(c, "unknown_type");
        assert!(
            m.contains("\"teleport\"") && m.contains("impression"),
            "{m}"
        );
        // Types are case-sensitive, as on the wire.
        assert_eq!(
            rejected(json!({"user_id": "u", "video_id": "v", "type": "Like"})).0,
            "unknown_type"
        );
    }

    #[test]
    fn an_unknown_type_wins_over_unknown_fields() {
        let item = json!({"user_id": "u", "video_id": "v", "type": "teleport", "to": "mars"});
        assert_eq!(rejected(item).0, "unknown_type");
    }

    #[test]
    fn unknown_fields_are_all_named() {
        let (c, m) = rejected(json!({
            "user_id": "u", "video_id": "v", "type": "like", "position": 3, "screen": "home"
        }));
        assert_eq!(c, "unknown_field");
        assert!(
            m.contains("\"position\"") && m.contains("\"screen\""),
            "{m}"
        );
        let (c, m) = rejected(json!({"userId": "u", "video_id": "v", "type": "like"}));
        assert_eq!(c, "unknown_field");
        assert!(m.starts_with("unknown field \"userId\""), "{m}");
    }

    #[test]
    fn missing_or_null_required_fields_are_named() {
        for f in ["user_id", "video_id", "type"] {
            let mut absent = json!({"user_id": "u", "video_id": "v", "type": "like"});
            let mut null = absent.clone();
            null[f] = Value::Null;
            if let Some(obj) = absent.as_object_mut() {
                obj.remove(f);
            }
            let want = ("missing_field", format!("{f} is required"));
            assert_eq!(rejected(absent), want);
            assert_eq!(rejected(null), want);
        }
    }

    #[test]
    fn mistyped_fields_are_named() {
        let base = json!({"user_id": "u", "video_id": "v", "type": "view", "watch_ms": 5});
        for (f, bad) in [
            ("user_id", json!(5)),
            ("video_id", json!(["v"])),
            ("type", json!(1)),
            ("watch_ms", json!("5")),
            ("ts", json!("yesterday")),
            ("ts", json!(1700000000)),
            ("variant", json!({"name": "b"})),
        ] {
            let mut item = base.clone();
            item[f] = bad.clone();
            let (c, m) = rejected(item);
            assert_eq!(c, "invalid_field", "{f}={bad}");
            assert!(m.starts_with(&format!("{f}: ")), "{m}");
        }
    }

    #[test]
    fn validation_codes_are_kept() {
        let (c, _) = rejected(json!({"user_id": "", "video_id": "v", "type": "like"}));
        assert_eq!(c, "invalid_id");
        let (c, _) = rejected(json!({"user_id": "u", "video_id": "v", "type": "view"}));
        assert_eq!(c, "invalid_watch_ms");
        let (c, _) =
            rejected(json!({"user_id": "u", "video_id": "v", "type": "skip", "watch_ms": -1}));
        assert_eq!(c, "invalid_watch_ms");
    }

    /// A JSON text for a field's value: the kinds an event's fields take and the ways clients
    /// get them wrong.
    fn value_text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("[\"v\"]".to_owned()),
            Just("{\"name\":\"b\"}".to_owned()),
            Just("\"\"".to_owned()),
            Just("\"2026-01-02T03:04:05Z\"".to_owned()),
            Just("\"yesterday\"".to_owned()),
            Just("\"u\\u00e9\\n\"".to_owned()),
            Just("1e400".to_owned()),
            Just("-1".to_owned()),
            (0u32..100_000).prop_map(|n| n.to_string()),
            (0.0f64..1e6).prop_map(|x| format!("{x}")),
            proptest::sample::select(EventType::ALL.to_vec())
                .prop_map(|t| format!("\"{}\"", t.as_str())),
            "[a-z]{1,8}".prop_map(|s| format!("\"{s}\"")),
        ]
    }

    /// A JSON text of one item: mostly objects of known fields (in any order, some repeated,
    /// some unknown), sometimes not an object at all.
    fn item_text() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            4 => proptest::sample::select(Field::ALL.to_vec()).prop_map(|f| f.name().to_owned()),
            1 => Just("client".to_owned()),
            1 => Just("Type".to_owned()),
        ];
        let object = proptest::collection::vec((key, value_text()), 0..9).prop_map(|fields| {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        });
        let valid = (
            proptest::sample::select(EventType::ALL.to_vec()),
            proptest::option::of(0u32..100_000),
        )
            .prop_map(|(t, ms)| {
                let ms = ms.map_or(String::new(), |ms| format!(",\"watch_ms\":{ms}"));
                format!(
                    "{{\"user_id\":\"u1\",\"video_id\":\"v1\",\"type\":\"{}\"{ms}}}",
                    t.as_str()
                )
            });
        prop_oneof![3 => object, 3 => valid, 1 => value_text()]
    }

    proptest! {
        /// The typed read answers every item exactly as the field-by-field read of its
        /// `Value`: the same event, or the same code and message; and an item that is no
        /// `Value` (a number beyond `f64`) is an error of both.
        #[test]
        fn reading_an_item_typed_answers_as_reading_its_value(text in item_text()) {
            let raw: Box<RawValue> = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("the generator wrote bad JSON {text}: {e}"));
            let typed = read_event(&raw);
            match serde_json::from_str::<Value>(&text) {
                Ok(value) => prop_assert_eq!(typed.ok(), Some(parse_event(&value)), "{}", text),
                Err(_) => prop_assert!(typed.is_err(), "{}", text),
            }
        }
    }
}
