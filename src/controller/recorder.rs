//! Kubernetes Events, written without keeping them.
//!
//! kube-runtime's `Recorder` keeps each Event it wrote for six minutes, the whole object (~2 KB
//! with its key), to count repeats into a series. A burst's milestones are distinct events (each
//! branch's Deploying, then Ready), so at 5,000 branches it held thousands of them at the peak of
//! the operator's memory. This recorder keeps only what a repeat needs: for each (object, reason,
//! type, note) written in the last six minutes, the Event's name and its count. A repeat within
//! that time is counted into the same Event's series, as Kubernetes' own recorders do. The note
//! is part of what makes a repeat: the API server refuses a changed note on an existing Event,
//! so another note is another Event.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::Client;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

/// How long a repeat counts into the series of the Event before it (as kube-runtime's).
const REPEAT_WINDOW: SignedDuration = SignedDuration::from_mins(6);

pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
    recent: Mutex<Recent>,
}

impl Recorder {
    /// Events reported by `controller` (and the pod `instance`, when known).
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        Recorder {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or_else(|| controller.to_string()),
            recent: Mutex::default(),
        }
    }

    /// Writes an Event on the object `regarding` names, or counts it into the series of the
    /// same Event written less than six minutes ago. Cluster-scoped objects get theirs in
    /// `default`.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        note: String,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api = Api::<Event>::namespaced(self.client.clone(), namespace);
        let key = key(regarding, warning, reason, &note);
        let repeat = self.recent.lock().expect("recent events").repeat(key, now);
        if let Some((name, count)) = repeat {
            let series = json!({
                "series": {"count": count, "lastObservedTime": MicroTime(now)},
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                .await
            {
                Ok(_) => {
                    let mut recent = self.recent.lock().expect("recent events");
                    recent.remember(key, name, count, now);
                    return Ok(());
                }
                // Deleted meanwhile (Events expire): written anew below.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(&self.controller),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.to_string()),
                ..ObjectMeta::default()
            },
            action: Some("Reconcile".into()),
            reason: Some(reason.to_string()),
            note: Some(note),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        api.create(&PostParams::default(), &event).await?;
        let mut recent = self.recent.lock().expect("recent events");
        recent.remember(key, name, 1, now);
        Ok(())
    }
}

/// What makes two Events the same one repeated: the object, the reason, the type and the note.
fn key(regarding: &ObjectReference, warning: bool, reason: &str, note: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    (
        &regarding.uid,
        &regarding.kind,
        &regarding.namespace,
        &regarding.name,
        warning,
        reason,
        note,
    )
        .hash(&mut hasher);
    hasher.finish()
}

/// The Events written in the last `REPEAT_WINDOW`, by key: their name and count.
#[derive(Default)]
struct Recent(HashMap<u64, Written>);

struct Written {
    name: String,
    count: i32,
    at: Timestamp,
}

impl Recent {
    /// The Event to count a repeat of `key` into, with its new count, if one was written recently.
    /// Forgets what is older.
    fn repeat(&mut self, key: u64, now: Timestamp) -> Option<(String, i32)> {
        self.0
            .retain(|_, written| now.duration_since(written.at) < REPEAT_WINDOW);
        self.0
            .get(&key)
            .map(|written| (written.name.clone(), written.count + 1))
    }

    fn remember(&mut self, key: u64, name: String, count: i32, now: Timestamp) {
        self.0.insert(
            key,
            Written {
                name,
                count,
                at: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("BranchRelease".into()),
            namespace: Some("shop".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    #[test]
    fn a_repeat_within_six_minutes_counts_into_the_same_event() {
        let mut recent = Recent::default();
        let start = Timestamp::UNIX_EPOCH;
        let ready = key(&reference("main"), false, "Ready", "ready");
        assert_eq!(recent.repeat(ready, start), None);
        recent.remember(ready, "main.1".into(), 1, start);
        let later = start + SignedDuration::from_mins(5);
        assert_eq!(recent.repeat(ready, later), Some(("main.1".into(), 2)));
        recent.remember(ready, "main.1".into(), 2, later);
        // Counted from the last repeat; past the window it is a new Event.
        let much_later = later + SignedDuration::from_mins(6);
        assert_eq!(recent.repeat(ready, much_later), None);
        assert!(recent.0.is_empty(), "what is older is forgotten");
    }

    #[test]
    fn other_objects_reasons_types_and_notes_are_other_events() {
        let main = key(&reference("main"), false, "Ready", "ready");
        assert_ne!(main, key(&reference("feature"), false, "Ready", "ready"));
        assert_ne!(main, key(&reference("main"), false, "Deploying", "ready"));
        assert_ne!(main, key(&reference("main"), true, "Ready", "ready"));
        assert_ne!(
            main,
            key(&reference("main"), false, "Ready", "ready at 3f2a1c9"),
            "the API server keeps an Event's note: another note is another Event"
        );
    }
}
