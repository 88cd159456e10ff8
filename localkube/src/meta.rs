//! Validation every object gets from the API server whatever its kind, and the built-in kinds'
//! own rules that Feedroll's objects meet: the name's syntax for its kind (DNS-1123
//! subdomain, DNS-1123 label for Namespaces, DNS-1035 label for Services, a path segment for
//! RBAC objects), label keys and values, and a Deployment's `spec.selector` (required, matching
//! the template's labels, immutable). Pure functions: each problem is a [`Cause`] with its
//! field path, worded like the API server's.

use serde_json::Value;

use crate::error::Cause;
use crate::resources::ResourceInfo;

/// The name syntax a kind requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// Lowercase alphanumerics, `-` and `.`, alphanumeric at both ends, at most 253.
    Dns1123Subdomain,
    /// Lowercase alphanumerics and `-`, alphanumeric at both ends, at most 63.
    Dns1123Label,
    /// A DNS-1123 label that starts with a letter (Services).
    Dns1035Label,
    /// Anything usable as a URL path segment (no `/`, `%`, not `.` or `..`): RBAC objects.
    PathSegment,
}

impl NameRule {
    /// The rule for objects of `info`'s kind.
    pub fn of(info: &ResourceInfo) -> Self {
        match (info.group.as_str(), info.plural.as_str()) {
            ("", "namespaces") => Self::Dns1123Label,
            ("", "services") => Self::Dns1035Label,
            ("rbac.authorization.k8s.io", _) => Self::PathSegment,
            _ => Self::Dns1123Subdomain,
        }
    }

    /// What is wrong with `name` under this rule, worded like the API server.
    pub fn problem(self, name: &str) -> Option<String> {
        let lower_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let ends_ok = name.starts_with(lower_alnum) && name.ends_with(lower_alnum);
        match self {
            Self::Dns1123Subdomain => {
                let ok = name.len() <= 253
                    && ends_ok
                    && name.chars().all(|c| lower_alnum(c) || c == '-' || c == '.');
                (!ok).then(|| {
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (at most 253 characters)".into()
                })
            }
            Self::Dns1123Label | Self::Dns1035Label => {
                let first_ok = self == Self::Dns1123Label
                    || name.starts_with(|c: char| c.is_ascii_lowercase());
                let ok = name.len() <= 63
                    && ends_ok
                    && first_ok
                    && name.chars().all(|c| lower_alnum(c) || c == '-');
                (!ok).then(|| {
                    if self == Self::Dns1035Label {
                        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (at most 63 characters)".into()
                    } else {
                        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (at most 63 characters)".into()
                    }
                })
            }
            Self::PathSegment => {
                let ok = !name.is_empty()
                    && name != "."
                    && name != ".."
                    && !name.contains('/')
                    && !name.contains('%');
                (!ok).then(|| "may not be '.' or '..' and may not contain '/' or '%'".into())
            }
        }
    }
}

/// The "name part" of a label key, and a non-empty label value: at most 63 alphanumerics,
/// `-`, `_`, `.`, alphanumeric at both ends.
fn qualified_part_ok(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}

/// What is wrong with a label key (`[prefix/]name`, prefix a DNS-1123 subdomain).
pub fn label_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || NameRule::Dns1123Subdomain.problem(p).is_some())
    {
        return Some(format!(
            "Invalid value: {key:?}: prefix part must be a lowercase RFC 1123 subdomain"
        ));
    }
    (!qualified_part_ok(name)).then(|| format!(
        "Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)"
    ))
}

/// What is wrong with a label value (empty, or like a key's name part).
pub fn label_value_problem(value: &str) -> Option<String> {
    (!value.is_empty() && !qualified_part_ok(value)).then(|| format!(
        "Invalid value: {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)"
    ))
}

/// Problems with the labels at `field` (a map of strings).
fn label_problems(labels: &Value, field: &str) -> Vec<Cause> {
    let Some(map) = labels.as_object() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in map {
        if let Some(m) = label_key_problem(k) {
            out.push(Cause {
                field: field.into(),
                message: m,
            });
        }
        match v.as_str() {
            Some(s) => out.extend(label_value_problem(s).map(|m| Cause {
                field: format!("{field}.{k}"),
                message: m,
            })),
            None => out.push(Cause {
                field: format!("{field}.{k}"),
                message: "Invalid value: must be a string".into(),
            }),
        }
    }
    out
}

/// Whether a Deployment's `matchLabels`/`matchExpressions` selector selects `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str() {
                Some("In") => label(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => label(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => label(key).is_some(),
                Some("DoesNotExist") => label(key).is_none(),
                _ => false,
            }
        });
    by_labels && by_expressions
}

