//! Durations written the Kubernetes/Go way: `30s`, `15m`, `1h30m`, `500ms`.

use std::{borrow::Cow, fmt, time::Duration};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// CEL rule shared by every duration field (the apiserver rejects unparsable durations).
pub const DURATION_RULE: &str = "self.matches('^([0-9]+([.][0-9]+)?(ms|s|m|h))+$')";
/// Message of [`DURATION_RULE`].
pub const DURATION_MESSAGE: &str =
    "must be a duration such as 30s, 15m or 1h30m (units ms, s, m, h)";

/// A duration as written in the spec, e.g. `15m`; parse it with [`DurationString::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DurationString(pub String);

impl DurationString {
    /// A duration string from text (not validated; see [`DurationString::parse`]).
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// Parses the text into a [`Duration`].
    pub fn parse(&self) -> Result<Duration, ApiError> {
        parse_duration(&self.0)
    }
}

impl fmt::Display for DurationString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for DurationString {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl JsonSchema for DurationString {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 32,
            "x-kubernetes-validations": [{"rule": DURATION_RULE, "message": DURATION_MESSAGE}],
        })
    }
}

/// Parses `1h30m`, `15m`, `30s`, `500ms`, `1.5h` into a [`Duration`].
pub fn parse_duration(text: &str) -> Result<Duration, ApiError> {
    let bad = || ApiError::Duration {
        value: text.to_owned(),
    };
    if text.is_empty() || text.len() > 32 {
        return Err(bad());
    }
    let mut total = 0.0_f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        let (unit_seconds, unit_len) = if tail.starts_with("ms") {
            (0.001, 2)
        } else if tail.starts_with('s') {
            (1.0, 1)
        } else if tail.starts_with('m') {
            (60.0, 1)
        } else if tail.starts_with('h') {
            (3600.0, 1)
        } else {
            return Err(bad());
        };
        total += value * unit_seconds;
        rest = &tail[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Formats a duration the way Prometheus range selectors accept it (`300s`, `1500ms`).
pub fn prometheus_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_style_durations() {
        for (text, secs) in [
            ("30s", 30.0),
            ("15m", 900.0),
            ("1h30m", 5400.0),
            ("500ms", 0.5),
            ("1.5h", 5400.0),
            ("0s", 0.0),
        ] {
            assert_eq!(parse_duration(text).unwrap().as_secs_f64(), secs, "{text}");
        }
    }

    #[test]
    fn rejects_what_the_cel_rule_rejects() {
        for text in ["", "15", "m", "15x", "1.h", ".5s", "-1s", "1h 30m", "15min"] {
            assert!(parse_duration(text).is_err(), "{text:?} should not parse");
        }
    }

    #[test]
    fn prometheus_format_is_integral() {
        assert_eq!(prometheus_duration(Duration::from_secs(300)), "300s");
        assert_eq!(prometheus_duration(Duration::from_millis(1500)), "1500ms");
    }
}
