//! `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`: what `kubectl get` prints. Custom
//! resources get their CRD's `additionalPrinterColumns`; built-in kinds their printers' columns
//! (Services, EndpointSlices, Pods, Deployments: [`crate::resources`], [`crate::printers`]); the
//! rest get Name and Age.

use serde_json::{Value, json};

use crate::resources::{PrinterColumn, ResourceInfo};

/// Whether the client asked for a Table.
pub fn wanted(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// What a row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Include {
    /// No object.
    None,
    /// The object's metadata (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl Include {
    /// From the `includeObject` query parameter.
    pub fn from_query(v: Option<&str>) -> Self {
        match v {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

fn columns(info: &ResourceInfo) -> Vec<PrinterColumn> {
    let mut cols = vec![PrinterColumn {
        name: "Name".into(),
        type_: "string".into(),
        json_path: ".metadata.name".into(),
        priority: 0,
        computed: None,
    }];
    if info.printer_columns.is_empty() {
        cols.push(PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            json_path: ".metadata.creationTimestamp".into(),
            priority: 0,
            computed: None,
        });
    } else {
        cols.extend(info.printer_columns.iter().cloned());
    }
    cols
}

/// A value at a simple JSONPath (`.status.phase`, `.spec.ports[0].port`).
fn at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .try_fold(obj, |v, seg| match seg.split_once('[') {
            Some((key, idx)) => {
                let i: usize = idx.trim_end_matches(']').parse().ok()?;
                v.get(key)?.get(i)
            }
            None => v.get(seg),
        })
}

/// `5s`, `3m`, `2h`, `4d`: how long ago a timestamp was.
fn human_age(ts: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(ts) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn cell(obj: &Value, col: &PrinterColumn) -> Value {
    if let Some(computed) = col.computed {
        return crate::printers::cell(computed, obj);
    }
    match (at(obj, &col.json_path), col.type_.as_str()) {
        (None, _) => Value::Null,
        (Some(Value::String(s)), "date") => json!(human_age(s)),
        (Some(v), _) => v.clone(),
    }
}

fn row(info: &ResourceInfo, obj: &Value, include: Include) -> Value {
    let cells: Vec<Value> = columns(info).iter().map(|c| cell(obj, c)).collect();
    let mut r = json!({"cells": cells});
    match include {
        Include::None => {}
        Include::Metadata => {
            r["object"] = json!({"kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]});
        }
        Include::Object => r["object"] = obj.clone(),
    }
    r
}

/// A Table of `objects`.
pub fn table(
    info: &ResourceInfo,
    objects: &[Value],
    resource_version: &str,
    include: Include,
) -> Value {
    let defs: Vec<Value> = columns(info)
        .iter()
        .map(|c| {
            let format = if c.name == "Name" { "name" } else { "" };
            json!({"name": c.name, "type": if c.type_ == "date" { "string" } else { c.type_.as_str() },
                   "format": format, "description": "", "priority": c.priority})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
           "metadata": {"resourceVersion": resource_version},
           "columnDefinitions": defs,
           "rows": objects.iter().map(|o| row(info, o, include)).collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::from_crd;

    #[test]
    fn feedrollouts_print_their_columns() {
        let crd = serde_json::to_value(feedroll_crds::crd().unwrap()).unwrap();
        let info = &from_crd(&crd)[0];
        let obj = json!({"metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"},
                         "status": {"phase": "Progressing", "weight": 10}});
        let t = table(info, &[obj], "7", Include::None);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names[..3], ["Name", "Phase", "Weight"]);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(
            (&cells[0], &cells[1], &cells[2]),
            (&json!("web"), &json!("Progressing"), &json!(10))
        );
        assert!(cells[3].is_null());
        assert!(
            cells
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .as_str()
                .unwrap()
                .ends_with('d')
        );
        assert!(wanted(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wanted("application/json"));
    }
}
