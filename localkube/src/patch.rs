//! The three patch formats of the PATCH verb besides server-side apply: JSON merge patch
//! (RFC 7386), strategic merge patch (for built-in kinds) and JSON patch (RFC 6902).

use serde_json::Value;

/// The patch formats, by Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/apply-patch+yaml`: server-side apply.
    Apply,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/json-patch+json`.
    Json,
}

impl PatchType {
    /// The format a Content-Type names, if it is one.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let ct = ct.split(';').next().unwrap_or_default().trim();
        match ct {
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/json-patch+json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// RFC 7386 merge of `patch` into `target` (null removes, objects merge, the rest replaces).
pub fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// Whether every element of a list is an object with a `name` (containers, env, ports,
/// volumes, volumeMounts…): the lists strategic merge patch merges by name.
fn keyed_by_name(list: &[Value]) -> bool {
    !list.is_empty()
        && list
            .iter()
            .all(|v| v.get("name").is_some_and(Value::is_string))
}

/// Strategic merge patch, for what kubectl sends: like a merge patch, except that lists of
/// objects keyed by `name` merge element by element (`$patch: delete` removes one) and the
/// `$setElementOrder/…`, `$retainKeys` directives are dropped. Other directives and
/// per-field patch strategies from the OpenAPI schema are not modelled.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) else {
        *target = strip_directives(patch);
        return;
    };
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        let slot = t.entry(k.clone()).or_insert(Value::Null);
        match (slot.as_array_mut(), v.as_array()) {
            (Some(old), Some(new)) if keyed_by_name(new) && keyed_by_name(old) => {
                for item in new {
                    let name = &item["name"];
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match old.iter().position(|o| &o["name"] == name) {
                        Some(i) if delete => {
                            old.remove(i);
                        }
                        Some(i) => strategic_merge(&mut old[i], item),
                        None if delete => {}
                        None => old.push(strip_directives(item)),
                    }
                }
            }
            _ => strategic_merge(slot, v),
        }
    }
}

/// The value without `$`-directives (what is stored when a patch adds something new).
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Applies an RFC 6902 JSON patch. Like the API server, a `test` of a missing path against
/// `null` passes.
pub fn json_patch(target: &mut Value, patch: Value) -> Result<(), JsonPatchError> {
    let mut patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(|e| JsonPatchError::Malformed(e.to_string()))?;
    patch.0.retain(|op| match op {
        json_patch::PatchOperation::Test(t) => {
            !(t.value.is_null() && target.pointer(t.path.as_str()).is_none())
        }
        _ => true,
    });
    json_patch::patch(target, &patch).map_err(|e| JsonPatchError::Failed(e.to_string()))
}

/// Why a JSON patch was not applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonPatchError {
    /// The body is not a list of RFC 6902 operations.
    #[error("the JSON patch is malformed: {0}")]
    Malformed(String),
    /// An operation failed (a missing path, a failed `test`); nothing was changed.
    #[error("{0}")]
    Failed(String),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_removes_nulls_and_replaces_lists() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge(&mut v, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(v, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn strategic_patch_merges_containers_by_name_and_drops_directives() {
        let mut v = json!({"spec": {"containers": [
            {"name": "app", "image": "a:1", "args": ["x"]},
            {"name": "side", "image": "s:1"}]}});
        strategic_merge(
            &mut v,
            &json!({"spec": {"$setElementOrder/containers": [{"name": "app"}],
                "containers": [{"name": "app", "image": "a:2"},
                               {"name": "side", "$patch": "delete"},
                               {"name": "new", "image": "n:1"}]}}),
        );
        assert_eq!(
            v,
            json!({"spec": {"containers": [
                {"name": "app", "image": "a:2", "args": ["x"]},
                {"name": "new", "image": "n:1"}]}})
        );
    }

    #[test]
    fn json_patch_errors_are_reported_and_null_tests_of_missing_paths_pass() {
        let mut v = json!({"a": 1});
        json_patch(
            &mut v,
            json!([{"op": "test", "path": "/b", "value": null}, {"op": "add", "path": "/b", "value": 2}]),
        )
        .unwrap();
        assert_eq!(v, json!({"a": 1, "b": 2}));
        assert!(matches!(
            json_patch(&mut v, json!([{"op": "remove", "path": "/zz"}])),
            Err(JsonPatchError::Failed(_))
        ));
        assert!(matches!(
            json_patch(&mut v, json!({"not": "a patch"})),
            Err(JsonPatchError::Malformed(_))
        ));
        assert_eq!(v, json!({"a": 1, "b": 2}));
    }

    #[test]
    fn content_types_name_the_formats() {
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml; charset=utf-8"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("text/plain"), None);
    }
}
