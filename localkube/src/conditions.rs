//! Status conditions as controllers write them (`type`, `status` `"True"`/`"False"`,
//! `lastTransitionTime` kept while the status does not change).

use serde_json::{Value, json};

/// The condition of type `kind` in `status.conditions`.
pub fn find<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
}

/// `"True"` or `"False"`.
pub fn word(ok: bool) -> &'static str {
    if ok { "True" } else { "False" }
}

/// The `lastTransitionTime` of condition `kind` becoming `ok` at `now`: the previous one's
/// when `previous` (a stored status) has it with the same status, else `now`.
pub fn transition_time(previous: &Value, kind: &str, ok: bool, now: &str) -> Value {
    match find(previous, kind) {
        Some(c) if c["status"] == word(ok) => c["lastTransitionTime"].clone(),
        _ => json!(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_times_are_kept_while_the_status_stays() {
        let previous = json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t0"}]});
        assert_eq!(transition_time(&previous, "Ready", true, "t1"), "t0");
        assert_eq!(transition_time(&previous, "Ready", false, "t1"), "t1");
        assert_eq!(transition_time(&previous, "Available", true, "t1"), "t1");
        assert_eq!(transition_time(&Value::Null, "Ready", true, "t1"), "t1");
        assert!(find(&previous, "Ready").is_some() && find(&previous, "Other").is_none());
    }
}
