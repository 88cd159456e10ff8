//! The object store: objects by key, one resourceVersion counter for the whole cluster (like
//! etcd's revision), a bounded history of changes for watches (older resourceVersions are
//! compacted: a watch from one answers 410 Gone), finalizers and garbage collection of
//! dependents when their owner goes (background propagation).
//!
//! Controllers plug in two ways: [`Store::subscribe`] streams every change (for asynchronous
//! controllers such as a kubelet), and [`Mutator`]s see every object just before it is stored
//! (for synchronous ones, e.g. playing the Deployment controller in tests).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::clock;
use crate::path::prefix_of_api_version;

/// Where an object lives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// `/api/v1` or `/apis/GROUP/VERSION`.
    pub prefix: String,
    /// Plural resource.
    pub resource: String,
    /// Namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// A key from its parts.
    pub fn new(prefix: &str, resource: &str, namespace: &str, name: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The key of `obj` stored as `resource` (its apiVersion, namespace and name).
    pub fn of(resource: &str, obj: &Value) -> Self {
        Self::new(
            &prefix_of_api_version(obj["apiVersion"].as_str().unwrap_or("v1")),
            resource,
            obj["metadata"]["namespace"].as_str().unwrap_or_default(),
            obj["metadata"]["name"].as_str().unwrap_or_default(),
        )
    }
}

/// What a change did, as watch events name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object changed.
    Modified,
    /// The object is gone.
    Deleted,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        })
    }
}

/// One change to one object.
#[derive(Clone, Debug)]
pub struct Change {
    /// The resourceVersion the change created.
    pub revision: u64,
    /// Which object.
    pub key: ObjectKey,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (before it, for a deletion; with the new resourceVersion).
    pub object: Value,
    /// The object before a `Modified` change: a watch with a selector needs it to tell an
    /// object entering or leaving the selection from one changing inside it.
    pub previous: Option<Value>,
}

impl Change {
    /// The event a watch whose selection is `selected` sees for this change, as the API
    /// server's watch cache decides it: a modified object that enters the selection is
    /// `ADDED`, one that leaves it is `DELETED` (its previous state, with the new
    /// resourceVersion), one outside before and after is not seen at all.
    pub fn seen_through(&self, selected: impl Fn(&Value) -> bool) -> Option<(EventType, Value)> {
        let now = selected(&self.object);
        let before = match (&self.kind, &self.previous) {
            (EventType::Modified, Some(p)) => selected(p),
            _ => now,
        };
        match (before, now) {
            (true, true) => Some((self.kind, self.object.clone())),
            (false, true) => Some((EventType::Added, self.object.clone())),
            (true, false) => {
                let mut gone = self.previous.clone().unwrap_or_else(|| self.object.clone());
                if let Some(m) = gone.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert(
                        "resourceVersion".into(),
                        self.object["metadata"]["resourceVersion"].clone(),
                    );
                }
                Some((EventType::Deleted, gone))
            }
            (false, false) => None,
        }
    }
}

/// Sees (and may change) every object just before it is stored.
pub type Mutator = Arc<dyn Fn(&ObjectKey, &mut Value) + Send + Sync>;

/// How a deletion treats the object's dependents (`propagationPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Dependents are deleted after the owner (the default).
    #[default]
    Background,
    /// Dependents stay, their owner reference to this owner removed.
    Orphan,
}

/// Changes kept for watches to resume from, by default.
pub const DEFAULT_HISTORY: usize = 100_000;
/// Changes a live watcher may fall behind by before its stream ends (it then resumes from
/// the history), by default.
pub const DEFAULT_LIVE_BUFFER: usize = 65_536;

/// The store. Not synchronised: the server holds it behind a lock.
pub struct Store {
    objects: BTreeMap<ObjectKey, Value>,
    revision: u64,
    history: VecDeque<Change>,
    history_limit: usize,
    /// Watches may resume from this resourceVersion or a later one.
    oldest_resumable: u64,
    changes: broadcast::Sender<Change>,
    mutators: Vec<Mutator>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            revision: 0,
            history: VecDeque::new(),
            history_limit: DEFAULT_HISTORY,
            oldest_resumable: 0,
            changes: broadcast::channel(DEFAULT_LIVE_BUFFER).0,
            mutators: Vec::new(),
        }
    }
}

