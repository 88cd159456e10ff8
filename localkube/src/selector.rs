//! Label selectors (`app=web,track!=canary,env in (a,b),!legacy`) and field selectors
//! (`metadata.name=x,involvedObject.kind=Pod`) of list and watch requests.

use serde_json::Value;

use crate::error::ApiError;

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

/// Splits on commas outside parentheses.
fn terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn set_values(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

impl Selector {
    /// Parses a selector; a malformed one is a 400.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = || ApiError::BadRequest(format!("unable to parse requirement: {s:?}"));
        let mut reqs = Vec::new();
        for term in terms(s) {
            let req = if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once("==") {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once('=') {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), set_values(v).ok_or_else(bad)?)
            } else if let Some((k, v)) = term.split_once(" in ") {
                Requirement::In(k.trim().into(), set_values(v).ok_or_else(bad)?)
            } else if let Some(k) = term.strip_prefix('!') {
                Requirement::NotExists(k.trim().into())
            } else if term.contains(' ') || term.contains('(') {
                return Err(bad());
            } else {
                Requirement::Exists(term.into())
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Parses a field selector: only `=`, `==` and `!=`, on `metadata.name`,
    /// `metadata.namespace` and the kind's own selectable `fields`; anything else is a 400,
    /// as the API server answers.
    pub fn parse_fields(s: &str, fields: &[&str]) -> Result<Self, ApiError> {
        let selector = Self::parse(s)?;
        for r in &selector.0 {
            let (Requirement::Equals(key, _) | Requirement::NotEquals(key, _)) = r else {
                return Err(ApiError::BadRequest(format!(
                    "invalid selector: {s:?}: field selectors support only =, == and !="
                )));
            };
            let known = ["metadata.name", "metadata.namespace"]
                .iter()
                .chain(fields)
                .any(|f| f == key);
            if !known {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {key}"
                )));
            }
        }
        Ok(selector)
    }

    /// The value `key` must equal, when the selector requires an exact match on it (what the
    /// API server reads `metadata.name` from a list's field selector for RBAC with).
    pub fn exact(&self, key: &str) -> Option<&str> {
        self.0.iter().find_map(|r| match r {
            Requirement::Equals(k, v) if k == key => Some(v.as_str()),
            _ => None,
        })
    }

    /// Whether a value lookup satisfies every requirement.
    fn matches_with(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k).as_deref() == Some(v),
            Requirement::NotEquals(k, v) => get(k).as_deref() != Some(v),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.contains(&x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(&x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }

    /// As a label selector: whether the object's labels match.
    pub fn matches_labels(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        self.matches_with(|k| labels.get(k).and_then(Value::as_str).map(str::to_owned))
    }

    /// As a field selector: whether the object's fields (dotted paths) match. Numbers and
    /// booleans compare by their text.
    pub fn matches_fields(&self, obj: &Value) -> bool {
        self.matches_with(|k| {
            let v = k.split('.').try_fold(obj, |v, key| v.get(key))?;
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn field_selectors_allow_only_equality_on_the_kinds_fields() {
        let s = Selector::parse_fields("metadata.name=a,metadata.namespace!=b", &[]).unwrap();
        assert_eq!(s.exact("metadata.name"), Some("a"));
        assert_eq!(s.exact("metadata.namespace"), None);
        assert!(Selector::parse_fields("status.phase=Running", &["status.phase"]).is_ok());
        for bad in [
            "spec.replicas=1",
            "metadata.name in (a)",
            "metadata.name",
            "!metadata.name",
        ] {
            let e = Selector::parse_fields(bad, &[]).unwrap_err();
            assert_eq!(e.code(), 400, "{bad}");
        }
        let e = Selector::parse_fields("spec.x=1", &[]).unwrap_err();
        assert_eq!(e.to_string(), "field label not supported: spec.x");
    }

    #[test]
    fn label_selectors_support_equality_sets_and_existence() {
        let obj = json!({"metadata": {"labels": {"app": "web", "track": "canary"}}});
        let yes = [
            "",
            "app=web",
            "app==web,track",
            "track in (canary,stable)",
            "!legacy",
            "app!=api",
            "env notin (prod)",
        ];
        let no = [
            "app=api",
            "track notin (canary)",
            "!track",
            "legacy",
            "track in (stable)",
        ];
        for s in yes {
            assert!(Selector::parse(s).unwrap().matches_labels(&obj), "{s}");
        }
        for s in no {
            assert!(!Selector::parse(s).unwrap().matches_labels(&obj), "{s}");
        }
        assert!(Selector::parse("app in web").is_err());
    }

    #[test]
    fn field_selectors_read_dotted_paths() {
        let ev = json!({"metadata": {"name": "e1", "namespace": "ns"},
                        "involvedObject": {"kind": "FeedRollout", "name": "web"}});
        let s = Selector::parse("involvedObject.kind=FeedRollout,metadata.namespace=ns").unwrap();
        assert!(s.matches_fields(&ev));
        assert!(
            !Selector::parse("metadata.name=e2")
                .unwrap()
                .matches_fields(&ev)
        );
    }
}
