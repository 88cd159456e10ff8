//! Server-side apply and field ownership (`metadata.managedFields`).
//!
//! A field set is the set of leaf paths an object sets. Maps are walked into; lists are atomic
//! (owned and replaced whole: list-map merging by key is not modelled). In `metadata` only
//! `labels`, `annotations`, `finalizers` and `ownerReferences` are owned. The main resource
//! owns everything but `status`; the `status` subresource owns only `status`.
//!
//! Apply by a manager: a field another manager owns with a different value is a conflict (409
//! unless `force`, which takes the field over); fields the manager applied before and no longer
//! sends are removed unless someone else owns them; then the applied fields are set. Other
//! writes (create, update, merge/JSON/strategic patch) make their manager the owner of the
//! fields they changed, taking them from the others without conflicts.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::clock;

/// A field path: the keys from the root to a leaf.
pub type FieldPath = Vec<String>;

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The resource itself: everything but `status`.
    Main,
    /// The `status` subresource: only `status`.
    Status,
}

impl Scope {
    fn subresource(self) -> Option<&'static str> {
        match self {
            Self::Main => None,
            Self::Status => Some("status"),
        }
    }
}

/// How a manager last wrote its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// One entry of `metadata.managedFields`.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    manager: String,
    operation: Operation,
    subresource: Option<String>,
    api_version: String,
    time: String,
    fields: BTreeSet<FieldPath>,
}

/// A field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// `.spec.replicas`
    pub field: String,
}

/// The message of a 409 for `conflicts`, as the API server words it.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let list: Vec<String> = conflicts
        .iter()
        .map(|c| format!("conflict with \"{}\": {}", c.manager, c.field))
        .collect();
    if conflicts.len() == 1 {
        format!("Apply failed with 1 conflict: {}", list.join(""))
    } else {
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            list.join("\n")
        )
    }
}

const OWNED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// The leaf paths `obj` sets within `scope`.
pub fn field_set(obj: &Value, scope: Scope) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for (k, v) in map {
        let include = match (scope, k.as_str()) {
            (_, "apiVersion" | "kind") => false,
            (Scope::Status, key) => key == "status",
            (Scope::Main, "status") => false,
            (Scope::Main, "metadata") => {
                for m in OWNED_METADATA {
                    if let Some(v) = v.get(m) {
                        leaves(v, vec!["metadata".into(), m.into()], &mut out);
                    }
                }
                false
            }
            _ => true,
        };
        if include {
            leaves(v, vec![k.clone()], &mut out);
        }
    }
    out
}

fn leaves(v: &Value, path: FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, v) in m {
                let mut p = path.clone();
                p.push(k.clone());
                leaves(v, p, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

fn value_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn set_at(v: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for k in parents {
        if !cur.get(k).is_some_and(Value::is_object) {
            cur[k.as_str()] = json!({});
        }
        cur = &mut cur[k.as_str()];
    }
    cur[last.as_str()] = value;
}

fn remove_at(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if let Some(Value::Object(m)) = value_at_mut(v, parents) {
        m.remove(last);
    }
}

fn value_at_mut<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, k| v.get_mut(k))
}

/// Whether one path is the other or contains it.
fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

/// A field set as FieldsV1 (`{"f:spec": {"f:replicas": {}}}`).
fn to_fields_v1(fields: &BTreeSet<FieldPath>) -> Value {
    let mut root = json!({});
    for path in fields {
        let mut cur = &mut root;
        for k in path {
            cur = cur
                .as_object_mut()
                .map(|m| m.entry(format!("f:{k}")).or_insert_with(|| json!({})))
                .expect("FieldsV1 nodes are objects");
        }
    }
    root
}

fn from_fields_v1(v: &Value, path: FieldPath, out: &mut BTreeSet<FieldPath>) {
    let children: Vec<(&String, &Value)> = v
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("f:"))
        .collect();
    if children.is_empty() {
        if !path.is_empty() {
            out.insert(path);
        }
        return;
    }
    for (k, child) in children {
        let mut p = path.clone();
        p.push(k[2..].to_owned());
        from_fields_v1(child, p, out);
    }
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let mut fields = BTreeSet::new();
            from_fields_v1(&e["fieldsV1"], Vec::new(), &mut fields);
            Some(Entry {
                manager: e["manager"].as_str()?.to_owned(),
                operation: match e["operation"].as_str()? {
                    "Apply" => Operation::Apply,
                    _ => Operation::Update,
                },
                subresource: e["subresource"].as_str().map(str::to_owned),
                api_version: e["apiVersion"].as_str().unwrap_or_default().to_owned(),
                time: e["time"].as_str().unwrap_or_default().to_owned(),
                fields,
            })
        })
        .collect()
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation.as_str(),
                "apiVersion": e.api_version, "time": e.time,
                "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.fields),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if list.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
    } else {
        obj["metadata"]["managedFields"] = Value::Array(list);
    }
}

