//! The OpenAPI v3 (structural) schema checks the API server applies before CEL: types,
//! required fields, unknown fields, enums, ranges, lengths and patterns.

use serde_json::{Map, Value};

use super::{Problem, join};

/// The `openAPIV3Schema` of the generated CRD, as JSON.
pub fn crd_schema() -> Result<Value, String> {
    let crd = crate::crd().map_err(|e| e.to_string())?;
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .ok_or_else(|| "the CRD has no schema".to_owned())?;
    serde_json::to_value(schema).map_err(|e| e.to_string())
}

/// Every schema violation of `object`. `metadata` is only checked for being an object (the API
/// server validates it itself).
pub fn validate(schema: &Value, object: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    check(schema, object, "", &mut problems);
    problems
}

fn problem(problems: &mut Vec<Problem>, path: &str, message: String) {
    problems.push(Problem {
        path: path.to_owned(),
        line: None,
        message,
    });
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(schema: &Value, value: &Value, path: &str, problems: &mut Vec<Problem>) {
    let Some(s) = schema.as_object() else { return };
    if value.is_null() {
        if !s.get("nullable").and_then(Value::as_bool).unwrap_or(false) && s.contains_key("type") {
            problem(problems, path, "must not be null".into());
        }
        return;
    }
    if s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            problem(
                problems,
                path,
                format!("must be an integer or a string, got {}", type_name(value)),
            );
        }
        return;
    }
    let preserve = s
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    if let Some(want) = s.get("type").and_then(Value::as_str) {
        let got = type_name(value);
        let ok = got == want || (want == "number" && got == "integer");
        if !ok {
            problem(
                problems,
                path,
                format!("must be of type {want}, got {got}: {}", short(value)),
            );
            return;
        }
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        problem(
            problems,
            path,
            format!(
                "unsupported value {}: must be one of {}",
                short(value),
                names.join(", ")
            ),
        );
    }
    match value {
        Value::Object(map) => check_object(s, map, path, preserve, problems),
        Value::Array(items) => {
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                problem(problems, path, format!("must have at least {min} item(s)"));
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                problem(problems, path, format!("must have at most {max} items"));
            }
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), problems);
                }
            }
        }
        Value::String(text) => {
            let len = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                problem(
                    problems,
                    path,
                    format!("must be at least {min} character(s) long"),
                );
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                problem(
                    problems,
                    path,
                    format!("must be at most {max} characters long"),
                );
            }
            if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
                && let Ok(re) = regex::Regex::new(pattern)
                && !re.is_match(text)
            {
                problem(problems, path, format!("{text:?} does not match {pattern}"));
            }
        }
        Value::Number(n) => {
            if let (Some(v), Some(min)) = (n.as_f64(), s.get("minimum").and_then(Value::as_f64))
                && v < min
            {
                problem(
                    problems,
                    path,
                    format!("must be greater than or equal to {min}, got {v}"),
                );
            }
            if let (Some(v), Some(max)) = (n.as_f64(), s.get("maximum").and_then(Value::as_f64))
                && v > max
            {
                problem(
                    problems,
                    path,
                    format!("must be less than or equal to {max}, got {v}"),
                );
            }
        }
        _ => {}
    }
}

fn check_object(
    s: &Map<String, Value>,
    map: &Map<String, Value>,
    path: &str,
    preserve: bool,
    problems: &mut Vec<Problem>,
) {
    if path == "metadata" {
        return;
    }
    if let Some(required) = s.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                problem(problems, &join(path, name), "is required".into());
            }
        }
    }
    let properties = s.get("properties").and_then(Value::as_object);
    let additional = s.get("additionalProperties");
    for (key, child) in map {
        // The API server knows these at the root of every object.
        if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let child_path = join(path, key);
        if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
            check(child_schema, child, &child_path, problems);
        } else if let Some(extra) = additional.filter(|a| a.is_object()) {
            check(extra, child, &child_path, problems);
        } else if properties.is_some()
            && !preserve
            && !matches!(additional, Some(Value::Bool(true)))
        {
            let known: Vec<&str> = properties
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            problem(
                problems,
                &child_path,
                format!("unknown field {key:?} (known fields: {})", known.join(", ")),
            );
        }
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}
