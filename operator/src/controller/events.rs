//! Kubernetes Events (events.k8s.io/v1) on the FeedRollout, one per decision of the brain.
//!
//! Not kube's `Recorder`: it folds repeated reasons into a series that keeps the *first* note,
//! so "step 2/7" would be shown as "step 1/7". Decisions are rare (the brain emits an Event
//! only when something changes), so each is its own Event.

use std::sync::atomic::{AtomicU64, Ordering};

use feedroll_crds::FeedRollout;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, Resource};

use crate::brain::{EventReason, EventType};

/// Longest Event note the API server accepts.
const MAX_NOTE: usize = 1024;

/// Publishes Events as `feedroll-operator` (instance: the pod name).
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    instance: String,
    counter: std::sync::Arc<AtomicU64>,
}

impl EventPublisher {
    /// A publisher reporting as `instance`.
    pub fn new(client: Client, instance: impl Into<String>) -> Self {
        Self {
            client,
            instance: instance.into(),
            counter: Default::default(),
        }
    }

    /// Creates an Event regarding `fr`.
    pub async fn publish(
        &self,
        fr: &FeedRollout,
        type_: EventType,
        reason: EventReason,
        note: &str,
    ) -> Result<(), kube::Error> {
        let reference = fr.object_ref(&());
        let ns = fr
            .meta()
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let now = Timestamp::now();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{}.{:x}{:04x}",
            fr.meta().name.as_deref().unwrap_or("feedrollout"),
            now.as_nanosecond(),
            n & 0xffff
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            action: Some("Reconcile".to_owned()),
            reason: Some(reason.as_str().to_owned()),
            note: Some(truncate(note, MAX_NOTE)),
            type_: Some(type_.as_str().to_owned()),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference),
            reporting_controller: Some(crate::controller::CONTROLLER_NAME.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        Api::<Event>::namespaced(self.client.clone(), &ns)
            .create(&PostParams::default(), &event)
            .await
            .map(|_| ())
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max - 3;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}