/// Sets `manager`'s entry (by operation and scope) to `fields`; the time changes only when
/// the fields do, so a no-op write stays a no-op.
fn set_entry(
    entries: &mut Vec<Entry>,
    manager: &str,
    operation: Operation,
    scope: Scope,
    api_version: &str,
    fields: BTreeSet<FieldPath>,
) {
    let sub = scope.subresource().map(str::to_owned);
    match entries
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == operation && e.subresource == sub)
    {
        Some(e) => {
            if e.fields != fields {
                e.fields = fields;
                e.time = clock::now();
            }
            e.api_version = api_version.to_owned();
        }
        None => entries.push(Entry {
            manager: manager.to_owned(),
            operation,
            subresource: sub,
            api_version: api_version.to_owned(),
            time: clock::now(),
            fields,
        }),
    }
}

/// Server-side apply of `applied` by `manager` onto `current` (`{}` when creating); returns
/// the new object or the conflicts.
pub fn apply(
    current: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    scope: Scope,
) -> Result<Value, Vec<Conflict>> {
    let wanted = field_set(applied, scope);
    let mut entries = read_entries(current);
    let sub = scope.subresource().map(str::to_owned);
    let mine =
        |e: &Entry| e.manager == manager && e.operation == Operation::Apply && e.subresource == sub;
    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| e.manager != manager) {
        for owned in &e.fields {
            for want in wanted.iter().filter(|w| overlaps(w, owned)) {
                let at = if want.len() >= owned.len() {
                    want
                } else {
                    owned
                };
                if value_at(current, at) != value_at(applied, at) {
                    conflicts.push(Conflict {
                        manager: e.manager.clone(),
                        field: dotted(at),
                    });
                }
            }
        }
    }
    conflicts.dedup();
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for e in entries.iter_mut().filter(|e| e.manager != manager) {
        e.fields.retain(|owned| {
            !wanted.iter().any(|w| {
                overlaps(w, owned) && {
                    let at = if w.len() >= owned.len() { w } else { owned };
                    value_at(current, at) != value_at(applied, at)
                }
            })
        });
    }
    let mut obj = current.clone();
    let before: BTreeSet<FieldPath> = entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for gone in before.difference(&wanted) {
        let owned_elsewhere = entries
            .iter()
            .filter(|e| !mine(e))
            .any(|e| e.fields.iter().any(|o| overlaps(o, gone)));
        if !owned_elsewhere {
            remove_at(&mut obj, gone);
        }
    }
    for path in &wanted {
        if let Some(v) = value_at(applied, path) {
            set_at(&mut obj, path, v.clone());
        }
    }
    let api_version = applied["apiVersion"].as_str().unwrap_or_default();
    set_entry(
        &mut entries,
        manager,
        Operation::Apply,
        scope,
        api_version,
        wanted,
    );
    write_entries(&mut obj, &entries);
    Ok(obj)
}

/// Records a non-apply write of `new` over `old` (`None` when creating): `manager` owns the
/// fields it changed, the other managers lose them.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, scope: Scope) {
    let null = Value::Null;
    let old_v = old.unwrap_or(&null);
    let now = field_set(new, scope);
    let changed: BTreeSet<FieldPath> = now
        .iter()
        .filter(|p| value_at(old_v, p) != value_at(new, p))
        .cloned()
        .collect();
    let removed: BTreeSet<FieldPath> = field_set(old_v, scope).difference(&now).cloned().collect();
    let mut entries = old.map(read_entries).unwrap_or_default();
    if changed.is_empty() && removed.is_empty() {
        write_entries(new, &entries);
        return;
    }
    // The others keep what still has the value they wrote.
    for e in &mut entries {
        e.fields.retain(|f| value_at(old_v, f) == value_at(new, f));
    }
    let sub = scope.subresource().map(str::to_owned);
    let mut fields = entries
        .iter()
        .find(|e| e.manager == manager && e.operation == Operation::Update && e.subresource == sub)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    fields.extend(changed);
    fields.retain(|f| value_at(new, f).is_some());
    let api_version = new["apiVersion"].as_str().unwrap_or_default().to_owned();
    set_entry(
        &mut entries,
        manager,
        Operation::Update,
        scope,
        &api_version,
        fields,
    );
    write_entries(new, &entries);
}

