//! Reads the Secrets and ConfigMaps that `spec.analysis.prometheus` names (bearer token,
//! basic auth, header values, CA bundle), in the FeedRollout's namespace, through a short cache.
//!
//! A Secret is read with `get` (the one Secret permission the operator has: it can never list
//! them); a ConfigMap with `list` and a `metadata.name` field selector, under the `configmaps
//! list` permission the operator already holds for its own ConfigMaps. What was read (found or
//! missing) is kept for [`OBJECT_TTL`]: a reconcile does not read a Secret every time, and a
//! rotated or newly created Secret is used within that time. API errors are not cached.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use feedroll_crds::{ObjectKeyRef, ObjectKind};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::{Api, ListParams};

use super::lock;
use crate::analysis::connection::{Fetched, FetchedObject};

/// How long a read Secret or ConfigMap is used before it is read again.
pub const OBJECT_TTL: Duration = Duration::from_secs(30);

/// (namespace, kind, name).
type ObjectId = (String, ObjectKind, String);

/// Secrets and ConfigMaps read recently.
pub struct ObjectCache {
    client: Client,
    ttl: Duration,
    entries: std::sync::Mutex<HashMap<ObjectId, (Instant, FetchedObject)>>,
}

impl ObjectCache {
    /// A cache reading through `client`, keeping what it read for `ttl`.
    pub fn new(client: Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            entries: Default::default(),
        }
    }

    /// The objects `refs` name, in `namespace`: from the cache when read less than the TTL
    /// ago, else from the API server.
    pub async fn fetch(&self, namespace: &str, refs: &[ObjectKeyRef]) -> Fetched {
        let mut out = Fetched::new();
        for r in refs {
            let id: ObjectId = (namespace.to_owned(), r.kind, r.name.clone());
            let cached = {
                let mut entries = lock(&self.entries);
                entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
                entries.get(&id).map(|(_, o)| o.clone())
            };
            let object = match cached {
                Some(o) => o,
                None => {
                    let o = self.read(namespace, r.kind, &r.name).await;
                    if !matches!(o, FetchedObject::Unreadable(_)) && !self.ttl.is_zero() {
                        lock(&self.entries).insert(id, (Instant::now(), o.clone()));
                    }
                    o
                }
            };
            out.insert((r.kind, r.name.clone()), object);
        }
        out
    }

    async fn read(&self, namespace: &str, kind: ObjectKind, name: &str) -> FetchedObject {
        let result = match kind {
            ObjectKind::Secret => Api::<Secret>::namespaced(self.client.clone(), namespace)
                .get_opt(name)
                .await
                .map(|s| {
                    s.map(|s| {
                        s.data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.0))
                            .collect()
                    })
                }),
            ObjectKind::ConfigMap => {
                let params = ListParams::default().fields(&format!("metadata.name={name}"));
                Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
                    .list(&params)
                    .await
                    .map(|list| {
                        list.items
                            .into_iter()
                            .find(|c| c.metadata.name.as_deref() == Some(name))
                            .map(config_map_data)
                    })
            }
        };
        match result {
            Ok(Some(data)) => FetchedObject::Found(data),
            Ok(None) => FetchedObject::Missing,
            Err(e) => {
                tracing::warn!(namespace, kind = kind.as_str(), name, error = %e, "cannot read an object spec.analysis.prometheus names");
                FetchedObject::Unreadable(e.to_string())
            }
        }
    }
}

/// A ConfigMap's `data` and `binaryData` as bytes.
fn config_map_data(c: ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let text = c
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()));
    let binary = c
        .binary_data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0));
    text.chain(binary).collect()
}
