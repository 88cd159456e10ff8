//! Timestamps in the form Kubernetes writes them (`2026-12-01T17:00:00Z`).

/// The current time, RFC 3339 with second precision and `Z`.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The current time with microseconds (Lease `renewTime`, Event `eventTime`).
pub fn now_micros() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