/// Keeps `current`'s `managedFields` on `obj` (writes that do not track ownership).
pub fn keep_managed_fields(current: &Value, obj: &mut Value) {
    match current["metadata"].get("managedFields") {
        Some(m) => obj["metadata"]["managedFields"] = m.clone(),
        None => {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
        }
    }
}

/// An empty object with `apiVersion`, `kind`, `metadata`: what apply creates on.
pub fn empty_object() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "a", "image": image}]}}}})
    }

    #[test]
    fn a_field_owned_by_another_manager_with_another_value_conflicts_unless_forced() {
        let first = apply(&json!({}), &deploy(2, "a:1"), "alice", false, Scope::Main).unwrap();
        let err = apply(&first, &deploy(3, "a:1"), "bob", false, Scope::Main).unwrap_err();
        assert_eq!(
            err,
            vec![Conflict {
                manager: "alice".into(),
                field: ".spec.replicas".into()
            }]
        );
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
        );
        let forced = apply(&first, &deploy(3, "a:1"), "bob", true, Scope::Main).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        // alice lost replicas: her next apply of another value now conflicts with bob.
        let err = apply(&forced, &deploy(4, "a:1"), "alice", false, Scope::Main).unwrap_err();
        assert_eq!(err[0].manager, "bob");
    }

    #[test]
    fn same_values_are_shared_and_fields_dropped_from_an_apply_are_removed() {
        let first = apply(&json!({}), &deploy(2, "a:1"), "alice", false, Scope::Main).unwrap();
        let shared = apply(&first, &deploy(2, "a:1"), "bob", false, Scope::Main).unwrap();
        let mut less = deploy(2, "a:1");
        less["spec"].as_object_mut().unwrap().remove("replicas");
        // bob still owns replicas: alice dropping it keeps it.
        let kept = apply(&shared, &less, "alice", false, Scope::Main).unwrap();
        assert_eq!(kept["spec"]["replicas"], 2);
        // Only alice owned it: dropping it removes it.
        let alone = apply(&first, &less, "alice", false, Scope::Main).unwrap();
        assert!(alone["spec"].get("replicas").is_none());
    }

    #[test]
    fn updates_take_ownership_without_conflicts_and_no_ops_keep_managed_fields() {
        let applied = apply(&json!({}), &deploy(2, "a:1"), "alice", false, Scope::Main).unwrap();
        let mut edited = applied.clone();
        edited["spec"]["replicas"] = json!(5);
        record_update(Some(&applied), &mut edited, "kubectl-edit", Scope::Main);
        let err = apply(&edited, &deploy(2, "a:1"), "alice", false, Scope::Main).unwrap_err();
        assert_eq!(err[0].manager, "kubectl-edit");
        let again = apply(&applied, &deploy(2, "a:1"), "alice", false, Scope::Main).unwrap();
        assert_eq!(again, applied);
    }

    #[test]
    fn the_status_scope_owns_only_status_and_main_owns_no_status() {
        let obj = json!({"metadata": {"name": "x", "labels": {"a": "b"}, "uid": "u"},
                         "spec": {"r": 1}, "status": {"phase": "P"}});
        let main = field_set(&obj, Scope::Main);
        assert!(main.contains(&vec!["spec".to_owned(), "r".to_owned()]));
        assert!(main.contains(&vec!["metadata".into(), "labels".into(), "a".into()]));
        assert!(
            !main
                .iter()
                .any(|p| p[0] == "status" || p.ends_with(&["uid".to_owned()]))
        );
        let status = field_set(&obj, Scope::Status);
        assert_eq!(status.len(), 1);
        let fields = to_fields_v1(&main);
        let mut back = BTreeSet::new();
        from_fields_v1(&fields, Vec::new(), &mut back);
        assert_eq!(back, main);
    }
}