/// A Deployment's own rules: a non-empty `spec.selector` that selects the template's labels,
/// unchanged since creation (`old`).
fn deployment_problems(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let selector = &obj["spec"]["selector"];
    let empty = selector["matchLabels"]
        .as_object()
        .is_none_or(serde_json::Map::is_empty)
        && selector["matchExpressions"]
            .as_array()
            .is_none_or(Vec::is_empty);
    let mut out = Vec::new();
    if empty {
        out.push(Cause {
            field: "spec.selector".into(),
            message: "Required value: empty selector is invalid for deployment".into(),
        });
    } else if !selects(selector, &obj["spec"]["template"]["metadata"]["labels"]) {
        out.push(Cause {
            field: "spec.template.metadata.labels".into(),
            message: format!(
                "Invalid value: {}: `selector` does not match template `labels`",
                obj["spec"]["template"]["metadata"]["labels"]
            ),
        });
    }
    if let Some(old) = old
        && old["spec"]["selector"] != *selector
    {
        out.push(Cause {
            field: "spec.selector".into(),
            message: format!("Invalid value: {selector}: field is immutable"),
        });
    }
    out
}

/// Every problem with `obj` (`old`: the stored object, on an update) that its kind's
/// validation finds: name, labels (object and, for Deployments, pod template) and the
/// Deployment selector rules.
pub fn problems(info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut out = Vec::new();
    // Names are fixed once stored: only a new object's name is checked.
    if old.is_none()
        && let Some(name) = obj["metadata"]["name"].as_str()
        && let Some(m) = NameRule::of(info).problem(name)
    {
        out.push(Cause {
            field: "metadata.name".into(),
            message: format!("Invalid value: {name:?}: {m}"),
        });
    }
    out.extend(label_problems(
        &obj["metadata"]["labels"],
        "metadata.labels",
    ));
    if info.group == "apps" && info.plural == "deployments" {
        out.extend(label_problems(
            &obj["spec"]["template"]["metadata"]["labels"],
            "spec.template.metadata.labels",
        ));
        out.extend(deployment_problems(obj, old));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::builtins;

    fn info(plural: &str) -> ResourceInfo {
        builtins()
            .into_iter()
            .find(|i| i.plural == plural)
            .expect("a built-in kind")
    }

    #[test]
    fn names_follow_their_kinds_rule() {
        let cases = [
            ("configmaps", "a.b-c", true),
            ("configmaps", "A", false),
            ("configmaps", "-a", false),
            ("configmaps", &"a".repeat(254), false),
            ("namespaces", "a.b", false),
            ("namespaces", &"a".repeat(64), false),
            ("services", "1abc", false),
            ("services", "abc-1", true),
            ("deployments", "1abc", true),
            ("roles", "system:controller:x", true),
            ("roles", "a/b", false),
            ("roles", "..", false),
        ];
        for (plural, name, ok) in cases {
            let p = NameRule::of(&info(plural)).problem(name);
            assert_eq!(p.is_none(), ok, "{plural} {name}: {p:?}");
        }
    }

    #[test]
    fn label_keys_and_values_have_a_syntax_and_a_length() {
        for good in ["app", "feedroll.dev/rollout", "a_b.c-d", "x/Y"] {
            assert_eq!(label_key_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "/a",
            "Feed.Dev/x",
            "a b",
            "-a",
            &"a".repeat(64),
            "a/b/c",
        ] {
            assert!(label_key_problem(bad).is_some(), "{bad}");
        }
        assert_eq!(label_value_problem(""), None);
        assert_eq!(label_value_problem("v1.2_x-Y"), None);
        assert!(label_value_problem("a b").is_some());
        assert!(label_value_problem(&"a".repeat(64)).is_some());
    }

    #[test]
    fn a_deployment_selector_is_required_matches_its_template_and_is_immutable() {
        let d = |selector: Value, labels: Value| {
            json!({"metadata": {"name": "web"}, "spec": {"selector": selector,
                "template": {"metadata": {"labels": labels}}}})
        };
        let deploy = info("deployments");
        let good = d(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web", "x": "y"}),
        );
        assert_eq!(problems(&deploy, &good, None), []);
        let expr = d(
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}),
            json!({"app": "web"}),
        );
        assert_eq!(problems(&deploy, &expr, None), []);
        let fields = |obj: &Value, old: Option<&Value>| -> Vec<String> {
            problems(&deploy, obj, old)
                .into_iter()
                .map(|c| c.field)
                .collect()
        };
        assert_eq!(
            fields(&d(json!({}), json!({"app": "web"})), None),
            ["spec.selector"]
        );
        assert_eq!(
            fields(
                &d(
                    json!({"matchLabels": {"app": "api"}}),
                    json!({"app": "web"})
                ),
                None
            ),
            ["spec.template.metadata.labels"]
        );
        let moved = d(
            json!({"matchLabels": {"x": "y"}}),
            json!({"app": "web", "x": "y"}),
        );
        assert_eq!(fields(&moved, Some(&good)), ["spec.selector"]);
        let bad_label = d(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web", "a b": "c"}),
        );
        assert_eq!(fields(&bad_label, None), ["spec.template.metadata.labels"]);
    }
}