/// Whether the object has finalizers left (for a Namespace, also `spec.finalizers`: the
/// namespace controller's `kubernetes`, there while the namespace is not empty).
fn has_finalizers(obj: &Value) -> bool {
    let nonempty = |v: &Value| v.as_array().is_some_and(|f| !f.is_empty());
    nonempty(&obj["metadata"]["finalizers"])
        || (obj["kind"] == "Namespace" && nonempty(&obj["spec"]["finalizers"]))
}

/// Where a namespace is stored.
pub fn namespace_key(name: &str) -> ObjectKey {
    ObjectKey::new("/api/v1", "namespaces", "", name)
}

/// Whether an object is being deleted (it has a deletionTimestamp).
pub fn is_deleting(obj: &Value) -> bool {
    obj["metadata"].get("deletionTimestamp").is_some()
}

/// The object without `metadata` and `status`: what a generation counts changes of.
fn spec_part(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

impl Store {
    /// The current resourceVersion (of the last change).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Keeps at most `limit` changes for watches; older ones are compacted.
    pub fn set_history_limit(&mut self, limit: usize) {
        self.history_limit = limit.max(1);
        self.trim();
    }

    /// How many changes a live watcher may fall behind by before its stream ends (it then
    /// resumes from its last resourceVersion, from the history). Current subscribers' streams
    /// end at once (they resume the same way): call it before serving.
    pub fn set_live_buffer(&mut self, capacity: usize) {
        self.changes = broadcast::channel(capacity.max(1)).0;
    }

    /// Forgets every change so far: a watch from an older resourceVersion gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest_resumable = self.revision;
    }

    /// Adds a hook run on every object before it is stored.
    pub fn add_mutator(&mut self, m: Mutator) {
        self.mutators.push(m);
    }

    /// Every future change.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// The stored object.
    pub fn get(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Stored objects of a resource (in a namespace when given), in key order.
    pub fn list<'a>(
        &'a self,
        prefix: &'a str,
        resource: &'a str,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Value)> + 'a {
        let start = ObjectKey::new(prefix, resource, namespace.unwrap_or_default(), "");
        self.objects.range(start..).take_while(move |(k, _)| {
            k.prefix == prefix
                && k.resource == resource
                && namespace.is_none_or(|ns| k.namespace == ns)
        })
    }

    /// Every stored object (benchmarks, garbage collection).
    pub fn all(&self) -> impl Iterator<Item = (&ObjectKey, &Value)> {
        self.objects.iter()
    }

    /// Changes after `since` matching `filter`, or `None` when `since` is compacted.
    pub fn changes_since(
        &self,
        since: u64,
        filter: impl Fn(&Change) -> bool,
    ) -> Option<Vec<Change>> {
        if since < self.oldest_resumable {
            return None;
        }
        Some(
            self.history
                .iter()
                .filter(|c| c.revision > since && filter(c))
                .cloned()
                .collect(),
        )
    }

    fn bump(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    fn trim(&mut self) {
        while self.history.len() > self.history_limit {
            if let Some(c) = self.history.pop_front() {
                self.oldest_resumable = c.revision;
            }
        }
    }

    fn record(&mut self, key: ObjectKey, kind: EventType, object: Value, previous: Option<Value>) {
        let change = Change {
            revision: self.revision,
            key,
            kind,
            object,
            previous,
        };
        self.history.push_back(change.clone());
        self.trim();
        let _ = self.changes.send(change);
    }

    /// Stores `obj` at `key` (`old` is what is stored there now): new resourceVersion, uid and
    /// creation time kept, generation bumped when anything but metadata and status changed;
    /// an object that is deleting and has no finalizers left is removed (and its dependents
    /// collected). Returns the object as stored.
    pub fn write(&mut self, key: ObjectKey, mut obj: Value, old: Option<&Value>) -> Value {
        if !obj.is_object() {
            obj = json!({});
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        obj["metadata"]["name"] = json!(key.name);
        if !key.namespace.is_empty() {
            obj["metadata"]["namespace"] = json!(key.namespace);
        }
        for m in self.mutators.clone() {
            m(&key, &mut obj);
        }
        if let Some(old) = old {
            let mut generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            if spec_part(old) != spec_part(&obj) {
                generation += 1;
            }
            obj["metadata"]["generation"] = json!(generation);
            obj["metadata"]["uid"] = old["metadata"]["uid"].clone();
            obj["metadata"]["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
            if let Some(d) = old["metadata"].get("deletionTimestamp") {
                obj["metadata"]["deletionTimestamp"] = d.clone();
            }
            obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
            if &obj == old {
                return obj;
            }
        } else {
            obj["metadata"]["generation"] = json!(1);
            obj["metadata"]["uid"] = json!(format!("uid-{}-{}", key.name, self.revision + 1));
            obj["metadata"]["creationTimestamp"] = json!(clock::now());
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("deletionTimestamp");
            }
        }
        obj["metadata"]["resourceVersion"] = json!(self.bump().to_string());
        let deleting = obj["metadata"].get("deletionTimestamp").is_some();
        if deleting && !has_finalizers(&obj) {
            self.objects.remove(&key);
            self.record(key.clone(), EventType::Deleted, obj.clone(), None);
            self.collect_dependents(&obj, Propagation::Background);
            self.finish_namespace(&key.namespace);
        } else {
            let kind = if old.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            };
            self.objects.insert(key.clone(), obj.clone());
            self.record(key, kind, obj.clone(), old.cloned());
        }
        obj
    }

    /// Deletes an object as the API server does: with finalizers it only gets a
    /// deletionTimestamp; without, it goes at once. Returns the object as last seen.
    pub fn delete(&mut self, key: &ObjectKey, propagation: Propagation) -> Option<Value> {
        let old = self.objects.get(key)?.clone();
        if propagation == Propagation::Orphan {
            self.orphan_dependents(&old);
        }
        if has_finalizers(&old) {
            if old["metadata"].get("deletionTimestamp").is_some() {
                return Some(old);
            }
            let mut obj = old.clone();
            obj["metadata"]["deletionTimestamp"] = json!(clock::now());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            return Some(self.write(key.clone(), obj, Some(&old)));
        }
        self.remove(key)
    }

    /// Removes an object at once, ignoring finalizers; dependents are collected.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Value> {
        let old = self.objects.remove(key)?;
        let mut gone = old.clone();
        gone["metadata"]["resourceVersion"] = json!(self.bump().to_string());
        self.record(key.clone(), EventType::Deleted, gone.clone(), None);
        self.collect_dependents(&gone, Propagation::Background);
        self.finish_namespace(&key.namespace);
        Some(gone)
    }

    /// The namespace controller's last step: a Terminating namespace goes once nothing is
    /// left in it (returns it, as removed, when it went).
    pub fn finish_namespace(&mut self, ns: &str) -> Option<Value> {
        if ns.is_empty() {
            return None;
        }
        let key = namespace_key(ns);
        let terminating = self.objects.get(&key).is_some_and(is_deleting);
        if terminating && !self.objects.keys().any(|k| k.namespace == ns) {
            return self.remove(&key);
        }
        None
    }

    /// Keys of objects with an owner reference to `owner`'s uid.
    fn dependents_of(&self, owner: &Value) -> Vec<ObjectKey> {
        let Some(uid) = owner["metadata"]["uid"].as_str() else {
            return Vec::new();
        };
        self.objects
            .iter()
            .filter(|(_, v)| {
                v["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The garbage collector, background propagation: an object whose owners are all gone is
    /// deleted (an owner reference to an object still stored keeps it).
    fn collect_dependents(&mut self, owner: &Value, propagation: Propagation) {
        if propagation == Propagation::Orphan {
            return;
        }
        for key in self.dependents_of(owner) {
            let Some(dep) = self.objects.get(&key) else {
                continue;
            };
            let other_owner_alive = dep["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["uid"] != owner["metadata"]["uid"])
                .any(|r| {
                    let uid = r["uid"].as_str();
                    self.objects
                        .values()
                        .any(|o| o["metadata"]["uid"].as_str() == uid)
                });
            if !other_owner_alive {
                self.delete(&key, Propagation::Background);
            }
        }
    }

    /// Removes the owner reference to `owner` from each of its dependents.
    fn orphan_dependents(&mut self, owner: &Value) {
        let uid = owner["metadata"]["uid"].clone();
        for key in self.dependents_of(owner) {
            if let Some(old) = self.objects.get(&key).cloned() {
                let mut obj = old.clone();
                if let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid);
                }
                self.write(key, obj, Some(&old));
            }
        }
    }
}
